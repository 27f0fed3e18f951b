"""PSBTs as lists of key-value maps, for tests that rebuild a PSBT with one thing changed."""

from __future__ import annotations

from l2custody.wallet.psbt_format import check_psbt

#: The global map, then each input map, then each output map: (key, value) pairs in order.
Maps = list[list[tuple[bytes, bytes]]]


def compact(n: int) -> bytes:
    """A minimally encoded compact size unsigned integer."""
    if n < 0xFD:
        return bytes([n])
    return b"\xfd" + n.to_bytes(2, "little") if n <= 0xFFFF else b"\xfe" + n.to_bytes(4, "little")


def maps_of(raw: bytes) -> Maps:
    """The maps of a PSBT that passes ``check_psbt``."""
    c = check_psbt(raw)
    return [[(f.key, f.value) for f in m.fields] for m in (c.global_map, *c.inputs, *c.outputs)]


def build(maps: Maps) -> bytes:
    """The PSBT of ``maps``, exactly as given (no rule is checked)."""
    out = b"psbt\xff"
    for fields in maps:
        for key, value in fields:
            out += compact(len(key)) + key + compact(len(value)) + value
        out += b"\x00"
    return out
