"""The recovery wallet's spends judged by a real btcd: the timelock holds until it opens.

The wallet is 2-of-3 (A, B, C), or R1 alone once a coin is N = 6 blocks old.
Coins come from the harness faucet; transactions are built, signed by the
software signers and finalized by l2custody, then handed to btcd:

- the primary path (A and B) is accepted at once, the coin still unconfirmed;
- R1 alone, nSequence N, is refused while the coin has fewer than N
  confirmations, at N-1 too (btcd says "transaction's sequence locks on
  inputs not met", in testmempoolaccept's reject-reason and in
  sendrawtransaction's error; Bitcoin Core says "non-BIP68-final");
- the same transaction is accepted once the coin has N confirmations, and
  is mined;
- and the whole CLI pipeline (create --recovery, address, sync, send, two
  signers, broadcast) spends such a wallet on the primary path.
"""

from __future__ import annotations

import os

import pytest
from embit import ec
from embit.networks import NETWORKS
from embit.script import p2wpkh
from embit.transaction import Transaction

from l2custody.chain.rpc import JsonRpcChain
from l2custody.errors import BroadcastRejected
from l2custody.wallet.miniscript import RecoveryDescriptor
from l2custody.wallet.psbt import TxOut, Utxo, build_psbt, combine, finalize
from regtest import Network
from tests.support import miniscript as ms

pytestmark = pytest.mark.integration

N = 6
A, B, C, R1 = ms.signers()[:4]


def outside_address() -> str:
    return p2wpkh(ec.PrivateKey(os.urandom(32)).get_public_key()).address(NETWORKS["regtest"])


@pytest.fixture(scope="module")
def desc() -> RecoveryDescriptor:
    return ms.descriptor(delay=N)


def chain(net: Network) -> JsonRpcChain:
    c = net.chain
    return JsonRpcChain(c.rpc_url, user=c.rpc_user, password=c.rpc_password, cert=c.rpc_cert)


def fund(net: Network, desc: RecoveryDescriptor, index: int, value: int) -> Utxo:
    """Pay ``value`` to receive address ``index`` from the faucet (not mined); the coin as a Utxo."""
    derived = desc.derive(False, index)
    txid = net.fund_address(derived.address, value)
    raw = bytes.fromhex(net.chain.rpc("getrawtransaction", txid))
    vout = next(i for i, o in enumerate(Transaction.parse(raw).vout) if o.script_pubkey.data == derived.script_pubkey)
    return Utxo(txid, vout, value, derived.script_pubkey, False, index, None, raw)


def signed_spend(net: Network, desc: RecoveryDescriptor, coin: Utxo, signers, recovery: int | None) -> bytes:
    """A finalized transaction paying most of ``coin`` outside, change to change address ``coin.index``."""
    out = TxOut.to_address(outside_address(), coin.value // 2, "regtest")
    psbt = build_psbt(desc, [coin], [out], coin.index, 2.0, net.chain.height(), recovery=recovery)
    return finalize(combine([s.sign(psbt) for s in signers]), desc)


def test_the_primary_path_spends_at_once(chain_network: Network, desc: RecoveryDescriptor) -> None:
    net = chain_network
    coin = fund(net, desc, 0, 400_000)  # still in the mempool: no wait on this path
    raw = signed_spend(net, desc, coin, (A, B), recovery=None)
    accept = chain(net).test_accept(raw)
    assert accept is not None and accept.allowed, accept
    txid = chain(net).broadcast(raw)
    net.mine(1)
    assert net.chain.rpc("getrawtransaction", txid, 1)["confirmations"] == 1


def test_the_recovery_key_alone_waits_for_n_confirmations(chain_network: Network, desc: RecoveryDescriptor) -> None:
    net = chain_network
    coin = fund(net, desc, 1, 300_000)
    net.mine(1)
    funded_at = net.chain.height()
    raw = signed_spend(net, desc, coin, (R1,), recovery=N)
    tx = Transaction.parse(raw)
    assert tx.version == 2 and [v.sequence for v in tx.vin] == [N]
    assert len(tx.vin[0].witness.items) == 6  # sig, key, three empty items for the multi, the script

    refusals = 0
    while net.chain.height() - funded_at + 1 < N:  # 1 .. N-1 confirmations: refused every time
        refusals += 1
        accept = chain(net).test_accept(raw)
        assert accept is not None and not accept.allowed
        assert accept.reason == "transaction's sequence locks on inputs not met", accept
        with pytest.raises(BroadcastRejected, match="sequence locks on inputs not met"):
            chain(net).broadcast(raw)
        net.mine(1)

    assert refusals == N - 1
    assert net.chain.height() - funded_at + 1 == N  # N confirmations: the next block may hold it
    accept = chain(net).test_accept(raw)
    assert accept is not None and accept.allowed, accept
    txid = chain(net).broadcast(raw)
    assert txid == tx.txid().hex() and txid in net.chain.rpc("getrawmempool")
    net.mine(1)
    mined = net.chain.rpc("getrawtransaction", txid, 1)
    assert mined["confirmations"] == 1
    assert net.chain.rpc("gettxout", coin.txid, coin.vout) is None  # the coin is spent


def test_a_recovery_spend_without_the_delay_in_nsequence_cannot_even_be_finalized(
    chain_network: Network, desc: RecoveryDescriptor
) -> None:
    from l2custody.errors import PsbtError

    net = chain_network
    coin = fund(net, desc, 2, 200_000)
    net.mine(N)  # old enough: only the missing nSequence keeps the path closed
    with pytest.raises(PsbtError, match=f"is open only to a spend built for it \\(nSequence {N}"):
        signed_spend(net, desc, coin, (R1,), recovery=None)


def test_the_cli_pipeline_spends_a_recovery_wallet(chain_network: Network, tmp_path_factory) -> None:
    """wallet create --recovery, address, sync, send, psbt sign x2, psbt broadcast: btcd mines it."""
    from tests.support.cli_runner import create_wallet, init_on_chain, ok, software_signers

    net = chain_network
    d = tmp_path_factory.mktemp("recovery-cli")
    config = init_on_chain(d, net.chain)
    keys = software_signers(config, d, ("alice", "bob", "carol", "heir"))
    created = create_wallet(config, keys[:3], recovery=(f"{keys[3]}@{N}",))
    assert created["descriptor"].startswith("wsh(or_d(multi(2,")
    address = ok(config, "wallet", "address")["address"]
    net.fund_address(address, 700_000)
    net.mine(1)
    ok(config, "wallet", "sync")
    assert ok(config, "wallet", "balance")["confirmed"] == 700_000

    dest = outside_address()
    config.write_text(config.read_text().replace("allowed_destinations = []", f'allowed_destinations = ["{dest}"]'))
    psbt_file = d / "pay.psbt"
    sent = ok(config, "wallet", "send", dest, "250000sat", "--fee-rate", "2", "--out", str(psbt_file))
    ok(config, "psbt", "sign", str(psbt_file), "--signer", "alice")
    assert ok(config, "psbt", "sign", str(psbt_file), "--signer", "carol")["complete"] is True
    txid = ok(config, "psbt", "broadcast", str(psbt_file))["txid"]
    assert txid in net.chain.rpc("getrawmempool")
    net.mine(1)
    ok(config, "wallet", "sync")
    assert ok(config, "wallet", "balance")["confirmed"] == 700_000 - 250_000 - sent["summary"]["fee"]
    change = [
        o for o in net.chain.rpc("getrawtransaction", txid, 1)["vout"] if o["scriptPubKey"]["addresses"] != [dest]
    ]
    [change_address] = change[0]["scriptPubKey"]["addresses"]
    assert change_address == RecoveryDescriptor.parse(created["descriptor"], "regtest").address(True, 0)
