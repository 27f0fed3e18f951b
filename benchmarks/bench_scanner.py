"""Scanner throughput: blocks/s and transactions/s.

Two measurements:

* ``synthetic`` — blocks filled with many segwit transactions, built with
  embit and served through a MemoryChain (no RPC cost: the parser, the
  matching and the store writes alone). A fraction of the outputs pay the
  wallet and some inputs spend earlier wallet outputs, so both match paths
  and the SQLite writes are exercised.
* ``regtest`` — a real btcd from the harness: each round, a faucet payment
  fans out to many coins (one block), then every coin is spent in its own
  transaction (a full block, 1 in 50 paying the wallet); a fresh wallet then
  scans from before the first round over JSON-RPC (TLS, batched
  getblockhash/getblock). Skipped with a note if the harness is missing.

Usage: .venv/bin/python benchmarks/bench_scanner.py [--blocks 50] [--txs 1000]
       [--regtest-rounds 5] [--regtest-txs 1000] [--skip-regtest]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from embit import bip32  # noqa: E402
from embit.networks import NETWORKS  # noqa: E402
from embit.script import Script, Witness  # noqa: E402
from embit.transaction import Transaction, TransactionInput, TransactionOutput  # noqa: E402

from l2custody.chain.memory import MemoryChain  # noqa: E402
from l2custody.chain.scanner import Scanner  # noqa: E402
from l2custody.store import Store  # noqa: E402
from l2custody.wallet.descriptor import MultisigDescriptor  # noqa: E402


def random_descriptor(network: str = "regtest") -> MultisigDescriptor:
    keys = []
    for _ in range(3):
        root = bip32.HDKey.from_seed(os.urandom(32), version=NETWORKS["test"]["xprv"])
        acct = root.derive("m/48h/1h/0h/2h").to_public()
        keys.append(f"[{root.my_fingerprint.hex()}/48h/1h/0h/2h]{acct.to_base58(NETWORKS['test']['xpub'])}")
    return MultisigDescriptor.from_keys(2, keys, network)


def synthetic(blocks: int, txs_per_block: int, ours_every: int = 100) -> None:
    desc = random_descriptor()
    ours = [desc.derive(False, i).script_pubkey for i in range(15)]
    chain = MemoryChain()
    wallet_outputs: list[tuple[bytes, int]] = []
    n = 0
    for _ in range(blocks):
        txs = []
        for _ in range(txs_per_block):
            n += 1
            if wallet_outputs and n % (ours_every * 2) == 0:
                prev = wallet_outputs.pop()
            else:
                prev = (os.urandom(32), 1)
            vin = [
                TransactionInput(
                    prev[0],
                    prev[1],
                    sequence=0xFFFFFFFD,
                    witness=Witness([b"", os.urandom(71), os.urandom(71), os.urandom(105)]),
                ),
                TransactionInput(
                    os.urandom(32), 0, sequence=0xFFFFFFFD, witness=Witness([os.urandom(71), os.urandom(33)])
                ),
            ]
            pay_us = n % ours_every == 0
            script = ours[n % len(ours)] if pay_us else b"\x00\x14" + os.urandom(20)
            vout = [
                TransactionOutput(10_000 + n, Script(script)),
                TransactionOutput(50_000, Script(b"\x00\x20" + os.urandom(32))),
            ]
            tx = Transaction(vin=vin, vout=vout)
            if pay_us:
                wallet_outputs.append((tx.txid(), 0))
            txs.append(tx)
        chain.add_block(txs)
    size_mb = sum(len(b) for b in chain.blocks) / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "s.sqlite")
        wallet = store.add_wallet("bench", desc.to_string(), "regtest", 0)

        def derive(change: bool, index: int) -> tuple[bytes, str]:
            d = desc.derive(change, index)
            return d.script_pubkey, d.address

        scanner = Scanner(store, wallet.id, chain, derive, gap_limit=20)
        start = time.perf_counter()
        result = scanner.sync(mempool=False)
        elapsed = time.perf_counter() - start
        store.close()
    print(
        f"synthetic: {result.blocks} blocks, {result.transactions} txs ({size_mb:.1f} MB) in {elapsed:.2f} s "
        f"-> {result.blocks / elapsed:,.0f} blocks/s, {result.transactions / elapsed:,.0f} tx/s, "
        f"{size_mb / elapsed:.1f} MB/s; found {result.received} payments, {result.spent} spends"
    )


def regtest(rounds: int, txs_per_block: int) -> None:
    try:
        from regtest import Network
    except ImportError as exc:
        print(f"regtest: skipped (harness not available: {exc})")
        return
    from l2custody.chain.rpc import JsonRpcChain

    desc = random_descriptor()
    with tempfile.TemporaryDirectory() as tmp:
        net = Network.start(Path(tmp) / "net", lnd=0)
        try:
            chain = JsonRpcChain(
                net.chain.rpc_url, user=net.chain.rpc_user, password=net.chain.rpc_password, cert=net.chain.rpc_cert
            )
            start_height = net.chain.height() + 1
            t0 = time.perf_counter()
            for _ in range(rounds):
                _fill_block(net, chain, desc, txs_per_block)
            fill = time.perf_counter() - t0

            def derive(change: bool, index: int) -> tuple[bytes, str]:
                d = desc.derive(change, index)
                return d.script_pubkey, d.address

            for label, birthday in (("full blocks", start_height), ("whole chain from genesis", 0)):
                store = Store.open(Path(tmp) / f"s{birthday}.sqlite")
                wallet = store.add_wallet("bench", desc.to_string(), "regtest", birthday)
                scanner = Scanner(store, wallet.id, chain, derive, gap_limit=20, birthday=birthday)
                t1 = time.perf_counter()
                result = scanner.sync(mempool=False)
                elapsed = time.perf_counter() - t1
                store.close()
                print(
                    f"regtest {label} (btcd, TLS JSON-RPC, batched): {result.blocks} blocks, "
                    f"{result.transactions} txs in {elapsed:.2f} s -> {result.blocks / elapsed:,.0f} blocks/s, "
                    f"{result.transactions / elapsed:,.0f} tx/s; found {result.received} payments"
                )
            print(f"(filling the regtest blocks took {fill:.1f} s)")
        finally:
            net.stop()


def _fill_block(net, chain, desc: MultisigDescriptor, count: int) -> None:  # type: ignore[no-untyped-def]
    """Fan a faucet payment out to ``count`` coins of a key we hold, then spend each in its own tx."""
    from embit import ec
    from embit.script import p2pkh_from_p2wpkh, p2wpkh, witness_p2wpkh

    key = ec.PrivateKey(os.urandom(32))
    script = p2wpkh(key.get_public_key())
    fanout = net.fund_addresses([(script.address(NETWORKS["regtest"]), 20_000)] * count)
    net.mine(1)
    prev = bytes.fromhex(fanout)
    raws = []
    for vout in range(count):
        ours = vout % 50 == 0
        dest = desc.derive(False, vout % 15).script_pubkey if ours else b"\x00\x14" + os.urandom(20)
        tx = Transaction(
            vin=[TransactionInput(prev, vout, sequence=0xFFFFFFFD)],
            vout=[
                TransactionOutput(10_000, Script(dest)),
                TransactionOutput(9_500, Script(b"\x00\x14" + os.urandom(20))),
            ],
        )
        sig = key.sign(tx.sighash_segwit(0, p2pkh_from_p2wpkh(script), 20_000))
        tx.vin[0].witness = witness_p2wpkh(sig, key.get_public_key())
        raws.append([tx.serialize().hex()])
    chain.call_batch("sendrawtransaction", raws)
    net.mine(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blocks", type=int, default=50)
    ap.add_argument("--txs", type=int, default=1000, help="transactions per synthetic block")
    ap.add_argument("--regtest-rounds", type=int, default=5, help="regtest rounds (a fan-out block + a full block)")
    ap.add_argument("--regtest-txs", type=int, default=1000, help="transactions per full regtest block")
    ap.add_argument("--skip-regtest", action="store_true")
    args = ap.parse_args()
    synthetic(args.blocks, args.txs)
    if not args.skip_regtest:
        regtest(args.regtest_rounds, args.regtest_txs)


if __name__ == "__main__":
    main()
