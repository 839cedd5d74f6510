from routes.models.apikey import ApiKey
from routes.models.endpoints import Input, Output
from routes.models.event import RouteEvent
from routes.models.lease import RouteLease
from routes.models.node import Node
from routes.models.profile import TranscodeProfile
from routes.models.route import Route

__all__ = ["ApiKey", "Input", "Node", "Output", "Route", "RouteEvent", "RouteLease", "TranscodeProfile"]
