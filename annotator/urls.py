from django.urls import include, path

from . import views

# ``home`` stays un-namespaced (base.html and LOGIN_REDIRECT_URL use it); the rest is
# under the ``annotator:`` namespace.
app_patterns = [
    path("label/<slug:testset>/", views.label, name="label"),
    path("label/<slug:testset>/vote/", views.vote, name="vote"),
    path("label/<slug:testset>/undo/", views.undo, name="undo"),
    path("label/<slug:testset>/images/<int:pk>/", views.image_file, name="image"),
    path("staff/", views.staff_dashboard, name="dashboard"),
    path("staff/import/", views.staff_import, name="import"),
    path("staff/testsets/<slug:testset>/", views.staff_testset, name="testset"),
    path("staff/export/<slug:testset>/<str:kind>/", views.staff_export, name="export"),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("", include((app_patterns, "annotator"))),
]
