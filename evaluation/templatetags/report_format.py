"""The report's number formats for templates, so every page writes a share, a kappa or a
p-value as the report does (``evaluation.report``)."""
from django import template

from evaluation import report

register = template.Library()


@register.filter
def percent(share):
    """0.563 as ``56.3 %``; None as ``n/a``."""
    return report.percent_text(share)


@register.filter
def decimal(value):
    """0.41237 as ``0.412``; None as ``n/a``."""
    return report.decimal_text(value)
