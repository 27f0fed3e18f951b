"""A channel funded from a recovery wallet closes into it, and the recovery key alone takes
the coin back N blocks later (issue 13), on real lnd + btcd, through the CLI.

The wallet is 2-of-3 (alice, bob, carol) or heir alone once a coin is N = 8 blocks old:
``wsh(or_d(multi(2,A,B,C),and_v(v:pkh(HEIR),older(8))))``. lnd-0 is the operator's node,
lnd-1 the peer. The steps, as an operator runs them:

1. `channel open` funds a channel from the wallet; alice and bob sign the session (the
   primary path of the miniscript inputs) and it is broadcast; lnd commits a close
   address that is a P2WSH of the recovery wallet's script (embit derives the same);
2. `channel close` closes it cooperatively onto that address, `channel close-status`
   verifies it, `wallet sync` holds the coin;
3. `wallet recover --key heir` names the block at which the channel's coin opens and
   leaves it alone until then; at N confirmations it builds the session, heir signs, btcd
   accepts and mines the spend: nSequence N, the recovery witness (heir's signature and
   key, the multi's dissatisfaction, the script), the amount minus the fee at the peer's
   lnd address (the destination the policy allows).

The oracles are lnd (the committed close address, the peer's wallet), btcd (every
transaction, its inputs' nSequence and witnesses) and embit's own descriptor derivation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from embit import hashes
from embit.descriptor import Descriptor
from embit.script import address_to_scriptpubkey

from regtest import Network, wait_for
from regtest.lightning import find_channel
from regtest.lnd import RPC_TIMEOUT, LndNode
from tests.support.cli_runner import fails, init_on_chain, ok, run, set_config, software_signers
from tests.support.funding import fund, register_lnd, wait_in_mempool
from tests.support.lnd_custody import tx_outputs

pytestmark = pytest.mark.integration

#: The recovery path's delay (blocks): small, so the test mines it quickly.
N = 8
#: The faucet's coin and the channel paid from it.
COIN, CAPACITY = 1_000_000, 500_000
#: nSequence of an input spent on the primary path: RBF, no relative lock (BIP-125, BIP-68).
RBF_SEQUENCE = 0xFFFFFFFD


@dataclass
class World:
    net: Network
    config: Path
    dir: Path
    descriptor: str  # as `wallet create` printed it
    destination: str  # the peer's lnd address, allowed by [policy]
    facts: dict[str, Any] = field(default_factory=dict)  # what one step leaves for the next

    @property
    def ours(self) -> LndNode:
        return self.net.lnd[0]

    @property
    def peer(self) -> LndNode:
        return self.net.lnd[1]


@pytest.fixture(scope="module")
def world(network: Network, tmp_path_factory: pytest.TempPathFactory) -> World:
    """The recovery wallet on the harness btcd holding one faucet coin; lnd-0 registered."""
    net = network
    d = tmp_path_factory.mktemp("recovery-channel")
    config = init_on_chain(d, net.chain)
    alice, bob, carol, heir = software_signers(config, d, ("alice", "bob", "carol", "heir"))
    created = ok(
        config, "wallet", "create", "-k", "2", "--key", alice, "--key", bob, "--key", carol, "--recovery", f"{heir}@{N}"
    )
    register_lnd(config, net.lnd[0])
    fund(net, config, (COIN,))
    destination = net.lnd[1].new_address()
    set_config(config, "policy", "allowed_destinations", json.dumps([destination]))
    return World(net, config, d, created["descriptor"], destination)


def derived(world: World, change: bool, index: int) -> Descriptor:
    """Address ``index`` of the descriptor `wallet create` printed, as embit derives it: an
    oracle independent of l2custody's own derivation."""
    return Descriptor.from_string(world.descriptor).derive(index, branch_index=int(change))


def witness_script(world: World, change: bool, index: int) -> bytes:
    return derived(world, change, index).witness_script().data


def heir_pubkey(world: World, change: bool, index: int) -> bytes:
    return derived(world, change, index).keys[-1].get_public_key().sec()  # the last key: the recovery path's


def is_wallet_p2wsh(world: World, address: str, change: bool, index: int) -> bool:
    script = witness_script(world, change, index)
    return address_to_scriptpubkey(address).data == b"\x00\x20" + hashes.sha256(script)


def wallet_coins(config: Path) -> list[dict[str, Any]]:
    """`wallet utxos`, each coin with its ``outpoint`` (TXID:N)."""
    return [{**u, "outpoint": f"{u['txid']}:{u['vout']}"} for u in ok(config, "wallet", "utxos")]


def fee_rate(tx: dict[str, Any], spent: int) -> float:
    """sat/vB the transaction pays, its size as btcd measures it."""
    paid = sum(round(o["value"] * 100_000_000) for o in tx["vout"])
    return (spent - paid) / tx["vsize"]


def witness(tx: dict[str, Any], vin: int) -> list[bytes]:
    return [bytes.fromhex(item) for item in tx["vin"][vin]["txinwitness"]]


def test_a_channel_funded_on_the_primary_path_commits_its_close_to_the_recovery_wallet(world: World) -> None:
    net, config = world.net, world.config
    assert world.descriptor.startswith("wsh(or_d(multi(2,") and f"older({N})" in world.descriptor
    [coin] = wallet_coins(config)
    assert (coin["value"], coin["change"], coin["index"]) == (COIN, False, 0)

    peer = f"{world.peer.pubkey}@{world.peer.p2p_host}"
    s = ok(config, "channel", "open", world.ours.name, peer, str(CAPACITY), "--fee-rate", "2")
    sid, txid, [leg] = s["id"], s["txid"], s["legs"]
    assert (s["state"], leg["state"], s["signatures"], s["threshold"]) == ("secured", "secured", 0, 2)
    ok(config, "session", "sign", sid, "--signer", "alice")
    signed = ok(config, "session", "sign", sid, "--signer", "bob")
    assert signed["complete"] and signed["broadcast_txid"] == txid
    wait_in_mempool(net, txid)  # btcd accepted the primary-path spend

    tx = net.chain.rpc("getrawtransaction", txid, 1)
    [spent] = tx["vin"]
    assert f"{spent['txid']}:{spent['vout']}" == coin["outpoint"]
    assert spent["sequence"] == RBF_SEQUENCE  # the primary path needs no relative lock
    dummy, sig_a, sig_b, script = witness(tx, 0)  # CHECKMULTISIG's dummy, two signatures, the script
    assert dummy == b"" and sig_a and sig_b and script == witness_script(world, False, 0)
    assert 2 <= fee_rate(tx, COIN) < 2.1  # the rate asked for: the primary path's input size estimated right

    net.mine(1)
    final = ok(config, "session", "status", sid, "--wait", "--timeout", "90")
    [leg] = final["legs"]
    assert (final["state"], leg["state"], leg["close_address_ok"]) == ("confirmed", "open", True)
    cp, address = leg["channel_point"], leg["close_address"]
    committed = find_channel(world.ours, cp)
    assert committed is not None and committed.close_address == address  # lnd's own word

    [view] = [v for v in ok(config, "channel", "list") if v["channel_point"] == cp]
    assert (view["close_address"], view["close_address_ours"]) == (address, True)
    branch, index = view["close_address_index"].split("/")
    assert branch == "receive" and is_wallet_p2wsh(world, address, False, int(index))

    ok(config, "wallet", "sync")
    assert len(tx["vout"]) == 2  # the channel and the change
    [change] = wallet_coins(config)  # the funding change, on the descriptor's change branch
    assert change["outpoint"] == f"{txid}:{1 - leg['output_index']}" and change["change"] is True
    change_out = tx["vout"][1 - leg["output_index"]]
    assert round(change_out["value"] * 100_000_000) == change["value"]
    assert is_wallet_p2wsh(world, change_out["scriptPubKey"]["addresses"][0], True, change["index"])
    world.facts.update(channel_point=cp, close_address=address, close_index=int(index), change=change)


def test_the_cooperative_close_lands_on_the_recovery_wallet_address(world: World) -> None:
    net, config = world.net, world.config
    cp, address = world.facts["channel_point"], world.facts["close_address"]
    closed = ok(config, "channel", "close", cp, "--fee-rate", "2")
    assert closed["address_source"] == "upfront" and closed["record"]["expected_address"] == address
    closing_txid = closed["closing_txid"]
    wait_in_mempool(net, closing_txid)
    paid = dict(tx_outputs(net, closing_txid))
    net.mine(1)

    status = ok(config, "channel", "close-status", cp)
    assert status["state"] == "verified", status
    assert status["wallet_utxo"].startswith(closing_txid + ":") and status["value"] == paid[address]
    ok(config, "wallet", "sync")
    coins = {u["outpoint"]: u for u in wallet_coins(config)}
    assert set(coins) == {world.facts["change"]["outpoint"], status["wallet_utxo"]}
    coin = coins[status["wallet_utxo"]]
    assert (coin["value"], coin["change"], coin["index"], coin["confirmations"]) == (
        paid[address],
        False,
        world.facts["close_index"],
        1,
    )
    world.facts.update(coin=coin, height=net.chain.height())


def test_the_heir_recovers_the_channel_coin_once_it_is_n_blocks_old(world: World) -> None:
    net, config = world.net, world.config
    coin, change, height = world.facts["coin"], world.facts["change"], world.facts["height"]
    outpoint = coin["outpoint"]
    recover = ("wallet", "recover", "--key", "heir", "--to", world.destination, "--fee-rate", "2")

    # one confirmation: every coin is locked, each named with the block its path opens at
    human = run(config, *recover)
    assert human.exit_code != 0 and f"opens at block {height + N:,}" in human.stderr
    err = fails(config, *recover, code=10)
    assert "no coin is open" in err["error"]
    assert f"{outpoint} opens at block {height + N:,} ({N - 1} blocks from now)" in err["error"]
    assert f"{change['outpoint']} opens at block" in err["error"]

    # N - 1 confirmations: the older funding change is open, the channel's coin is not yet
    net.mine(N - 2)
    err = fails(config, *recover, "--utxo", outpoint, code=10)
    assert f"{outpoint} opens at block {height + N:,} (1 blocks from now)" in err["error"]
    partial = ok(config, *recover, "--out", str(world.dir / "partial.psbt"))
    assert [c["outpoint"] for c in partial["coins"]] == [change["outpoint"]]
    assert [(c["outpoint"], c["opens_at"]) for c in partial["locked"]] == [(outpoint, height + N)]
    ok(config, "psbt", "abort", partial["session"], "--reason", "wait for the channel's coin")

    # N confirmations: the next block may hold a spend with nSequence N
    net.mine(1)
    plan = ok(config, *recover, "--out", str(world.dir / "recover.psbt"))
    assert {c["outpoint"] for c in plan["coins"]} == {outpoint, change["outpoint"]} and plan["locked"] == []
    assert (plan["delay"], plan["threshold"], plan["to"]) == (N, 1, world.destination)
    assert plan["keys"] == [derived(world, False, 0).keys[-1].origin.fingerprint.hex()]  # heir's
    assert plan["amount_sat"] == coin["value"] + change["value"]
    assert ok(config, "psbt", "sign", plan["file"], "--signer", "heir")["complete"] is True
    txid = ok(config, "psbt", "broadcast", plan["file"])["txid"]
    wait_in_mempool(net, txid)  # btcd: the sequence locks are met
    net.mine(1)
    tx = net.chain.rpc("getrawtransaction", txid, 1)
    assert tx["confirmations"] == 1

    spent = {c["outpoint"]: (c["change"], c["index"]) for c in (coin, change)}
    assert {f"{v['txid']}:{v['vout']}" for v in tx["vin"]} == set(spent)
    for i, vin in enumerate(tx["vin"]):
        branch, index = spent[f"{vin['txid']}:{vin['vout']}"]
        assert vin["sequence"] == N
        # heir's signature and key; the multi dissatisfied (CHECKMULTISIG's dummy, two empty signatures); the script
        sig, pubkey, *dissatisfied, script = witness(tx, i)
        assert sig and pubkey == heir_pubkey(world, branch, index) and dissatisfied == [b"", b"", b""]
        assert script == witness_script(world, branch, index)
    assert tx_outputs(net, txid) == [(world.destination, plan["amount_sat"] - plan["fee_sat"])]
    assert 2 <= fee_rate(tx, plan["amount_sat"]) < 2.1  # sized for the recovery path's witness
    wait_for(lambda: txid in peer_unspent(world.peer), 60, what="the peer's lnd to hold the recovered coin")

    ok(config, "wallet", "sync")
    assert wallet_coins(config) == [] and ok(config, "wallet", "balance")["confirmed"] == 0


def peer_unspent(node: LndNode) -> set[str]:
    """Txids of the confirmed coins in ``node``'s own wallet."""
    from lndgrpc.compiled import lightning_pb2 as ln

    unspent = node.ln.ListUnspent(ln.ListUnspentRequest(min_confs=1, max_confs=1_000_000), timeout=RPC_TIMEOUT)
    return {u.outpoint.txid_str for u in unspent.utxos}
