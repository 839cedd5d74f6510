"""``manage.py import_routes``: create or update routes from a YAML file written by export_routes."""

from __future__ import annotations

import os
import sys
from typing import Any

import yaml
from django.core.management.base import BaseCommand, CommandError, CommandParser

from routes.config_io import ConfigError, import_document, load_yaml


class Command(BaseCommand):
    help = (
        "Create or update routes, their inputs and outputs, and transcode profiles from a YAML file, matched "
        "by name (a renamed object is a new one); importing the same file again changes nothing. A setting "
        "left out takes its default. A secret written as {env: VARIABLE} is read from that environment "
        "variable; when it is unset or empty, an object that already has the secret keeps it, and a new one "
        "is an error. Everything is validated as in the API and applied in one transaction: on any error "
        "nothing changes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", metavar="FILE", help="The YAML file, or - for standard input.")
        parser.add_argument("--dry-run", action="store_true", help="Check everything and print what would change.")
        parser.add_argument(
            "--prune",
            action="store_true",
            help="Also delete routes absent from the file, and inputs and outputs absent from their route.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = options["file"]
        try:
            document = load_yaml(self._read(path))
        except yaml.YAMLError as error:
            raise CommandError(f"{path} is not valid YAML: {error}") from None
        try:
            result = import_document(document, os.environ, prune=options["prune"], dry_run=options["dry_run"])
        except ConfigError as error:
            raise CommandError("Nothing was imported:\n" + "\n".join(f"  {line}" for line in error.lines)) from None
        for change in result.changes:
            self.stdout.write(str(change))
        self.stdout.write(result.summary())

    def _read(self, path: str) -> str:
        if path == "-":
            return sys.stdin.read()
        try:
            with open(path, encoding="utf-8") as file:
                return file.read()
        except OSError as error:
            raise CommandError(f"Cannot read {path}: {error.strerror}.") from None
        except UnicodeDecodeError:
            raise CommandError(f"{path} is not UTF-8 text.") from None
