"""Negotiation latency: a multisig-funded open until the peer has counter-signed,
next to lnd opening a channel from its own wallet.

On a fresh harness network (btcd + 2 lnd), each round times:

* ``l2custody session`` — ``open_channels`` for one channel lnd-0 -> lnd-1:
  ``total`` includes the pre-flight (wallet sync, node checks, coin
  selection); ``negotiation`` is from the first ``open_start`` until every
  commitment is secured (OpenChannel + psbt_fund, PSBT built and verified,
  psbt_verify{skip_finalize} + the peer's funding_signed). The channel is then
  signed by two software signers, broadcast and mined (not timed), so every
  round ends with an open channel.
* ``lncli openchannel`` — the lncli binary the harness built, lnd's own wallet
  (process start-up included; returns once lnd published the funding tx).
* ``OpenChannelSync`` — the same through gRPC from this process.

Usage: .venv/bin/python benchmarks/bench_negotiation.py [--rounds 5] [--amount 250000]
Prints min / median / max per method, in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _wallet(net, d: Path):  # type: ignore[no-untyped-def]
    from l2custody.config import init_config, load_config
    from l2custody.wallet.service import Wallet
    from l2custody.wallet.signer_registry import add_signer
    from l2custody.wallet.signers import (
        SoftwareSigner,
        generate_mnemonic,
        write_secret_file,
    )

    config = init_config(
        d / "config.toml",
        "regtest",
        d / "data",
        chain_url=net.chain.rpc_url,
        chain_kind="btcd",
        chain_user=net.chain.rpc_user,
        chain_password=net.chain.rpc_password,
        chain_cert=net.chain.rpc_cert,
        birthday=net.chain.height(),
    )
    # channel opens without a rehearsal first (`wallet rehearse`): [rehearsal] required = false
    text = config.path.read_text()
    assert "\nrequired = true " in text
    config.path.write_text(text.replace("\nrequired = true ", "\nrequired = false", 1))
    config = load_config(config.path)
    keys = []
    for name in ("alice", "bob", "carol"):
        path = d / f"{name}.key"
        write_secret_file(path, generate_mnemonic())
        keys.append(SoftwareSigner.from_file(path).account_key("48h/1h/0h/2h", "regtest").to_string())
    wallet = Wallet.create(config, 2, keys)
    for name in ("alice", "bob"):
        add_signer(config, name, "software", str(d / f"{name}.key"))
    return config, wallet


def _ms(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"{min(ms):8.0f} {statistics.median(ms):8.0f} {max(ms):8.0f}"


def run(rounds: int, amount: int) -> None:
    from lndgrpc.compiled import lightning_pb2 as ln

    from l2custody.backends.lnd.backend import LndBackend
    from l2custody.custody.context import Custody
    from l2custody.custody.funding.lifecycle import sign_session
    from l2custody.custody.funding.negotiate import open_channels
    from l2custody.custody.funding.requests import channel_request
    from l2custody.wallet.service import Wallet
    from regtest import Network, wait_for
    from regtest.binaries import ensure

    with tempfile.TemporaryDirectory(prefix="bench-negotiation-") as tmp:
        d = Path(tmp)
        print("starting btcd + 2 lnd ...", flush=True)
        net = Network.start(d / "net", lnd=2)
        try:
            a, b = net.lnd
            net.fund_node(a, 20_000_000, utxos=rounds * 2 + 2)
            net.connect(a, b)
            config, wallet = _wallet(net, d)
            outputs = [(wallet.next_address().address, amount + 50_000) for _ in range(rounds)]
            net.fund_addresses(outputs)
            net.mine(1)
            wallet.sync()
            wallet.close()
            nodes = {n.name: n for n in net.lnd}

            def resolve(name: str) -> LndBackend:
                n = nodes[name]
                return LndBackend.from_paths(name, n.grpc_host, n.tls_cert, n.admin_macaroon)

            totals, negotiations = [], []
            for i in range(rounds):
                marks: dict[str, float] = {}

                def progress(message: str) -> None:
                    if message.startswith("negotiating") and "start" not in marks:
                        marks["start"] = time.perf_counter()

                with Custody(Wallet.open(config), resolve, progress, owns_wallet=True) as ctx:
                    t0 = time.perf_counter()
                    session = open_channels(
                        ctx, [channel_request("lnd-0", b.pubkey, amount + i, private=True)], fee_rate=2
                    )
                    t1 = time.perf_counter()
                    totals.append(t1 - t0)
                    negotiations.append(t1 - marks["start"])
                    sign_session(ctx, session.id, "alice")
                    sign_session(ctx, session.id, "bob")  # broadcasts
                net.mine(1)

            lncli = ensure("lncli")
            cli_times, grpc_times = [], []
            base = [
                str(lncli),
                f"--rpcserver={a.grpc_host}",
                f"--tlscertpath={a.tls_cert}",
                f"--macaroonpath={a.admin_macaroon}",
                "--network=regtest",
            ]
            for i in range(rounds):
                t0 = time.perf_counter()
                subprocess.run(
                    [
                        *base,
                        "openchannel",
                        f"--node_key={b.pubkey}",
                        f"--local_amt={amount + i}",
                        "--sat_per_vbyte=2",
                        "--private",
                    ],
                    check=True,
                    capture_output=True,
                    timeout=120,
                )
                cli_times.append(time.perf_counter() - t0)
                net.mine(1)
                t0 = time.perf_counter()
                a.ln.OpenChannelSync(
                    ln.OpenChannelRequest(
                        node_pubkey=bytes.fromhex(b.pubkey),
                        local_funding_amount=amount + 100 + i,
                        sat_per_vbyte=2,
                        private=True,
                    ),
                    timeout=120,
                )
                grpc_times.append(time.perf_counter() - t0)
                net.mine(1)
            wait_for(lambda: a.info().num_pending_channels == 0, 60, what="every channel confirmed")
        finally:
            net.stop(raise_errors=False)

    print()
    print(f"one channel of ~{amount:,} sat lnd-0 -> lnd-1, {rounds} rounds, milliseconds")
    print(f"{'method':44} {'min':>8} {'median':>8} {'max':>8}")
    print(f"{'l2custody open_channels (incl. pre-flight)':44} {_ms(totals)}")
    print(f"{'l2custody negotiation -> commitments secured':44} {_ms(negotiations)}")
    print(f"{'lncli openchannel (lnd wallet, process)':44} {_ms(cli_times)}")
    print(f"{'OpenChannelSync (lnd wallet, gRPC)':44} {_ms(grpc_times)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="opens per method (default 5)")
    parser.add_argument("--amount", type=int, default=250_000, help="channel size in sat (default 250000)")
    args = parser.parse_args()
    run(args.rounds, args.amount)


if __name__ == "__main__":
    main()
