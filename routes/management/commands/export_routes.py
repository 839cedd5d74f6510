"""``manage.py export_routes``: every route as YAML, for backups and version control."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from routes.config_io import dump_yaml, export_document


class Command(BaseCommand):
    help = (
        "Write every route with its inputs, outputs and the transcode profiles as YAML, keyed by name, "
        "with every setting spelled out. SRT passphrases and RTMP stream keys are written as "
        "{env: VARIABLE} references, so the file can be committed; the variables they name are listed "
        "on standard error and must be set when importing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--output", "-o", metavar="FILE", help="Write to FILE instead of standard output.")
        parser.add_argument(
            "--include-secrets",
            action="store_true",
            help=(
                "Write passphrases and stream keys in clear. Anyone who can read the file, or a repository "
                "or backup it ends up in, can then decrypt these SRT streams and publish to these RTMP "
                "inputs and destinations. With --output the file is made readable by its owner only."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        export = export_document(include_secrets=options["include_secrets"])
        text = dump_yaml(export.document)
        path = options["output"]
        if path:
            self._write(path, text, private=options["include_secrets"])
        else:
            self.stdout.write(text, ending="")
        routes, profiles = len(export.document["routes"]), len(export.document["profiles"])
        where = f" to {path}" if path else ""
        self.stderr.write(f"Exported {routes} route(s) and {profiles} profile(s){where}.")
        if export.variables:
            self.stderr.write("Secrets are written as references; set these variables when importing:")
            for variable in export.variables:
                self.stderr.write(f"  {variable}")

    def _write(self, path: str, text: str, private: bool) -> None:
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o666)
            if private:
                os.fchmod(descriptor, 0o600)  # an existing file keeps its mode otherwise
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                file.write(text)
        except OSError as error:
            raise CommandError(f"Cannot write {path}: {error.strerror}.") from None
