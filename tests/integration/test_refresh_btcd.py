"""A coin nearing its recovery path is refreshed through `watch`, and btcd says the clock restarted.

A recovery wallet made through the CLI (alice, bob, carol: 2-of-3 at any time; heir alone
after N = 8 blocks), `[recovery] refresh_margin_blocks = 3`, no node registered. The
faucet pays it one coin; blocks are mined until the coin's recovery path opens within the
margin, and then, as an operator runs it:

- `report --json` warns (`recovery-timelock`, naming the coin and its opening height);
- `watch --once` (a new process) prepares the refresh PSBT in <data_dir>/refresh/, and a
  second run prepares nothing more;
- alice and bob sign that file (`psbt sign`), `psbt broadcast`, one block, `wallet sync`:
  the old coin is spent and the new coin is the wallet's, `report` no longer warns;
- btcd judges a heir-only spend of the new coin (nSequence N, signed by the heir alone):
  `testmempoolaccept` refuses it ("sequence locks") at the height where the old coin's
  path would have been open, and accepts it N blocks after the new coin confirmed.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from l2custody.config import load_config
from l2custody.wallet.psbt import TxOut, finalize
from l2custody.wallet.service import Wallet
from l2custody.wallet.signer_registry import load_signer
from regtest import Network
from tests.support.cli_runner import L2CUSTODY, create_wallet, init_on_chain, ok, run, set_config, software_signers
from tests.support.watch_lnd import set_keys

pytestmark = pytest.mark.integration

N, MARGIN = 8, 3


def report(config: Path) -> dict[str, Any]:
    result = run(config, "report", json_out=True)
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def timelock_findings(config: Path) -> dict[str, str]:
    return {f["kind"]: f["message"] for f in report(config)["findings"] if f["check"] == "recovery-timelock"}


def watch_once(config: Path) -> subprocess.CompletedProcess[str]:
    """One `l2custody watch --once` round in a new process (no node registered)."""
    done = subprocess.run(
        [str(L2CUSTODY), "--config", str(config), "watch", "--once"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done


def refreshes(config: Path) -> list[dict[str, Any]]:
    return [p for p in ok(config, "psbt", "list") if p["kind"] == "refresh"]


def coins(config: Path) -> dict[str, dict[str, Any]]:
    return {f"{u['txid']}:{u['vout']}": u for u in ok(config, "wallet", "utxos")}


def split(outpoint: str) -> tuple[str, int]:
    txid, vout = outpoint.split(":")
    return txid, int(vout)


def heir_only_spend(config: Path, outpoint: str) -> bytes:
    """The coin back to the wallet on the recovery path (nSequence N), signed by the heir alone."""
    with Wallet.open(load_config(config)) as wallet:
        coin = wallet.store.utxo(*split(outpoint))
        assert coin is not None
        value = coin.value
        back = TxOut.to_address(wallet.next_address(label="heir test").address, value - 1_000, "regtest")
        psbt = wallet.build_spend([back], 2.0, [outpoint], subtract_fee_from=0, recovery=N)
        assert [i.sequence for i in psbt.tx.vin] == [N]
        signed = load_signer(wallet.store.signer("heir"), "regtest").sign(psbt)
        return finalize(signed, wallet.descriptor)


def judged(config: Path, raw: bytes) -> Any:
    """btcd's testmempoolaccept verdict on ``raw``."""
    with Wallet.open(load_config(config)) as wallet:
        accept = wallet.chain.test_accept(raw)
    assert accept is not None
    return accept


def test_watch_prepares_the_refresh_and_the_new_coin_starts_its_clock_again(
    chain_network: Network, tmp_path: Path
) -> None:
    net = chain_network
    config = init_on_chain(tmp_path, net.chain)
    keys = software_signers(config, tmp_path, ("alice", "bob", "carol", "heir"))
    create_wallet(config, keys[:3], recovery=(f"{keys[3]}@{N}",))
    set_config(config, "recovery", "refresh_margin_blocks", str(MARGIN))
    set_keys(config, {"sweep_fee_rate": "2"})  # btcd has no fee estimate for watch to use

    net.fund_address(ok(config, "wallet", "address")["address"], 500_000)
    net.mine(1)
    funded_at = net.chain.height()
    ok(config, "wallet", "sync")
    [old] = coins(config)
    assert timelock_findings(config) == {}  # opens at funded_at + N: 7 blocks after the next, outside the margin

    net.mine(N - 1 - MARGIN)  # now the next block is MARGIN blocks before the heir may spend it
    [due] = timelock_findings(config).values()
    assert f"{old} (500,000 sat) at block {funded_at + N:,}, in {MARGIN} blocks" in due
    assert "`l2custody wallet refresh`" in due

    watch_once(config)
    [refresh] = refreshes(config)
    file = load_config(config).data_dir / "refresh" / f"{refresh['id']}.psbt"
    assert file.stat().st_mode & 0o777 == 0o600
    assert coins(config)[old]["reserved_by"] == refresh["id"]
    assert f"Refresh session(s) {refresh['id']}" in timelock_findings(config)["due"]
    watch_once(config)  # a new process again: the coin gets no second session
    assert [r["id"] for r in refreshes(config)] == [refresh["id"]]

    ok(config, "psbt", "sign", str(file), "--signer", "alice")
    assert ok(config, "psbt", "sign", str(file), "--signer", "bob")["complete"] is True
    txid = ok(config, "psbt", "broadcast", str(file))["txid"]
    net.mine(1)
    refreshed_at = net.chain.height()
    ok(config, "wallet", "sync")
    assert net.chain.rpc("gettxout", *split(old)) is None  # spent on chain
    [new] = coins(config)
    assert new.split(":")[0] == txid and coins(config)[new]["confirmations"] == 1
    assert [r["state"] for r in refreshes(config)] == ["confirmed"]
    assert timelock_findings(config) == {}
    [entry] = report(config)["recovery"]["coins"]
    assert (entry["outpoint"], entry["opens_at"]) == (new, refreshed_at + N)

    # the old coin's path would be open now (the next block is funded_at + N): the new coin's is not
    net.mine(funded_at + N - 1 - net.chain.height())
    raw = heir_only_spend(config, new)
    accept = judged(config, raw)
    assert not accept.allowed and accept.reason == "transaction's sequence locks on inputs not met", accept
    net.mine(refreshed_at + N - 1 - net.chain.height())  # N confirmations: the next block may hold it
    accept = judged(config, raw)
    assert accept.allowed, accept
