"""`make demo` end to end, so the README's first command cannot silently rot.

Runs ``python -m regtest.demo --json`` as a user would (its own btcd + 2 lnd)
and checks the summary it prints: the channel was secured before any
signature and funded from multisig coins only, the close address lnd
committed is derived from the wallet's descriptor, the payment settled (its
preimage hashes to its payment hash), and the closing output is a wallet
coin at that address, every satoshi accounted for. A failing step must make
the demo exit non-zero with the error.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from l2custody.wallet.descriptor import MultisigDescriptor

REPO = Path(__file__).resolve().parents[2]


def _demo(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    # TMPDIR: the demo's directory lands under tmp_path, so a kept one is easy to find
    return subprocess.run(
        [sys.executable, "-m", "regtest.demo", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TMPDIR": str(tmp_path), **env},
    )


@pytest.mark.integration
def test_the_demo_funds_a_channel_from_the_multisig_and_closes_it_back_into_it(
    tmp_path: Path, go_daemons: None
) -> None:
    proc = _demo(tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r: dict[str, Any] = json.loads(proc.stdout)
    steps = [s["step"][:4] for s in r["steps"]]
    assert r["ok"] is True and steps == ["Regt", "Cust", "The ", "Rehe", "Open", "Pay:", "Clos"]
    assert "$ l2custody channel open alice " in proc.stderr  # the commands are shown as they run

    rehearsal = r["rehearsal"]  # the setup is proven before any channel is funded from it
    assert rehearsal["state"] == "confirmed" and rehearsal["signed_by"] == ["backup", "laptop"]
    assert rehearsal["amount_sat"] == 10_000 and 0 < rehearsal["fee_sat"] < 2_000

    desc = MultisigDescriptor.parse(r["wallet"]["descriptor"], network="regtest")
    assert (desc.threshold, len(desc.keys), r["wallet"]["threshold"], r["wallet"]["keys"]) == (2, 3, 2, 3)
    ours = {desc.derive(False, i).address for i in range(20)}

    f = r["funding"]
    assert f["secured_before_signing"] is True and f["signed_by"] == ["laptop", "airgap"]
    assert f["inputs"] and f["inputs_from_multisig"] is True and f["amount_sat"] == 500_000
    assert f["channel_point"].startswith(f["txid"] + ":") and 0 < f["fee_sat"] < 5_000

    c = r["close_address"]
    assert c["ours"] is True and c["committed_by_lnd"] == c["reserved"] and c["reserved"] in ours

    p = r["payment"]
    assert p["status"] == "SUCCEEDED" and p["amount_sat"] == 25_000
    assert hashlib.sha256(bytes.fromhex(p["preimage"])).hexdigest() == p["payment_hash"]

    close = r["close"]
    assert close["state"] == "verified" and close["in_multisig"] is True
    assert close["address"] == c["reserved"] and close["wallet_utxo"].startswith(close["closing_txid"] + ":")
    b = r["balances"]
    assert close["value_sat"] == 500_000 - 25_000 - close["fee_sat"] - p["fee_sat"]
    assert b["rehearsal_fee_sat"] == rehearsal["fee_sat"]
    assert b["multisig_after_sat"] == (
        b["multisig_before_sat"] - rehearsal["fee_sat"] - f["fee_sat"] - b["paid_to_bob_sat"] - close["fee_sat"]
    )
    assert b["accounted"] is True and b["bob_lnd_wallet_sat"] == 25_000
    assert not list(tmp_path.glob("l2custody-demo-*")), "the demo left its directory behind"


def test_a_failing_step_exits_non_zero_with_the_error(tmp_path: Path) -> None:
    proc = _demo(tmp_path, L2C_LND=str(tmp_path / "no-such-lnd"))
    assert proc.returncode == 1
    r = json.loads(proc.stdout)
    assert r["ok"] is False and "L2C_LND" in r["error"] and "not an executable" in r["error"]
    assert "demo failed: " in proc.stderr and "L2C_LND" in proc.stderr
