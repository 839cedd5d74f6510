from __future__ import annotations

from django.http import FileResponse, Http404, HttpRequest, JsonResponse
from django.urls import Resolver404, resolve
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from routes import control
from routes.api import serializers
from routes.choices import OutputProtocol, Role
from routes.filtersets import InputFilterSet, OutputFilterSet, RouteEventFilterSet
from routes.media_files import media_response
from routes.models import Input, Node, Output, Route, RouteEvent, TranscodeProfile, Webhook
from routes.runtime import route_state
from routes.status import route_status


class RouteViewSet(viewsets.ModelViewSet):
    queryset = Route.objects.prefetch_related("inputs", "outputs")
    serializer_class = serializers.RouteSerializer
    operator_actions = {"start", "stop", "switch"}

    def _status(self, route: Route) -> Response:
        route.refresh_from_db()
        return Response(route_status(route, route_state(route.pk)))

    @extend_schema(request=None, responses=serializers.RouteStatusSerializer)
    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk: str | None = None) -> Response:
        route = self.get_object()
        control.start(route)
        return self._status(route)

    @extend_schema(request=None, responses=serializers.RouteStatusSerializer)
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, pk: str | None = None) -> Response:
        route = self.get_object()
        control.stop(route)
        return self._status(route)

    @extend_schema(request=serializers.SwitchSerializer, responses=serializers.RouteStatusSerializer)
    @action(detail=True, methods=["post"])
    def switch(self, request: Request, pk: str | None = None) -> Response:
        route = self.get_object()
        body = serializers.SwitchSerializer(data=request.data, context={"route": route})
        body.is_valid(raise_exception=True)
        control.switch(route, body.validated_data["input"])
        return self._status(route)

    @extend_schema(responses=serializers.RouteStatusSerializer)
    @action(detail=True, methods=["get"])
    def status(self, request: Request, pk: str | None = None) -> Response:
        return self._status(self.get_object())


class InputViewSet(viewsets.ModelViewSet):
    queryset = Input.objects.select_related("route")
    serializer_class = serializers.InputSerializer
    filterset_class = InputFilterSet


class OutputViewSet(viewsets.ModelViewSet):
    queryset = Output.objects.select_related("route")
    serializer_class = serializers.OutputSerializer
    filterset_class = OutputFilterSet

    @extend_schema(responses=serializers.RecordingSerializer(many=True))
    @action(detail=True, methods=["get"])
    def recordings(self, request: Request, pk: str | None = None) -> Response:
        output = self.get_object()
        files = serializers.RecordingSerializer(output.recordings(), many=True, context={"output": output})
        return Response(files.data)

    @extend_schema(responses={(200, "video/mp2t"): bytes})
    @action(detail=True, methods=["get"], url_path=r"recordings/(?P<name>[^/]+)")
    def recording(self, request: Request, pk: str | None = None, name: str = "") -> FileResponse:
        output = self.get_object()
        if output.protocol != OutputProtocol.FILE:
            raise NotFound(f'Output "{output.name}" is not a recording.')
        try:
            return media_response(output, name, download=True)
        except Http404 as exc:
            raise NotFound(str(exc)) from exc


class TranscodeProfileViewSet(viewsets.ModelViewSet):
    queryset = TranscodeProfile.objects.all()
    serializer_class = serializers.TranscodeProfileSerializer


class NodeViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Node.objects.all()
    serializer_class = serializers.NodeSerializer


class RouteEventViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = RouteEvent.objects.all()
    serializer_class = serializers.RouteEventSerializer
    filterset_class = RouteEventFilterSet


class WebhookViewSet(viewsets.ModelViewSet):
    queryset = Webhook.objects.select_related("route")
    serializer_class = serializers.WebhookSerializer
    read_role = Role.ADMIN  # receivers' addresses are admin business, like the secrets that sign for them

    @extend_schema(responses=serializers.WebhookDeliverySerializer(many=True))
    @action(detail=True, methods=["get"])
    def deliveries(self, request: Request, pk: str | None = None) -> Response:
        page = self.paginate_queryset(self.get_object().deliveries.all())
        return self.get_paginated_response(serializers.WebhookDeliverySerializer(page, many=True).data)


def api_not_found(request: HttpRequest) -> JsonResponse:
    """Unknown API addresses answer in the API's JSON error format rather than an HTML page."""
    message = f"There is no API endpoint at {request.path}."
    if not request.path_info.endswith("/"):
        try:
            with_slash = resolve(request.path_info + "/")
        except Resolver404:
            with_slash = None
        if with_slash is not None and with_slash.func is not api_not_found:
            message += f" API addresses end with a slash: {request.path}/"
    return JsonResponse({"message": message, "errors": {}}, status=404)
