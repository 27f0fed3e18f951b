"""Wallet generations (issue 12): rotate keys while channels committed to old keys stay open.

The rotation rules are pure (plan_rotation); the rest runs a real wallet (SQLite store,
software signers) on a MemoryChain (real blocks and transactions, no node): the CLI as an
operator runs it, the scanner following every generation, and migration PSBTs signed by
the old quorum. The same flow on btcd and lnd is tests/integration/test_rotation_lnd.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from embit import bip32
from embit.networks import NETWORKS
from embit.script import Script
from embit.transaction import Transaction, TransactionInput, TransactionOutput
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2custody.chain.memory import MemoryChain
from l2custody.config import load_config
from l2custody.errors import DescriptorError, L2CustodyError, PsbtTampered, UsageError
from l2custody.store import Store
from l2custody.wallet.descriptor import MultisigDescriptor
from l2custody.wallet.generations import generation_infos, migrate, plan_rotation, registered_fingerprints
from l2custody.wallet.psbt import load_psbt
from l2custody.wallet.service import Wallet
from tests.support.cli_runner import create_wallet, fails, init_regtest, ok, run, software_signers


def new_key(seed: bytes | None = None) -> str:
    root = bip32.HDKey.from_seed(seed or os.urandom(32), version=NETWORKS["regtest"]["xprv"])
    account = root.derive("m/48h/1h/0h/2h").to_public()
    return f"[{root.my_fingerprint.hex()}/48h/1h/0h/2h]{account.to_base58()}"


KEYS = [new_key(bytes([i]) * 32) for i in range(1, 8)]


def desc(k: int, keys: list[str]) -> MultisigDescriptor:
    return MultisigDescriptor.from_keys(k, keys, "regtest")


def fp(key: str) -> str:
    return key[1:9]


# --- planning: what a rotation may and may not do ---------------------------------------------


def test_a_replaced_key_leaves_and_the_new_one_joins_at_the_same_threshold() -> None:
    plan = plan_rotation(desc(2, KEYS[:3]), remove=[fp(KEYS[2])], add=[KEYS[3]], reason="carol left")
    assert plan.descriptor.threshold == 2
    assert {k.fingerprint for k in plan.descriptor.keys} == {fp(KEYS[0]), fp(KEYS[1]), fp(KEYS[3])}
    assert [k.fingerprint for k in plan.removed] == [fp(KEYS[2])]
    assert plan.details(1)["removed"][0]["reason"] == "carol left"


def test_keys_are_named_by_signer_name_fingerprint_or_the_key_itself() -> None:
    current = desc(2, KEYS[:3])
    for ref in ("carol", fp(KEYS[2]).upper(), KEYS[2]):
        plan = plan_rotation(current, remove=[ref], add=[KEYS[3]], reason="r", signers={"carol": fp(KEYS[2])})
        assert fp(KEYS[2]) not in {k.fingerprint for k in plan.descriptor.keys}


@pytest.mark.parametrize(
    "change, needle",
    [
        ({}, "nothing changes"),
        ({"remove": ["deadbeef"]}, "names no key of the current generation"),
        ({"remove": ["mallory"]}, "names no key"),
        ({"remove": [fp(KEYS[0]), fp(KEYS[1])]}, "fewer than the threshold 2"),
        ({"remove": [fp(KEYS[0]), fp(KEYS[0])], "add": [KEYS[4], KEYS[5]]}, "named twice"),
        ({"threshold": 2}, "nothing changes"),
        ({"add": [KEYS[0]]}, "same"),  # already a key
        ({"remove": [fp(KEYS[2])], "add": [KEYS[2]]}, "never comes back"),
    ],
)
def test_rotations_that_make_no_sense_are_refused(change: dict, needle: str) -> None:
    with pytest.raises((UsageError, DescriptorError)) as err:
        plan_rotation(desc(2, KEYS[:3]), reason="test", **change)
    assert needle in err.value.message


def test_a_signer_named_like_another_keys_fingerprint_is_ambiguous() -> None:
    current = desc(2, KEYS[:3])
    with pytest.raises(UsageError, match="both the name of signer"):
        plan_rotation(current, remove=[fp(KEYS[1])], add=[KEYS[3]], reason="r", signers={fp(KEYS[1]): fp(KEYS[0])})


def test_a_key_of_another_network_cannot_join() -> None:
    root = bip32.HDKey.from_seed(b"\x09" * 32)  # mainnet
    mainnet = f"[{root.my_fingerprint.hex()}/48h/0h/0h/2h]{root.derive('m/48h/0h/0h/2h').to_public().to_base58()}"
    with pytest.raises(L2CustodyError, match="mainnet"):
        plan_rotation(desc(2, KEYS[:3]), add=[mainnet], reason="r")


def test_a_rotation_must_say_why() -> None:
    with pytest.raises(UsageError, match="say why"):
        plan_rotation(desc(2, KEYS[:3]), add=[KEYS[3]], reason="  ")


def test_a_threshold_above_the_keys_is_refused_by_the_descriptor() -> None:
    with pytest.raises(DescriptorError):
        plan_rotation(desc(2, KEYS[:3]), threshold=4, reason="r")


@settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    k=st.integers(1, 3),
    removes=st.lists(st.integers(0, 6), max_size=4),
    adds=st.lists(st.integers(0, 6), max_size=4),
    threshold=st.none() | st.integers(-1, 8),
)
def test_any_rotation_either_is_refused_clearly_or_yields_a_valid_new_generation(
    k: int, removes: list[int], adds: list[int], threshold: int | None
) -> None:
    """An attacker or a careless operator cannot get a rotation through that keeps a removed
    key, loses track of one, or silently changes nothing."""
    current = desc(k, KEYS[:3])
    try:
        plan = plan_rotation(
            current,
            remove=[fp(KEYS[i]) for i in removes],
            add=[KEYS[i] for i in adds],
            threshold=threshold,
            reason="property",
        )
    except (UsageError, DescriptorError) as exc:
        assert exc.message  # a message, never a traceback
        return
    new = {k.fingerprint for k in plan.descriptor.keys}
    assert not new & {k.fingerprint for k in plan.removed}
    assert new == ({k.fingerprint for k in current.keys} - {k.fingerprint for k in plan.removed}) | {
        k.fingerprint for k in plan.added
    }
    assert plan.descriptor != current and 1 <= plan.descriptor.threshold <= plan.descriptor.n


# --- a wallet with generations, on a MemoryChain ------------------------------------------------


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = init_regtest(tmp_path)
    keys = software_signers(path, tmp_path, ("alice", "bob", "carol"))
    create_wallet(path, keys)
    return path


def pay(chain: MemoryChain, script: bytes, value: int) -> None:
    chain.add_block(
        [Transaction(vin=[TransactionInput(os.urandom(32), 0)], vout=[TransactionOutput(value, Script(script))])]
    )


def new_signer_key(tmp_path: Path, name: str) -> tuple[Path, str]:
    """A fresh seed in a key file (0600) and its account key: a new cosigner's device."""
    root = bip32.HDKey.from_seed(os.urandom(32), version=NETWORKS["regtest"]["xprv"])
    path = tmp_path / f"{name}.key"
    path.write_text(root.to_base58() + "\n")
    path.chmod(0o600)
    account = root.derive("m/48h/1h/0h/2h").to_public()
    return path, f"[{root.my_fingerprint.hex()}/48h/1h/0h/2h]{account.to_base58()}"


def rotate_carol_out(config: Path, tmp_path: Path) -> None:
    """Carol leaves, dave joins: rotate first, then register dave's signer (its key is in generation 2)."""
    path, key = new_signer_key(tmp_path, "dave")
    ok(config, "wallet", "rotate", "--remove", "carol", "--add", key, "--reason", "carol left", "--yes")
    ok(config, "signer", "add", "dave", "--software", str(path))


def test_after_a_rotation_every_new_address_comes_from_the_new_generation(config: Path, tmp_path: Path) -> None:
    old_first = ok(config, "wallet", "address")["address"]
    dave = new_key()
    out = ok(config, "wallet", "rotate", "--remove", "carol", "--add", dave, "--reason", "carol left", "--yes")
    assert out["generation"] == 2 and out["bsms"].startswith("BSMS 1.0") and out["removed"] == [fp_of(config, "carol")]
    new = Wallet.open(load_config(config), chain=MemoryChain())
    try:
        assert new.record.generation == 2
        receive, change = new.next_address(), new.next_address(change=True)
        for a in (receive, change):
            assert new.store.address_owner(new.descriptor.derive(a.change, a.index).script_pubkey) == new.record.id
        assert receive.address != old_first
    finally:
        new.close()
    audit = [e for e in _store(config).audit_log() if e.action == "wallet-rotated"]
    assert audit and audit[0].details["reason"] == "carol left" and audit[0].details["generation"] == 2


def fp_of(config: Path, signer: str) -> str:
    return next(s["fingerprint"] for s in ok(config, "signer", "list") if s["name"] == signer)


def _store(config: Path) -> Store:
    return Store.open(load_config(config).store_path)


def test_the_scanner_follows_old_generations_and_migrate_moves_their_coins(config: Path, tmp_path: Path) -> None:
    chain = MemoryChain()
    cfg = load_config(config)
    with Wallet.open(cfg, chain=chain) as gen1:
        committed = gen1.next_address(label="close of an old channel")
        old_script = gen1.descriptor.derive(False, committed.index).script_pubkey
    rotate_carol_out(config, tmp_path)

    # years later the old channel closes to the address it committed to: generation 1 finds it
    pay(chain, old_script, 250_000)
    with Wallet.open(cfg, chain=chain) as wallet:
        wallet.sync()
        assert wallet.balance().total == 0  # the newest generation holds nothing yet
        infos = {i.generation: i for i in generation_infos(wallet.store, registered_fingerprints(wallet.store))}
        assert (infos[1].balance_sat, infos[1].coins, infos[2].balance_sat) == (250_000, 1, 0)
    balance = ok(config, "wallet", "balance")
    assert balance["generation"] == 2 and balance["total"] == 0
    assert [(g["generation"], g["total"]) for g in balance["older_generations"]] == [(1, 250_000)]
    assert "wallet migrate" in run(config, "wallet", "balance").stdout
    with Wallet.open(cfg, chain=chain) as wallet:
        assert infos[1].can_sign and not infos[1].current and infos[2].current
        carol = next(k for k in infos[1].keys if k.signer == "carol")
        assert carol.removed_in == 2 and carol.removed_reason == "carol left" and not carol.usable

        [move] = migrate(wallet, fee_rate=2)
        assert (move.from_generation, move.to_generation, move.coins) == (1, 2, 1)
        assert not move.target_rehearsed  # the CLI then suggests rehearsing generation 2 first
        assert set(move.signers) == {"alice", "bob", "carol"}
        file = tmp_path / "move.psbt"
        file.write_bytes(move.session.psbt.serialize())
        session_id = move.session.id

    # a migration PSBT redirected elsewhere is refused before any signer sees it
    tampered = load_psbt(file.read_bytes())
    tampered.outputs[0].script_pubkey = Script(bytes.fromhex("0014") + os.urandom(20))
    with Wallet.open(cfg, chain=chain) as wallet, pytest.raises(PsbtTampered):
        wallet.for_psbt(tampered).verify(tampered)
    (tmp_path / "evil.psbt").write_bytes(tampered.serialize())
    assert fails(config, "psbt", "sign", str(tmp_path / "evil.psbt"), "--signer", "alice")["kind"] == "psbt-tampered"

    # the old quorum signs through the CLI: `psbt sign` finds generation 1 by itself
    for signer in ("alice", "bob"):
        ok(config, "psbt", "sign", str(file), "--signer", signer)
    err = fails(config, "psbt", "sign", str(file), "--signer", "dave")
    assert "holds none of the keys this PSBT asks for" in err["error"]
    with Wallet.open(cfg, chain=chain) as wallet:
        owner = wallet.for_psbt(load_psbt(file.read_bytes()))
        assert owner.record.generation == 1
        result = owner.broadcast(load_psbt(file.read_bytes()))
        chain.add_block()
        wallet.sync()
        assert wallet.balance().confirmed == 250_000 - move.session.summary.fee
        assert wallet.store.psbt(session_id).state == "confirmed"
        infos = {i.generation: i for i in generation_infos(wallet.store)}
        assert infos[1].balance_sat == 0 and infos[2].coins == 1
        assert result.txid


def test_a_rotation_waits_for_sessions_in_flight(config: Path, tmp_path: Path) -> None:
    chain = MemoryChain()
    cfg = load_config(config)
    with Wallet.open(cfg, chain=chain) as wallet:
        a = wallet.next_address()
        pay(chain, wallet.descriptor.derive(False, a.index).script_pubkey, 300_000)
        wallet.sync()
        session = wallet.create_send(wallet.next_address().address, 100_000, fee_rate=2)
    err = fails(config, "wallet", "rotate", "--add", new_key(), "--reason", "more keys", "--yes", code=10)
    assert session.id in err["error"] and "abort" in err["error"]
    ok(config, "psbt", "abort", session.id)
    assert ok(config, "wallet", "rotate", "--add", new_key(), "--reason", "more keys", "--yes")["generation"] == 2


def test_generations_lists_quorums_and_export_all_backs_up_every_generation(config: Path, tmp_path: Path) -> None:
    first = ok(config, "wallet", "export")["export"]
    ok(
        config,
        "wallet",
        "rotate",
        "--remove",
        "carol",
        "--remove",
        "bob",
        "--add",
        new_key(),
        "--add",
        new_key(),
        "--reason",
        "bob and carol lost their seeds",
        "--yes",
    )
    rows = ok(config, "wallet", "generations")
    assert [(r["generation"], r["current"], r["can_sign"]) for r in rows] == [(1, False, False), (2, True, True)]
    assert rows[0]["usable_keys"] == 1 and rows[0]["threshold"] == 2
    human = run(config, "wallet", "generations").stdout
    assert "NO" in human and "bob and carol lost their seeds" in human
    everything = ok(config, "wallet", "export", "--all")["generations"]
    assert [g["generation"] for g in everything] == [1, 2] and everything[0]["export"] == first
    assert ok(config, "wallet", "export", "--generation", "1")["export"] == first
    assert "no generation 7" in fails(config, "wallet", "export", "--generation", "7")["error"]


def test_a_signer_of_any_generation_may_register_and_shows_its_generations(config: Path, tmp_path: Path) -> None:
    err = fails(config, "signer", "add", "erin", "--software", str(tmp_path / "erin.key"), "--generate")
    assert "not one of the wallet's keys" in err["error"]
    dave = new_key(b"\x42" * 32)
    ok(config, "wallet", "rotate", "--add", dave, "--threshold", "3", "--reason", "3-of-4", "--yes")
    listed = {s["name"]: s["generations"] for s in ok(config, "signer", "list")}
    assert listed == {"alice": [1, 2], "bob": [1, 2], "carol": [1, 2]}


def test_migrate_refuses_when_there_is_nothing_to_move(config: Path) -> None:
    assert "one generation only" in fails(config, "wallet", "migrate")["error"]
    ok(config, "wallet", "rotate", "--add", new_key(), "--reason", "r", "--yes")
    assert "no spendable coins" in fails(config, "wallet", "migrate", "--fee-rate", "2")["error"]
    assert "give --generation too" in fails(config, "wallet", "migrate", "--utxo", f"{'ab' * 32}:0")["error"]
    assert "not an older generation" in fails(config, "wallet", "migrate", "--generation", "2")["error"]


def test_a_store_from_before_generations_reads_as_generation_1(tmp_path: Path) -> None:
    from l2custody.migrations import MIGRATIONS

    path = tmp_path / "old.sqlite"
    with Store.open(path, migrations=MIGRATIONS[:4]) as old:
        old.execute(
            "INSERT INTO wallets (name, descriptor, network, birthday, created) VALUES ('vault', ?, 'regtest', 7, 0)",
            (desc(2, KEYS[:3]).to_string(),),
        )
    with Store.open(path) as store:
        record = store.wallet()
        assert (record.name, record.generation, record.birthday) == ("vault", 1, 7)
        gen2 = store.add_wallet("vault", desc(2, KEYS[1:4]).to_string(), "regtest", 9, generation=2)
        assert store.wallet().id == gen2.id and store.wallet("vault", generation=1).id == record.id
        assert [g.generation for g in store.generations()] == [1, 2]


def test_a_long_running_wallet_hands_out_the_new_generation_after_a_rotation(config: Path) -> None:
    """`watch`, `node guard` and the CLN plugin keep one wallet open for days: a rotation made
    meanwhile by another process must reach their next close_to and sweep address."""
    with Wallet.open(load_config(config), chain=MemoryChain()) as running:
        before = running.next_address(label="inbound 1")
        ok(config, "wallet", "rotate", "--add", new_key(), "--reason", "more keys", "--yes")
        after = running.next_address(label="inbound 2")
        assert running.record.generation == 2
        script = running.descriptor.derive(False, after.index).script_pubkey
        assert running.store.address_owner(script) == running.record.id
        assert after.address != before.address
        old = running.sibling(running.store.wallet(generation=1))
        change = old.next_address(change=True)  # a wallet opened for generation 1 stays there
        assert old.record.generation == 1 and change.address in {a.address for a in old.addresses(change=True)}


def test_a_rotation_asks_first_and_nothing_changes_without_a_yes(config: Path) -> None:
    result = run(config, "wallet", "rotate", "--add", new_key(), "--reason", "r", json_out=True)
    assert result.exit_code != 0 and "Create the next generation?" in result.stderr
    assert [g["generation"] for g in ok(config, "wallet", "generations")] == [1]


def test_one_coin_moves_first_so_the_new_generation_can_be_rehearsed(config: Path, tmp_path: Path) -> None:
    """The order the rotation and migrate suggest: one coin of generation 1 into generation 2
    (picked from `wallet utxos --generation 1`), a rehearsal with it, then the rest."""
    chain = MemoryChain()
    cfg = load_config(config)
    with Wallet.open(cfg, chain=chain) as gen1:
        scripts = [gen1.descriptor.derive(False, gen1.next_address().index).script_pubkey for _ in range(2)]
    rotate_carol_out(config, tmp_path)
    for script, value in zip(scripts, (120_000, 900_000)):
        pay(chain, script, value)
    with Wallet.open(cfg, chain=chain) as wallet:
        wallet.sync()
    listed = ok(config, "wallet", "utxos", "--generation", "1")
    assert sorted(u["value"] for u in listed) == [120_000, 900_000] and ok(config, "wallet", "utxos") == []
    small = next(u["outpoint"] for u in listed if u["value"] == 120_000)
    with Wallet.open(cfg, chain=chain) as wallet:
        [move] = migrate(wallet, generation=1, utxos=[small], fee_rate=2)
        assert move.coins == 1 and move.amount_sat == 120_000
        with pytest.raises(UsageError, match="give --generation too"):
            migrate(wallet, utxos=[small], fee_rate=2)
