"""The PSBT container of BIP-174 (version 0) and BIP-370 (version 2), checked strictly.

``check_psbt`` reads the binary key-value maps and refuses, with a PsbtError
naming the field and the map (global, input N, output N), every PSBT the
BIPs call invalid, before any other code trusts it:

- framing: the magic, every key and value as long as its compact size says,
  minimally encoded compact sizes, exactly the maps the counts announce and
  nothing after them, no key twice in a map;
- per field: the key data each type allows (none, a public key, a hash...)
  and the value's format (4-byte integers, a transaction output, a key
  path...), for the fields of BIP-174 and BIP-370 and the taproot fields
  embit reads; unknown and proprietary fields pass through;
- version 0: PSBT_GLOBAL_UNSIGNED_TX present, in the serialization without
  witnesses, with empty scriptSigs; no version 2 field anywhere;
- version 2: no PSBT_GLOBAL_UNSIGNED_TX; PSBT_GLOBAL_TX_VERSION (at least
  2), PSBT_GLOBAL_INPUT_COUNT and PSBT_GLOBAL_OUTPUT_COUNT; on every input
  PSBT_IN_PREVIOUS_TXID and PSBT_IN_OUTPUT_INDEX, on every output
  PSBT_OUT_AMOUNT and PSBT_OUT_SCRIPT; required lock times of the right
  kind and inputs whose lock times can be met together;
- amounts never negative nor above 21 million bitcoin.

It returns the maps as plain data (``CheckedPsbt``); ``wallet/psbt.py`` builds
embit's model from them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from embit import bip32, ec, hashes
from embit.transaction import Transaction

from l2custody.errors import PsbtError

MAGIC = b"psbt\xff"
MAX_MONEY = 21_000_000 * 100_000_000
LOCKTIME_THRESHOLD = 500_000_000  # below: a block height; from here on: a Unix time
SUPPORTED_VERSIONS = (0, 2)

GLOBAL_NAMES = {
    0x00: "PSBT_GLOBAL_UNSIGNED_TX",
    0x01: "PSBT_GLOBAL_XPUB",
    0x02: "PSBT_GLOBAL_TX_VERSION",
    0x03: "PSBT_GLOBAL_FALLBACK_LOCKTIME",
    0x04: "PSBT_GLOBAL_INPUT_COUNT",
    0x05: "PSBT_GLOBAL_OUTPUT_COUNT",
    0x06: "PSBT_GLOBAL_TX_MODIFIABLE",
    0xFB: "PSBT_GLOBAL_VERSION",
    0xFC: "PSBT_GLOBAL_PROPRIETARY",
}
INPUT_NAMES = {
    0x00: "PSBT_IN_NON_WITNESS_UTXO",
    0x01: "PSBT_IN_WITNESS_UTXO",
    0x02: "PSBT_IN_PARTIAL_SIG",
    0x03: "PSBT_IN_SIGHASH_TYPE",
    0x04: "PSBT_IN_REDEEM_SCRIPT",
    0x05: "PSBT_IN_WITNESS_SCRIPT",
    0x06: "PSBT_IN_BIP32_DERIVATION",
    0x07: "PSBT_IN_FINAL_SCRIPTSIG",
    0x08: "PSBT_IN_FINAL_SCRIPTWITNESS",
    0x0A: "PSBT_IN_RIPEMD160",
    0x0B: "PSBT_IN_SHA256",
    0x0C: "PSBT_IN_HASH160",
    0x0D: "PSBT_IN_HASH256",
    0x0E: "PSBT_IN_PREVIOUS_TXID",
    0x0F: "PSBT_IN_OUTPUT_INDEX",
    0x10: "PSBT_IN_SEQUENCE",
    0x11: "PSBT_IN_REQUIRED_TIME_LOCKTIME",
    0x12: "PSBT_IN_REQUIRED_HEIGHT_LOCKTIME",
    0x13: "PSBT_IN_TAP_KEY_SIG",
    0x14: "PSBT_IN_TAP_SCRIPT_SIG",
    0x15: "PSBT_IN_TAP_LEAF_SCRIPT",
    0x16: "PSBT_IN_TAP_BIP32_DERIVATION",
    0x17: "PSBT_IN_TAP_INTERNAL_KEY",
    0x18: "PSBT_IN_TAP_MERKLE_ROOT",
    0xFC: "PSBT_IN_PROPRIETARY",
}
OUTPUT_NAMES = {
    0x00: "PSBT_OUT_REDEEM_SCRIPT",
    0x01: "PSBT_OUT_WITNESS_SCRIPT",
    0x02: "PSBT_OUT_BIP32_DERIVATION",
    0x03: "PSBT_OUT_AMOUNT",
    0x04: "PSBT_OUT_SCRIPT",
    0x05: "PSBT_OUT_TAP_INTERNAL_KEY",
    0x07: "PSBT_OUT_TAP_BIP32_DERIVATION",
    0xFC: "PSBT_OUT_PROPRIETARY",
}
#: Fields of version 2 only (BIP-370: "Versions Requiring Exclusion: 0").
V2_ONLY_GLOBALS = (0x02, 0x03, 0x04, 0x05, 0x06)
V2_ONLY_INPUTS = (0x0E, 0x0F, 0x10, 0x11, 0x12)
V2_ONLY_OUTPUTS = (0x03, 0x04)


class _Bad(Exception):
    """A field's key data or value is not in its type's format; the caller names the field."""


# --- the byte reader --------------------------------------------------------------------
class _Reader:
    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    @property
    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int, what: str) -> bytes:
        if n > self.left:
            raise _Bad(f"{what} needs {n} bytes but only {self.left} remain in {self.what}")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def compact(self, what: str) -> int:
        """A minimally encoded compact size unsigned integer."""
        first = self.take(1, what)[0]
        if first < 0xFD:
            return first
        size = {0xFD: 2, 0xFE: 4, 0xFF: 8}[first]
        value = int.from_bytes(self.take(size, what), "little")
        if value < {2: 0xFD, 4: 0x10000, 8: 0x100000000}[size]:
            raise _Bad(f"{what} is a compact size that is not minimally encoded")
        return value

    def end(self, what: str) -> None:
        if self.left:
            raise _Bad(f"{self.left} unexpected byte(s) after the end of {what}")


def _uint(value: bytes, size: int, what: str) -> int:
    if len(value) != size:
        raise _Bad(f"{what} must be {size} bytes, not {len(value)}")
    return int.from_bytes(value, "little")


# --- transactions (the unsigned transaction, previous transactions, outputs) --------------------
@dataclass(frozen=True)
class TxInput:
    txid: bytes  # in display order (as embit keeps it)
    vout: int
    sequence: int


@dataclass(frozen=True)
class TxOutput:
    value: int
    script_pubkey: bytes


@dataclass(frozen=True)
class UnsignedTx:
    """A transaction without witnesses and with empty scriptSigs (PSBT_GLOBAL_UNSIGNED_TX)."""

    version: int
    inputs: tuple[TxInput, ...]
    outputs: tuple[TxOutput, ...]
    locktime: int


def _amount(raw: bytes, what: str) -> int:
    value = int.from_bytes(raw, "little", signed=True)
    if value < 0:
        raise _Bad(f"{what} is negative ({value} sat)")
    if value > MAX_MONEY:
        raise _Bad(f"{what} of {value} sat is more than 21 million bitcoin")
    return value


def _read_output(r: _Reader, what: str) -> TxOutput:
    value = _amount(r.take(8, f"the amount of {what}"), f"the amount of {what}")
    script = r.take(r.compact(f"the script length of {what}"), f"the script of {what}")
    return TxOutput(value, script)


def _read_unsigned_tx(value: bytes) -> UnsignedTx:
    r = _Reader(value, "the transaction")
    version = int.from_bytes(r.take(4, "the transaction version"), "little")  # as the bytes say (embit's way)
    inputs = []
    for i in range(r.compact("the input count")):
        txid = r.take(32, f"input {i}'s previous txid")[::-1]
        vout = int.from_bytes(r.take(4, f"input {i}'s output index"), "little")
        if r.compact(f"input {i}'s scriptSig length"):
            raise _Bad(f"input {i} has a filled scriptSig; an unsigned transaction's scriptSigs must be empty")
        inputs.append(TxInput(txid, vout, int.from_bytes(r.take(4, f"input {i}'s sequence"), "little")))
    outputs = [_read_output(r, f"output {j}") for j in range(r.compact("the output count"))]
    locktime = int.from_bytes(r.take(4, "the locktime"), "little")
    r.end("the transaction")
    return UnsignedTx(version, tuple(inputs), tuple(outputs), locktime)


def _looks_witness_serialized(value: bytes) -> bool:
    """Marker 0x00 and flag 0x01 after the version, and the rest reads as a witness transaction."""
    if value[4:6] != b"\x00\x01":
        return False
    try:
        Transaction.parse(value)
    except Exception:
        return False
    return True


def _unsigned_tx(value: bytes) -> UnsignedTx:
    try:
        return _read_unsigned_tx(value)
    except _Bad as exc:
        if _looks_witness_serialized(value):
            raise _Bad(
                "the unsigned transaction is in the witness serialization; "
                "it must be serialized without witnesses (and have none)"
            ) from None
        raise _Bad(f"it is not a valid transaction: {exc}") from None


def _check_transaction(value: bytes) -> None:
    """A network-serialized transaction (with or without witnesses), as embit reads it."""
    try:
        Transaction.parse(value)
    except Exception as exc:
        raise _Bad(f"it is not a valid transaction ({exc})") from None


# --- field formats --------------------------------------------------------------------------
def _empty_key(key_data: bytes) -> None:
    if key_data:
        raise _Bad(f"its key must be the type alone, but carries {len(key_data)} byte(s) of key data")


def _pubkey_key(key_data: bytes) -> None:
    if len(key_data) not in (33, 65):
        raise _Bad(f"its key data must be a 33- or 65-byte public key, not {len(key_data)} bytes")
    try:
        ec.PublicKey.parse(key_data)
    except Exception:
        raise _Bad("its key data is not a valid public key") from None


def _xonly(data: bytes, what: str) -> None:
    if len(data) != 32:
        raise _Bad(f"{what} must be a 32-byte x-only public key, not {len(data)} bytes")
    try:
        ec.PublicKey.from_xonly(data)
    except Exception:
        raise _Bad(f"{what} is not a valid x-only public key") from None


def _key_length(*sizes: int) -> Callable[[bytes], None]:
    def check(key_data: bytes) -> None:
        if len(key_data) not in sizes:
            raise _Bad(f"its key data must be {' or '.join(map(str, sizes))} bytes, not {len(key_data)}")

    return check


def _any(_: bytes) -> None:
    return None


def _key_path(value: bytes, what: str = "its value") -> int:
    """<4-byte fingerprint> <4-byte index>*; returns the number of indexes."""
    if len(value) < 4 or len(value) % 4:
        raise _Bad(f"{what} must be a 4-byte fingerprint and 4-byte path indexes, not {len(value)} bytes")
    return len(value) // 4 - 1


def _key_path_value(value: bytes) -> None:
    _key_path(value)


def _fixed(size: int) -> Callable[[bytes], None]:
    def check(value: bytes) -> None:
        _uint(value, size, "its value")

    return check


def _witness_utxo(value: bytes) -> None:
    r = _Reader(value, "the value")
    _read_output(r, "the output")
    r.end("the output")


def _witness_stack(value: bytes) -> None:
    r = _Reader(value, "the value")
    for k in range(r.compact("the number of witness items")):
        r.take(r.compact(f"the length of witness item {k}"), f"witness item {k}")
    r.end("the witness stack")


def _preimage(digest: Callable[[bytes], bytes]) -> Callable[[bytes, bytes], None]:
    def check(key_data: bytes, value: bytes) -> None:
        if digest(value) != key_data:
            raise _Bad("its value is not the preimage of the hash in its key")

    return check


def _out_amount(value: bytes) -> None:
    _uint(value, 8, "its value")
    _amount(value, "the amount")


def _schnorr_sig(value: bytes) -> None:
    if len(value) not in (64, 65):
        raise _Bad(f"its value must be a 64- or 65-byte Schnorr signature, not {len(value)} bytes")


def _tap_script_sig_key(key_data: bytes) -> None:
    if len(key_data) != 64:
        raise _Bad(f"its key data must be a 32-byte x-only key and a 32-byte leaf hash, not {len(key_data)} bytes")
    _xonly(key_data[:32], "its key")


def _control_block(key_data: bytes) -> None:
    if len(key_data) < 33 or (len(key_data) - 33) % 32 or (len(key_data) - 33) // 32 > 128:
        raise _Bad(f"its key data must be a control block of 33 + 32*k bytes (k <= 128), not {len(key_data)} bytes")


def _nonempty(value: bytes) -> None:
    if not value:
        raise _Bad("its value is empty; it must end with the leaf version")


def _tap_derivation(value: bytes) -> None:
    r = _Reader(value, "the value")
    count = r.compact("the number of leaf hashes")
    r.take(32 * count, f"{count} leaf hashes")
    _key_path(r.take(r.left, "the key path"), "the key path after the leaf hashes")


def _xonly_value(value: bytes) -> None:
    _xonly(value, "its value")


def _xonly_key(key_data: bytes) -> None:
    _xonly(key_data, "its key data")


def _proprietary_key(key_data: bytes) -> None:
    r = _Reader(key_data, "the key data")
    r.take(r.compact("the identifier length"), "the identifier")
    r.compact("the subtype")


@dataclass(frozen=True)
class _Rule:
    key: Callable[[bytes], None] = _empty_key
    value: Callable[[bytes], None] = _any
    both: Callable[[bytes, bytes], None] | None = None  # checks needing key data and value


GLOBAL_RULES: dict[int, _Rule] = {
    0x00: _Rule(),  # read whole by _unsigned_tx
    0x01: _Rule(key=_key_length(78)),  # the path length is checked against the depth below
    0x02: _Rule(value=_fixed(4)),
    0x03: _Rule(value=_fixed(4)),
    0x04: _Rule(),  # read as a compact size below
    0x05: _Rule(),
    0x06: _Rule(value=_fixed(1)),
    0xFB: _Rule(value=_fixed(4)),
    0xFC: _Rule(key=_proprietary_key),
}
INPUT_RULES: dict[int, _Rule] = {
    0x00: _Rule(value=_check_transaction),
    0x01: _Rule(value=_witness_utxo),
    0x02: _Rule(key=_pubkey_key),
    0x03: _Rule(value=_fixed(4)),
    0x04: _Rule(),
    0x05: _Rule(),
    0x06: _Rule(key=_pubkey_key, value=_key_path_value),
    0x07: _Rule(),
    0x08: _Rule(value=_witness_stack),
    0x0A: _Rule(key=_key_length(20), both=_preimage(hashes.ripemd160)),
    0x0B: _Rule(key=_key_length(32), both=_preimage(hashes.sha256)),
    0x0C: _Rule(key=_key_length(20), both=_preimage(hashes.hash160)),
    0x0D: _Rule(key=_key_length(32), both=_preimage(hashes.double_sha256)),
    0x0E: _Rule(value=_fixed(32)),
    0x0F: _Rule(value=_fixed(4)),
    0x10: _Rule(value=_fixed(4)),
    0x11: _Rule(value=_fixed(4)),
    0x12: _Rule(value=_fixed(4)),
    0x13: _Rule(value=_schnorr_sig),
    0x14: _Rule(key=_tap_script_sig_key, value=_schnorr_sig),
    0x15: _Rule(key=_control_block, value=_nonempty),
    0x16: _Rule(key=_xonly_key, value=_tap_derivation),
    0x17: _Rule(value=_xonly_value),
    0x18: _Rule(value=_fixed(32)),
    0xFC: _Rule(key=_proprietary_key),
}
OUTPUT_RULES: dict[int, _Rule] = {
    0x00: _Rule(),
    0x01: _Rule(),
    0x02: _Rule(key=_pubkey_key, value=_key_path_value),
    0x03: _Rule(value=_out_amount),
    0x04: _Rule(),
    0x05: _Rule(value=_xonly_value),
    0x07: _Rule(key=_xonly_key, value=_tap_derivation),
    0xFC: _Rule(key=_proprietary_key),
}


# --- the maps ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    key_type: int
    key: bytes  # the whole key: type and key data
    key_data: bytes
    value: bytes


@dataclass(frozen=True)
class PsbtMap:
    """One key-value map: its fields in order and its bytes (with the 0x00 separator)."""

    where: str  # "the global map", "input 0", "output 1"
    names: dict[int, str]
    fields: tuple[Field, ...]
    raw: bytes

    def get(self, key_type: int) -> bytes | None:
        """The value of the field whose key is the type alone."""
        return next((f.value for f in self.fields if f.key_type == key_type and not f.key_data), None)

    def has(self, key_type: int) -> bool:
        return any(f.key_type == key_type for f in self.fields)

    def name(self, key_type: int) -> str:
        return self.names.get(key_type, f"field type 0x{key_type:02x}")


@dataclass(frozen=True)
class CheckedPsbt:
    """A PSBT that passed every rule above, as plain data."""

    version: int  # 0 or 2
    global_map: PsbtMap
    inputs: tuple[PsbtMap, ...]
    outputs: tuple[PsbtMap, ...]
    unsigned_tx: UnsignedTx | None  # version 0 only
    locktime: int  # the transaction's nLockTime (BIP-370 "Determining Lock Time" for version 2)


def _read_map(r: _Reader, where: str, names: dict[int, str]) -> PsbtMap:
    start = r.pos
    if not r.left:
        raise PsbtError(
            f"the PSBT ends where the map of {where} should begin: a map is missing or the PSBT is cut short"
        )
    fields: list[Field] = []
    seen: set[bytes] = set()
    try:
        while True:
            key_len = r.compact(f"a key length in {where}")
            if key_len == 0:
                break
            key = r.take(key_len, f"a key in {where}")
            kr = _Reader(key, "the key")
            key_type = kr.compact(f"a key type in {where}")
            name = names.get(key_type, f"field type 0x{key_type:02x}")
            value = r.take(r.compact(f"the value length of {name} in {where}"), f"the value of {name} in {where}")
            if key in seen:
                raise PsbtError(
                    f"{name} appears twice with the same key in {where}; a PSBT must not repeat a key in a map"
                )
            seen.add(key)
            fields.append(Field(key_type, key, key[kr.pos :], value))
    except _Bad as exc:
        raise PsbtError(f"the PSBT is cut short or malformed in {where}: {exc}") from None
    return PsbtMap(where, names, tuple(fields), r.data[start : r.pos])


def _check_fields(m: PsbtMap, rules: dict[int, _Rule]) -> None:
    for f in m.fields:
        rule = rules.get(f.key_type)
        if rule is None:
            continue  # unknown and future types pass through
        try:
            rule.key(f.key_data)
            rule.value(f.value)
            if rule.both is not None:
                rule.both(f.key_data, f.value)
        except _Bad as exc:
            raise PsbtError(f"{m.name(f.key_type)} in {m.where} is invalid: {exc}") from None


def _checked_map(r: _Reader, where: str, names: dict[int, str], rules: dict[int, _Rule]) -> PsbtMap:
    """The next map, each field checked as it is read (as Bitcoin Core does)."""
    m = _read_map(r, where, names)
    _check_fields(m, rules)
    return m


def _check_xpubs(g: PsbtMap) -> None:
    for f in g.fields:
        if f.key_type != 0x01:
            continue
        try:
            xpub = bip32.HDKey.parse(f.key_data)
        except Exception:
            raise PsbtError("PSBT_GLOBAL_XPUB in the global map is invalid: its key is not an extended key") from None
        try:
            depth = _key_path(f.value)
        except _Bad as exc:
            raise PsbtError(f"PSBT_GLOBAL_XPUB in the global map is invalid: {exc}") from None
        if depth != xpub.depth:
            raise PsbtError(
                f"PSBT_GLOBAL_XPUB in the global map is invalid: its path has {depth} indexes "
                f"but the extended key is at depth {xpub.depth}"
            )


def _forbid(m: PsbtMap, types: Iterable[int], why: str) -> None:
    for t in types:
        if m.has(t):
            raise PsbtError(f"{m.name(t)} in {m.where}: {why}")


def _require(m: PsbtMap, t: int, why: str = "a version 2 PSBT must have it") -> bytes:
    value = m.get(t)
    if value is None:
        raise PsbtError(f"{m.name(t)} missing from {m.where}: {why}")
    return value


def _version(g: PsbtMap) -> int:
    raw = g.get(0xFB)
    if raw is None:
        return 0
    version = int.from_bytes(raw, "little")
    if version not in SUPPORTED_VERSIONS:
        raise PsbtError(
            f"PSBT_GLOBAL_VERSION in the global map is {version}; only PSBT versions 0 (BIP-174) "
            "and 2 (BIP-370) are known, so this PSBT cannot be read safely"
        )
    return version


def _count(g: PsbtMap, t: int, left: int) -> int:
    value = _require(g, t)
    try:
        r = _Reader(value, "the value")
        n = r.compact("the count")
        r.end("the count")
    except _Bad as exc:
        raise PsbtError(f"{g.name(t)} in the global map is invalid: {exc}") from None
    if n > left:
        raise PsbtError(f"{g.name(t)} in the global map says {n} but the PSBT is only {left} bytes longer")
    return n


# --- version 2 lock time (BIP-370 "Determining Lock Time") ---------------------------------------
def determine_locktime(fallback: int | None, required: Sequence[tuple[int | None, int | None]]) -> int:
    """The nLockTime of a version 2 PSBT from the fallback and each input's (time, height) requirement.

    PsbtError if one input accepts only a time and another only a height.
    """
    locked = [(t, h) for t, h in required if t is not None or h is not None]
    if not locked:
        return fallback or 0
    if all(h is not None for _, h in locked):
        return max(h for _, h in locked if h is not None)
    if all(t is not None for t, _ in locked):
        return max(t for t, _ in locked if t is not None)
    only_height = next(i for i, (t, h) in enumerate(required) if h is not None and t is None)
    only_time = next(i for i, (t, h) in enumerate(required) if t is not None and h is None)
    raise PsbtError(
        "PSBT_IN_REQUIRED_HEIGHT_LOCKTIME and PSBT_IN_REQUIRED_TIME_LOCKTIME cannot both be met: "
        f"input {only_height} accepts only a block height and input {only_time} only a time, "
        "so no transaction can satisfy both"
    )


def _required_locktimes(m: PsbtMap) -> tuple[int | None, int | None]:
    time = m.get(0x11)
    height = m.get(0x12)
    t = int.from_bytes(time, "little") if time is not None else None
    h = int.from_bytes(height, "little") if height is not None else None
    if t is not None and t < LOCKTIME_THRESHOLD:
        raise PsbtError(
            f"PSBT_IN_REQUIRED_TIME_LOCKTIME in {m.where} is {t}, below {LOCKTIME_THRESHOLD}: "
            "a time lock must be a Unix time"
        )
    if h is not None and not 0 < h < LOCKTIME_THRESHOLD:
        raise PsbtError(
            f"PSBT_IN_REQUIRED_HEIGHT_LOCKTIME in {m.where} is {h}: "
            f"a height lock must be a block height above 0 and below {LOCKTIME_THRESHOLD}"
        )
    return t, h


# --- the whole PSBT ---------------------------------------------------------------------------------
_V0_WHY = "it belongs to version 2 PSBTs (BIP-370) but this is a version 0 PSBT"


def check_psbt(raw: bytes) -> CheckedPsbt:
    """Check ``raw`` against BIP-174 and BIP-370; PsbtError names the field and the map if it is invalid."""
    if not raw.startswith(MAGIC):
        raise PsbtError("not a PSBT: it does not start with the PSBT magic bytes 'psbt\\xff'")
    r = _Reader(raw, "the PSBT")
    r.pos = len(MAGIC)
    g = _checked_map(r, "the global map", GLOBAL_NAMES, GLOBAL_RULES)
    _check_xpubs(g)
    version = _version(g)
    unsigned: UnsignedTx | None = None
    if version == 0:
        tx_raw = _require(g, 0x00, "a version 0 PSBT must carry the unsigned transaction")
        try:
            unsigned = _unsigned_tx(tx_raw)
        except _Bad as exc:
            raise PsbtError(f"PSBT_GLOBAL_UNSIGNED_TX in the global map is invalid: {exc}") from None
        _forbid(g, V2_ONLY_GLOBALS, _V0_WHY)
        n_in, n_out = len(unsigned.inputs), len(unsigned.outputs)
    else:
        _forbid(g, (0x00,), "PSBT_GLOBAL_VERSION says 2, and a version 2 PSBT must not carry an unsigned transaction")
        tx_version = int.from_bytes(_require(g, 0x02), "little", signed=True)
        if tx_version < 2:
            raise PsbtError(
                f"PSBT_GLOBAL_TX_VERSION in the global map is {tx_version}; "
                "a version 2 PSBT needs transaction version 2 or more"
            )
        n_in = _count(g, 0x04, r.left)
        n_out = _count(g, 0x05, r.left)
    if n_in + n_out > r.left:
        raise PsbtError(
            f"the PSBT announces {n_in} input and {n_out} output maps but only {r.left} bytes follow the global map"
        )
    inputs = tuple(_checked_map(r, f"input {i}", INPUT_NAMES, INPUT_RULES) for i in range(n_in))
    outputs = tuple(_checked_map(r, f"output {j}", OUTPUT_NAMES, OUTPUT_RULES) for j in range(n_out))
    if r.left:
        raise PsbtError(
            f"{r.left} unexpected byte(s) after the last {'output' if n_out else 'input' if n_in else 'global'} "
            f"map: the PSBT has more maps than its {n_in} inputs and {n_out} outputs"
        )
    if version == 0:
        assert unsigned is not None
        for m in inputs:
            _forbid(m, V2_ONLY_INPUTS, _V0_WHY)
        for m in outputs:
            _forbid(m, V2_ONLY_OUTPUTS, _V0_WHY)
        locktime = unsigned.locktime
    else:
        for m in inputs:
            _require(m, 0x0E)
            _require(m, 0x0F)
        for m in outputs:
            _require(m, 0x03)
            _require(m, 0x04)
        fallback = g.get(0x03)
        locktime = determine_locktime(
            int.from_bytes(fallback, "little") if fallback is not None else None,
            [_required_locktimes(m) for m in inputs],
        )
    return CheckedPsbt(version, g, inputs, outputs, unsigned, locktime)


__all__ = ["CheckedPsbt", "PsbtMap", "Field", "UnsignedTx", "check_psbt", "determine_locktime"]
