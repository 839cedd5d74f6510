from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from routes.choices import Role
from routes.models import ApiKey
from routes.roles import grant_role


class Command(BaseCommand):
    help = "Create an API key for a user (created if needed) and print it. The key is shown only this once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="User name; created without a password if new.")
        parser.add_argument("--role", required=True, choices=[r.value for r in Role], help="What the key may do.")
        parser.add_argument("--name", default="", help="What will use the key, e.g. 'playout automation'.")

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        role = Role(options["role"])
        user, created = get_user_model().objects.get_or_create(username=options["user"])
        if created:
            user.set_unusable_password()
            user.save()
            grant_role(user, role)
            self.stderr.write(f"Created user {user.username!r} with the {role.value} role (no password: API only).")
        _key, plaintext = ApiKey.issue(user, role, options["name"])
        self.stderr.write(f"New {role.value} key for {user.username!r}; store it now, it is not shown again:")
        self.stdout.write(plaintext)
