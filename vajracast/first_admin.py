"""The administrator account a fresh single-machine gateway starts with.

A new install has no user, and nobody can log in to create one. So ``manage.py serve`` makes one
with a random password, prints it and leaves it in a file readable only by the data dir's owner.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction

ADMIN_USERNAME = "admin"
PASSWORD_FILE_NAME = "initial-admin-password"  # noqa: S105 - a file name, not a password


@dataclass(frozen=True)
class AdminLogin:
    username: str
    password: str | None
    """Set only when the account was created just now."""
    password_file: Path
    other_superuser: str | None = None
    """The user to log in as when someone removed ``admin`` but other superusers exist."""

    def hint(self) -> str:
        if self.password is not None:
            return f"{self.password}  (also saved in {self.password_file})"
        if self.other_superuser is not None:
            return f"log in as {self.other_superuser!r}, or any other superuser"
        if self.password_file.exists():
            return f"the first one is in {self.password_file} (delete that file once you have changed it)"
        return f"forgotten? set a new one with: python manage.py changepassword {self.username}"


def _write_secret(path: Path, text: str) -> None:
    # Created 0600 from the start, and forced to 0600 if a stale file was there before.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, f"{text}\n".encode())
    finally:
        os.close(fd)


def ensure_admin(data_dir: Path) -> AdminLogin:
    """Create ``admin`` on a gateway that has no superuser yet; otherwise say how to log in."""
    password_file = data_dir / PASSWORD_FILE_NAME
    users = get_user_model().objects
    if users.filter(username=ADMIN_USERNAME).exists():
        return AdminLogin(ADMIN_USERNAME, None, password_file)
    other = users.filter(is_superuser=True, is_active=True).order_by("pk").values_list("username", flat=True).first()
    if other is not None:
        return AdminLogin(ADMIN_USERNAME, None, password_file, other_superuser=other)
    password = secrets.token_urlsafe(12)
    # One transaction with the file write: no account is left whose password nobody was told.
    with transaction.atomic():
        users.create_superuser(username=ADMIN_USERNAME, email="", password=password)
        _write_secret(password_file, password)
    return AdminLogin(ADMIN_USERNAME, password, password_file)
