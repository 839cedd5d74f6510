"""AMF0, the value encoding of RTMP commands and metadata: the types encoders actually send."""

from __future__ import annotations

import struct
from typing import Any

NUMBER = 0x00
BOOLEAN = 0x01
STRING = 0x02
OBJECT = 0x03
NULL = 0x05
UNDEFINED = 0x06
REFERENCE = 0x07
ECMA_ARRAY = 0x08
OBJECT_END = 0x09
STRICT_ARRAY = 0x0A
DATE = 0x0B
LONG_STRING = 0x0C
UNSUPPORTED = 0x0D
XML_DOCUMENT = 0x0F
TYPED_OBJECT = 0x10
AVMPLUS = 0x11  # switch to AMF3: no publisher we know of sends it in AMF0 commands


class AmfError(ValueError):
    """The bytes are not AMF0 this decoder understands."""


class Undefined:
    """AMF0's undefined, which is not null: some peers tell them apart."""

    def __repr__(self) -> str:
        return "UNDEFINED"


UNDEFINED_VALUE = Undefined()


def decode_all(data: bytes) -> list[Any]:
    """Every value in ``data``, in order."""
    reader = _Reader(data)
    values = []
    while reader.offset < len(data):
        values.append(reader.value())
    return values


def decode_prefix(data: bytes) -> list[Any]:
    """The values up to the first one this decoder cannot read: a command's name, transaction and
    main arguments come first, and an exotic value later on must not cost them."""
    reader = _Reader(data)
    values = []
    while reader.offset < len(data):
        try:
            values.append(reader.value())
        except AmfError:
            break
    return values


def decode_first(data: bytes) -> tuple[Any, int]:
    """The first value and where the next one starts."""
    reader = _Reader(data)
    return reader.value(), reader.offset


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0
        self._objects: list[Any] = []

    def _take(self, size: int) -> bytes:
        end = self.offset + size
        if end > len(self.data):
            raise AmfError("truncated AMF0 value")
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def _short_string(self) -> str:
        (size,) = struct.unpack(">H", self._take(2))
        return self._take(size).decode("utf-8", errors="replace")

    def _properties(self, into: dict[str, Any]) -> dict[str, Any]:
        while True:
            if self.offset >= len(self.data):
                # Some encoders end an ECMA array without the end marker; what was read still counts.
                return into
            if self.data[self.offset : self.offset + 3] == b"\x00\x00\x09":
                self.offset += 3
                return into
            key = self._short_string()
            into[key] = self.value()

    def value(self) -> Any:
        (marker,) = self._take(1)
        if marker == NUMBER:
            return struct.unpack(">d", self._take(8))[0]
        if marker == BOOLEAN:
            return self._take(1) != b"\x00"
        if marker == STRING:
            return self._short_string()
        if marker in (LONG_STRING, XML_DOCUMENT):
            (size,) = struct.unpack(">I", self._take(4))
            return self._take(size).decode("utf-8", errors="replace")
        if marker in (NULL, UNSUPPORTED):
            return None
        if marker == UNDEFINED:
            return UNDEFINED_VALUE
        if marker == OBJECT:
            return self._properties(self._remember({}))
        if marker == TYPED_OBJECT:
            self._short_string()  # the class name says nothing we use
            return self._properties(self._remember({}))
        if marker == ECMA_ARRAY:
            self._take(4)  # an approximate count: the end marker is what ends it
            return self._properties(self._remember({}))
        if marker == STRICT_ARRAY:
            (count,) = struct.unpack(">I", self._take(4))
            items = self._remember([])
            items.extend(self.value() for _ in range(count))
            return items
        if marker == DATE:
            millis = struct.unpack(">d", self._take(8))[0]
            self._take(2)  # time zone, unused by the format's own definition
            return millis
        if marker == REFERENCE:
            (index,) = struct.unpack(">H", self._take(2))
            if index >= len(self._objects):
                raise AmfError(f"AMF0 reference {index} to an object not seen")
            return self._objects[index]
        raise AmfError(f"unsupported AMF0 marker 0x{marker:02x}")

    def _remember(self, value: Any) -> Any:
        self._objects.append(value)
        return value


def encode(*values: Any) -> bytes:
    """Values in order: float/int as number, bool, str, None as null, dict as object."""
    return b"".join(_encode_one(value) for value in values)


def _encode_string_body(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack(">H", len(raw)) + raw


def _encode_one(value: Any) -> bytes:
    # bool before int: True is an int to Python but a boolean to AMF.
    if isinstance(value, bool):
        return bytes((BOOLEAN, int(value)))
    if isinstance(value, int | float):
        return bytes((NUMBER,)) + struct.pack(">d", float(value))
    if isinstance(value, str):
        raw = value.encode("utf-8")
        if len(raw) > 0xFFFF:
            return bytes((LONG_STRING,)) + struct.pack(">I", len(raw)) + raw
        return bytes((STRING,)) + struct.pack(">H", len(raw)) + raw
    if value is None:
        return bytes((NULL,))
    if isinstance(value, Undefined):
        return bytes((UNDEFINED,))
    if isinstance(value, dict):
        body = b"".join(_encode_string_body(str(key)) + _encode_one(item) for key, item in value.items())
        return bytes((OBJECT,)) + body + b"\x00\x00\x09"
    if isinstance(value, list | tuple):
        return bytes((STRICT_ARRAY,)) + struct.pack(">I", len(value)) + b"".join(_encode_one(v) for v in value)
    raise TypeError(f"cannot encode {type(value).__name__} as AMF0")
