"""``make demo``: l2custody's main job on a private regtest network, then everything stopped.

A 2-of-3 multisig funds a Lightning channel from alice (the operator's lnd)
to bob (a peer) and gets the money back: first a rehearsal proves the setup
(two signers sign a small spend to the multisig itself, confirmed and
checked back), then the channel is negotiated with no signer present, two
signers sign later (a software key, and an air-gapped key
through PSBT files), alice's lnd commits to close into a multisig address,
alice pays bob's invoice, and the cooperative close lands in the multisig,
verified on chain. Every custody step is a real ``l2custody`` command (shown
as it runs); the harness plays the chain, the faucet, bob and the air-gapped
machine. ``python -m regtest.demo [--json] [--keep]``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from l2custody.amounts import format_sats
from l2custody.errors import L2CustodyError
from regtest.errors import HarnessError

TREASURY_SAT = 2_000_000  # the faucet pays this into the multisig
RESERVE_SAT = 50_000  # into alice's lnd wallet: lnd's fee reserve for anchor channels
CHANNEL_SAT = 500_000
PAYMENT_SAT = 25_000
REHEARSAL_SAT = 10_000
FEE_RATE = "2"  # sat/vB; btcd has no fee estimator
STEPS = 7


class DemoError(Exception):
    """A step did not do what the demo promises."""  # also: a CLI command failed


class Demo:
    """Runs the steps in ``workdir``; prints to ``out``; ``self.result`` is the JSON summary."""

    def __init__(self, workdir: Path, out: TextIO) -> None:
        self.dir, self.out = workdir, out
        self.config = workdir / "config.toml"
        self.exe = shutil.which("l2custody", path=str(Path(sys.executable).parent)) or shutil.which("l2custody")
        self.secret = "\0"  # the chain RPC password, shown as *** once known
        self.steps: list[dict[str, Any]] = []
        self.result: dict[str, Any] = {"ok": False, "steps": self.steps}

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        self.say(f"\n[{len(self.steps) + 1}/{STEPS}] {title}")
        started = time.monotonic()
        yield
        seconds = round(time.monotonic() - started, 1)
        self.steps.append({"step": title, "seconds": seconds})
        self.say(f"      ({seconds} s)")

    def cli(self, *args: str, show: Callable[[Any], str] | None = None) -> Any:
        """Run ``l2custody --config CONFIG --json ARGS`` (shown without those two); its decoded output."""
        self.say("  $ l2custody " + " ".join(self._shown(a) for a in args))
        if self.exe is None:
            raise DemoError("the `l2custody` command is not installed: run `pip install -e .` (make demo does)")
        proc = subprocess.run(
            [self.exe, "--config", str(self.config), "--json", *args], capture_output=True, text=True, timeout=180
        )
        if proc.returncode != 0:
            try:
                message = json.loads(proc.stdout.strip().splitlines()[-1])["error"]
            except (ValueError, IndexError, KeyError, TypeError):
                message = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-12:])
            raise DemoError(f"`l2custody {' '.join(args[:2])}` exited {proc.returncode}: {message}")
        out = json.loads(proc.stdout)
        if show is not None:
            self.note(show(out))
        return out

    def _shown(self, arg: str) -> str:
        if arg == self.secret:
            return "***"
        if arg.startswith(str(self.dir)):
            return "$DEMO" + arg[len(str(self.dir)) :]
        return re.sub(r"[0-9A-Za-z]{24,}", lambda m: f"{m[0][:12]}…{m[0][-6:]}", arg)

    def note(self, text: str) -> None:
        self.say(f"    -> {text}")

    def run(self) -> dict[str, Any]:
        from regtest import Network

        started = time.monotonic()
        with self.step("Regtest network: btcd, lnd 'alice' (the operator's node), lnd 'bob' (a peer)"):
            from regtest import binaries

            if binaries.find_binary("lnd") is None or binaries.find_binary("btcd") is None:
                self.say("    building lnd and btcd with Go (first run only: ~5 minutes on 2 cores)")
            binaries.ensure_go_daemons()
            net = Network.start(self.dir / "regtest", lnd=2)
            alice, bob = net.lnd
            self.note(f"alice {alice.pubkey[:16]}… gRPC {alice.grpc_host}; bob {bob.pubkey[:16]}… at {bob.p2p_host}")
        try:
            self._custody(net)
        except BaseException:
            net.stop(raise_errors=False)  # the step's error is the one to report
            raise
        net.stop()
        self.result.update(ok=True, seconds=round(time.monotonic() - started, 1))
        return self.result

    def _custody(self, net: Any) -> None:
        from regtest import wait_for
        from regtest.lightning import find_channel, pay, wait_usable

        alice, bob = net.lnd
        mempool = lambda: set(net.chain.rpc("getrawmempool"))  # noqa: E731
        decoded = lambda txid: net.chain.rpc("getrawtransaction", txid, 1)  # noqa: E731
        r = self.result
        r["nodes"] = {"alice": alice.pubkey, "bob": bob.pubkey}

        with self.step("Custody setup: config, three keys, a 2-of-3 multisig, alice registered"):
            airgap_key = self._setup(net, alice)
        with self.step(
            f"The faucet pays {format_sats(TREASURY_SAT)} into the multisig "
            f"(and {format_sats(RESERVE_SAT)} into alice's lnd for its anchor reserve)"
        ):
            address = self.cli("wallet", "address", show=lambda a: f"fresh multisig address {a['address']}")["address"]
            net.fund_addresses([(address, TREASURY_SAT), (alice.new_address(), RESERVE_SAT)])
            net.mine(1)
            wait_for(lambda: alice.confirmed_balance() >= RESERVE_SAT, 30, what="alice's lnd to see its reserve")
            self.cli("wallet", "sync", show=lambda x: f"scanned up to block {x['tip_height']}")
            before = self.cli("wallet", "balance", show=lambda b: f"{format_sats(b['confirmed'])} confirmed")[
                "confirmed"
            ]
            check(before == TREASURY_SAT, f"the wallet sees {before} sat, not {TREASURY_SAT}")
            self.cli(
                "node", "check", "alice", show=lambda c: "alice: " + ", ".join(i["name"] for i in c["checks"]) + " ok"
            )

        with self.step(
            f"Rehearse before trusting the setup: laptop and backup sign {format_sats(REHEARSAL_SAT)} "
            "to the multisig itself; confirmed and checked back"
        ):
            rehearsal = self._rehearse(net)
            r["rehearsal"] = rehearsal
            coins = {f"{u['txid']}:{u['vout']}": u["value"] for u in self.cli("wallet", "utxos")}

        with self.step(f"Open a {format_sats(CHANNEL_SAT)} channel alice -> bob, funded by the multisig"):
            t = time.monotonic()
            s = self.cli(
                "channel", "open", "alice", f"{bob.pubkey}@{bob.p2p_host}", str(CHANNEL_SAT), "--fee-rate", FEE_RATE
            )
            secured_in = round(time.monotonic() - t, 1)
            sid, txid, [leg] = s["id"], s["txid"], s["legs"]
            cp, reserved = leg["channel_point"], leg["close_address"]
            secured = (s["state"], leg["state"], s["signatures"]) == ("secured", "secured", 0) and txid not in mempool()
            check(secured, f"session {sid} is {s['state']} with {s['signatures']} signatures; expected secured, 0")
            self.note(
                f"session {sid} {s['state']} in {secured_in} s with 0 of {s['threshold']} signatures: bob "
                "counter-signed, alice's lnd holds the channel as pending, nothing is broadcast"
            )
            self.note(f"close address reserved for it and committed in the open: {reserved}")
            self.cli(
                "session",
                "sign",
                sid,
                "--signer",
                "laptop",
                show=lambda x: f"laptop added {x['added']} signature ({x['signatures']} of {x['threshold']})",
            )
            exported = self.cli(
                "session",
                "sign",
                sid,
                "--signer",
                "airgap",
                show=lambda x: f"PSBT exported to {self._shown(x['exported'][0])} (+ .txt)",
            )["exported"]
            self._sign_offline(sid, Path(exported[1]), airgap_key)
            done = self.cli(
                "session",
                "sign",
                sid,
                "--signer",
                "airgap",
                show=lambda x: (
                    f"airgap's signature collected ({x['signatures']} of {x['threshold']}); "
                    f"broadcast {x['broadcast_txid']}"
                ),
            )
            check(done["complete"] and done["broadcast_txid"] == txid, f"session {sid} was not broadcast: {done}")
            wait_for(lambda: txid in mempool(), 30, what=f"funding transaction {txid} in the mempool")
            inputs = [f"{i['txid']}:{i['vout']}" for i in decoded(txid)["vin"]]
            from_multisig = all(i in coins for i in inputs)
            check(from_multisig, f"funding inputs {inputs} are not all multisig coins {sorted(coins)}")
            self.note(f"btcd: the funding transaction spends {len(inputs)} multisig coin(s) and nothing else")
            net.mine(1)
            final = self.cli(
                "session",
                "status",
                sid,
                "--wait",
                "--timeout",
                "60",
                show=lambda x: (
                    f"{x['state']}, {x['confirmations']} confirmation(s), channel "
                    f"{x['legs'][0]['state']}, committed close address checked: "
                    f"{'ok' if x['legs'][0]['close_address_ok'] else 'NO'}"
                ),
            )
            committed = find_channel(alice, cp).close_address  # lnd's own word
            view = self.cli("channel", "show", cp)
            ours = view["close_address_ours"] is True and committed == reserved
            check(final["state"] == "confirmed" and final["legs"][0]["state"] == "open", f"not open: {final}")
            check(ours and final["legs"][0]["close_address_ok"], f"alice's lnd committed {committed}, not {reserved}")
            self.note(f"lnd's Channel.close_address {committed} = the multisig's {view['close_address_index']}")
            fee = sum(coins[i] for i in inputs) - sum(sats(o) for o in decoded(txid)["vout"])
            r["funding"] = {
                "session": sid,
                "txid": txid,
                "channel_point": cp,
                "amount_sat": CHANNEL_SAT,
                "secured_before_signing": secured,
                "negotiation_seconds": secured_in,
                "signed_by": ["laptop", "airgap"],
                "inputs": inputs,
                "inputs_from_multisig": from_multisig,
                "fee_sat": fee,
            }
            r["close_address"] = {"reserved": reserved, "committed_by_lnd": committed, "ours": ours}

        with self.step(f"Pay: bob writes a {format_sats(PAYMENT_SAT)} invoice, alice pays it over the channel"):
            wait_usable(alice, bob, cp)
            paid = pay(alice, bob, PAYMENT_SAT, memo="l2custody demo")
            check(paid.status == "SUCCEEDED", f"payment {paid.status}: {paid.failure_reason}")
            self.note(f"{paid.status}: preimage {paid.preimage[:16]}… for hash {paid.payment_hash[:16]}…")
            self.cli(
                "channel",
                "show",
                cp,
                show=lambda v: (
                    f"alice {format_sats(v['local_balance_sat'])}, bob {format_sats(v['remote_balance_sat'])}"
                ),
            )
            r["payment"] = {
                "status": paid.status,
                "amount_sat": paid.amount_sat,
                "fee_sat": paid.fee_sat,
                "payment_hash": paid.payment_hash,
                "preimage": paid.preimage,
            }

        with self.step("Close cooperatively: the closing output lands in the multisig, verified on chain"):
            closed = self.cli(
                "channel",
                "close",
                cp,
                "--fee-rate",
                FEE_RATE,
                show=lambda c: (
                    f"closing tx {c['closing_txid']} pays the "
                    f"{c['record']['address_source']} address {c['record']['expected_address']}"
                ),
            )
            closing = closed["closing_txid"]
            wait_for(lambda: closing in mempool(), 30, what=f"closing transaction {closing} in the mempool")
            net.mine(1)
            st = self.cli("channel", "close-status", cp, "--wait", "--timeout", "60", show=lambda x: x["message"])
            outs = decoded(closing)["vout"]
            landed = address_of(outs[int(st["wallet_utxo"].split(":")[1])]) if st["wallet_utxo"] else None
            utxos = {f"{u['txid']}:{u['vout']}": u["value"] for u in self.cli("wallet", "utxos")}
            in_wallet = st["state"] == "verified" and st["wallet_utxo"] in utxos and landed == reserved
            check(in_wallet, f"close of {cp} is {st['state']}: {st['message']}")
            self.note(
                f"btcd: output {st['wallet_utxo'][:12]}…:{st['wallet_utxo'].split(':')[1]} pays {landed}; "
                f"the wallet holds it ({format_sats(utxos[st['wallet_utxo']])})"
            )
            after = self.cli(
                "wallet", "balance", show=lambda b: f"{format_sats(b['confirmed'])} confirmed in {b['utxos']} coins"
            )["confirmed"]
            wait_for(lambda: bob.confirmed_balance() >= PAYMENT_SAT, 30, what="bob's lnd to see its closing output")
            close_fee = CHANNEL_SAT - sum(sats(o) for o in outs)
            r["close"] = {
                "closing_txid": closing,
                "state": st["state"],
                "wallet_utxo": st["wallet_utxo"],
                "address": landed,
                "value_sat": st["value"],
                "in_multisig": in_wallet,
                "fee_sat": close_fee,
            }
            spent = rehearsal["fee_sat"] + fee + paid.amount_sat + paid.fee_sat + close_fee
            r["balances"] = {
                "multisig_before_sat": before,
                "multisig_after_sat": after,
                "rehearsal_fee_sat": rehearsal["fee_sat"],
                "funding_fee_sat": fee,
                "paid_to_bob_sat": paid.amount_sat + paid.fee_sat,
                "closing_fee_sat": close_fee,
                "accounted": before - spent == after,
                "alice_lnd_wallet_sat": alice.confirmed_balance(),
                "bob_lnd_wallet_sat": bob.confirmed_balance(),
            }

    def _setup(self, net: Any, alice: Any) -> str:
        from l2custody.wallet.signers import SoftwareSigner, generate_mnemonic, write_secret_file

        chain = net.chain
        self.secret = chain.rpc_password
        self.cli(
            "init",
            "--network",
            "regtest",
            "--data-dir",
            str(self.dir / "data"),
            "--chain-url",
            chain.rpc_url,
            "--chain-user",
            chain.rpc_user,
            "--chain-password",
            chain.rpc_password,
            "--chain-cert",
            str(chain.rpc_cert),
            "--birthday",
            str(chain.height()),
            show=lambda _: f"{self._shown(str(self.config))} written (0600), chain: the harness btcd",
        )
        (self.dir / "keys").mkdir(mode=0o700)
        keys = [
            self.cli(
                "signer",
                "add",
                n,
                "--software",
                str(self.dir / "keys" / f"{n}.key"),
                "--generate",
                show=lambda x: f"new 24-word key file (0600), key {self._shown(x['key'])}",
            )["key"]
            for n in ("laptop", "backup")
        ]
        airgap = self.dir / "airgap-machine" / "airgap.key"  # another machine's disk: only its xpub comes over
        airgap.parent.mkdir(mode=0o700)
        write_secret_file(airgap, generate_mnemonic(24) + "\n")
        signer = SoftwareSigner.from_file(airgap)
        keys.append(signer.account_key(network="regtest").to_string())
        self.note(f"(the air-gapped machine makes its own 24-word key and shows its xpub: {self._shown(keys[-1])})")
        self.cli(
            "signer",
            "add",
            "airgap",
            "--file-dir",
            str(self.dir / "usb"),
            "--fingerprint",
            signer.fingerprint,
            show=lambda x: f"PSBTs for airgap go through {self._shown(x['path'])}",
        )
        w = self.cli(
            "wallet",
            "create",
            "-k",
            "2",
            *[a for k in keys for a in ("--key", k)],
            show=lambda x: f"{x['threshold']}-of-{x['keys']} {self._shown(x['descriptor'])}",
        )
        self.cli(
            "node",
            "add",
            "alice",
            "--lnd",
            "--host",
            alice.grpc_host,
            "--tls-cert",
            str(alice.tls_cert),
            "--macaroon",
            str(alice.admin_macaroon),
            show=lambda x: f"node alice ({x['kind']}) registered",
        )
        self.result["wallet"] = {"descriptor": w["descriptor"], "threshold": w["threshold"], "keys": w["keys"]}
        return str(airgap)

    def _rehearse(self, net: Any) -> dict[str, Any]:
        """``wallet rehearse`` with two software signers; the harness mines a block once the
        rehearsal's transaction reaches btcd's mempool (the command waits for it)."""
        import threading

        def mine_when_sent() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not stop.is_set():
                if net.chain.rpc("getrawmempool"):
                    net.mine(1)
                    return
                time.sleep(0.05)

        stop = threading.Event()
        miner = threading.Thread(target=mine_when_sent, daemon=True)
        miner.start()
        try:
            done = self.cli(
                "wallet",
                "rehearse",
                "--signers",
                "laptop,backup",
                "--amount",
                f"{REHEARSAL_SAT}sat",
                "--fee-rate",
                FEE_RATE,
                "--timeout",
                "60",
                show=lambda x: (
                    f"rehearsal {x['id']} {x['state']}: {x['txid'][:16]}… in block {x['height']}; "
                    f"{format_sats(x['amount_sat'])} and the change are multisig coins again, "
                    f"fee {format_sats(x['details']['fee_paid'])}"
                ),
            )
        finally:
            stop.set()
            miner.join()
        check(done["state"] == "confirmed", f"rehearsal {done['id']} is {done['state']}, not confirmed")
        return {
            "id": done["id"],
            "state": done["state"],
            "txid": done["txid"],
            "signed_by": sorted(done["details"]["signed"]),
            "amount_sat": done["amount_sat"],
            "fee_sat": done["details"]["fee_paid"],
        }

    def _sign_offline(self, sid: str, exported: Path, key: str) -> None:
        """The air-gapped machine: read the exported PSBT, sign it, write the signed file back."""
        from l2custody.wallet.psbt import load_psbt
        from l2custody.wallet.signers import SoftwareSigner

        signed = SoftwareSigner.from_file(key).sign(load_psbt(exported.read_text()))
        back = exported.parent / f"{sid}-signed.psbt"
        back.write_bytes(signed.serialize())
        self.note(f"(the air-gapped machine signs {exported.name} and writes {back.name} back)")


def sats(vout: dict[str, Any]) -> int:
    return round(vout["value"] * 100_000_000)


def address_of(vout: dict[str, Any]) -> str | None:
    """The address of a decoded output (btcd: addresses[0], bitcoind: address)."""
    spk = vout.get("scriptPubKey", {})
    return spk.get("address") or (spk.get("addresses") or [None])[0]


def check(condition: bool, failure: str) -> None:
    if not condition:
        raise DemoError(failure)


def _table(r: dict[str, Any]) -> str:
    b, f, c, p = r["balances"], r["funding"], r["close"], r["payment"]
    rows = [
        ("multisig before", format_sats(b["multisig_before_sat"])),
        ("rehearsal fee", f"{format_sats(b['rehearsal_fee_sat'])}  (tx {r['rehearsal']['txid']})"),
        ("funding fee", f"{format_sats(b['funding_fee_sat'])}  (tx {f['txid']})"),
        ("paid to bob", f"{format_sats(b['paid_to_bob_sat'])}  (payment hash {p['payment_hash']})"),
        ("closing fee", f"{format_sats(b['closing_fee_sat'])}  (tx {c['closing_txid']})"),
        (
            "multisig after",
            format_sats(b["multisig_after_sat"])
            + ("  = before - fees - payment" if b["accounted"] else "  (does NOT add up)"),
        ),
        ("alice's lnd", f"{format_sats(b['alice_lnd_wallet_sat'])}  (its anchor reserve, untouched)"),
        ("bob's lnd", f"{format_sats(b['bob_lnd_wallet_sat'])}  (the payment, from the close)"),
        ("took", f"{r['seconds']} s (network start {r['steps'][0]['seconds']} s)"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m regtest.demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print one JSON summary (progress goes to stderr)")
    parser.add_argument("--keep", action="store_true", help="keep the directory (config, keys, daemon logs)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="l2custody-demo-"))
    demo = Demo(workdir, sys.stderr if args.json else sys.stdout)
    try:
        result = demo.run()
    except KeyboardInterrupt:
        print(f"\ninterrupted; daemons stopped, kept {workdir}", file=sys.stderr)
        return 130
    except Exception as exc:
        if not isinstance(exc, (DemoError, HarnessError, L2CustodyError)):
            traceback.print_exc()  # a bug, not a failed step: say where
        if args.json:
            print(json.dumps({**demo.result, "ok": False, "error": str(exc)}, indent=2))
        print(f"\ndemo failed: {exc}\nkept {workdir} (config, keys, daemon logs)", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print("\nresult\n" + _table(result), flush=True)
    if args.keep:
        print(f"kept {workdir} (config, keys, daemon logs)", file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
