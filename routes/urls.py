from django.urls import path

from routes import views

urlpatterns = [
    path("", views.route_list, name="ui-route-list"),
    path("routes/<int:pk>/", views.route_detail, name="ui-route-detail"),
    path("routes/<int:pk>/<str:action>/", views.route_action, name="ui-route-action"),
]
