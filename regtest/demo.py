"""``make demo``: btcd + 2 lnd on regtest, a channel, a payment, then everything stopped.

For now the channel is funded by lnd's own wallet; the custody flow (funding
straight from a multisig) replaces this once it exists. Run it with
``python -m regtest.demo [--keep] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from l2custody.amounts import format_sats
from l2custody.errors import L2CustodyError

CHANNEL_SAT = 1_000_000
PAYMENT_SAT = 25_000


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, flush=True)


def run_demo(workdir: Path, quiet: bool = False) -> dict[str, Any]:
    """Run the demo in ``workdir`` and return what happened (the network is stopped after)."""
    from regtest import Network
    from regtest.binaries import ensure_go_daemons
    from regtest.lightning import close_channel, find_channel, open_channel, pay

    started = time.monotonic()
    _say(quiet, "1. lnd and btcd binaries (built with Go the first time: ~5 minutes on 2 cores)")
    for name, path in ensure_go_daemons().items():
        _say(quiet, f"   {name:<7} {path}")
    _say(quiet, "2. starting btcd and two lnd nodes, alice (lnd-0) and bob (lnd-1), on 127.0.0.1")
    net = Network.start(workdir, lnd=2)
    try:
        alice, bob = net.lnd
        _say(quiet, f"   alice {alice.pubkey[:20]}...  bob {bob.pubkey[:20]}...")
        _say(quiet, "3. the faucet pays 0.1 BTC into alice's lnd wallet; one block confirms it")
        net.fund_node(alice, 10_000_000)
        _say(quiet, f"4. alice opens a {format_sats(CHANNEL_SAT)} channel to bob from her wallet")
        chan_point = open_channel(net, alice, bob, CHANNEL_SAT)
        _say(quiet, f"   channel {chan_point} is active")
        _say(quiet, f"5. bob writes an invoice for {format_sats(PAYMENT_SAT)}; alice pays it")
        result = pay(alice, bob, PAYMENT_SAT, memo="l2custody demo")
        channel = find_channel(alice, chan_point)
        assert channel is not None
        balances = {"alice": int(channel.local_balance), "bob": int(channel.remote_balance)}
        _say(quiet, "6. alice closes the channel cooperatively; one block confirms the close")
        closing_txid = close_channel(net, alice, chan_point)
        confirmations = net.chain.rpc("getrawtransaction", closing_txid, 1).get("confirmations", 0)
    finally:
        net.stop()
    return {
        "channel_point": chan_point,
        "capacity_sat": CHANNEL_SAT,
        "payment": {"status": result.status, "amount_sat": result.amount_sat,
                    "fee_sat": result.fee_sat, "payment_hash": result.payment_hash,
                    "preimage": result.preimage},
        "channel_balances_after_payment_sat": balances,
        "closing_txid": closing_txid,
        "closing_confirmations": confirmations,
        "seconds": round(time.monotonic() - started, 1),
    }


def _table(r: dict[str, Any]) -> str:
    p = r["payment"]
    b = r["channel_balances_after_payment_sat"]
    rows = [
        ("channel", f"{r['channel_point']} ({format_sats(r['capacity_sat'])})"),
        ("payment", f"{p['status']}: {format_sats(p['amount_sat'])} alice -> bob, "
                    f"fee {format_sats(p['fee_sat'])}"),
        ("payment hash", p["payment_hash"]),
        ("preimage", p["preimage"]),
        ("balances", f"alice {format_sats(b['alice'])}, bob {format_sats(b['bob'])} "
                     "(alice's side also pays the commitment fee and anchors)"),
        ("closed by", f"{r['closing_txid']} ({r['closing_confirmations']} confirmation)"),
        ("took", f"{r['seconds']} s"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m regtest.demo", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--keep", action="store_true",
                        help="keep the network directory (daemon logs) afterwards")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="l2custody-demo-"))
    ok = False
    try:
        result = run_demo(workdir, quiet=args.json)
        ok = result["payment"]["status"] == "SUCCEEDED"
    except L2CustodyError as exc:
        print(f"demo failed: {exc.message}\nlogs kept in {workdir}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print("\nresult\n" + _table(result))
    if args.keep or not ok:
        print(f"logs kept in {workdir}", file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
