"""Read commands of ``l2custody`` next to the node's own CLI, on one regtest network.

Starts btcd + 2 lnd (the harness), opens ``--channels`` channels lnd-0 -> lnd-1,
creates a 2-of-3 l2custody wallet on the harness chain and registers lnd-0.
Then, for each pair below, runs the two commands in alternation (``--runs``
times each, after one warm-up run of each that is not counted) as fresh
processes, and prints the median wall time of each, their difference and
their ratio:

    l2custody channel list        lncli listchannels
    l2custody channel show POINT  lncli listchannels   (lncli has no by-point lookup)
    l2custody wallet balance      lncli walletbalance
    l2custody node list           lncli getinfo
    l2custody session list        lncli listchannels
    l2custody report --no-sync    lncli listchannels, pendingchannels, walletbalance (one after
                                  the other: the node facts report shows)

and ``l2custody --help`` next to a bare two-command Typer app's ``--help``.
Where lightningd is present a Core Lightning node is added and
``l2custody channel list --node cln-0`` is compared with ``lightning-cli
listpeerchannels``.

Usage: .venv/bin/python benchmarks/bench_cli.py [--runs 15] [--channels 5] [--json]
The targets (issue 14): each read command within the node CLI + 0.15 s,
``--help`` within 1.1x the bare Typer app.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BIN = Path(sys.executable).parent / "l2custody"
TARGET_EXTRA_S = 0.15
TARGET_HELP_RATIO = 1.1
BARE_TYPER = """
import typer
app = typer.Typer()
@app.command()
def first(x: int = 1) -> None:
    "One."
@app.command()
def second(y: str = "") -> None:
    "Two."
app()
"""


Command = list[str] | list[list[str]]  # one command, or several run one after the other


def _run_once(command: Command, env: dict[str, str]) -> float:
    argvs = command if command and isinstance(command[0], list) else [command]
    start = time.perf_counter()
    for argv in argvs:
        proc = subprocess.run(argv, env=env, capture_output=True)
        # report exits 1 when it has custody findings (lnd-0's own channels are not ours): still a reading
        if proc.returncode not in ((0, 1) if "report" in argv else (0,)):
            raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    return time.perf_counter() - start


def alternate(a: Command, b: Command, env: dict[str, str], runs: int) -> tuple[list[float], list[float]]:
    """``runs`` timings of each command, run in alternation after one warm-up each."""
    _run_once(a, env)
    _run_once(b, env)
    ta, tb = [], []
    for _ in range(runs):
        ta.append(_run_once(a, env))
        tb.append(_run_once(b, env))
    return ta, tb


def _cli(config: Path, env: dict[str, str], *args: str) -> Any:
    out = subprocess.run([str(BIN), "--config", str(config), "--json", *args], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"l2custody {' '.join(args)} failed: {out.stderr}{out.stdout}")
    return json.loads(out.stdout)


def _wallet(chain: Any, work: Path, env: dict[str, str]) -> Path:
    """``init`` on the harness chain and a 2-of-3 wallet of software signers."""
    config = work / "config.toml"
    cert = ["--chain-cert", str(chain.rpc_cert)] if chain.rpc_cert is not None else []
    login = ["--chain-url", chain.rpc_url, "--chain-user", chain.rpc_user, "--chain-password", chain.rpc_password]
    data = ["--data-dir", str(work / "data"), "--birthday", str(chain.height())]
    _cli(config, env, "init", "--network", "regtest", *data, *login, *cert)
    keys = [
        _cli(config, env, "signer", "add", n, "--software", str(work / f"{n}.key"), "--generate")["key"]
        for n in ("alice", "bob", "carol")
    ]
    _cli(config, env, "wallet", "create", "-k", "2", *sum((["--key", k] for k in keys), []))
    return config


def setup(net: Any, work: Path, channels: int, env: dict[str, str]) -> tuple[Path, str]:
    """The l2custody config (wallet + lnd-0 registered) and one channel point."""
    from regtest.lightning import open_channel

    a, b = net.lnd
    points = [open_channel(net, a, b, 200_000) for _ in range(channels)]
    config = _wallet(net.chain, work, env)
    node = ["--host", a.grpc_host, "--tls-cert", str(a.tls_cert), "--macaroon", str(a.admin_macaroon)]
    _cli(config, env, "node", "add", "lnd-0", "--lnd", *node)
    _cli(config, env, "wallet", "sync")
    return config, points[0]


def cln_rows(work: Path, channels: int, runs: int, env: dict[str, str]) -> list[dict[str, object]]:
    """``channel list`` on a Core Lightning node next to ``lightning-cli listpeerchannels``
    (bitcoind + lightningd + lnd as the peer); nothing where lightningd is absent."""
    import shutil

    from regtest import Network, cln_unavailable, wait_for

    reason = cln_unavailable()
    if reason:
        print(f"Core Lightning skipped: {reason}", file=sys.stderr)
        return []
    lightning_cli = shutil.which("lightning-cli", path=str(Path(shutil.which("lightningd") or "").parent))
    net = Network.start(work / "cln-net", lnd=1, cln=1, chain="bitcoind")
    try:
        cln, peer = net.cln[0], net.lnd[0]
        net.fund_node(cln, 50_000_000, utxos=channels + 2)
        net.connect(cln, peer)
        for _ in range(channels):
            cln.rpc.fundchannel(peer.pubkey, 200_000)
            net.mine(1)
        net.mine(6)
        wait_for(
            lambda: all(c["state"] == "CHANNELD_NORMAL" for c in cln.rpc.listpeerchannels()["channels"]),
            120,
            what="the CLN channels to open",
        )
        config = _wallet(net.chain, work / "l2c-cln", env)
        _cli(config, env, "node", "add", "cln-0", "--cln", "--rpc-file", str(cln.rpc_file))
        ours = [str(BIN), "--config", str(config), "channel", "list"]
        theirs = [str(lightning_cli), f"--rpc-file={cln.rpc_file}", "listpeerchannels"]
        t_ours, t_node = alternate(ours, theirs, env, runs)
        return [_row("l2custody channel list (cln)", "lightning-cli listpeerchannels", t_ours, t_node)]
    finally:
        net.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--channels", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    from regtest import Network
    from regtest.binaries import ensure

    # As a user's shell has it: Python writes its bytecode caches (a sandbox may say not to,
    # which makes every run compile l2custody from source again).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    lncli = str(ensure("lncli"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        work = Path(tmp)
        net = Network.start(work / "net", lnd=2)
        try:
            for node in net.lnd:
                net.fund_node(node, 50_000_000, utxos=args.channels + 2)
            net.connect(net.lnd[0], net.lnd[1])
            config, point = setup(net, work / "l2c", args.channels, env)
            a = net.lnd[0]
            node_cli = [
                lncli,
                "--network",
                "regtest",
                "--rpcserver",
                a.grpc_host,
                "--tlscertpath",
                str(a.tls_cert),
                "--macaroonpath",
                str(a.admin_macaroon),
            ]
            ours = [str(BIN), "--config", str(config)]
            pairs = [
                ("channel list", ["channel", "list"], "listchannels"),
                ("channel show", ["channel", "show", point], "listchannels"),
                ("wallet balance", ["wallet", "balance"], "walletbalance"),
                ("node list", ["node", "list"], "getinfo"),
                ("session list", ["session", "list"], "listchannels"),
            ]
            for label, mine, theirs in pairs:
                t_ours, t_node = alternate(ours + mine, node_cli + [theirs], env, args.runs)
                rows.append(_row(f"l2custody {label}", f"lncli {theirs}", t_ours, t_node))
            # report reads the node's channels, pending channels and wallet (and the multisig,
            # the sessions, the chain): next to the lncli commands that tell the node's part
            facts = [node_cli + [c] for c in ("listchannels", "pendingchannels", "walletbalance")]
            t_ours, t_node = alternate(ours + ["report", "--no-sync"], facts, env, args.runs)
            rows.append(_row("l2custody report", "lncli list+pending+wallet", t_ours, t_node))
        finally:
            net.stop()
        rows.extend(cln_rows(work, args.channels, args.runs, env))
        bare = work / "bare_typer.py"
        bare.write_text(BARE_TYPER)
        t_help, t_bare = alternate([str(BIN), "--help"], [sys.executable, str(bare), "--help"], env, args.runs)
        rows.append(_row("l2custody --help", "bare Typer app --help", t_help, t_bare))
    _print(rows, args.json)


def _row(ours: str, theirs: str, t_ours: list[float], t_node: list[float]) -> dict[str, object]:
    m_ours, m_node = statistics.median(t_ours), statistics.median(t_node)
    help_row = ours.endswith("--help")
    ok = (m_ours <= TARGET_HELP_RATIO * m_node) if help_row else (m_ours <= m_node + TARGET_EXTRA_S)
    return {
        "command": ours,
        "compared_with": theirs,
        "median_s": round(m_ours, 4),
        "other_median_s": round(m_node, 4),
        "difference_s": round(m_ours - m_node, 4),
        "ratio": round(m_ours / m_node, 3),
        "target": f"<= {TARGET_HELP_RATIO}x" if help_row else f"<= +{TARGET_EXTRA_S} s",
        "meets_target": ok,
    }


def _print(rows: list[dict[str, object]], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'command':<28} {'median':>8}  {'compared with':<24} {'median':>8} {'diff':>8} {'ratio':>6}  target")
    for r in rows:
        print(
            f"{r['command']:<28} {r['median_s']:>8.3f}  {r['compared_with']:<24} {r['other_median_s']:>8.3f} "
            f"{r['difference_s']:>+8.3f} {r['ratio']:>6.2f}  {r['target']} {'ok' if r['meets_target'] else 'MISSED'}"
        )


if __name__ == "__main__":
    main()
