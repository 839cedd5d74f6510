"""Running one route on this node for as long as it should run.

The runner owns the route's lease (one pipeline per route across the cluster), builds the relay
from the database, publishes live state once a second, turns state changes into events, and
follows the desired state: stopped, edited or re-pinned routes take effect within a second.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

from django.db import close_old_connections, connection

from media_engine.relay import Relay
from media_engine.switcher import SwitchEvent
from routes.choices import EventKind
from routes.dispatch import dispatch_settled
from routes.engine_config import SLATE_ID, relay_config
from routes.models import Node, Route, RouteEvent, RouteLease
from routes.placement import describe_encoders, describe_needs, encoder_needs, missing
from routes.runtime import (
    HISTORY_WINDOW_S,
    RouteRuntime,
    history_sample,
    publish_route_history,
    publish_route_state,
    route_history,
)

log = logging.getLogger(__name__)

FAILED_STATE_TTL_S = 30  # a failed route is retried after this long (see routes.dispatch)
SWITCHER_EVENTS = {"input_up": EventKind.INPUT_UP, "input_down": EventKind.INPUT_DOWN, "switched": EventKind.SWITCHED}


@dataclass(frozen=True)
class RunnerTiming:
    lease_ttl_s: float = 5.0
    renew_every_s: float = 1.5
    poll_every_s: float = 0.25
    publish_every_s: float = 1.0
    # A holder that crashed keeps its lease until it expires; a new runner waits that long for it.
    acquire_wait_s: float = 6.5


@dataclass(frozen=True)
class _Desired:
    enabled: bool
    config_version: int
    pinned_input: int | None


class RouteRunner:
    def __init__(
        self, route_id: int, node_name: str, stop: threading.Event, timing: RunnerTiming | None = None
    ) -> None:
        self.route_id = route_id
        self.node_name = node_name
        self.stop_event = stop
        self.timing = timing or RunnerTiming()
        self.owner = f"{node_name}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.token: int | None = None
        self.relay: Relay | None = None
        self._states: dict[str, str] = {}
        self._behind: dict[str, bool] = {}
        self._publish_failing = False
        self._lease_lost = False
        self._renewed_at = 0.0
        # Filled by the switcher's thread, written to the database by the runner's: a switch never
        # waits for the database.
        self._switcher_events: deque[SwitchEvent] = deque(maxlen=1000)
        # The charts' samples; loaded from the store on the first publish (see _record_history).
        self._history: deque[dict[str, Any]] | None = None

    # lifecycle

    def run(self) -> str:
        """Run until the route should stop here; returns why it ended."""
        try:
            self.token = self._acquire()
            dispatch_settled(self.route_id)
            if self.token is None:
                return "already running elsewhere"
            return self._supervise()
        finally:
            self._shutdown()
            dispatch_settled(self.route_id)
            close_old_connections()
            connection.close()

    def _acquire(self) -> int | None:
        deadline = time.monotonic() + self.timing.acquire_wait_s
        while True:
            token = RouteLease.acquire(self.route_id, self.owner, self.timing.lease_ttl_s)
            if token is not None:
                self._renewed_at = time.monotonic()
                return token
            if time.monotonic() >= deadline:
                return None
            if self.stop_event.wait(0.25):
                return None

    def _desired(self) -> _Desired | None:
        row = Route.objects.filter(pk=self.route_id).values_list("enabled", "config_version", "pinned_input").first()
        return _Desired(*row) if row else None

    def _start_relay(self) -> Route:
        route = Route.objects.prefetch_related("inputs", "outputs__profile", "outputs__ladder").get(pk=self.route_id)
        self._check_encoders(route)
        relay = Relay(relay_config(route), on_event=self._switcher_events.append)
        relay.pin(_input_id(route.pinned_input_id))
        relay.start()
        self.relay = relay
        return route

    def _check_encoders(self, route: Route) -> None:
        """Refuse a configuration this node cannot encode (an output changed while the route ran
        here): the route fails, and once its failure expires placement sends it to a node that can."""
        capabilities = Node.objects.filter(name=self.node_name).values_list("capabilities", flat=True).first()
        if capabilities is None:
            return  # not a registered node: the engine's own encoder choice decides
        lacking = missing(encoder_needs(route), capabilities)
        if lacking:
            raise RuntimeError(
                f'{describe_needs(lacking)}, which node "{self.node_name}" lacks '
                f"(it has {describe_encoders(capabilities)})"
            )

    def _supervise(self) -> str:
        desired = self._desired()
        if desired is None or not desired.enabled:
            return "not enabled"
        self._publish("starting")
        try:
            route = self._start_relay()
        except Exception as exc:  # noqa: BLE001 - any failure to start is reported on the route
            self._fail(f"could not start: {exc}")
            return "failed"
        self._event(EventKind.STARTED, f'started on node "{self.node_name}"', node=self.node_name)
        log.info('route "%s" running on %s', route.name, self.node_name)
        last_publish = time.monotonic()
        self._publish("running")
        while not self.stop_event.wait(self.timing.poll_every_s):
            now_desired = self._desired()
            if now_desired is None:
                return "route deleted"
            if not now_desired.enabled:
                return "stopped"
            if now_desired.config_version != desired.config_version:
                if not self._restart():
                    return "failed"
            elif now_desired.pinned_input != desired.pinned_input and self.relay is not None:
                # A manual switch or its release is applied live, without a restart.
                self.relay.pin(_input_id(now_desired.pinned_input))
            desired = now_desired
            self._record_switcher_events()
            now = time.monotonic()
            if now - self._renewed_at >= self.timing.renew_every_s:
                if not RouteLease.renew(self.route_id, self.owner, self.token or 0, self.timing.lease_ttl_s):
                    self._lease_lost = True
                    self._event(EventKind.ERROR, "lost its lease to another node; stopping this copy")
                    return "lease lost"
                self._renewed_at = now
            if now - last_publish >= self.timing.publish_every_s:
                self._publish("running")
                last_publish = now
        return "worker stopping"

    def _restart(self) -> bool:
        if self.relay is not None:
            self.relay.stop()
            self.relay = None
        try:
            self._start_relay()
        except Exception as exc:  # noqa: BLE001 - reported on the route
            self._fail(f"could not apply the change: {exc}")
            return False
        self._event(EventKind.STARTED, "restarted to apply a configuration change")
        return True

    def _shutdown(self) -> None:
        if self.relay is not None:
            self.relay.stop()
            self.relay = None
            self._record_switcher_events()
            self._event(EventKind.STOPPED, f'stopped on node "{self.node_name}"')
            if not self._lease_lost:
                # Otherwise the route's live state is the new holder's to publish: a fenced copy
                # saying "stopped" would hide, for a moment, the copy that runs.
                self._publish("stopped", ttl_s=2)
        if self.token is not None:
            RouteLease.release(self.route_id, self.owner, self.token)

    def _fail(self, message: str) -> None:
        log.error("route %s: %s", self.route_id, message)
        self._event(EventKind.ERROR, message)
        self._publish("failed", reason=message, ttl_s=FAILED_STATE_TTL_S)

    # state and events

    def _runtime(self, state: str, reason: str) -> RouteRuntime:
        runtime = RouteRuntime(state=state, node=self.node_name, reason=reason)
        if self.relay is None:
            return runtime
        snapshot = self.relay.snapshot()
        switcher = snapshot["switcher"]
        runtime.listeners_bound = True
        active = switcher["active"]
        runtime.active_input = int(active) if active not in (None, SLATE_ID) else None
        runtime.active_priority = switcher["active_priority"]
        runtime.on_slate = switcher["on_slate"]
        runtime.switches = switcher["switches"]
        runtime.last_switch = switcher["last_switch"]
        runtime.inputs = {
            source["id"]: {**_endpoint_state(source), **_health(switcher["health"].get(source["id"]))}
            for source in snapshot["inputs"]
        }
        runtime.outputs = {output["id"]: _endpoint_state(output) for output in snapshot["outputs"]}
        for output in snapshot["outputs"]:
            self._transition(output)
        return runtime

    def _lease_fresh(self) -> bool:
        # Monotonic time runs on while a process is stopped: a copy paused past its lease finds it
        # stale here, and another node may hold the route by now.
        return time.monotonic() - self._renewed_at < self.timing.lease_ttl_s - self.timing.poll_every_s

    def _publish(self, state: str, reason: str = "", ttl_s: float | None = None) -> None:
        try:
            runtime = self._runtime(state, reason)
            # Checked last, just before the write, so a pause while gathering stats is caught too:
            # the live state of a route another node holds is not ours to overwrite.
            if not self._lease_fresh():
                return
            publish_route_state(self.route_id, runtime, int(ttl_s or self.timing.lease_ttl_s))
            if state == "running" and self.relay is not None:
                self._record_history(runtime)
        except Exception as exc:  # noqa: BLE001 - the relay keeps going while the store is away
            if not self._publish_failing:
                log.warning("route %s: cannot publish live state (%s); still relaying", self.route_id, exc)
            self._publish_failing = True
        else:
            self._publish_failing = False

    def _record_history(self, runtime: RouteRuntime) -> None:
        now = time.time()
        if self._history is None:
            # A route restarted here or moved from another node carries on with the charts it had.
            self._history = deque(route_history(self.route_id))
        self._history.append(history_sample(runtime, now))
        while now - self._history[0]["t"] > HISTORY_WINDOW_S:
            self._history.popleft()
        publish_route_history(self.route_id, list(self._history))

    def _transition(self, output: dict[str, Any]) -> None:
        key, state = output["id"], output["state"]
        before = self._states.get(key)
        self._states[key] = state
        if before == "connected" and state != "connected":
            reason = output.get("reason") or state
            data = {"output": int(output["id"]), "peer": output.get("peer")}
            self._event(EventKind.OUTPUT_ERROR, f'output "{output["name"]}" down: {reason}', **data)
        self._transcoder_transition(output)

    def _transcoder_transition(self, output: dict[str, Any]) -> None:
        transcode = output.get("transcode")
        if not transcode:
            return
        key, behind = output["id"], bool(transcode.get("behind"))
        before = self._behind.get(key, False)
        self._behind[key] = behind
        if behind == before:
            return
        data = {"output": _json_id(key), "encoder": transcode.get("encoder"), "speed": transcode.get("speed")}
        if behind:
            reason = transcode.get("behind_reason") or "slower than realtime"
            message = f'output "{output["name"]}": transcoder behind realtime: {reason}'
            self._event(EventKind.TRANSCODER_BEHIND, message, reason=reason, **data)
        else:
            self._event(EventKind.TRANSCODER_OK, f'output "{output["name"]}": transcoder caught up', **data)

    def _record_switcher_events(self) -> None:
        while self._switcher_events:
            event = self._switcher_events.popleft()
            data = {key: _json_id(value) for key, value in event.data.items()}
            self._event(SWITCHER_EVENTS[event.kind], event.message, **data)

    def _event(self, kind: str, message: str, **data: Any) -> None:
        try:
            RouteEvent.objects.create(route_id=self.route_id, kind=kind, message=message, data=data)
        except Exception:
            log.exception("route %s: could not record the event %r", self.route_id, message)


def _input_id(pk: int | None) -> str | None:
    return None if pk is None else str(pk)


def _json_id(value: Any) -> Any:
    """Input ids travel as strings in the engine; events name inputs by their database id."""
    return int(value) if isinstance(value, str) and value.isdigit() else value


def _health(health: dict[str, Any] | None) -> dict[str, Any]:
    if health is None:
        return {}
    return {"healthy": health["healthy"], "health_reason": health["reason"], "health_for_s": health["for_s"]}


def _endpoint_state(snapshot: dict[str, Any]) -> dict[str, Any]:
    stats = {key: value for key, value in snapshot.items() if key not in ("id", "name", "state", "reason")}
    return {"state": snapshot["state"], "reason": snapshot["reason"], "stats": stats}
