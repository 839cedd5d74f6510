from django.urls import path

from routes import views

urlpatterns = [
    path("", views.route_list, name="ui-route-list"),
    path("routes/live/", views.route_list_live, name="ui-route-list-live"),
    path("routes/<int:pk>/", views.route_detail, name="ui-route-detail"),
    # Before the generic action: "live" is read, "switch" takes a posted input, start and stop
    # take nothing.
    path("routes/<int:pk>/live/", views.route_detail_live, name="ui-route-detail-live"),
    path("routes/<int:pk>/switch/", views.route_switch, name="ui-route-switch"),
    path("routes/<int:pk>/<str:action>/", views.route_action, name="ui-route-action"),
    path("outputs/<int:pk>/player/", views.hls_player, name="ui-hls-player"),
    path("outputs/<int:pk>/recordings/<str:name>", views.recording_download, name="ui-recording"),
    path("ui/live.js", views.live_script, name="ui-live-script"),
]
