"""``python -m regtest``: start, inspect, feed and stop a regtest network from a shell.

The network lives in one state directory (default ``./.regtest``, or
``$L2C_REGTEST_DIR``, or ``--dir``), so ``up`` in one command and ``mine``,
``fund`` or ``down`` in later ones find the same daemons.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from l2custody.errors import L2CustodyError

EXAMPLES = """\
examples:
  python -m regtest build                 # build/cache lnd and btcd (minutes the first time)
  python -m regtest up                    # btcd + 2 lnd, detached; prints how to reach them
  python -m regtest up --lnd 3 --json     # machine-readable
  python -m regtest mine 6
  python -m regtest fund bcrt1q... 0.01btc --confirm
  python -m regtest status
  python -m regtest down
"""


def _default_dir() -> Path:
    return Path(os.environ.get("L2C_REGTEST_DIR", ".regtest"))


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dir", type=Path, default=None, help="state directory of the network (default ./.regtest or $L2C_REGTEST_DIR)"
    )
    common.add_argument("--json", action="store_true", help="machine-readable JSON output")
    parser = argparse.ArgumentParser(
        prog="python -m regtest",
        description=__doc__.splitlines()[0],
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("build", parents=[common], help="find or build lnd and btcd; print where")
    up = sub.add_parser("up", parents=[common], help="start a network that keeps running")
    up.add_argument("--lnd", type=int, default=2, help="number of lnd nodes (default 2)")
    up.add_argument("--cln", type=int, default=0, help="number of Core Lightning nodes (needs lightningd + bitcoind)")
    up.add_argument(
        "--chain",
        choices=["btcd", "bitcoind"],
        default=None,
        help="chain daemon (default btcd; bitcoind when --cln is given)",
    )
    sub.add_parser("down", parents=[common], help="stop the network (its logs stay)")
    sub.add_parser("status", parents=[common], help="show how to reach the running network")
    mine = sub.add_parser("mine", parents=[common], help="mine N blocks to the faucet")
    mine.add_argument("blocks", type=int, help="number of blocks")
    fund = sub.add_parser("fund", parents=[common], help="pay an address from the faucet")
    fund.add_argument("address", help="a regtest address (bcrt1...)")
    fund.add_argument("amount", help="150000, 150000sat or 0.0015btc")
    fund.add_argument("--confirm", action="store_true", help="mine one block afterwards")
    return parser


def _human(info: dict[str, Any]) -> str:
    chain = info["chain"]
    lines = [
        f"network in {info['workdir']}",
        f"  {chain['kind']:<9} rpc {chain['rpc_url']}  user {chain['rpc_user']}  password {chain['rpc_password']}",
    ]
    if chain.get("rpc_cert"):
        lines.append(f"  {'':<9} cert {chain['rpc_cert']}")
    for node in info["lnd"]:
        lines += [
            f"  {node['name']:<9} grpc {node['grpc_host']}  p2p {node['p2p_host']}  pubkey {node['pubkey']}",
            f"  {'':<9} tls.cert {node['tls_cert']}",
            f"  {'':<9} admin.macaroon {node['admin_macaroon']}",
        ]
    for node in info["cln"]:
        lines += [
            f"  {node['name']:<9} p2p {node['p2p_host']}  pubkey {node['pubkey']}",
            f"  {'':<9} rpc-file {node['rpc_file']}",
        ]
    lines.append(f"  {'faucet':<9} {info['faucet']['address']}")
    return "\n".join(lines)


def run(argv: list[str] | None = None) -> int:
    """Run one command; return the process exit code."""
    args = _parser().parse_args(argv)
    workdir = args.dir or _default_dir()

    def out(data: Any, human: str) -> None:
        print(json.dumps(data, indent=2, default=str) if args.json else human)

    try:
        from regtest import binaries
        from regtest.network import Network

        if args.command == "build":
            paths = binaries.ensure_go_daemons()
            out({k: str(v) for k, v in paths.items()}, "\n".join(f"{k:<7} {v}" for k, v in paths.items()))
        elif args.command == "up":
            if not args.json:
                print(
                    f"starting {args.chain or ('bitcoind' if args.cln else 'btcd')}, "
                    f"{args.lnd} lnd and {args.cln} cln in {workdir} ...",
                    file=sys.stderr,
                )
            net = Network.start(workdir, lnd=args.lnd, cln=args.cln, chain=args.chain, detached=True)
            info = net.describe()
            out(info, _human(info) + "\nstop it with: python -m regtest down")
        elif args.command == "status":
            net = Network.attach(workdir)
            info = net.describe() | {"running": net.running()}
            out(
                info,
                _human(info)
                + (
                    "" if info["running"] else "\n(NOT running: the chain daemon is gone; run `python -m regtest down`)"
                ),
            )
        elif args.command == "down":
            net = Network.attach(workdir)
            errors = net.stop(raise_errors=False)
            out(
                {"stopped": True, "workdir": str(net.workdir), "problems": errors},
                f"stopped the network in {net.workdir} (logs kept there)" + "".join(f"\nproblem: {e}" for e in errors),
            )
            return 1 if errors else 0
        elif args.command == "mine":
            net = Network.attach(workdir)
            hashes = net.mine(args.blocks)
            out(
                {"blocks": hashes, "height": net.chain.height()},
                f"mined {len(hashes)} blocks; tip {hashes[-1]} at height {net.chain.height()}",
            )
        elif args.command == "fund":
            from l2custody.amounts import format_sats, parse_sats

            sats = parse_sats(args.amount)
            net = Network.attach(workdir)
            txid = net.fund_address(args.address, sats)
            if args.confirm:
                net.mine(1)
            out(
                {"txid": txid, "sats": sats, "address": args.address, "mined": args.confirm},
                f"sent {format_sats(sats)} to {args.address} in {txid}"
                + ("" if args.confirm else " (not mined yet: python -m regtest mine 1)"),
            )
    except L2CustodyError as exc:
        if args.json:
            print(json.dumps(exc.to_dict()))
        else:
            print(f"error: {exc.message}", file=sys.stderr)
        return 1
    return 0


def main() -> None:
    sys.exit(run())
