"""The Coldcard multisig setup file, as Coldcard, Sparrow, BlueWallet, Cobo and Caravan write it.

``Label: value`` lines, read the way Coldcard's firmware reads them
(``shared/multisig.py`` ``from_simple_text``): labels are case-insensitive;
``Policy: M of N`` (also ``M/N``, ``M,N``); ``Format:`` p2sh, p2wsh,
p2sh-p2wsh (``p2wsh-p2sh``), and **no Format line means P2SH**;
``Derivation:`` applies to the keys after it; ``FINGERPRINT: xpub`` per
cosigner; no Policy line means N of N. BlueWallet and Sparrow put
``# derivation: PATH`` before a key whose path differs: it applies to that
key only. Only P2WSH files are imported; N must equal the number of keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from l2custody.errors import DescriptorError
from l2custody.wallet.descriptor import KeyOrigin, format_path, parse_path
from l2custody.wallet.formats.imported import ImportedWallet, build

_FORMATS = {"p2sh": "P2SH", "p2wsh": "P2WSH", "p2sh-p2wsh": "P2SH-P2WSH", "p2wsh-p2sh": "P2SH-P2WSH"}
_LABEL_LINE = re.compile(r"^\s*(?:policy|format|derivation|name|[0-9a-fA-F]{8})\s*:", re.I | re.M)


def looks_like_setup_file(text: str) -> bool:
    """True if ``text`` has the ``Policy:``/``Format:``/``FINGERPRINT:`` lines of a setup file."""
    return bool(_LABEL_LINE.search(text))


@dataclass
class _Setup:
    """The fields of a setup file, as read so far."""

    name: str | None = None
    policy: tuple[int, int] | None = None
    derivation: str | None = None
    next_derivation: str | None = None  # a ``# derivation:`` comment: the next key only
    fmt: str = "P2SH"  # Coldcard: a file without a Format line is P2SH
    keys: list[KeyOrigin] = field(default_factory=list)


def import_coldcard(text: str, network: str | None = None) -> ImportedWallet:
    """A Coldcard multisig setup file: P2WSH only, the policy's N equal to the keys listed."""
    setup = _Setup()
    for number, raw in enumerate(text.splitlines(), start=1):
        _read_line(setup, raw, number)
    if setup.fmt != "P2WSH":
        implicit = "" if "format" in text.lower() else " (the file has no Format line, which Coldcard reads as P2SH)"
        raise DescriptorError(
            f"this multisig file is {setup.fmt}{implicit}; l2custody supports native segwit P2WSH only. "
            "Set up the wallet as P2WSH (Format: P2WSH) and export it again"
        )
    n = len(setup.keys)
    threshold, total = setup.policy or (n, n)
    if total != n:
        raise DescriptorError(
            f"the file's policy is {threshold} of {total} but it lists {n} keys; "
            "a key is missing or extra: export the file again"
        )
    return ImportedWallet(build(threshold, setup.keys, network), "coldcard", name=setup.name)


def _read_line(setup: _Setup, raw: str, number: int) -> None:
    line = raw.strip()
    if line.lower().startswith("#") and re.match(r"#\s*derivation\s*:", line, re.I):
        setup.next_derivation = line.split(":", 1)[1].strip()
        return
    comment = line.find("#")
    if comment == 0:
        return
    if comment > 0 and not line[comment + 1 : comment + 2].isdigit():  # Coldcard keeps "#" before a digit
        line = line[:comment].strip()
    if ":" not in line:
        if re.fullmatch(r"[A-Za-z]pub[1-9A-HJ-NP-Za-km-z]+", line):
            raise DescriptorError(
                f"line {number} is an extended key without its master fingerprint; write it as "
                "FINGERPRINT: xpub (hardware signers need the fingerprint and path to sign)"
            )
        return
    label, value = (part.strip() for part in line.split(":", 1))
    _read_field(setup, label.lower(), value, number)


def _read_field(setup: _Setup, label: str, value: str, number: int) -> None:
    if label == "name":
        setup.name = value or None
    elif label == "policy":
        m = re.search(r"(\d+)\D+(\d+)", value)
        if not m or len(m.group(1)) > 3 or len(m.group(2)) > 3:
            raise DescriptorError(f"cannot read policy {value[:20]!r} on line {number}; expected e.g. '2 of 3'")
        setup.policy = (int(m.group(1)), int(m.group(2)))
    elif label == "derivation":
        setup.derivation = format_path(parse_path(value))
    elif label == "format":
        fmt = _FORMATS.get(value.lower())
        if fmt is None:
            raise DescriptorError(f"unknown Format {value[:20]!r} on line {number}; expected P2WSH")
        setup.fmt = fmt
    elif label == "seed":
        raise DescriptorError(
            f"line {number} holds a cosigner's seed words: this is a private backup, not a setup file. "
            "Export the coordination setup (public keys only) instead; keep the seed offline"
        )
    elif re.fullmatch(r"[0-9a-f]{8}", label):
        _read_key(setup, label, value, number)


def _read_key(setup: _Setup, fingerprint: str, xpub: str, number: int) -> None:
    derivation = setup.next_derivation or setup.derivation
    setup.next_derivation = None
    if derivation is None:
        raise DescriptorError(
            f"key {fingerprint} (line {number}) comes before any 'Derivation:' line: its origin path is "
            "unknown, and hardware signers need it to sign"
        )
    if fingerprint == "00000000":
        raise DescriptorError(
            f"key on line {number} has the placeholder fingerprint 00000000: its master fingerprint is "
            "unknown, and hardware signers need it; export the key again from its signer"
        )
    setup.keys.append(KeyOrigin(fingerprint, format_path(parse_path(derivation)), xpub))
