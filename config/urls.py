from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("annotator.urls")),
    path("evaluation/", include("evaluation.urls")),
    path("live/", include("live.urls")),
]

# A 400 says which of Django's request limits was hit, in plain text with its charset.
handler400 = "annotator.views.bad_request"
