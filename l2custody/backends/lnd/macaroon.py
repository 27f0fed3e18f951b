"""lnd macaroons: read the caveats, add a first-party caveat (``lnd-custom`` ones).

lnd serializes macaroons in the version-2 binary format (gopkg.in/macaroon.v2):
a version byte 2, then fields ``<type byte><uvarint length><data>``; the
header is location (1, optional) + identifier (2) + end (0); each caveat is
location (1) / identifier (2) / verification id (4) + end (0); the caveat
list ends with an extra end byte; the signature (6) closes it. A first-party
caveat is an identifier without verification id, and adding one replaces the
signature with ``HMAC-SHA256(key=old signature, msg=caveat)`` (only lnd,
which holds the root key, can check it; anyone can add restrictions).

lnd's custom caveats read ``lnd-custom <name> <condition>`` (lnd
``macaroons/constraints.go`` ``CustomConstraint``): a middleware registered
for ``<name>`` sees every request made with such a macaroon, and lnd refuses
the macaroon outright while no middleware for ``<name>`` is registered.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from l2custody.errors import ConfigError

_LOCATION, _IDENTIFIER, _VID, _SIGNATURE, _END = 1, 2, 4, 6, 0
CUSTOM_PREFIX = b"lnd-custom "


@dataclass(frozen=True)
class Caveat:
    identifier: bytes
    location: bytes = b""
    verification_id: bytes = b""

    @property
    def first_party(self) -> bool:
        return not self.verification_id


@dataclass(frozen=True)
class Macaroon:
    """A parsed version-2 macaroon (the signature never shows in ``repr``)."""

    identifier: bytes
    caveats: tuple[Caveat, ...]
    signature: bytes
    location: bytes = b""

    def __repr__(self) -> str:
        return f"Macaroon(caveats={len(self.caveats)})"

    def custom_caveat(self, name: str) -> str | None:
        """The condition of the first ``lnd-custom <name>`` caveat ("" for a bare name), or None.

        Matches lnd's ``HasCustomCaveat``: a prefix test on ``lnd-custom <name>``."""
        prefix = CUSTOM_PREFIX + name.encode()
        for caveat in self.caveats:
            if caveat.first_party and caveat.identifier.startswith(prefix):
                return caveat.identifier[len(prefix) :].decode(errors="replace").strip()
        return None

    def with_first_party(self, condition: bytes) -> Macaroon:
        """This macaroon restricted by one more first-party caveat."""
        signature = hmac.new(self.signature, condition, hashlib.sha256).digest()
        return Macaroon(self.identifier, (*self.caveats, Caveat(condition)), signature, self.location)

    def serialize(self) -> bytes:
        out = bytearray([2])
        if self.location:
            out += _field(_LOCATION, self.location)
        out += _field(_IDENTIFIER, self.identifier) + bytes([_END])
        for caveat in self.caveats:
            if caveat.location:
                out += _field(_LOCATION, caveat.location)
            out += _field(_IDENTIFIER, caveat.identifier)
            if caveat.verification_id:
                out += _field(_VID, caveat.verification_id)
            out.append(_END)
        out.append(_END)
        out += _field(_SIGNATURE, self.signature)
        return bytes(out)


def custom_caveat(name: str, condition: str = "") -> bytes:
    """The caveat lnd reads as custom caveat ``name`` with ``condition`` (lnd CustomConstraint)."""
    return CUSTOM_PREFIX + (f"{name} {condition}" if condition else name).encode()


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(kind: int, data: bytes) -> bytes:
    return bytes([kind]) + _uvarint(len(data)) + data


class _Reader:
    def __init__(self, raw: bytes) -> None:
        self.raw, self.pos = raw, 0

    def byte(self) -> int:
        if self.pos >= len(self.raw):
            raise ConfigError("the macaroon ends early: it is truncated or not an lnd macaroon")
        value = self.raw[self.pos]
        self.pos += 1
        return value

    def uvarint(self) -> int:
        value = shift = 0
        while True:
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise ConfigError("the macaroon holds an oversized length: it is not an lnd macaroon")

    def fields(self) -> dict[int, bytes]:
        """Fields up to the next end byte."""
        found: dict[int, bytes] = {}
        while True:
            kind = self.byte()
            if kind == _END:
                return found
            size = self.uvarint()
            if self.pos + size > len(self.raw):
                raise ConfigError("the macaroon ends inside a field: it is truncated")
            if kind in found or kind not in (_LOCATION, _IDENTIFIER, _VID):
                raise ConfigError(f"the macaroon holds an unexpected field of type {kind}")
            found[kind] = self.raw[self.pos : self.pos + size]
            self.pos += size


def parse_macaroon(raw: bytes) -> Macaroon:
    """A version-2 binary macaroon; ConfigError for anything else."""
    if not raw or raw[0] != 2:
        raise ConfigError("not a version-2 binary macaroon (lnd writes those): check the file")
    reader = _Reader(raw)
    reader.pos = 1
    header = reader.fields()
    if _IDENTIFIER not in header:
        raise ConfigError("the macaroon has no identifier: it is not an lnd macaroon")
    caveats = []
    while reader.pos < len(raw) and raw[reader.pos] != _END:
        fields = reader.fields()
        if _IDENTIFIER not in fields:
            raise ConfigError("a caveat of the macaroon has no identifier")
        caveats.append(Caveat(fields[_IDENTIFIER], fields.get(_LOCATION, b""), fields.get(_VID, b"")))
    reader.byte()  # the end of the caveat list
    if reader.byte() != _SIGNATURE:
        raise ConfigError("the macaroon has no signature where one belongs")
    size = reader.uvarint()
    signature = raw[reader.pos : reader.pos + size]
    if size != 32 or len(signature) != 32 or reader.pos + size != len(raw):
        raise ConfigError("the macaroon's signature is not 32 bytes at its end")
    return Macaroon(header[_IDENTIFIER], tuple(caveats), signature, header.get(_LOCATION, b""))
