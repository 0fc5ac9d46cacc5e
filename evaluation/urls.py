from django.urls import path

from . import views

app_name = "evaluation"
urlpatterns = [
    path("", views.index, name="index"),
    path("stored-predictions/clear/", views.clear_predictions, name="clear_predictions"),
    path("<slug:testset>/", views.report_page, name="report"),
    path("<slug:testset>/report.json", views.report_json, name="report_json"),
    path("<slug:testset>/report.html", views.report_html, name="report_html"),
    path("<slug:testset>/quality/", views.quality_page, name="quality"),
    path("<slug:testset>/plan/", views.plan_page, name="plan"),
]
