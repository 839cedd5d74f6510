"""One libsrt socket in live mode: connect it, move 1316-byte messages, read its statistics."""

from __future__ import annotations

import ctypes
import os
import socket as pysocket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from media_engine.srt import errors
from media_engine.srt.errors import SrtClosed, SrtError
from media_engine.srt.library import LISTEN_CALLBACK, library
from media_engine.srt.stats import TraceBStats, new_buffer, snapshot

SRT_ERROR = -1
LIVE_PAYLOAD = 1316  # 7 MPEG-TS packets: the live-mode default and what every peer expects
_SOCKADDR_STORAGE = 128


class Opt(IntEnum):
    """SRT_SOCKOPT values (srt.h)."""

    SNDSYN = 1
    RCVSYN = 2
    SNDBUF = 5
    RCVBUF = 6
    UDP_SNDBUF = 8
    UDP_RCVBUF = 9
    RENDEZVOUS = 12
    SNDTIMEO = 13
    RCVTIMEO = 14
    REUSEADDR = 15
    MAXBW = 16
    STATE = 17
    INPUTBW = 24
    OHEADBW = 25
    PASSPHRASE = 26
    PBKEYLEN = 27
    KMSTATE = 28
    IPTTL = 29
    CONNTIMEO = 36
    SNDKMSTATE = 40
    RCVKMSTATE = 41
    RCVLATENCY = 43
    PEERLATENCY = 44
    STREAMID = 46
    PAYLOADSIZE = 49
    TRANSTYPE = 50
    ENFORCEDENCRYPTION = 53
    PEERIDLETIMEO = 55


_INT64_OPTIONS = {Opt.MAXBW, Opt.INPUTBW}
_STRING_OPTIONS = {Opt.PASSPHRASE, Opt.STREAMID}


class SocketState(IntEnum):
    INIT = 1
    OPENED = 2
    LISTENING = 3
    CONNECTING = 4
    CONNECTED = 5
    BROKEN = 6
    CLOSING = 7
    CLOSED = 8
    NONEXIST = 9


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _last_error(prefix: str, sock: int | None = None) -> SrtError:
    lib = library()
    system_errno = ctypes.c_int(0)
    code = lib.srt_getlasterror(ctypes.byref(system_errno))
    message = (lib.srt_getlasterror_str() or b"").decode("utf-8", "replace")
    if system_errno.value:
        message = f"{message} ({os.strerror(system_errno.value)})"
    reason = None
    if code == errors.ECONNREJ and sock is not None:
        reason = lib.srt_getrejectreason(sock)
        message = f"{message}: {reject_reason_text(reason)}"
    lib.srt_clearlasterror()
    kind = SrtClosed if code in (errors.ECONNLOST, errors.ENOCONN, errors.EINVSOCK) else SrtError
    return kind(f"{prefix}: {message}", code=code, reject_reason=reason)


def reject_reason_text(reason: int) -> str:
    """Words for a reject reason: libsrt's for its own codes, ours for the access-control codes."""
    named = {
        errors.REJX_BAD_REQUEST: "bad request (malformed stream ID)",
        errors.REJX_UNAUTHORIZED: "unauthorized (wrong or missing passphrase for this stream ID)",
        errors.REJX_FORBIDDEN: "forbidden",
        errors.REJX_NOTFOUND: "unknown stream ID",
        errors.REJX_CONFLICT: "stream ID already in use by another publisher",
    }
    if reason in named:
        return f"{named[reason]} [{reason}]"
    text = library().srt_rejectreason_str(reason)
    return f"{(text or b'unknown').decode()} [{reason}]"


def sockaddr(host: str, port: int) -> ctypes.Array:
    """A C ``struct sockaddr`` for host (name or literal) and port."""
    family, _, _, _, address = pysocket.getaddrinfo(host or "0.0.0.0", port, type=pysocket.SOCK_DGRAM)[0]
    if family == pysocket.AF_INET6:
        raw = (
            struct.pack("=H", family)
            + struct.pack("!HI", port, 0)
            + pysocket.inet_pton(family, address[0])
            + struct.pack("=I", address[3])
        )
    else:
        raw = struct.pack("=H", family) + struct.pack("!H", port) + pysocket.inet_pton(family, address[0]) + bytes(8)
    return ctypes.create_string_buffer(raw, len(raw))


def parse_sockaddr(raw: bytes) -> Address | None:
    family = struct.unpack_from("=H", raw)[0]
    port = struct.unpack_from("!H", raw, 2)[0]
    if family == pysocket.AF_INET:
        return Address(pysocket.inet_ntop(family, raw[4:8]), port)
    if family == pysocket.AF_INET6:
        return Address(pysocket.inet_ntop(family, raw[8:24]), port)
    return None


class SrtSocket:
    """A live-mode SRT socket. Blocking calls release the GIL; ``close`` from another thread unblocks them."""

    def __init__(self, handle: int | None = None) -> None:
        self._lib = library()
        if handle is None:
            handle = self._lib.srt_create_socket()
            if handle == SRT_ERROR:
                raise _last_error("srt_create_socket")
            self.handle = handle
            self.set(Opt.TRANSTYPE, 0)  # SRTT_LIVE
        self.handle = handle
        self._closed = threading.Event()
        self._stats_buffer = new_buffer()
        self._callback_ref: Any = None

    def __repr__(self) -> str:
        return f"<SrtSocket {self.handle} {self.state.name}>"

    # options

    def set(self, option: Opt, value: int | str | bool) -> None:
        if option in _STRING_OPTIONS:
            data = str(value).encode("utf-8")
            buffer: Any = ctypes.create_string_buffer(data, len(data))
            size = len(data)
        elif option in _INT64_OPTIONS:
            buffer = ctypes.c_int64(int(value))
            size = 8
        else:
            buffer = ctypes.c_int32(int(value))
            size = 4
        if self._lib.srt_setsockflag(self.handle, int(option), ctypes.byref(buffer), size) == SRT_ERROR:
            raise _last_error(f"setting {option.name}")

    def get_str(self, option: Opt) -> str:
        buffer = ctypes.create_string_buffer(1024)
        size = ctypes.c_int(len(buffer))
        if self._lib.srt_getsockflag(self.handle, int(option), buffer, ctypes.byref(size)) == SRT_ERROR:
            raise _last_error(f"reading {option.name}")
        return buffer.raw[: size.value].decode("utf-8", "replace")

    # connection

    def bind(self, host: str, port: int) -> None:
        address = sockaddr(host, port)
        if self._lib.srt_bind(self.handle, address, len(address)) == SRT_ERROR:
            raise _last_error(f"binding {host or '*'}:{port}")

    def listen(self, backlog: int = 16) -> None:
        if self._lib.srt_listen(self.handle, backlog) == SRT_ERROR:
            raise _last_error("listen")

    def on_connect_request(self, decide: Callable[[SrtSocket, str, Address | None], int | None]) -> None:
        """Call ``decide(new_socket, streamid, peer)`` during each handshake, before it completes.

        It returns None to accept (it may set options such as the passphrase on ``new_socket``) or a
        reject reason the caller will see. Any exception rejects, so a bug never lets a caller in.
        """

        def hook(_opaque: Any, handle: int, _hs: int, peer: int, streamid: bytes | None) -> int:
            try:
                peer_address = parse_sockaddr(ctypes.string_at(peer, _SOCKADDR_STORAGE)) if peer else None
                reason = decide(SrtSocket(handle), (streamid or b"").decode("utf-8", "replace"), peer_address)
            except Exception:  # noqa: BLE001 - reject on any failure, never accept by accident
                reason = errors.REJX_BAD_REQUEST
            if reason is None:
                return 0
            self._lib.srt_setrejectreason(handle, reason)
            return -1

        self._callback_ref = LISTEN_CALLBACK(hook)
        if self._lib.srt_listen_callback(self.handle, self._callback_ref, None) == SRT_ERROR:
            raise _last_error("installing the listen callback")

    def accept(self) -> tuple[SrtSocket, Address | None]:
        raw = ctypes.create_string_buffer(_SOCKADDR_STORAGE)
        size = ctypes.c_int(_SOCKADDR_STORAGE)
        handle = self._lib.srt_accept(self.handle, raw, ctypes.byref(size))
        if handle == SRT_ERROR:
            raise self._error("accept")
        return SrtSocket(handle), parse_sockaddr(raw.raw)

    def connect(self, host: str, port: int, stop: threading.Event | None = None) -> None:
        """Dial the peer. Returns once connected; raises with libsrt's reason, or SrtClosed on ``stop``."""
        address = sockaddr(host, port)
        self.set(Opt.RCVSYN, False)
        if self._lib.srt_connect(self.handle, address, len(address)) == SRT_ERROR:
            raise self._error(f"connecting to {host}:{port}")
        self._await_connection(f"connecting to {host}:{port}", stop)

    def rendezvous(
        self, local_host: str, local_port: int, remote_host: str, remote_port: int, stop: threading.Event | None = None
    ) -> None:
        local = sockaddr(local_host, local_port)
        remote = sockaddr(remote_host, remote_port)
        self.set(Opt.RCVSYN, False)
        if self._lib.srt_rendezvous(self.handle, local, len(local), remote, len(remote)) == SRT_ERROR:
            raise self._error(f"rendezvous with {remote_host}:{remote_port}")
        self._await_connection(f"rendezvous with {remote_host}:{remote_port}", stop)

    def _await_connection(self, what: str, stop: threading.Event | None) -> None:
        # A blocking srt_connect cannot be interrupted by srt_close, so connect without blocking and
        # watch the state: stopping a route never waits for a connect timeout.
        while True:
            state = self.state
            if state == SocketState.CONNECTED:
                self.set(Opt.RCVSYN, True)
                return
            if state != SocketState.CONNECTING:
                reason = self._lib.srt_getrejectreason(self.handle)
                raise SrtError(f"{what}: {reject_reason_text(reason)}", code=errors.ECONNREJ, reject_reason=reason)
            if stop is not None and stop.wait(0.02):
                raise SrtClosed(f"{what}: stopped")
            if stop is None:
                time.sleep(0.02)

    def close(self) -> None:
        """Close once; a call blocked in another thread returns with SrtClosed."""
        if not self._closed.is_set():
            self._closed.set()
            self._lib.srt_close(self.handle)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    # data

    def recv_into(self, buffer: ctypes.Array) -> int:
        """Receive one message into a preallocated buffer; returns its length."""
        received = self._lib.srt_recvmsg(self.handle, buffer, len(buffer))
        if received == SRT_ERROR:
            raise self._error("receive")
        return received

    def send(self, data: bytes | ctypes.Array, length: int | None = None) -> int:
        size = len(data) if length is None else length
        sent = self._lib.srt_sendmsg(self.handle, data, size, -1, 0)
        if sent == SRT_ERROR:
            raise self._error("send")
        return sent

    # observation

    @property
    def state(self) -> SocketState:
        return SocketState(self._lib.srt_getsockstate(self.handle))

    def peer(self) -> Address | None:
        return self._address(self._lib.srt_getpeername)

    def local(self) -> Address | None:
        return self._address(self._lib.srt_getsockname)

    def _address(self, getter: Callable[..., int]) -> Address | None:
        raw = ctypes.create_string_buffer(_SOCKADDR_STORAGE)
        size = ctypes.c_int(_SOCKADDR_STORAGE)
        if getter(self.handle, raw, ctypes.byref(size)) == SRT_ERROR or size.value == 0:
            self._lib.srt_clearlasterror()
            return None
        return parse_sockaddr(raw.raw)

    def stats(self, clear: bool = False) -> dict[str, Any]:
        if self._lib.srt_bistats(self.handle, self._stats_buffer, int(clear), 1) == SRT_ERROR:
            raise self._error("reading statistics")
        return snapshot(TraceBStats.from_buffer(self._stats_buffer))

    def _error(self, what: str) -> SrtError:
        error = _last_error(what, self.handle)
        if self._closed.is_set() and not isinstance(error, SrtClosed):
            return SrtClosed(str(error), error.code)
        return error
