"""``manage.py routes``: list routes with their desired and live state, start and stop them by name."""

from __future__ import annotations

import difflib
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from routes import control
from routes.models import Route
from routes.status import statuses

COLUMNS = (
    ("name", "NAME"),
    ("desired", "DESIRED"),
    ("state", "STATE"),
    ("active_input", "ACTIVE INPUT"),
    ("node", "NODE"),
    ("inputs", "INPUTS"),
    ("outputs", "OUTPUTS"),
    ("reason", "REASON"),
)


def close_matches(name: str, names: list[str]) -> list[str]:
    """Names an operator probably meant: similar spelling in any case, or containing what was typed."""
    by_lower = {n.lower(): n for n in names}
    similar = [by_lower[n] for n in difflib.get_close_matches(name.lower(), list(by_lower), n=5, cutoff=0.6)]
    containing = [n for n in names if name.lower() in n.lower()]
    return list(dict.fromkeys(similar + containing))[:5]


def _rows() -> list[dict[str, Any]]:
    routes = list(Route.objects.select_related("pinned_input").prefetch_related("inputs", "outputs"))
    live = statuses(routes)
    rows = []
    for route in routes:
        status = live[route.pk]
        active = next((i["name"] for i in status["inputs"] if i["active"]), None)
        rows.append(
            {
                "name": route.name,
                "enabled": route.enabled,
                "state": status["state"],
                "reason": status.get("reason", ""),
                "node": status["node"],
                "active_input": active,
                "pinned_input": route.pinned_input.name if route.pinned_input else None,
                "inputs": len(status["inputs"]),
                "outputs": len(status["outputs"]),
                "updated_at": status["updated_at"],
            }
        )
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    cells = []
    for row in rows:
        active = row["active_input"]
        if active is not None and active == row["pinned_input"]:
            active += " (pinned)"
        shown = {**row, "desired": "enabled" if row["enabled"] else "disabled", "active_input": active}
        cells.append(["-" if shown[key] in (None, "") else str(shown[key]) for key, _ in COLUMNS])
    header = [title for _, title in COLUMNS]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(COLUMNS))]
    lines = (
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in [header, *cells]
    )
    return "\n".join(line.rstrip() for line in lines)


class Command(BaseCommand):
    help = "List routes with their desired and live state, or start and stop routes by name."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{list,start,stop}")
        listing = actions.add_parser(
            "list", help="Each route: desired state, live state as its worker reports it, active input, node."
        )
        listing.add_argument("--json", action="store_true", help="Print a JSON array, for scripts.")
        for verb, what in (("start", "Set routes to run"), ("stop", "Set routes to stop")):
            action = actions.add_parser(verb, help=f"{what}; a worker picks the change up within seconds.")
            action.add_argument("names", nargs="+", metavar="NAME", help="Route name, exactly as listed.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "list":
            self._list(options["json"])
        else:
            self._set(options["action"], options["names"])

    def _list(self, as_json: bool) -> None:
        rows = _rows()
        if as_json:
            self.stdout.write(json.dumps(rows, indent=2, ensure_ascii=False))
        elif not rows:
            self.stdout.write("No routes.")
        else:
            self.stdout.write(_table(rows))

    def _set(self, verb: str, names: list[str]) -> None:
        # Check every name before changing anything, so a typo does not leave half the routes started.
        found = {route.name: route for route in Route.objects.filter(name__in=names)}
        unknown = [name for name in dict.fromkeys(names) if name not in found]
        if unknown:
            known = list(Route.objects.order_by("name").values_list("name", flat=True))
            problems = []
            for name in unknown:
                close = ", ".join(f'"{n}"' for n in close_matches(name, known))
                hint = f" Did you mean {close}?" if close else " See `manage.py routes list` for the names."

                problems.append(f'There is no route named "{name}".{hint}')
            raise CommandError("\n".join(problems))
        for name in dict.fromkeys(names):
            route = found[name]
            if verb == "start":
                done = "set to run" if control.start(route) else "was already set to run"
            else:
                done = "stopped" if control.stop(route) else "was already stopped"
            self.stdout.write(f'Route "{name}" {done}.')
