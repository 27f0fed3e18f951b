"""Every test vector of BIP-174 and BIP-370 through ``load_psbt`` and ``l2custody psbt show``.

The vectors are the BIPs' own (tests/vectors/bip174_370_psbt.json, see the
README there). The specification:

- every PSBT a BIP calls invalid is refused with a PsbtError whose message
  names the field (or the map) that is wrong, in binary, base64 and hex;
- every PSBT a BIP calls valid is read, with nothing lost: writing it back
  gives the same key-value pairs in every map; 0-input PSBTs included;
- a version 2 PSBT's transaction has the lock time BIP-370 says must be
  computed, and one whose inputs need incompatible lock times is refused;
- ``psbt show`` displays every valid vector and refuses every invalid one
  with error code 30 naming the field; ``psbt verify`` gives a typed error,
  never a traceback.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from l2custody.errors import PsbtError
from l2custody.wallet.psbt import load_psbt
from l2custody.wallet.psbt_format import check_psbt
from tests.support.cli_runner import create_wallet, init_regtest, run, software_signers

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parents[1] / "vectors" / "bip174_370_psbt.json").read_text()
)["vectors"]
BY_ID = {v["id"]: v for v in VECTORS}
INVALID = [v for v in VECTORS if v["expect"] == "invalid"]
VALID = [v for v in VECTORS if v["expect"] == "valid"]

#: What the refusal of each invalid vector must name (the BIP's description says why it is invalid).
NAMES_IN_REFUSAL = {
    "bip174-invalid-01": "not a PSBT",
    "bip174-invalid-02": "output 0",
    "bip174-invalid-03": "filled scriptSig",
    "bip174-invalid-04": "PSBT_GLOBAL_UNSIGNED_TX missing",
    "bip174-invalid-05": "PSBT_IN_NON_WITNESS_UTXO appears twice",
    "bip174-invalid-06": "PSBT_GLOBAL_UNSIGNED_TX",
    "bip174-invalid-07": "PSBT_IN_WITNESS_UTXO",
    "bip174-invalid-08": "PSBT_IN_PARTIAL_SIG",
    "bip174-invalid-09": "PSBT_IN_REDEEM_SCRIPT",
    "bip174-invalid-10": "PSBT_IN_WITNESS_SCRIPT",
    "bip174-invalid-11": "PSBT_IN_BIP32_DERIVATION",
    "bip174-invalid-12": "PSBT_IN_NON_WITNESS_UTXO",
    "bip174-invalid-13": "PSBT_IN_FINAL_SCRIPTSIG",
    "bip174-invalid-14": "PSBT_IN_FINAL_SCRIPTWITNESS",
    "bip174-invalid-15": "PSBT_OUT_BIP32_DERIVATION",
    "bip174-invalid-16": "PSBT_IN_SIGHASH_TYPE",
    "bip174-invalid-17": "PSBT_OUT_REDEEM_SCRIPT",
    "bip174-invalid-18": "PSBT_OUT_WITNESS_SCRIPT",
    "bip174-invalid-19": "witness serialization",
    "bip174-invalid-20": "PSBT_GLOBAL_UNSIGNED_TX",
    "bip370-invalid-01": "PSBT_GLOBAL_VERSION says 2",
    "bip370-invalid-02": "PSBT_GLOBAL_TX_VERSION",
    "bip370-invalid-03": "PSBT_GLOBAL_FALLBACK_LOCKTIME",
    "bip370-invalid-04": "PSBT_GLOBAL_INPUT_COUNT",
    "bip370-invalid-05": "PSBT_GLOBAL_OUTPUT_COUNT",
    "bip370-invalid-06": "PSBT_GLOBAL_TX_MODIFIABLE",
    "bip370-invalid-07": "PSBT_IN_PREVIOUS_TXID",
    "bip370-invalid-08": "PSBT_IN_OUTPUT_INDEX",
    "bip370-invalid-09": "PSBT_IN_SEQUENCE",
    "bip370-invalid-10": "PSBT_IN_REQUIRED_TIME_LOCKTIME",
    "bip370-invalid-11": "PSBT_IN_REQUIRED_HEIGHT_LOCKTIME",
    "bip370-invalid-12": "PSBT_OUT_AMOUNT",
    "bip370-invalid-13": "PSBT_OUT_SCRIPT",
    "bip370-invalid-14": "PSBT_GLOBAL_UNSIGNED_TX",
    "bip370-invalid-15": "PSBT_GLOBAL_INPUT_COUNT missing from the global map",
    "bip370-invalid-16": "PSBT_GLOBAL_OUTPUT_COUNT missing from the global map",
    "bip370-invalid-17": "PSBT_GLOBAL_TX_VERSION missing from the global map",
    "bip370-invalid-18": "PSBT_IN_PREVIOUS_TXID missing from input 0",
    "bip370-invalid-19": "PSBT_IN_OUTPUT_INDEX missing from input 0",
    "bip370-invalid-20": "PSBT_OUT_AMOUNT missing from output 0",
    "bip370-invalid-21": "PSBT_OUT_SCRIPT missing from output 0",
    "bip370-invalid-22": "PSBT_IN_REQUIRED_TIME_LOCKTIME in input 0 is 499999999",
    "bip370-invalid-23": "PSBT_IN_REQUIRED_HEIGHT_LOCKTIME in input 0 is 500000000",
    "bip370-invalid-24": "PSBT_IN_REQUIRED_HEIGHT_LOCKTIME in input 0 is 0",
    "bip370-locktime-09": "cannot both be met",
}


def _ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [v["id"] for v in vectors]


def _key_values(raw: bytes) -> list[set[tuple[bytes, bytes]]]:
    checked = check_psbt(raw)
    return [{(f.key, f.value) for f in m.fields} for m in (checked.global_map, *checked.inputs, *checked.outputs)]


def test_the_vector_file_holds_every_case_of_both_bips() -> None:
    counts = {(v["bip"], v["section"]): 0 for v in VECTORS}
    for v in VECTORS:
        counts[(v["bip"], v["section"])] += 1
    assert counts == {
        ("BIP-174", "invalid"): 20,
        ("BIP-174", "valid"): 10,
        ("BIP-174", "valid, fails signer checks"): 4,
        ("BIP-174", "roles"): 11,
        ("BIP-370", "invalid"): 24,
        ("BIP-370", "valid"): 14,
        ("BIP-370", "locktime determination"): 9,
    }
    assert set(NAMES_IN_REFUSAL) == {v["id"] for v in INVALID}


@pytest.mark.parametrize("vector", INVALID, ids=_ids(INVALID))
def test_an_invalid_vector_is_refused_naming_the_field(vector: dict[str, Any]) -> None:
    forms: list[bytes | str] = [vector["hex"], vector["base64"]]
    if vector["hex"].startswith("70736274ff"):
        forms.append(bytes.fromhex(vector["hex"]))
    for form in forms:
        with pytest.raises(PsbtError) as refused:
            load_psbt(form)
        assert NAMES_IN_REFUSAL[vector["id"]] in refused.value.message, (vector["description"], refused.value.message)


@pytest.mark.parametrize("vector", VALID, ids=_ids(VALID))
def test_a_valid_vector_is_read_and_nothing_is_lost(vector: dict[str, Any]) -> None:
    raw = bytes.fromhex(vector["hex"])
    for form in (raw, vector["hex"], vector.get("base64", vector["hex"])):
        psbt = load_psbt(form)
        assert _key_values(psbt.serialize()) == _key_values(raw)
        checked = check_psbt(raw)
        assert (len(psbt.inputs), len(psbt.outputs)) == (len(checked.inputs), len(checked.outputs))
        assert psbt.tx.locktime == checked.locktime


def test_zero_input_psbts_are_read() -> None:
    empty = load_psbt(BY_ID["bip174-valid-09"]["hex"])
    assert (len(empty.inputs), len(empty.outputs)) == (0, 0)
    no_inputs = load_psbt(BY_ID["bip174-valid-10"]["hex"])
    assert (len(no_inputs.inputs), len(no_inputs.outputs)) == (0, 2)
    assert load_psbt(no_inputs.serialize()).serialize() == no_inputs.serialize()


@pytest.mark.parametrize(
    "vector", [v for v in VECTORS if v.get("locktime") is not None], ids=lambda v: f"{v['id']}-{v['locktime']}"
)
def test_a_version_2_psbt_has_the_lock_time_bip_370_computes(vector: dict[str, Any]) -> None:
    psbt = load_psbt(vector["hex"])
    assert psbt.version == 2
    assert psbt.tx.locktime == vector["locktime"], vector["description"]


def test_the_version_2_transaction_is_the_one_its_fields_describe() -> None:
    """BIP-370's "all PSBTv2 fields" vector: txid, sequence and amounts come from the v2 fields."""
    psbt = load_psbt(BY_ID["bip370-valid-14"]["hex"])
    checked = check_psbt(bytes.fromhex(BY_ID["bip370-valid-14"]["hex"]))
    tx = psbt.tx
    assert tx.version == int.from_bytes(checked.global_map.get(0x02) or b"", "little")
    assert tx.vin[0].txid == (checked.inputs[0].get(0x0E) or b"")[::-1]
    assert tx.vin[0].sequence == int.from_bytes(checked.inputs[0].get(0x10) or b"", "little")
    assert [o.value for o in tx.vout] == [int.from_bytes(m.get(0x03) or b"", "little") for m in checked.outputs]


@pytest.mark.parametrize("vector", [v for v in VALID if v["bip"] == "BIP-174"], ids=lambda v: v["id"])
def test_a_version_0_psbts_transaction_is_its_unsigned_transaction_byte_for_byte(vector: dict[str, Any]) -> None:
    """The transaction l2custody reviews, fingerprints and signs is exactly the one in the PSBT."""
    unsigned = check_psbt(bytes.fromhex(vector["hex"])).global_map.get(0x00)
    assert load_psbt(vector["hex"]).tx.serialize() == unsigned


def test_sequence_0_and_transaction_version_0_are_kept() -> None:
    """embit's own model would sign a transaction with sequence 0xffffffff and version 2 instead."""
    raw = bytes.fromhex(BY_ID["bip174-role-01"]["hex"])  # the creator's PSBT: 2 inputs, sequence 0xffffffff
    unsigned = check_psbt(raw).global_map.get(0x00) or b""
    tx = load_psbt(raw).tx
    tx.version, tx.vin[0].sequence = 0, 0
    assert len(tx.serialize()) == len(unsigned) and tx.serialize() != unsigned
    psbt = load_psbt(raw.replace(unsigned, tx.serialize()))
    assert (psbt.tx.version, psbt.tx.vin[0].sequence) == (0, 0)
    assert psbt.tx.txid() == tx.txid() == load_psbt(psbt.serialize()).tx.txid()


def test_the_extractors_transaction_is_not_a_psbt() -> None:
    with pytest.raises(PsbtError, match="not a PSBT"):
        load_psbt(bytes.fromhex(BY_ID["bip174-role-08"]["hex"]))


# --- through the CLI ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("bipvectors")
    path = init_regtest(directory)
    create_wallet(path, software_signers(path, directory))
    return path


def _file(config: Path, vector: dict[str, Any], binary: bool) -> Path:
    path = config.parent / f"{vector['id']}.psbt"
    if binary and vector["hex"].startswith("70736274ff"):
        path.write_bytes(bytes.fromhex(vector["hex"]))
    else:
        path.write_text(vector.get("base64") or base64.b64encode(bytes.fromhex(vector["hex"])).decode())
    return path


@pytest.mark.parametrize("vector", INVALID, ids=_ids(INVALID))
def test_psbt_show_refuses_an_invalid_vector_naming_the_field(config: Path, vector: dict[str, Any]) -> None:
    for binary in (True, False):
        path = _file(config, vector, binary)
        result = run(config, "psbt", "show", str(path), json_out=True)
        assert result.exit_code == 2, result.output
        err = json.loads(result.stdout)
        assert err["code"] == 30 and str(path) in err["error"]
        assert NAMES_IN_REFUSAL[vector["id"]] in err["error"]


@pytest.mark.parametrize("vector", VALID, ids=_ids(VALID))
def test_psbt_show_displays_a_valid_vector(config: Path, vector: dict[str, Any]) -> None:
    path = _file(config, vector, binary=True)
    result = run(config, "psbt", "show", str(path), json_out=True)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)["summary"]
    psbt = load_psbt(bytes.fromhex(vector["hex"]))
    assert len(summary["inputs"]) == len(psbt.inputs) and len(summary["outputs"]) == len(psbt.outputs)
    assert summary["locktime"] == psbt.tx.locktime
    assert summary["txid"] == psbt.tx.txid().hex()
    human = run(config, "psbt", "show", str(path))
    assert human.exit_code == 0 and summary["txid"] in human.stdout, human.output


@pytest.mark.parametrize("vector", VALID, ids=_ids(VALID))
def test_psbt_verify_refuses_a_foreign_vector_with_a_typed_error(config: Path, vector: dict[str, Any]) -> None:
    """None of these PSBTs spends this wallet's coins: verify says so (or what else is wrong), typed."""
    path = _file(config, vector, binary=True)
    result = run(config, "psbt", "verify", str(path), json_out=True)
    assert result.exit_code == 2, result.output
    assert json.loads(result.stdout)["code"] in (30, 31, 32, 13), result.stdout
