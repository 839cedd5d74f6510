from routes.models.apikey import ApiKey
from routes.models.endpoints import Input, Output
from routes.models.event import RouteEvent
from routes.models.lease import RouteLease
from routes.models.node import Node
from routes.models.profile import TranscodeProfile
from routes.models.route import Route
from routes.models.webhook import DeliveryState, Webhook, WebhookDelivery

__all__ = [
    "ApiKey",
    "DeliveryState",
    "Input",
    "Node",
    "Output",
    "Route",
    "RouteEvent",
    "RouteLease",
    "TranscodeProfile",
    "Webhook",
    "WebhookDelivery",
]
