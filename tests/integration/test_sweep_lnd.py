"""Force close -> proceeds in lnd's wallet -> `sweep` to the multisig, on real lnd + btcd.

The channel commits its close to lnd's own wallet (a foreign upfront
address), so a cooperative close is refused and the operator force closes:
the proceeds reach lnd's wallet after the CSV delay (the harness peers ask
for 4 blocks), `sweep` moves them to a fresh multisig address keeping the
reserve, and the wallet holds them after a block. btcd and lnd are the
oracles for every figure.
"""

from __future__ import annotations

import json
import threading

import pytest

from regtest import Network, confirmed_balance, wait_for
from regtest.lnd import RPC_TIMEOUT
from tests.support.cli_runner import fails, ok, run
from tests.support.lnd_custody import (
    Setup,
    audit_actions,
    invoke_input,
    make_setup,
    open_channel,
    tx_outputs,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def setup(network: Network, tmp_path_factory: pytest.TempPathFactory) -> Setup:
    return make_setup(network, tmp_path_factory.mktemp("sweep"))


def _leases(node) -> int:  # type: ignore[no-untyped-def]
    from lndgrpc.compiled import walletkit_pb2 as wk

    return len(node.walletkit.ListLeases(wk.ListLeasesRequest(), timeout=RPC_TIMEOUT).locked_utxos)


def test_force_close_proceeds_reach_the_node_wallet(setup: Setup) -> None:
    net, (a, b) = setup.net, setup.net.lnd
    cp = open_channel(net, a, b, 500_000, close_address=a.new_address())
    confirmed = invoke_input(setup.config, "channel", "close", cp, "--force", input=f"{cp}\n")
    assert confirmed.exit_code == 0, confirmed.output
    report = json.loads(confirmed.stdout)
    assert report["force"] and report["address_source"] == "node-wallet"
    assert report["closing_txid"] in net.chain.rpc("getrawmempool")
    assert "Type the channel point" in confirmed.stderr

    net.mine(1)
    status = ok(setup.config, "channel", "close-status", cp)
    assert status["state"] == "pending" and status["kind"] == "force"
    assert status["limbo_sat"] > 0 and f"l2custody sweep {a.name}" in status["next_step"]
    before = confirmed_balance(a)

    def resolved() -> bool:
        net.mine(1)  # CSV delay, then lnd's sweep of our output into its wallet
        return ok(setup.config, "channel", "close-status", cp)["state"] == "in-node-wallet"

    wait_for(resolved, 120, what=f"lnd to sweep the force-closed {cp} into its wallet")
    wait_for(lambda: confirmed_balance(a) > before, 30, what=f"{a.name}'s wallet to show the proceeds")
    actions = [x for x, _ in audit_actions(setup, cp)]
    assert actions == ["close-requested", "close-broadcast", "force-close-resolved"]
    human = run(setup.config, "channel", "close-status", cp)
    assert human.exit_code == 0 and f"l2custody sweep {a.name}" in human.stdout


def test_dry_run_shows_the_figures_and_moves_nothing(setup: Setup) -> None:
    a = setup.net.lnd[0]
    balance = confirmed_balance(a)
    issued = {x["address"] for x in ok(setup.config, "wallet", "addresses", "--show-used")}
    plan = ok(setup.config, "sweep", a.name, "--dry-run", "--keep", "50000", "--fee-rate", "2")
    assert plan["dry_run"] and plan["node_confirmed_sat"] == balance
    assert plan["kept_sat"] >= 50_000 and plan["amount_sat"] + plan["fee_sat"] + plan["kept_sat"] == balance
    assert plan["address"] not in issued  # shown, not handed out
    assert confirmed_balance(a) == balance and _leases(a) == 0  # nothing sent, nothing locked
    human = run(setup.config, "sweep", a.name, "--dry-run", "--keep", "50000", "--fee-rate", "2")
    assert human.exit_code == 0 and "would send" in human.stdout and "nothing sent" in human.stdout
    assert ok(setup.config, "sweep-status") == []


def test_sweep_moves_the_node_wallet_to_the_multisig_keeping_the_reserve(setup: Setup) -> None:
    net, a = setup.net, setup.net.lnd[0]
    ok(setup.config, "wallet", "sync")
    wallet_before = ok(setup.config, "wallet", "balance")["confirmed"]
    preview = ok(setup.config, "sweep", a.name, "--dry-run", "--keep", "50000", "--fee-rate", "2")

    def miner() -> None:
        wait_for(lambda: len(net.chain.rpc("getrawmempool")) > 0, 60, what="the sweep in the mempool")
        net.mine(1)

    thread = threading.Thread(target=miner)
    thread.start()
    result = run(
        setup.config, "sweep", a.name, "--keep", "50000", "--fee-rate", "2", "--wait", "--timeout", "90", json_out=True
    )
    thread.join()
    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout)
    assert done["address"] == preview["address"] and done["amount_sat"] == preview["amount_sat"]
    assert done["status"]["state"] == "verified", done["status"]
    paid = dict(tx_outputs(net, done["txid"]))
    assert paid[done["address"]] == done["amount_sat"]  # btcd: the sweep pays the multisig
    ok(setup.config, "wallet", "sync")
    assert ok(setup.config, "wallet", "balance")["confirmed"] == wallet_before + done["amount_sat"]
    wait_for(lambda: confirmed_balance(a) == done["kept_sat"], 30, what=f"{a.name} to keep {done['kept_sat']} sat")
    assert done["kept_sat"] >= 50_000
    labels = {x["address"]: x["label"] for x in ok(setup.config, "wallet", "addresses", "--show-used")}
    assert labels[done["address"]] == f"sweep {a.name}"
    [st] = ok(setup.config, "sweep-status", a.name)
    assert st["state"] == "verified" and st["vout"] is not None
    actions = [x for x, _ in audit_actions(setup, f"sweep {done['id']}")]
    assert actions == ["sweep-started", "sweep-broadcast", "sweep-verified"]


def test_nothing_left_to_sweep_is_a_clear_error(setup: Setup) -> None:
    a = setup.net.lnd[0]
    err = fails(setup.config, "sweep", a.name, "--keep", "50000", "--fee-rate", "2", code=22)
    assert "nothing to sweep" in err["error"]
    statuses = ok(setup.config, "sweep-status", a.name)
    assert [s["state"] for s in statuses] == ["verified", "failed"]
    err = fails(setup.config, "sweep", a.name, "--keep", "-5", code=12)
    assert "-5" in err["error"] or "keep" in err["error"].lower()
