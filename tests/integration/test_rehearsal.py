"""`wallet rehearse` on a real btcd, driven through the CLI as an operator runs it.

A 2-of-3 whose third key lives on an air-gapped machine (a file signer, "vault": the test
plays the machine, signing the exported PSBT with that key) is funded from the faucet. A
rehearsal with a software signer and the file signer is confirmed and recorded, btcd agreeing
on every output; a second one, where the air-gapped machine hands the PSBT back unsigned,
fails and leaves no coin reserved; a scripted run finishes a third in one command. `report`
shows each state. btcd is the oracle: its mempool, its UTXO set (`gettxout`) and its
decoded transactions.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from l2custody.config import load_config
from l2custody.store import Store
from l2custody.wallet.psbt import load_psbt
from l2custody.wallet.signers import SoftwareSigner, generate_mnemonic, write_secret_file
from regtest import Network, wait_for
from tests.support.cli_runner import create_wallet, init_on_chain, ok, run, software_signers

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def setup(chain_network: Network, tmp_path_factory: pytest.TempPathFactory) -> tuple[Network, Path, Path]:
    """alice and bob (software keys) and vault (air-gapped, its key only on the 'machine')."""
    net = chain_network
    d = tmp_path_factory.mktemp("rehearsal")
    config = init_on_chain(d, net.chain, rehearsal_required=True)
    keys = software_signers(config, d, ("alice", "bob"))
    machine = d / "airgap-machine" / "vault.key"
    write_secret_file(machine, generate_mnemonic(24))
    vault = SoftwareSigner.from_file(machine)
    create_wallet(config, [*keys, vault.account_key(network="regtest").to_string()])
    ok(config, "signer", "add", "vault", "--file-dir", str(d / "usb"), "--fingerprint", vault.fingerprint)
    net.fund_addresses([(ok(config, "wallet", "address")["address"], 1_000_000)])
    net.mine(1)
    ok(config, "wallet", "sync")
    return net, config, machine


def rehearse(config: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = run(config, "wallet", "rehearse", "--fee-rate", "2", *args, json_out=True)
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def airgap_signs(machine: Path, exported_txt: str, *, sign: bool = True) -> Path:
    """The air-gapped machine reads the exported PSBT, signs it (or refuses: hands it back as
    it came), and writes SESSION-signed.psbt back to the USB folder."""
    exported = Path(exported_txt)
    psbt = load_psbt(exported.read_text())
    if sign:
        psbt = SoftwareSigner.from_file(machine).sign(psbt)
    back = exported.parent / exported.name.replace(".psbt.txt", "-signed.psbt")
    back.write_bytes(psbt.serialize())
    return back


def report(config: Path) -> tuple[int, dict[str, Any]]:
    result = run(config, "report", json_out=True)
    return result.exit_code, json.loads(result.stdout)


def rehearsal_findings(out: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f["kind"], f["subject"]) for f in out["findings"] if f["check"] == "rehearsal"}


def mempool(net: Network) -> list[str]:
    return list(net.chain.rpc("getrawmempool"))


def sats(btc: float) -> int:
    return round(btc * 100_000_000)


def test_a_software_and_a_file_signer_rehearse_to_a_confirmed_spend(setup: tuple[Network, Path, Path]) -> None:
    net, config, machine = setup
    code, out = report(config)
    assert code == 1 and rehearsal_findings(out) == {("never", "treasury#1")}

    code, r = rehearse(config, "--signers", "alice,vault", "--timeout", "0")
    assert (code, r["state"], r["waiting_for"]) == (1, "signing", ["vault"]), r
    assert list(r["details"]["signed"]) == ["alice"] and "put the signed file back" in r["next"]
    reserved = [u for u in ok(config, "wallet", "utxos") if u["reserved_by"]]
    assert [f"{u['txid']}:{u['vout']}" for u in reserved] == r["details"]["inputs"]
    assert mempool(net) == []

    airgap_signs(machine, r["details"]["exported"]["vault"][1])
    code, r = rehearse(config, "--timeout", "0")  # the same rehearsal continues: vault's file is picked up
    assert (code, r["state"], r["resumed"]) == (1, "broadcast", True), r
    txid = r["txid"]
    assert mempool(net) == [txid] and "once it has a confirmation" in r["next"]
    _code, out = report(config)
    assert out["rehearsal"]["pending"]["id"] == r["id"] and out["rehearsal"]["pending"]["state"] == "broadcast"

    net.mine(1)
    code, r = rehearse(config, "--timeout", "60")
    assert (code, r["state"], r["done"]) == (0, "confirmed", True), r
    assert r["height"] == net.chain.height()

    # btcd agrees: the rehearsal output and the change are unspent outputs to the addresses recorded
    tx = net.chain.rpc("getrawtransaction", txid, 1)
    receive, change = r["details"]["receive"], r["details"]["change"]
    for built, value in ((receive, 10_000), (change, change["value"])):
        out_ = net.chain.rpc("gettxout", txid, built["vout"])
        assert sats(out_["value"]) == value and out_["scriptPubKey"]["addresses"] == [built["address"]]
    assert len(tx["vout"]) == 2 and [f"{i['txid']}:{i['vout']}" for i in tx["vin"]] == r["details"]["inputs"]
    assert r["details"]["fee_paid"] == 1_000_000 - sum(sats(o["value"]) for o in tx["vout"]) > 0
    coins = {f"{u['txid']}:{u['vout']}": u for u in ok(config, "wallet", "utxos")}
    assert coins[f"{txid}:{receive['vout']}"]["value"] == 10_000 and not any(c["reserved_by"] for c in coins.values())

    with Store.open(load_config(config).store_path) as store:
        actions = [e.action for e in store.audit_log(subject=r["id"])]
    assert actions == [
        "rehearsal-started",
        "rehearsal-signed",
        "rehearsal-exported",
        "rehearsal-signed",
        "rehearsal-broadcasting",
        "rehearsal-broadcast",
        "rehearsal-confirmed",
    ]
    code, out = report(config)
    assert out["rehearsal"]["confirmed"]["id"] == r["id"] and out["rehearsal"]["pending"] is None
    signed = {s["name"]: s["last_signed"] for s in out["rehearsal"]["signers"]}
    assert signed["alice"] and signed["vault"] and signed["bob"] is None
    assert code == 1 and rehearsal_findings(out) == {("signer", "bob")}  # bob has not proven itself yet
    human = run(config, "report").stdout
    assert f"last confirmed: {r['id']} on " in human and "FAIL  rehearsal (1)" in human


def test_a_file_signer_handing_back_an_unsigned_psbt_fails_the_rehearsal(setup: tuple[Network, Path, Path]) -> None:
    net, config, machine = setup
    balance = ok(config, "wallet", "balance")
    code, r = rehearse(config, "--signers", "bob,vault")
    assert (code, r["state"]) == (1, "signing") and ok(config, "wallet", "balance")["reserved"] > 0

    airgap_signs(machine, r["details"]["exported"]["vault"][1], sign=False)  # the device refused
    result = run(config, "wallet", "rehearse", json_out=True)
    err = json.loads(result.stdout.strip().splitlines()[-1])
    assert result.exit_code == 2 and err["code"] == 35, err
    assert err["error"].startswith(f"rehearsal {r['id']} failed: signer vault: ")
    assert (
        "came back without its signature" in err["error"] and "coin(s) released; nothing was broadcast" in err["error"]
    )

    assert not any(u["reserved_by"] for u in ok(config, "wallet", "utxos"))  # no coin left reserved
    assert ok(config, "wallet", "balance") == balance and mempool(net) == []
    session = next(s for s in ok(config, "psbt", "list") if s["id"] == r["details"]["session"])
    assert session["state"] == "aborted"
    code, out = report(config)
    assert code == 1 and rehearsal_findings(out) == {("failed", r["id"]), ("signer", "bob")}
    assert (
        out["rehearsal"]["failed"]["id"] == r["id"] and "without its signature" in out["rehearsal"]["failed"]["error"]
    )


def test_a_scripted_run_waits_for_the_airgapped_signer_and_the_block(setup: tuple[Network, Path, Path]) -> None:
    """One command: --wait-signers polls vault's folder while the machine signs, --timeout
    waits for the block the harness mines once the transaction is in btcd's mempool."""
    net, config, machine = setup
    usb = config.parent / "usb"
    before = set(usb.glob("*.psbt.txt"))
    done = threading.Event()

    def harness() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not done.is_set():
            new = set(usb.glob("*.psbt.txt")) - before
            if new and not list(usb.glob(f"{next(iter(new)).name.split('.')[0]}-signed.psbt")):
                airgap_signs(machine, str(next(iter(new))))
            if mempool(net):
                net.mine(1)
                return
            time.sleep(0.1)

    helper = threading.Thread(target=harness)
    helper.start()
    try:
        code, r = rehearse(config, "--signers", "bob,vault", "--wait-signers", "60", "--timeout", "60")
    finally:
        done.set()
        helper.join()
    assert (code, r["state"], [s["name"] for s in r["signers"]]) == (0, "confirmed", ["bob", "vault"]), r
    wait_for(lambda: mempool(net) == [], 10, what="an empty mempool")
    code, out = report(config)
    assert code == 0 and rehearsal_findings(out) == set(), out["findings"]  # every signer proven, the failure cleared
