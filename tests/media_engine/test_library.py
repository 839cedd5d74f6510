"""Loading libsrt: version check, missing library, logs and errors in Python terms."""

from __future__ import annotations

import logging
import socket

import pytest

from media_engine.srt import library
from media_engine.srt.errors import SrtError, SrtLibraryError
from media_engine.srt.socket import Opt, SrtSocket


def test_loaded_library_is_a_supported_1_5() -> None:
    assert library.version().startswith("1.5.")


@pytest.mark.parametrize("version", [(1, 4, 4), (1, 3, 0), (2, 0, 0)])
def test_an_incompatible_version_is_refused_with_the_package_to_install(version: tuple[int, int, int]) -> None:
    with pytest.raises(SrtLibraryError, match=r"not supported.*libsrt1\.5-openssl"):
        library.check_version(version)


def test_a_missing_library_names_the_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(library, "SONAMES", ("libsrt-absent.so.9",))
    monkeypatch.setattr(library.ctypes.util, "find_library", lambda _name: None)
    with pytest.raises(SrtLibraryError, match=r"apt-get install libsrt1\.5-openssl"):
        library._open()


def test_errors_carry_libsrt_words() -> None:
    sock = SrtSocket()
    with pytest.raises(SrtError, match=r"setting PASSPHRASE: .+"):
        sock.set(Opt.PASSPHRASE, "short")  # libsrt refuses passphrases under 10 characters
    sock.close()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        sock = SrtSocket()
        with pytest.raises(SrtError, match=f"binding 127.0.0.1:{port}: .*unable to create"):
            sock.bind("127.0.0.1", port)
        sock.close()


def test_libsrt_log_lines_reach_python_logging(caplog: pytest.LogCaptureFixture) -> None:
    try:
        with caplog.at_level(logging.DEBUG, logger="media_engine.srt.libsrt"):
            library.sync_log_level()
            SrtSocket().close()
    finally:
        library.sync_log_level()
    assert any("generateSocketID" in record.getMessage() for record in caplog.records)
