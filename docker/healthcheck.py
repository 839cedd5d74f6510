"""The image's HEALTHCHECK. Standard library only: importing Django would take longer than the check.

One image serves every role, so the check looks at what this container runs:

- web (gunicorn): GET /api/health on this container's port; healthy on 200, which means the process
  answers and the database does. Still migrating, before gunicorn starts, counts as not healthy.
- worker and beat (celery): healthy while the celery process is there. They serve no HTTP, and a
  worker's real liveness, its node heartbeat, is watched from outside (the nodes API, the alert
  rules), where a dead node's routes are also moved.
- anything else (migrate, a one-off command): nothing to check.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

TIMEOUT_S = 3.0


def command_lines() -> list[list[str]]:
    """The arguments of every process this container can see (its own PID namespace)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or entry.name == str(os.getpid()):
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if raw:
            found.append([part.decode(errors="replace") for part in raw.rstrip(b"\0").split(b"\0")])
    return found


def setting(name: str, default: str) -> str:
    """A variable as the gateway reads it: NAME, or the contents of the file NAME_FILE names."""
    value = os.environ.get(name)
    if value:
        return value
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip() or default
        except OSError:
            return default
    return default


def host_header() -> str:
    """A Host the server accepts: Django answers 400 to one outside ALLOWED_HOSTS."""
    hosts = [host.strip() for host in setting("ALLOWED_HOSTS", "").split(",") if host.strip()]
    if not hosts or hosts[0] == "*":
        return "127.0.0.1"
    # ".example.net" allows example.net and every name below it.
    return hosts[0].lstrip(".")


def check_web() -> int:
    port = setting("PORT", "8080")
    url = f"http://127.0.0.1:{port}/api/health"
    request = urllib.request.Request(url, headers={"Host": host_header()})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 - a fixed http URL
            print(f"{url}: {response.status}")
            return 0
    except urllib.error.HTTPError as error:
        print(f"{url}: {error.code} {error.read(500).decode(errors='replace')}")
    except (urllib.error.URLError, OSError) as error:
        print(f"{url}: {error}")
    return 1


def main() -> int:
    processes = command_lines()
    if any("gunicorn" in " ".join(argv[:3]) for argv in processes):
        return check_web()
    if any(argv[-1:] == ["web"] and "vajracast-entrypoint" in " ".join(argv) for argv in processes):
        print("web: still applying migrations")
        return 1
    if any("celery" in " ".join(argv[:3]) for argv in processes):
        print("celery is running")
        return 0
    print("neither the web server nor celery runs here; nothing to check")
    return 0


if __name__ == "__main__":
    sys.exit(main())
