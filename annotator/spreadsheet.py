"""Csv cells that a spreadsheet shows as text and never runs as a formula (CSV injection).

Excel, LibreOffice and Google Sheets take a cell that starts with ``= + - @``, a tab or a
carriage return for a formula, so an image key or a user name such as
``=HYPERLINK(...)`` would run when staff open an export. Every csv the app writes puts a
single quote before such a cell; spreadsheets show the quote and the text as they are.

The votes csv stays a lossless backup: a cell that already starts with quotes followed
by one of those characters gets one quote more, and ``import_votes`` takes exactly one
quote off every cell that starts with quotes followed by one of them. So an exported
``'=x.png`` imports as ``=x.png`` and an exported ``''=x.png`` as ``'=x.png``; any other
cell is read as it is.
"""
from __future__ import annotations

import csv
import re
from typing import Iterable, TextIO

FORMULA_STARTS = "=+-@\t\r"
_ESCAPED = re.compile(r"'+[=+\-@\t\r]")
_NEEDS_QUOTE = re.compile(r"'*[=+\-@\t\r]")


def escape_cell(value) -> str:
    """``value`` as csv text a spreadsheet cannot take for a formula."""
    text = "" if value is None else str(value)
    return "'" + text if _NEEDS_QUOTE.match(text) else text


def unescape_cell(text: str) -> str:
    """The value ``escape_cell`` was given, from what it wrote."""
    return text[1:] if _ESCAPED.match(text) else text


class SafeWriter:
    """``csv.writer`` whose every cell goes through ``escape_cell``."""

    def __init__(self, out: TextIO):
        self._writer = csv.writer(out, lineterminator="\n")

    def writerow(self, row: Iterable) -> None:
        self._writer.writerow([escape_cell(value) for value in row])
