"""``manage.py serve`` on nothing but a data dir runs the same pipeline task: a route started through
its API relays what an encoder sends to a player."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from tests.orchestration.cluster import keep_playing, keep_sending, wait_for
from tests.peers.media import free_udp_port, probe
from tests.support.processes import (
    RunningProcess,
    environment,
    fetch,
    free_port,
    run_manage,
    start_manage,
    stop_process_tree,
    wait_for_output,
)

# Everything that would point the gateway at servers: without them it uses its SQLite file, folder
# broker and file runtime store in the data dir.
SERVICE_VARIABLES = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "REDIS_URL",
    "ALLOWED_HOSTS",
    "VAJRACAST_STATIC_ROOT",
    "VAJRACAST_NODE_NAME",
)

CREATE_ROUTE = """
from routes.models import Input, Output, Route
route = Route.objects.create(name="embedded")
for endpoint in (
    Input(route=route, name="cam", priority=1, protocol="srt", mode="listener", host="127.0.0.1", port={ingest}),
    Output(route=route, name="play", protocol="srt", mode="listener", host="127.0.0.1", port={play}),
):
    endpoint.full_clean()
    endpoint.save()
print(route.pk)
"""


def test_a_route_started_through_the_embedded_gateways_api_relays_media(tmp_path: Path, stream_ts: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = environment(remove=SERVICE_VARIABLES, VAJRACAST_DATA_DIR=str(data_dir))
    base = f"http://127.0.0.1:{free_port()}"
    started: list[RunningProcess] = []
    try:
        gateway = start_manage("serve", "--host", "127.0.0.1", "--port", base.rsplit(":", 1)[1], env=env)
        started.append(gateway)
        wait_for_output(gateway, r"^Press Ctrl\+C to stop\.$", timeout_s=240)

        ingest, play = free_udp_port(), free_udp_port()
        created = run_manage("shell", "-c", CREATE_ROUTE.format(ingest=ingest, play=play), env=env)
        route_id = int(created.stdout.strip().splitlines()[-1])
        issued = run_manage("create_api_key", "--user", "playout", "--role", "operator", env=env)
        headers = {"Authorization": f"Bearer {issued.stdout.strip()}", "Content-Type": "application/json"}
        route_url = f"{base}/api/v1/routes/{route_id}"

        def state() -> str:
            response = fetch(f"{route_url}/status/", headers=headers)
            assert response.status == 200, response.text
            return response.json()["state"]

        response = fetch(f"{route_url}/start/", data=b"{}", headers=headers)
        assert response.status == 200, response.text
        took = wait_for(lambda: state() == "running", 60, "the route to run", every_s=0.1)
        print(f"embedded: running {took:.2f}s after the start request")

        started.append(keep_sending(stream_ts, ingest))
        player = keep_playing(play, tmp_path / "player.ts")
        started.append(player.process)
        took_media = player.wait_for_media(30, "media through the embedded gateway", min_bytes=200_000)
        print(f"embedded: 200 kB at the player {took_media:.2f}s after the peers started")
        status = json.loads(fetch(f"{route_url}/status/", headers=headers).body)
        assert status["state"] == "running"
        assert status["node"], status

        gateway.popen.send_signal(signal.SIGTERM)
        assert gateway.popen.wait(timeout=90) == 0, gateway.tail()
    finally:
        for process in reversed(started):
            stop_process_tree(process)
    assert {s["codec_type"] for s in probe(player.target)["streams"]} == {"video", "audio"}
