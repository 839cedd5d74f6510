"""Loading libsrt and declaring the C functions the gateway calls.

The library is found by its soname, so the binding works with the distribution's package and no
compiler. Loading also checks the library's version against the statistics layout declared in
``stats.py`` and routes libsrt's own log lines into Python logging.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import logging
import threading
from typing import Any

from media_engine.srt.errors import SrtLibraryError
from media_engine.srt.stats import TraceBStats

log = logging.getLogger("media_engine.srt.libsrt")

SONAMES = ("libsrt.so.1.5", "libsrt-gnutls.so.1.5")
PACKAGE_HINT = "install the Debian package libsrt1.5-openssl (apt-get install libsrt1.5-openssl)"
# The statistics struct grew by appending fields; 1.5.0 added the last ones we read. Later 1.x
# releases may append more, so stats are read into a buffer with room to spare.
MIN_VERSION = (1, 5, 0)
MAX_MAJOR = 1

SRTSOCKET = ctypes.c_int32
LISTEN_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, SRTSOCKET, ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p
)
LOG_HANDLER = ctypes.CFUNCTYPE(
    None, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p
)

# syslog levels used by libsrt, mapped to Python's.
_LEVELS = {2: logging.CRITICAL, 3: logging.ERROR, 4: logging.WARNING, 5: logging.INFO, 6: logging.INFO}
_SRT_LOG_FOR_PYTHON = [(logging.DEBUG, 7), (logging.INFO, 5), (logging.WARNING, 4), (logging.ERROR, 3)]

_EXPECTED_ON_CLOSE = "is already closed"

_PROTOTYPES: dict[str, tuple[Any, list[Any]]] = {
    "srt_startup": (ctypes.c_int, []),
    "srt_cleanup": (ctypes.c_int, []),
    "srt_getversion": (ctypes.c_uint32, []),
    "srt_create_socket": (SRTSOCKET, []),
    "srt_bind": (ctypes.c_int, [SRTSOCKET, ctypes.c_void_p, ctypes.c_int]),
    "srt_listen": (ctypes.c_int, [SRTSOCKET, ctypes.c_int]),
    "srt_accept": (SRTSOCKET, [SRTSOCKET, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]),
    "srt_listen_callback": (ctypes.c_int, [SRTSOCKET, LISTEN_CALLBACK, ctypes.c_void_p]),
    "srt_connect": (ctypes.c_int, [SRTSOCKET, ctypes.c_void_p, ctypes.c_int]),
    "srt_rendezvous": (ctypes.c_int, [SRTSOCKET, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int]),
    "srt_close": (ctypes.c_int, [SRTSOCKET]),
    "srt_getpeername": (ctypes.c_int, [SRTSOCKET, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]),
    "srt_getsockname": (ctypes.c_int, [SRTSOCKET, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]),
    "srt_getsockflag": (ctypes.c_int, [SRTSOCKET, ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]),
    "srt_setsockflag": (ctypes.c_int, [SRTSOCKET, ctypes.c_int, ctypes.c_void_p, ctypes.c_int]),
    "srt_sendmsg": (ctypes.c_int, [SRTSOCKET, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]),
    "srt_recvmsg": (ctypes.c_int, [SRTSOCKET, ctypes.c_void_p, ctypes.c_int]),
    "srt_getlasterror": (ctypes.c_int, [ctypes.POINTER(ctypes.c_int)]),
    "srt_getlasterror_str": (ctypes.c_char_p, []),
    "srt_clearlasterror": (None, []),
    "srt_bstats": (ctypes.c_int, [SRTSOCKET, ctypes.c_void_p, ctypes.c_int]),
    "srt_bistats": (ctypes.c_int, [SRTSOCKET, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]),
    "srt_getsockstate": (ctypes.c_int, [SRTSOCKET]),
    "srt_getrejectreason": (ctypes.c_int, [SRTSOCKET]),
    "srt_setrejectreason": (ctypes.c_int, [SRTSOCKET, ctypes.c_int]),
    "srt_rejectreason_str": (ctypes.c_char_p, [ctypes.c_int]),
    "srt_setloglevel": (None, [ctypes.c_int]),
    "srt_setloghandler": (None, [ctypes.c_void_p, LOG_HANDLER]),
    "srt_setlogflags": (None, [ctypes.c_int]),
    "srt_epoll_create": (ctypes.c_int, []),
    "srt_epoll_add_usock": (ctypes.c_int, [ctypes.c_int, SRTSOCKET, ctypes.POINTER(ctypes.c_int)]),
    "srt_epoll_remove_usock": (ctypes.c_int, [ctypes.c_int, SRTSOCKET]),
    "srt_epoll_uwait": (ctypes.c_int, [ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int64]),
    "srt_epoll_set": (ctypes.c_int32, [ctypes.c_int, ctypes.c_int32]),
    "srt_epoll_release": (ctypes.c_int, [ctypes.c_int]),
}

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_log_handler_ref: Any = None  # kept alive: libsrt calls it from its own threads


def version_tuple(value: int) -> tuple[int, int, int]:
    return (value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF


def check_version(version: tuple[int, int, int]) -> None:
    if version < MIN_VERSION or version[0] > MAX_MAJOR:
        have = ".".join(map(str, version))
        raise SrtLibraryError(
            f"libsrt {have} is not supported: its statistics layout differs from the one this gateway reads "
            f"(needs 1.5.0 or newer 1.x); {PACKAGE_HINT}."
        )


def _open() -> ctypes.CDLL:
    errors = []
    candidates = [*SONAMES, ctypes.util.find_library("srt")]
    for name in filter(None, candidates):
        try:
            return ctypes.CDLL(name)
        except OSError as exc:
            errors.append(f"{name}: {exc}")
    raise SrtLibraryError(f"libsrt was not found ({'; '.join(errors) or 'no candidates'}); {PACKAGE_HINT}.")


def _declare(lib: ctypes.CDLL) -> None:
    for name, (restype, argtypes) in _PROTOTYPES.items():
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = argtypes


def _forward_log(_opaque: Any, level: int, _file: bytes, _line: int, area: bytes, message: bytes) -> None:
    text = message.decode("utf-8", "replace").rstrip()
    python_level = _LEVELS.get(level, logging.DEBUG)
    if _EXPECTED_ON_CLOSE in text:
        # Closing a listener is how its accept thread is stopped; libsrt calls that an error.
        python_level = logging.DEBUG
    log.log(python_level, "[%s] %s", area.decode("ascii", "replace"), text)


def _install_logging(lib: ctypes.CDLL) -> None:
    global _log_handler_ref
    _log_handler_ref = LOG_HANDLER(_forward_log)
    lib.srt_setloghandler(None, _log_handler_ref)
    # Time, thread name and severity come from Python logging; the EOL is stripped.
    lib.srt_setlogflags(1 | 2 | 4)
    sync_log_level(lib)


def sync_log_level(lib: ctypes.CDLL | None = None) -> None:
    """Ask libsrt for no more detail than the Python logger will keep (each line crosses into Python)."""
    lib = lib or library()
    effective = log.getEffectiveLevel()
    level = next((srt for python, srt in _SRT_LOG_FOR_PYTHON if effective <= python), 2)
    lib.srt_setloglevel(level)


def library() -> ctypes.CDLL:
    """The loaded, started libsrt. Safe to call from any thread; loads once."""
    global _lib
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is None:
            lib = _open()
            _declare(lib)
            check_version(version_tuple(lib.srt_getversion()))
            if ctypes.sizeof(TraceBStats) > TraceBStats.BUFFER_SIZE:
                raise SrtLibraryError("internal: the statistics buffer is smaller than the declared layout")
            _install_logging(lib)
            if lib.srt_startup() < 0:
                raise SrtLibraryError(f"srt_startup failed: {lib.srt_getlasterror_str().decode()}")
            atexit.register(lib.srt_cleanup)
            _lib = lib
    return _lib


def version() -> str:
    return ".".join(map(str, version_tuple(library().srt_getversion())))
