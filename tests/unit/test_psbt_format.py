"""The rules of ``wallet/psbt_format.py`` that the BIPs' own vectors do not exercise.

Each PSBT here is a BIP vector rebuilt with one thing changed, so every test
isolates one rule; the refusal must name the field and the map.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from l2custody.errors import PsbtError
from l2custody.wallet.psbt import load_psbt
from l2custody.wallet.psbt_format import determine_locktime
from tests.support.psbt_maps import build, compact, maps_of

VECTORS = {
    v["id"]: bytes.fromhex(v["hex"])
    for v in json.loads((Path(__file__).parents[1] / "vectors" / "bip174_370_psbt.json").read_text())["vectors"]
}
CREATOR = VECTORS["bip174-role-01"]  # v0: 2 inputs, 2 outputs, empty input and output maps
UPDATED = VECTORS["bip174-role-02"]  # v0 with previous transactions, scripts and key origins
V2 = VECTORS["bip370-valid-14"]  # v2 with every PSBTv2 field


def refused(raw: bytes, *needles: str) -> str:
    with pytest.raises(PsbtError) as exc:
        load_psbt(raw)
    for needle in needles:
        assert needle in exc.value.message, exc.value.message
    return exc.value.message


def test_the_rebuilt_vectors_are_the_vectors() -> None:
    for raw in (CREATOR, UPDATED, V2):
        assert build(maps_of(raw)) == raw


# --- framing --------------------------------------------------------------------------------
def test_a_compact_size_must_be_minimally_encoded() -> None:
    g = maps_of(CREATOR)[0]
    raw = build(maps_of(CREATOR))
    tx_len = 5 + 1 + 1  # magic, key length, key
    padded = raw[:tx_len] + b"\xfd" + len(g[0][1]).to_bytes(2, "little") + raw[tx_len + 1 :]
    refused(padded, "not minimally encoded", "the global map")


def test_bytes_after_the_last_map_are_refused() -> None:
    refused(CREATOR + b"\x00", "1 unexpected byte(s) after the last output map")


def test_a_map_count_larger_than_the_psbt_is_refused() -> None:
    maps = maps_of(V2)
    maps[0] = [(k, compact(10_000) if k == b"\x04" else v) for k, v in maps[0]]
    refused(build(maps), "PSBT_GLOBAL_INPUT_COUNT", "10000")


def test_a_key_cut_short_is_refused_naming_the_map() -> None:
    refused(UPDATED[:-10], "output 1", "cut short")


# --- versions -------------------------------------------------------------------------------
@pytest.mark.parametrize("version", [1, 3, 0xFFFFFFFF])
def test_unknown_psbt_versions_are_refused(version: int) -> None:
    maps = maps_of(CREATOR)
    maps[0].append((b"\xfb", version.to_bytes(4, "little")))
    refused(build(maps), "PSBT_GLOBAL_VERSION", str(version))


def test_an_explicit_version_0_is_read_and_kept() -> None:
    maps = maps_of(CREATOR)
    maps[0].append((b"\xfb", bytes(4)))
    raw = build(maps)
    assert load_psbt(raw).serialize() == raw


def test_a_version_2_psbt_needs_transaction_version_2() -> None:
    maps = maps_of(V2)
    maps[0] = [(k, (1).to_bytes(4, "little") if k == b"\x02" else v) for k, v in maps[0]]
    refused(build(maps), "PSBT_GLOBAL_TX_VERSION", "is 1")


# --- field formats --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("where", "key", "value", "needles"),
    [
        (1, b"\x03", b"\x01\x00", ("PSBT_IN_SIGHASH_TYPE in input 0", "4 bytes")),
        (1, b"\x01", bytes(8) + b"\x05\x00", ("PSBT_IN_WITNESS_UTXO in input 0",)),
        (1, b"\x08", b"\x02\x01\xaa", ("PSBT_IN_FINAL_SCRIPTWITNESS in input 0",)),
        (1, b"\x00", b"\x02\x00", ("PSBT_IN_NON_WITNESS_UTXO in input 0", "not a valid transaction")),
        (2, b"\x06" + bytes.fromhex("02" + "11" * 32), bytes(6), ("PSBT_IN_BIP32_DERIVATION in input 1",)),
        (1, b"\x0b" + bytes(32), b"not the preimage", ("PSBT_IN_SHA256 in input 0", "preimage")),
        (3, b"\x02" + b"\x04" + bytes(64), bytes(4), ("PSBT_OUT_BIP32_DERIVATION in output 0", "public key")),
        (1, b"\x17", bytes(31), ("PSBT_IN_TAP_INTERNAL_KEY in input 0", "32-byte")),
        (0, b"\xfc\x05ab", b"", ("PSBT_GLOBAL_PROPRIETARY in the global map",)),
    ],
)
def test_a_field_not_in_its_types_format_is_refused_naming_it(
    where: int, key: bytes, value: bytes, needles: tuple[str, ...]
) -> None:
    maps = maps_of(CREATOR)
    maps[where].append((key, value))
    refused(build(maps), *needles)


def test_a_matching_preimage_is_read() -> None:
    maps = maps_of(CREATOR)
    maps[1].append((b"\x0b" + hashlib.sha256(b"secret").digest(), b"secret"))
    assert load_psbt(build(maps)).inputs[0].unknown


def test_unknown_and_proprietary_fields_pass_through() -> None:
    maps = maps_of(CREATOR)
    maps[0].append((b"\xfc\x09l2custody\x00", b"session"))
    maps[1].append((b"\x30\x01\x02", b"future"))
    raw = build(maps)
    assert load_psbt(raw).serialize() == raw


def test_a_global_xpub_path_must_match_its_depth() -> None:
    maps = maps_of(VECTORS["bip174-valid-08"])
    key, value = next((k, v) for k, v in maps[0] if k[0] == 0x01)
    maps[0] = [(k, v + bytes(4) if k == key else v) for k, v in maps[0]]
    refused(build(maps), "PSBT_GLOBAL_XPUB", "depth")


# --- amounts --------------------------------------------------------------------------------
@pytest.mark.parametrize(("amount", "needle"), [(-1, "negative"), (21_000_000 * 10**8 + 1, "21 million")])
def test_an_output_amount_out_of_range_is_refused(amount: int, needle: str) -> None:
    maps = maps_of(V2)
    out = len(maps) - 1
    maps[out] = [(k, amount.to_bytes(8, "little", signed=True) if k == b"\x03" else v) for k, v in maps[out]]
    refused(build(maps), "PSBT_OUT_AMOUNT in output 1", needle)


# --- lock times -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fallback", "required", "expected"),
    [
        (None, [], 0),
        (7, [(None, None)], 7),
        (7, [(None, 100), (None, None)], 100),
        (7, [(600_000_000, 100), (600_000_001, None)], 600_000_001),
        (7, [(600_000_000, 100), (None, 90)], 100),
    ],
)
def test_bip_370_lock_time_determination(
    fallback: int | None, required: list[tuple[int | None, int | None]], expected: int
) -> None:
    assert determine_locktime(fallback, required) == expected


def test_incompatible_lock_times_name_both_inputs() -> None:
    with pytest.raises(PsbtError, match="input 1 accepts only a block height and input 0 only a time"):
        determine_locktime(None, [(600_000_000, None), (None, 100)])
