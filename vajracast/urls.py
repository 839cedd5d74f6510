from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from routes import media_files
from vajracast import health, metrics

urlpatterns = [
    re_path(r"^api/health/?$", health.health, name="health"),
    re_path(r"^api/ready/?$", health.ready, name="ready"),
    re_path(r"^metrics/?$", metrics.metrics, name="metrics"),
    path("api/v1/", include("routes.api.urls")),
    path("hls/<int:pk>/<str:name>", media_files.hls_file, name="hls-file"),
    path("hls/<int:pk>/<str:variant>/<str:name>", media_files.hls_file, name="hls-variant-file"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("routes.urls")),
]
