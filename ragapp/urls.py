"""Top-level URL configuration."""

from django.contrib import admin
from django.urls import include, path

from ragapp.runtime.views import healthz

admin.site.site_header = "ragapp administration"
admin.site.site_title = "ragapp admin"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("ragapp.accounts.urls")),
    path("manage/", include("ragapp.web.manage_urls")),
    path("", include("ragapp.api.urls")),
    path("", include("ragapp.web.urls")),
]
