"""Whether the Celery broker answers, for readiness."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from vajracast.celery import app


def broker_problem(timeout_s: float) -> str | None:
    """None when the broker accepts a connection; otherwise what is wrong, in words."""
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        folder = Path(options["data_folder_in"])
        if not folder.is_dir():
            return f"the embedded broker's folder {folder} is missing"
        return None
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=timeout_s)
            # A TCP connect alone can succeed against a server that is still loading; ask it.
            client = getattr(connection.default_channel, "client", None)
            if client is not None and hasattr(client, "ping"):
                client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported in words
        return f"{type(exc).__name__}: {exc}"
    return None
