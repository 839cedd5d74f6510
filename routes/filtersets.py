from __future__ import annotations

import django_filters

from routes.models import Input, Output, RouteEvent


class InputFilterSet(django_filters.FilterSet):
    class Meta:
        model = Input
        fields = ["route", "protocol"]


class OutputFilterSet(django_filters.FilterSet):
    class Meta:
        model = Output
        fields = ["route", "protocol", "enabled"]


class RouteEventFilterSet(django_filters.FilterSet):
    since = django_filters.IsoDateTimeFilter(field_name="time", lookup_expr="gte")

    class Meta:
        model = RouteEvent
        fields = ["route", "kind", "since"]
