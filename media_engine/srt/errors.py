"""libsrt failures as Python exceptions that carry libsrt's own words."""

from __future__ import annotations

# SRT_ERRNO values used to tell failures apart (srt.h).
ECONNREJ = 1002
ECONNLOST = 2001
ENOCONN = 2002
EINVSOCK = 5004
EASYNCSND = 6001
EASYNCRCV = 6002
ETIMEOUT = 6003

# Reject reasons a listener can send back (access_control.h): the peer sees them.
REJX_BAD_REQUEST = 1400
REJX_UNAUTHORIZED = 1401
REJX_FORBIDDEN = 1403
REJX_NOTFOUND = 1404
REJX_CONFLICT = 1409


class SrtError(Exception):
    """A libsrt call failed. ``code`` is the SRT_ERRNO value, ``reject_reason`` set for rejections."""

    def __init__(self, message: str, code: int = -1, reject_reason: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reject_reason = reject_reason


class SrtLibraryError(RuntimeError):
    """libsrt is missing or cannot be used."""


class SrtClosed(SrtError):
    """The socket was closed (locally or by the peer); the blocked call returned."""


def lost_connection_reason(exc: SrtError) -> str:
    """Why a send failed, in the words an engineer looks for: by the time a send fails on a peer that
    vanished, libsrt may already have reaped the socket and only says "invalid socket ID"."""
    if exc.code in (ECONNLOST, ENOCONN, EINVSOCK):
        return "connection lost: the peer closed it or stopped answering"
    return f"connection lost: {exc}"
