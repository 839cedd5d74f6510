from django.urls import re_path
from rest_framework.routers import DefaultRouter

from routes.api import views

router = DefaultRouter()
router.register("routes", views.RouteViewSet)
router.register("inputs", views.InputViewSet)
router.register("outputs", views.OutputViewSet)
router.register("profiles", views.TranscodeProfileViewSet)
router.register("nodes", views.NodeViewSet)
router.register("events", views.RouteEventViewSet)
router.register("webhooks", views.WebhookViewSet)

# Last: anything else under the API answers with a JSON 404.
urlpatterns = [*router.urls, re_path(r"^", views.api_not_found)]
