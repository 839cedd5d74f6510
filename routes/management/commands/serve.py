from __future__ import annotations

import argparse
import os
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import connections

from vajracast import gateway
from vajracast.first_admin import AdminLogin, ensure_admin
from vajracast.launcher import ChildDied, StopRequested, Supervisor

WAIT_PATIENCE_S = 30.0


def _port(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a TCP port (1-65535)")
    return int(value)


class Command(BaseCommand):
    help = (
        "Start the whole gateway in the foreground: migrations, the web server and one worker with "
        "its scheduler. Ctrl+C or SIGTERM stops everything."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="0.0.0.0", help="Address to listen on (default: all).")
        parser.add_argument("--port", type=_port, default=8080, help="Port to listen on (default: 8080).")

    def say(self, message: str) -> None:
        # Flushed at once: under systemd, Docker or a pipe the operator reads this as it happens.
        self.stdout.write(message)
        self.stdout.flush()

    def handle(self, *args: Any, **options: Any) -> None:
        host: str = options["host"]
        port: int = options["port"]
        login = self._prepare()
        code = self._run(host, port, login)
        if code:
            raise SystemExit(code)

    def _prepare(self) -> AdminLogin:
        self.say("Applying database migrations...")
        call_command("migrate", interactive=False, verbosity=1)
        call_command("collectstatic", interactive=False, verbosity=0)
        login = ensure_admin(settings.DATA_DIR)
        if login.password is not None:
            self.say(f"Created the administrator {login.username!r}; password: {login.password}")
            self.say(f"The password is also in {login.password_file}; delete that file once you have changed it.")
        # The supervisor itself needs no database from here on; an idle connection would only hold a
        # file handle (SQLite) or a server slot (Postgres) for as long as the gateway runs.
        connections.close_all()
        return login

    def _child_environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("DJANGO_SETTINGS_MODULE", "vajracast.settings")
        # One machine, reached by whatever name or address the operator types: accept any host
        # unless ALLOWED_HOSTS says otherwise. A deployment with a known name should set it.
        env.setdefault("ALLOWED_HOSTS", "*")
        env.setdefault("VAJRACAST_DATA_DIR", str(settings.DATA_DIR))
        return env

    def _run(self, host: str, port: int, login: AdminLogin) -> int:
        supervisor = Supervisor()
        supervisor.install_signal_handlers()
        env = self._child_environment()
        try:
            web_env = gateway.web_environment(env, settings.DATA_DIR)
            web = supervisor.start("web server (gunicorn)", gateway.web_command(host, port), web_env)
            self.say(f"Started the web server, gunicorn (pid {web.pid})")
            worker = supervisor.start("worker (celery)", gateway.worker_command(settings.DATA_DIR), env)
            self.say(f"Started the worker, celery (pid {worker.pid})")
            self._wait_for_both(supervisor, host, port)
            self._announce(host, port, login)
            supervisor.run_until_stopped()
        except StopRequested as stop:
            self.say(f"Received {stop}; stopping the web server and the worker...")
            code = 0
        except ChildDied as died:
            self.stderr.write(f"The {died}; stopping the rest of the gateway.")
            code = 1
        finally:
            # Also on any unexpected error: never leave children holding the port behind.
            supervisor.stop_all()
        self.say("Stopped." if code == 0 else "Stopped after a failure.")
        return code

    def _wait_for_both(self, supervisor: Supervisor, host: str, port: int) -> None:
        health_url = gateway.probe_url(host, port, "/api/health")
        supervisor.wait_until(
            lambda: gateway.web_answers(health_url),
            patience_s=WAIT_PATIENCE_S,
            on_slow=lambda: self.say(f"Still waiting for the web server to answer on {health_url}..."),
        )
        node = gateway.worker_node_name()
        supervisor.wait_until(
            lambda: gateway.worker_answers(node),
            patience_s=WAIT_PATIENCE_S,
            on_slow=lambda: self.say(
                f"Still waiting for the worker {node} to answer; is the broker reachable? Its log above says."
            ),
        )

    def _announce(self, host: str, port: int, login: AdminLogin) -> None:
        url = gateway.browse_url(host, port)
        self.say(
            "\n".join(
                [
                    "",
                    "Vajra Cast is running.",
                    f"  Open:      {url}",
                    f"  User:      {login.username}",
                    f"  Password:  {login.hint()}",
                    f"  API docs:  {url}api/docs/",
                    f"  Data:      {settings.DATA_DIR}",
                    "Press Ctrl+C to stop.",
                    "",
                ]
            )
        )
