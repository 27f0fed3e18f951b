"""A recovery wallet end to end through the CLI and the normal PSBT pipeline, on a MemoryChain.

`wallet create --recovery`, `export`, `import`, `address`, `balance` and
`psbt sign/finalize` run as a user runs them; what needs a chain (sync,
send, broadcast) goes through the library on a MemoryChain (real blocks, no
node), as in tests/unit/test_cli_wallet.py. The node's verdict on these
spends is in tests/integration/test_wallet_recovery.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from embit import ec
from embit.networks import NETWORKS
from embit.script import Script, p2wpkh
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from l2custody.chain.memory import MemoryChain
from l2custody.config import load_config
from l2custody.wallet.addresses import address_to_script
from l2custody.wallet.miniscript import RecoveryDescriptor
from l2custody.wallet.psbt import load_psbt
from l2custody.wallet.service import Wallet
from tests.support.cli_runner import fails, init_regtest, ok, run, software_signers

DELAY = 10


def foreign_address() -> str:
    return p2wpkh(ec.PrivateKey(os.urandom(32)).get_public_key()).address(NETWORKS["regtest"])


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return init_regtest(tmp_path)


@pytest.fixture
def keys(config: Path, tmp_path: Path) -> list[str]:
    """alice, bob, carol (primary) and heir (recovery): software signers; their keys."""
    return software_signers(config, tmp_path, ("alice", "bob", "carol", "heir"))


def create(config: Path, keys: list[str], *recovery: str) -> dict:
    args = ["wallet", "create", "-k", "2", *sum((["--key", k] for k in keys[:3]), [])]
    return ok(config, *args, *sum((["--recovery", r] for r in recovery), []))


@pytest.fixture
def wallet(config: Path, keys: list[str]) -> Path:
    create(config, keys, f"{keys[3]}@{DELAY}")
    return config


def test_wallet_create_with_a_recovery_path(config: Path, keys: list[str]) -> None:
    out = create(config, keys, f"{keys[3]}@{DELAY}")
    assert out["descriptor"].startswith("wsh(or_d(multi(2,") and f"older({DELAY})" in out["descriptor"]
    assert (out["threshold"], out["keys"]) == (2, 3)
    assert out["recovery"] == [{"blocks": DELAY, "threshold": 1, "fingerprints": [keys[3][1:9]]}]
    desc = RecoveryDescriptor.parse(out["descriptor"], "regtest")
    assert out["first_address"] == desc.first_address()
    rows = ok(config, "signer", "list")
    assert {r["name"]: r["in_wallet"] for r in rows} == {"alice": True, "bob": True, "carol": True, "heir": True}


def test_wallet_create_prints_the_recovery_paths(tmp_path: Path, config: Path, keys: list[str]) -> None:
    args = ["wallet", "create", "-k", "2", *sum((["--key", k] for k in keys[:3]), [])]
    human = run(config, *args, "--recovery", f"{keys[3]}@{DELAY}").stdout
    assert "2-of-3 on regtest" in human and f"Recovery after {DELAY} blocks: 1 of {keys[3][1:9]}" in human


def test_bad_recovery_options_are_refused_with_their_reason(config: Path, keys: list[str]) -> None:
    args = ["wallet", "create", "-k", "2", *sum((["--key", k] for k in keys[:3]), [])]
    assert "must be KEY@BLOCKS" in fails(config, *args, "--recovery", keys[3], code=20)["error"]
    err = fails(config, *args, "--recovery", f"{keys[0]}@{DELAY}", code=20)
    assert "key 4 is the same key as key 1" in err["error"]
    err = fails(config, *args, "--recovery", f"{keys[3]}@10", "--recovery", f"{keys[3]}@20", code=20)
    assert "key 5 is the same key as key 4" in err["error"]
    assert ok(config, "wallet", "create", "-k", "2", *sum((["--key", k] for k in keys[:3]), []))["recovery"] == []


def test_export_and_import_keep_the_policy(wallet: Path, tmp_path: Path) -> None:
    exported = ok(wallet, "wallet", "export")["export"].strip()
    desc = RecoveryDescriptor.parse(exported, "regtest")
    core = json.loads(ok(wallet, "wallet", "export", "--format", "core")["export"])
    assert [e["desc"] for e in core] == [desc.to_string(change=False), desc.to_string(change=True)]
    err = fails(wallet, "wallet", "export", "--format", "bsms", code=20)
    assert "BSMS (BIP-129) records describe k-of-n multisig wallets" in err["error"]

    other = init_regtest(tmp_path / "other")
    imported = ok(other, "wallet", "import", exported)
    assert imported["descriptor"] == exported and imported["recovery"][0]["blocks"] == DELAY
    assert ok(other, "wallet", "address")["address"] == desc.address(False, 0)


def fund(w: Wallet, chain: MemoryChain, values: list[int]) -> None:
    for value in values:
        spk = w.descriptor.derive(False, w.next_address().index).script_pubkey
        chain.add_block(
            [Transaction(vin=[TransactionInput(os.urandom(32), 0)], vout=[TransactionOutput(value, Script(spk))])]
        )
    w.sync()


def test_send_sign_broadcast_on_the_primary_path(wallet: Path, tmp_path: Path) -> None:
    dest = foreign_address()
    wallet.write_text(wallet.read_text().replace("allowed_destinations = []", f'allowed_destinations = ["{dest}"]'))
    chain = MemoryChain()
    with Wallet.open(load_config(wallet), chain=chain) as w:
        assert isinstance(w.descriptor, RecoveryDescriptor)
        fund(w, chain, [400_000, 600_000])
        assert ok(wallet, "wallet", "balance")["confirmed"] == 1_000_000
        session = w.create_send(dest, 500_000, fee_rate=3)
        assert session.summary.fee == 3 * session.summary.vsize  # sized for the primary path: 448 WU per input
        path = tmp_path / "pay.psbt"
        path.write_bytes(session.psbt.serialize())

        first = ok(wallet, "psbt", "sign", str(path), "--signer", "alice")
        assert first["added"] >= 1 and first["complete"] is False
        assert ok(wallet, "psbt", "sign", str(path), "--signer", "heir")["complete"] is False  # recovery path closed
        assert ok(wallet, "psbt", "sign", str(path), "--signer", "bob")["complete"] is True
        final = ok(wallet, "psbt", "finalize", str(path))

        result = w.broadcast(load_psbt(path.read_bytes()))
        assert result.txid == final["txid"] and result.txid in chain.mempool
        tx = Transaction.parse(result.raw)
        for vin in tx.vin:  # the multi's dummy and two signatures, the script: or_d's primary branch alone
            items = vin.witness.items
            assert len(items) == 4 and items[0] == b"" and items[-1][0] == 0x52
        change = [o for o in tx.vout if o.script_pubkey.data != address_to_script(dest, "regtest")]
        assert [o.script_pubkey.data for o in change] == [w.descriptor.derive(True, 0).script_pubkey]
        chain.add_block()
        w.sync()
    balance = ok(wallet, "wallet", "balance")
    assert balance["confirmed"] == 1_000_000 - 500_000 - session.summary.fee and balance["reserved"] == 0


def test_a_recovery_send_is_complete_with_the_recovery_key_alone(wallet: Path, tmp_path: Path) -> None:
    own = RecoveryDescriptor.parse(ok(wallet, "wallet", "export")["export"].strip(), "regtest").address(False, 5)
    chain = MemoryChain()
    with Wallet.open(load_config(wallet), chain=chain) as w:
        fund(w, chain, [300_000])
        session = w.create_send(own, 100_000, fee_rate=2, recovery=DELAY)
        assert [v.sequence for v in session.psbt.tx.vin] == [DELAY]
        path = tmp_path / "recover.psbt"
        path.write_bytes(session.psbt.serialize())
        assert ok(wallet, "psbt", "sign", str(path), "--signer", "heir")["complete"] is True
        final = ok(wallet, "psbt", "finalize", str(path))
        items = Transaction.parse(bytes.fromhex(final["hex"])).vin[0].witness.items
        assert len(items) == 6 and items[2:5] == [b"", b"", b""]  # sig, key, the multi dissatisfied, script
