"""Whatever bytes come in as a PSBT, only a PSBT or one of l2custody's typed errors comes out.

Property tests (hypothesis, derandomized) over ``load_psbt`` and everything
that reads what it accepts: the review (``summarize``, ``verify``), the
wallet's pipeline (``Wallet.summarize`` behind ``psbt show``,
``Wallet.verify`` behind every signing step), ``psbt_fingerprint`` and
writing the PSBT back. The inputs are:

- the valid BIP-174/BIP-370 vectors and this wallet's own PSBTs (unsigned,
  signed once, finalized, as version 2) with bytes flipped, cut, inserted or deleted;
- the same PSBTs rebuilt map by map with fields added (known types, wrong
  lengths, edge values), dropped or given other values: PSBTs whose
  framing holds, so the field rules and the review are reached;
- arbitrary text and bytes.

A PSBT that ``load_psbt`` accepts can be written and read back unchanged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from embit import ec
from embit.networks import NETWORKS
from embit.script import Script, p2wpkh
from embit.transaction import Transaction, TransactionInput, TransactionOutput
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from l2custody.chain.memory import MemoryChain
from l2custody.config import load_config
from l2custody.errors import L2CustodyError
from l2custody.wallet.policy import Policy
from l2custody.wallet.psbt import finalize_psbt, load_psbt, psbt_fingerprint, psbt_txid
from l2custody.wallet.review import summarize, verify
from l2custody.wallet.service import Wallet
from tests.support.cli_runner import create_wallet, init_regtest, software_signers
from tests.support.psbt_maps import build, compact, maps_of

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "bip174_370_psbt.json").read_text())["vectors"]
BIP_SEEDS = [bytes.fromhex(v["hex"]) for v in VECTORS if v["expect"] == "valid"]

#: Derandomized: the same examples on every run and every machine.
PROPERTY = settings(
    max_examples=2500,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

KNOWN_TYPES = list(range(0x00, 0x19)) + [0xFB, 0xFC, 0x30, 0xFD]
EDGE_UINT32 = [0, 1, 2, 499_999_999, 500_000_000, 0xFFFFFFFE, 0xFFFFFFFF]
EDGE_AMOUNTS = [0, 1, 546, 21_000_000 * 100_000_000, 21_000_000 * 100_000_000 + 1, 2**63 - 1, -1]


@pytest.fixture(scope="module")
def wallet(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """This wallet on a MemoryChain with one send session; yields (wallet, the session's PSBTs as bytes)."""
    directory = tmp_path_factory.mktemp("psbtprops")
    config = init_regtest(directory)
    create_wallet(config, software_signers(config, directory))
    dest = p2wpkh(ec.PrivateKey(b"\x11" * 32).get_public_key()).address(NETWORKS["regtest"])
    config.write_text(config.read_text().replace("allowed_destinations = []", f'allowed_destinations = ["{dest}"]'))
    chain = MemoryChain()
    w = Wallet.open(load_config(config), chain=chain)
    for value in (400_000, 600_000):
        spk = w.descriptor.derive(False, w.next_address().index).script_pubkey
        chain.add_block(
            [Transaction(vin=[TransactionInput(os.urandom(32), 0)], vout=[TransactionOutput(value, Script(spk))])]
        )
    w.sync()
    session = w.create_send(dest, 500_000, fee_rate=3)
    signed = w.sign(session.psbt, "alice").session.psbt
    final = finalize_psbt(w.sign(signed, "bob").session.psbt, w.descriptor)
    as_v2 = load_psbt(signed.serialize())
    as_v2.version = 2
    yield w, [p.serialize() for p in (session.psbt, signed, final, as_v2)]
    w.close()


def _values() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=40),
        st.sampled_from([1, 4, 8, 20, 32, 33, 64, 65, 78]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
        st.sampled_from(EDGE_UINT32).map(lambda n: n.to_bytes(4, "little")),
        st.sampled_from(EDGE_AMOUNTS).map(lambda n: n.to_bytes(8, "little", signed=True)),
        st.sampled_from([b"\x00", b"\x01", b"\x02", b"\xfd\x01\x00", b"\xff" * 9]),
    )


@st.composite
def byte_mutants(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed PSBT with 1-4 bytes flipped, inserted or deleted, or cut short."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
        pos = draw(st.integers(5, max(5, len(data) - 1)))
        if op == "flip" and pos < len(data):
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 4))]
        elif op == "cut":
            del data[pos:]
    return bytes(data)


@st.composite
def field_mutants(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed PSBT rebuilt map by map with 1-3 fields added, dropped, given another value or tweaked."""
    maps = maps_of(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 3))):
        fields = maps[draw(st.integers(0, len(maps) - 1))]
        op = draw(st.sampled_from(["add", "drop", "revalue", "tweak", "tweak"] if fields else ["add"]))
        if op == "add":
            reused = [k[1:] for k, _ in fields] or [b""]  # key data of the map's own fields
            key_data = draw(st.one_of(st.just(b""), st.binary(max_size=34), st.sampled_from(reused)))
            key = compact(draw(st.sampled_from(KNOWN_TYPES))) + key_data
            fields.insert(draw(st.integers(0, len(fields))), (key, draw(_values())))
        elif op == "drop":
            del fields[draw(st.integers(0, len(fields) - 1))]
        elif op == "revalue":
            k = draw(st.integers(0, len(fields) - 1))
            fields[k] = (fields[k][0], draw(_values()))
        else:  # one byte of a value changed: same length, often still well-formed
            k = draw(st.integers(0, len(fields) - 1))
            value = bytearray(fields[k][1])
            if value:
                value[draw(st.integers(0, len(value) - 1))] = draw(st.integers(0, 255))
            fields[k] = (fields[k][0], bytes(value))
    extra = draw(st.sampled_from([0, 0, 0, 1, -1]))  # now and then a map too many or too few
    if extra > 0:
        maps.append([])
    elif extra < 0:
        maps.pop()
    return build(maps)


def _read_everything(wallet: Any, raw: bytes | str) -> None:
    """load_psbt, then every reader of what it accepts (the statistics count both outcomes)."""
    w, _seeds = wallet
    try:
        psbt = load_psbt(raw)
    except L2CustodyError as exc:
        event(f"refused: {exc.message.split(':')[0][:40]}")
        return
    again = load_psbt(psbt.serialize())
    assert again.serialize() == psbt.serialize()
    psbt_txid(psbt), psbt_fingerprint(psbt)
    summary = summarize(psbt, w.descriptor)
    assert len(summary.inputs) == len(psbt.inputs) and summary.to_dict()
    shown, _session = w.summarize(psbt)
    assert shown.txid == summary.txid
    event(f"read: {len(psbt.inputs)} inputs, version {psbt.version or 0}")
    for check in (lambda: verify(psbt, w.descriptor, Policy()), lambda: w.verify(psbt, audit=False)):
        try:
            check()
        except L2CustodyError:
            pass


@PROPERTY
@given(st.data())
def test_byte_mutants_are_read_or_refused_with_a_typed_error(wallet: Any, data: st.DataObject) -> None:
    raw = data.draw(byte_mutants(BIP_SEEDS + wallet[1]))
    _read_everything(wallet, raw)


@PROPERTY
@given(st.data())
def test_field_mutants_are_read_or_refused_with_a_typed_error(wallet: Any, data: st.DataObject) -> None:
    raw = data.draw(field_mutants(BIP_SEEDS + wallet[1]))
    _read_everything(wallet, raw)


@settings(PROPERTY, max_examples=1000)
@given(
    st.one_of(st.text(max_size=200), st.binary(max_size=200), st.binary(max_size=200).map(lambda b: b"psbt\xff" + b))
)
def test_any_text_or_bytes_are_read_or_refused_with_a_typed_error(wallet: Any, raw: str | bytes) -> None:
    _read_everything(wallet, raw)
