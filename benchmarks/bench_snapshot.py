"""Snapshot + diff at scale: a node with 10,000 channels.

A synthetic backend (a stand-in node answering from memory, so the figures
are ours, not a node's) lists N channels in every state: most open with a
multisig close address (derived and stored like real ones), some funded by
one of 1,000 funding sessions, some opened by the peer, a few foreign, plus
pending opens, closes, force closes in limbo and closed channels. The
wallet is a real one (SQLite store, random 2-of-3 descriptor, MemoryChain).

Measured, each time and peak Python memory (tracemalloc), plus the process's
peak RSS:

* ``snapshot + diff`` — read the node and join every channel with the store
  (close address ours? funding ours?), build the snapshot and its checks,
  diff against the previous reading: what a watch round computes.
* ``watch round`` — a whole ``Watcher.round`` after 1% of the channels moved:
  the above plus the audit entries of the transitions written atomically
  with the new reading (all N channels persisted), conditions, alert outbox,
  the Prometheus page.

Usage: .venv/bin/python benchmarks/bench_snapshot.py [--channels 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import logging
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scanner import random_descriptor  # noqa: E402

from l2custody.backends.base import (  # noqa: E402
    AnchorReserve,
    Capability,
    ChannelInfo,
    ChannelState,
    CloseResult,
    CloseType,
    NodeBackend,
    NodeInfo,
    OnchainBalance,
)
from l2custody.chain.memory import MemoryChain  # noqa: E402
from l2custody.config import init_config  # noqa: E402
from l2custody.custody.funding.records import create_session, save_session  # noqa: E402
from l2custody.custody.funding.session import (  # noqa: E402
    ChannelRequest,
    FundingLeg,
    FundingSession,
    LegState,
    SessionState,
)
from l2custody.custody.report.observe import read_node  # noqa: E402
from l2custody.custody.report.snapshot import (  # noqa: E402
    MultisigFacts,
    ReportInputs,
    ReportSettings,
    build_snapshot,
)
from l2custody.custody.watch.metrics import Metrics  # noqa: E402
from l2custody.custody.watch.transitions import diff_channels  # noqa: E402
from l2custody.custody.watch.watcher import Watcher, WatchOptions  # noqa: E402
from l2custody.store import AddressRecord  # noqa: E402
from l2custody.wallet.service import Wallet  # noqa: E402

PEER = "03" + "22" * 32


class SyntheticNode(NodeBackend):
    """A stand-in node answering from memory (benchmark only)."""

    kind = "lnd"
    capabilities = frozenset({Capability.ANCHOR_RESERVE})

    def __init__(self, channels: list[ChannelInfo]) -> None:
        super().__init__("bench")
        self.channels = channels

    def info(self) -> NodeInfo:
        return NodeInfo("02" + "11" * 32, "bench", "synthetic", "regtest", True, 800_000, "00" * 32, "lnd")

    def connect_peer(self, pubkey: str, host: str) -> None:
        raise NotImplementedError

    def is_connected(self, pubkey: str) -> bool:
        return True

    def list_channels(self, *, include_closed: bool = True) -> list[ChannelInfo]:
        return list(self.channels)

    def close_channel(self, channel_point: str, **_: Any) -> CloseResult:
        raise NotImplementedError

    def onchain_balance(self) -> OnchainBalance:
        return OnchainBalance(60_000, 0, 0, 0)

    def anchor_reserve(self, additional_public_channels: int = 0) -> AnchorReserve:
        return AnchorReserve(100_000, 60_000, additional_public_channels)


def build_world(directory: Path, n: int, sessions: int) -> tuple[Wallet, SyntheticNode]:
    config = init_config(directory / "config.toml", "regtest", data_dir=directory / "data")
    desc = random_descriptor()
    wallet = Wallet.create(config, 2, [k.to_string() for k in desc.keys], chain=MemoryChain())
    store, wid = wallet.store, wallet.record.id
    started = time.perf_counter()
    addresses = []
    with store.transaction():
        records = []
        for i in range(n):
            d = wallet.descriptor.derive(False, 1000 + i)
            records.append(AddressRecord(False, 1000 + i, d.script_pubkey, d.address, issued=True, label=f"close {i}"))
            addresses.append(d.address)
        store.add_addresses(wid, records)
    rng = random.Random(6)
    channels: list[ChannelInfo] = []
    funding_txids = [rng.randbytes(32).hex() for _ in range(sessions)]
    for i in range(n):
        roll = rng.random()
        if roll < 0.80:
            state = ChannelState.OPEN
        elif roll < 0.85:
            state = ChannelState.PENDING_OPEN
        elif roll < 0.88:
            state = ChannelState.CLOSING
        elif roll < 0.90:
            state = ChannelState.FORCE_CLOSING
        else:
            state = ChannelState.CLOSED
        txid = funding_txids[i % sessions] if i % 3 == 0 else rng.randbytes(32).hex()
        foreign = i % 500 == 7
        channels.append(
            ChannelInfo(
                node="bench",
                channel_point=f"{txid}:{i}",
                peer_pubkey=PEER,
                state=state,
                capacity_sat=1_000_000,
                local_balance_sat=rng.randrange(0, 990_000),
                remote_balance_sat=10_000,
                short_channel_id=f"{700_000 + i}x1x0",
                active=state is ChannelState.OPEN,
                initiator="local" if i % 3 == 0 or foreign else "remote",
                close_address=None
                if state is not ChannelState.OPEN
                else ("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080" if foreign else addresses[i]),
                close_address_known=state is ChannelState.OPEN,
                closing_txid=rng.randbytes(32).hex()
                if state in (ChannelState.CLOSING, ChannelState.FORCE_CLOSING, ChannelState.CLOSED)
                else None,
                close_type=CloseType.COOPERATIVE if state is ChannelState.CLOSED else None,
                limbo_sat=50_000 if state is ChannelState.FORCE_CLOSING else 0,
                maturity_height=800_144 if state is ChannelState.FORCE_CLOSING else None,
            )
        )
    with store.transaction():
        for s, txid in enumerate(funding_txids):
            legs = tuple(
                FundingLeg(
                    ChannelRequest("bench", PEER, 1_000_000), addresses[i], LegState.OPEN, channel_point=f"{txid}:{i}"
                )
                for i in range(s, n, sessions * 3)
                if i % 3 == 0
            )
            session = FundingSession(
                f"fs-{s:08x}", SessionState.CONFIRMED, 799_000, legs, txid=txid, confirm_height=799_001
            )
            create_session(store, wid, session)
            save_session(store, session)  # the txid column: how channels find their session
    print(
        f"setup: {n:,} channels, {n:,} stored close addresses, {sessions:,} funding sessions "
        f"({time.perf_counter() - started:.1f} s)"
    )
    return wallet, SyntheticNode(channels)


def measure(fn: Callable[[], Any]) -> tuple[float, float]:
    """Seconds of one run, then the peak traced memory (MB) of a second run: tracemalloc
    slows Python down several times, so time and memory are taken separately."""
    started = time.perf_counter()
    fn()
    seconds = time.perf_counter() - started
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, peak / 1e6


def move_one_percent(node: SyntheticNode, rng: random.Random) -> int:
    moved = 0
    for i, ch in enumerate(node.channels):
        if ch.state is ChannelState.OPEN and rng.random() < 0.0125:
            node.channels[i] = replace(
                ch, state=ChannelState.CLOSING, close_address_known=False, closing_txid=rng.randbytes(32).hex()
            )
            moved += 1
    return moved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=10_000)
    parser.add_argument("--sessions", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("l2custody").setLevel(logging.ERROR)
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        wallet, node = build_world(Path(tmp), args.channels, args.sessions)
        settings = ReportSettings()
        previous = {c.channel_point: c for c in read_node(wallet, node).channels}

        def snapshot_and_diff() -> None:
            facts = read_node(wallet, node)
            inputs = ReportInputs("bench", "regtest", time.time(), 800_000, MultisigFacts(1, 0), (facts,))
            snap = build_snapshot(inputs, settings)
            _current, moves = diff_channels(previous, facts.channels)
            assert len(snap.channels) == args.channels

        print(f"\nsnapshot + diff of {args.channels:,} channels (read, join with the store, checks, diff):")
        worst = (0.0, 0.0)
        for r in range(args.repeat):
            moved = move_one_percent(node, rng)
            seconds, peak = measure(snapshot_and_diff)
            worst = (max(worst[0], seconds), max(worst[1], peak))
            print(f"  run {r + 1}: {seconds * 1000:7.1f} ms, peak {peak:6.1f} MB traced ({moved} channels moved)")

        options = WatchOptions(poll_seconds=60, backup_dir=Path(tmp) / "backups")
        watcher = Watcher(wallet, lambda: ["bench"], lambda name: node, options, [], metrics=Metrics())
        started = time.perf_counter()
        watcher.round(source="start")
        first = time.perf_counter() - started
        print(f"\nwatch rounds ({args.channels:,} channels, every reading persisted):")
        print(f"  first round (baseline, custody findings -> conditions and alerts): {first * 1000:7.1f} ms")
        round_worst = (0.0, 0.0)
        for r in range(args.repeat):
            moved = move_one_percent(node, rng)
            started = time.perf_counter()
            watcher.round()
            seconds = time.perf_counter() - started
            move_one_percent(node, rng)  # the memory run records transitions too
            tracemalloc.start()
            watcher.round()
            peak = tracemalloc.get_traced_memory()[1] / 1e6
            tracemalloc.stop()
            round_worst = (max(round_worst[0], seconds), max(round_worst[1], peak))
            print(
                f"  round {r + 1}: {seconds * 1000:7.1f} ms, peak {peak:6.1f} MB traced ({moved} transitions audited)"
            )
        watcher.close()
        wallet.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\nworst snapshot + diff: {worst[0] * 1000:.1f} ms, {worst[1]:.1f} MB; worst watch round: "
        f"{round_worst[0] * 1000:.1f} ms, {round_worst[1]:.1f} MB; process peak RSS {rss:.0f} MB"
    )
    ok = worst[0] < 1.0 and round_worst[0] < 1.0 and max(worst[1], round_worst[1]) < 200 and rss < 200
    print("target (< 1 s and < 200 MB):", "met" if ok else "NOT MET")


if __name__ == "__main__":
    main()
