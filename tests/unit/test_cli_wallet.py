"""The wallet, signer and psbt commands as a user runs them (CliRunner + one subprocess).

Everything here runs without a node: commands that need the chain are in
tests/integration/test_wallet_flow.py (real btcd). Where a PSBT session is
needed, it is created through the library on a MemoryChain (real blocks, no
node), and the CLI is then used on the PSBT file, as a signer would.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from embit import ec
from embit.networks import NETWORKS
from embit.script import Script, p2wpkh
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from l2custody.chain.memory import MemoryChain
from l2custody.cli.main import app
from l2custody.config import load_config
from l2custody.wallet.psbt import load_psbt
from l2custody.wallet.service import Wallet
from tests.support.cli_runner import (
    L2CUSTODY,
    create_wallet,
    fails,
    init_regtest,
    invoke,
    ok,
    run,
    runner,
    software_signers,
)

MAINNET_ADDR = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"


def foreign_address() -> str:
    return p2wpkh(ec.PrivateKey(os.urandom(32)).get_public_key()).address(NETWORKS["regtest"])


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return init_regtest(tmp_path)


@pytest.fixture
def signers(config: Path, tmp_path: Path) -> list[str]:
    """Three software signers; returns their keys for `wallet create`."""
    return software_signers(config, tmp_path)


@pytest.fixture
def wallet(config: Path, signers: list[str]) -> Path:
    create_wallet(config, signers)
    return config


# --- init ---------------------------------------------------------------------


def test_init_writes_config_and_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    out = ok(
        path,
        "init",
        "--network",
        "signet",
        "--data-dir",
        str(tmp_path / "d"),
        "--chain-cookie",
        str(tmp_path / ".cookie"),
    )
    assert out["network"] == "signet" and Path(out["config"]) == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and (tmp_path / "d").is_dir()
    err = fails(path, "init", "--network", "regtest", code=11)
    assert "--force" in err["error"]
    assert load_config(path).network == "signet"
    ok(
        path,
        "init",
        "--network",
        "regtest",
        "--force",
        "--data-dir",
        str(tmp_path / "d"),
        "--chain-cookie",
        str(tmp_path / ".cookie"),
    )
    assert load_config(path).network == "regtest"


def test_bad_config_value_is_reported_with_key_and_file(config: Path) -> None:
    config.write_text(config.read_text().replace("gap_limit = 20", "gap_limit = -1"))
    err = fails(config, "wallet", "balance", code=11)
    assert "wallet.gap_limit" in err["error"] and str(config) in err["error"]


def test_missing_config_says_how_to_start(tmp_path: Path) -> None:
    result = run(tmp_path / "none.toml", "wallet", "balance")
    assert result.exit_code == 2
    assert "l2custody init" in result.stderr


# --- signers and wallet creation --------------------------------------------------------


def test_signer_key_file_must_be_private(config: Path, tmp_path: Path) -> None:
    key = tmp_path / "loose.key"
    ok(config, "signer", "add", "x", "--software", str(key), "--generate")
    key.chmod(0o644)
    err = fails(config, "signer", "add", "y", "--software", str(key), code=35)
    assert "chmod 600" in err["error"]


def test_signer_list_shows_wallet_membership(wallet: Path, tmp_path: Path) -> None:
    rows = ok(wallet, "signer", "list")
    assert {r["name"]: r["in_wallet"] for r in rows} == {"alice": True, "bob": True, "carol": True}
    err = fails(wallet, "signer", "add", "mallory", "--software", str(tmp_path / "m.key"), "--generate", code=35)
    assert "not one of the wallet's keys" in err["error"]


def test_signer_add_needs_exactly_one_kind(config: Path, tmp_path: Path) -> None:
    err = fails(config, "signer", "add", "x", code=10)
    assert "exactly one of" in err["error"]


def test_wallet_create_prints_descriptor_and_first_address(config: Path, signers: list[str]) -> None:
    out = ok(config, "wallet", "create", "-k", "2", *sum((["--key", k] for k in signers), []), "--name", "vault")
    assert out["threshold"] == 2 and out["keys"] == 3 and out["name"] == "vault"
    assert out["descriptor"].startswith("wsh(sortedmulti(2,") and out["first_address"].startswith("bcrt1q")
    err = fails(config, "wallet", "create", "-k", "1", "--key", signers[0])
    assert "one wallet per config" in err["error"]


@pytest.mark.parametrize(
    "case, code, needle",
    [
        ("k-too-big", 20, "more than the 3 keys"),
        ("k-zero", 20, "at least 1"),
        ("duplicate", 20, "same key"),
        ("no-origin", 20, "origin"),
    ],
)
def test_wallet_create_refusals(config: Path, signers: list[str], case: str, code: int, needle: str) -> None:
    keys = list(signers)
    k = "2"
    if case == "k-too-big":
        k = "4"
    elif case == "k-zero":
        k = "0"
    elif case == "duplicate":
        keys[2] = keys[0]
    elif case == "no-origin":
        keys[1] = keys[1].split("]", 1)[1]
    err = fails(config, "wallet", "create", "-k", k, *sum((["--key", x] for x in keys), []), code=code)
    assert needle in err["error"]


def test_wallet_create_refuses_mainnet_keys_on_regtest(config: Path, tmp_path: Path) -> None:
    from embit import bip32

    keys = []
    for _ in range(2):
        root = bip32.HDKey.from_seed(os.urandom(32))
        acct = root.derive("m/48h/0h/0h/2h").to_public()
        keys.append(f"[{root.my_fingerprint.hex()}/48h/0h/0h/2h]{acct.to_base58()}")
    err = fails(config, "wallet", "create", "-k", "2", "--key", keys[0], "--key", keys[1], code=13)
    assert "mainnet" in err["error"]


def test_commands_before_a_wallet_exists_say_how_to_create_one(config: Path) -> None:
    err = fails(config, "wallet", "balance", code=21)
    assert "wallet create" in err["error"]


def test_export_and_import_round_trip(wallet: Path, tmp_path: Path) -> None:
    desc = ok(wallet, "wallet", "export")["export"]
    bsms = ok(wallet, "wallet", "export", "--format", "bsms")["export"]
    core = ok(wallet, "wallet", "export", "--format", "core")["export"]
    first = ok(wallet, "wallet", "address")["address"]
    assert bsms.startswith("BSMS 1.0") and first in bsms
    for i, text in enumerate([desc, bsms, core]):
        other = tmp_path / f"other{i}.toml"
        ok(
            other,
            "init",
            "--network",
            "regtest",
            "--data-dir",
            str(tmp_path / f"d{i}"),
            "--chain-user",
            "u",
            "--chain-password",
            "p",
        )
        source = tmp_path / f"export{i}.txt"
        source.write_text(text)
        out = ok(other, "wallet", "import", str(source), "--name", f"copy{i}")
        assert out["first_address"] == first and out["threshold"] == 2


def test_import_rejects_garbage_with_a_reason(config: Path) -> None:
    err = fails(config, "wallet", "import", "wsh(sortedmulti(2,nonsense))", code=20)
    assert err["error"]


# --- addresses and balance --------------------------------------------------------------------


def test_addresses_are_handed_out_once_and_listed(wallet: Path) -> None:
    a = ok(wallet, "wallet", "address", "--label", "exchange")
    b = ok(wallet, "wallet", "address")
    assert (a["index"], b["index"]) == (0, 1) and a["address"] != b["address"]
    listed = ok(wallet, "wallet", "addresses")
    assert [(x["index"], x["label"]) for x in listed] == [(0, "exchange"), (1, None)]
    human = run(wallet, "wallet", "addresses")
    assert "exchange" in human.stdout and a["address"] in human.stdout


def test_balance_without_sync_is_zero_and_readable(wallet: Path) -> None:
    assert ok(wallet, "wallet", "balance")["total"] == 0
    human = run(wallet, "wallet", "balance")
    assert human.exit_code == 0 and "never synced" in human.stdout


def test_send_to_a_mainnet_address_is_refused(wallet: Path) -> None:
    err = fails(wallet, "wallet", "send", MAINNET_ADDR, "10000", "--fee-rate", "2", code=13)
    assert MAINNET_ADDR in err["error"] and "mainnet" in err["error"]


def test_send_to_a_foreign_address_needs_the_policy(wallet: Path) -> None:
    dest = foreign_address()
    err = fails(wallet, "wallet", "send", dest, "0.0001btc", "--fee-rate", "2", code=32)
    assert dest in err["error"] and "allowed_destinations" in err["error"]


def test_send_rejects_a_bad_amount(wallet: Path) -> None:
    err = fails(wallet, "wallet", "send", foreign_address(), "1.5 bananas", code=12)
    assert "bananas" in err["error"]


# --- PSBT sessions through the CLI ------------------------------------------------------------------


@pytest.fixture
def session(wallet: Path, tmp_path: Path):
    """A funded wallet (MemoryChain) with a verified send session; returns (config, file, dest, wallet)."""
    dest = foreign_address()
    cfg_text = wallet.read_text().replace("allowed_destinations = []", f'allowed_destinations = ["{dest}"]')
    wallet.write_text(cfg_text)
    chain = MemoryChain()
    w = Wallet.open(load_config(wallet), chain=chain)
    for value in (400_000, 600_000):
        spk = w.descriptor.derive(False, w.next_address().index).script_pubkey
        chain.add_block(
            [Transaction(vin=[TransactionInput(os.urandom(32), 0)], vout=[TransactionOutput(value, Script(spk))])]
        )
    w.sync()
    s = w.create_send(dest, 500_000, fee_rate=3)
    path = tmp_path / "pay.psbt"
    path.write_bytes(s.psbt.serialize())
    yield wallet, path, dest, w
    w.close()


def test_psbt_show_lists_inputs_outputs_and_fee(session) -> None:
    config, path, dest, w = session
    out = ok(config, "psbt", "show", str(path))
    kinds = sorted(o["kind"] for o in out["summary"]["outputs"])
    assert kinds == ["change", "foreign"] and out["session"]["state"] == "verified"
    human = run(config, "psbt", "show", str(path)).stdout
    assert dest in human and "Fee:" in human and "change/" in human


def test_psbt_verify_passes_on_the_saved_psbt(session) -> None:
    config, path, dest, w = session
    assert ok(config, "psbt", "verify", str(path))["ok"] is True


def _tamper(path: Path, fn) -> Path:  # type: ignore[no-untyped-def]
    psbt = load_psbt(path.read_bytes())
    fn(psbt)
    out = path.with_name("tampered.psbt")
    out.write_bytes(psbt.serialize())
    return out


def _foreign_index(psbt, dest: str) -> int:  # type: ignore[no-untyped-def]
    from l2custody.wallet.addresses import address_to_script

    spk = address_to_script(dest, "regtest")
    return next(i for i, o in enumerate(psbt.tx.vout) if o.script_pubkey.data == spk)


def test_swapped_output_is_refused_naming_it(session) -> None:
    config, path, dest, w = session
    thief = foreign_address()
    from l2custody.wallet.addresses import address_to_script

    def swap(psbt) -> None:  # type: ignore[no-untyped-def]
        psbt.outputs[_foreign_index(psbt, dest)].script_pubkey = Script(address_to_script(thief, "regtest"))

    bad = _tamper(path, swap)
    for command in (["psbt", "verify", str(bad)], ["psbt", "sign", str(bad), "--signer", "alice"]):
        err = fails(config, *command, code=31)
        assert thief in err["error"] and "output" in err["error"]
    assert load_psbt(bad.read_bytes()).inputs[0].partial_sigs == {}  # nothing was signed


def test_fee_above_the_cap_is_refused(session) -> None:
    config, path, dest, w = session
    config.write_text(config.read_text().replace("max_fee_sat = 100000", "max_fee_sat = 5000"))

    def burn(psbt) -> None:  # type: ignore[no-untyped-def]
        change = 1 - _foreign_index(psbt, dest)
        psbt.outputs[change].value -= 20_000  # the difference goes to the miners

    err = fails(config, "psbt", "sign", str(_tamper(path, burn)), "--signer", "alice", code=32)
    assert "fee" in err["error"] and "max_fee_sat" in err["error"]


def test_foreign_change_is_refused_naming_the_output(session) -> None:
    """An output claiming to be change of another wallet's keys (no session to hide behind)."""
    config, path, dest, w = session
    from embit import bip32
    from embit.psbt import DerivationPath

    root = bip32.HDKey.from_seed(os.urandom(32), version=NETWORKS["test"]["xprv"])

    def foreign_change(psbt) -> None:  # type: ignore[no-untyped-def]
        i = _foreign_index(psbt, dest)
        pub = root.derive("m/48h/1h/0h/2h/1/0").get_public_key()
        psbt.outputs[i].bip32_derivations[pub] = DerivationPath(
            root.my_fingerprint, [0x80000030, 0x80000001, 0x80000000, 0x80000002, 1, 0]
        )
        psbt.unknown.clear()
        psbt.locktime += 1  # a different transaction: no session matches it

    err = fails(config, "psbt", "verify", str(_tamper(path, foreign_change)), code=31)
    assert "foreign change" in err["error"] and "output" in err["error"] and dest in err["error"]


def test_psbt_of_another_network_is_refused(session) -> None:
    """The same keys announced as mainnet xpubs: a PSBT made for another network."""
    config, path, dest, w = session
    from embit import bip32

    def mainnet(psbt) -> None:  # type: ignore[no-untyped-def]
        psbt.xpubs = {
            bip32.HDKey.from_base58(k.to_base58(NETWORKS["main"]["xpub"])): der for k, der in psbt.xpubs.items()
        }

    err = fails(config, "psbt", "verify", str(_tamper(path, mainnet)), code=13)
    assert "mainnet" in err["error"] or "main" in err["error"]


def test_psbt_signed_by_two_signers_through_the_cli_is_complete(session, tmp_path: Path) -> None:
    config, path, dest, w = session
    first = ok(config, "psbt", "sign", str(path), "--signer", "alice")
    assert first["added"] == 1 and not first["complete"]
    # a file signer: the first call exports, bob signs "elsewhere" and drops the file back
    ok(config, "signer", "add", "bob-usb", "--file-dir", str(tmp_path / "usb"))
    exported = ok(config, "psbt", "sign", str(path), "--signer", "bob-usb")
    assert exported["exported"] and exported["added"] == 0
    from l2custody.wallet.signers import SoftwareSigner

    unsigned = load_psbt(Path(exported["exported"][0]).read_bytes())
    signed = SoftwareSigner.from_file(tmp_path / "bob.key").sign(unsigned)
    (tmp_path / "usb" / f"{first['session']}-signed.psbt").write_bytes(signed.serialize())
    second = ok(config, "psbt", "sign", str(path), "--signer", "bob-usb")
    assert second["added"] == 1 and second["complete"]
    final = ok(config, "psbt", "finalize", str(path))
    assert final["txid"] == w.verify(load_psbt(path.read_bytes())).txid
    log = [(e.action, e.details.get("signer")) for e in w.store.audit_log(first["session"])]
    assert ("psbt-signed", "alice") in log and ("psbt-signed", "bob-usb") in log and ("psbt-finalized", None) in log


def test_combine_merges_copies_signed_apart(session, tmp_path: Path) -> None:
    config, path, dest, w = session
    a, b = tmp_path / "a.psbt", tmp_path / "b.psbt"
    a.write_bytes(path.read_bytes())
    b.write_bytes(path.read_bytes())
    ok(config, "psbt", "sign", str(a), "--signer", "alice")
    # bob signs a pristine copy: the session already holds alice's signature, so his file gets both
    ok(config, "psbt", "sign", str(b), "--signer", "bob")
    out = ok(config, "psbt", "combine", str(a), str(b), "--out", str(tmp_path / "both.psbt"))
    assert out["complete"] is True


def test_export_writes_the_session_psbt_with_its_signatures(session, tmp_path: Path) -> None:
    config, path, dest, w = session
    signed = ok(config, "psbt", "sign", str(path), "--signer", "alice", "--out", str(tmp_path / "elsewhere.psbt"))
    out = ok(config, "psbt", "export", signed["session"], "--out", str(tmp_path / "again.psbt"))
    psbt = load_psbt((tmp_path / "again.psbt").read_bytes())
    assert out["state"] == "partially-signed" and sum(len(i.partial_sigs) for i in psbt.inputs) >= 1
    err = fails(config, "psbt", "export", "0000000000000000", code=61)
    assert "psbt list" in err["error"]


def test_hardware_signer_without_hwi_says_how_to_install(session) -> None:
    config, path, dest, w = session
    try:
        import hwilib  # noqa: F401

        pytest.skip("HWI is installed here; this checks the message when it is missing")
    except ImportError:
        pass
    fp = w.descriptor.keys[0].fingerprint
    ok(config, "signer", "add", "ledger", "--hwi", fp)
    err = fails(config, "psbt", "sign", str(path), "--signer", "ledger", code=36)
    assert "pip install" in err["error"] and "hwi" in err["error"]


def test_abort_releases_the_coins(session) -> None:
    config, path, dest, w = session
    sid = ok(config, "psbt", "list")[0]["id"]
    assert ok(config, "wallet", "balance")["reserved"] > 0
    assert ok(config, "psbt", "abort", sid, "--reason", "test")["released"] >= 1
    assert ok(config, "wallet", "balance")["reserved"] == 0
    err = fails(config, "psbt", "sign", str(path), "--signer", "alice", code=30)
    assert "aborted" in err["error"]


def test_unreadable_psbt_file_names_the_file(wallet: Path, tmp_path: Path) -> None:
    bad = tmp_path / "junk.psbt"
    bad.write_text("hello")
    err = fails(wallet, "psbt", "show", str(bad), code=30)
    assert str(bad) in err["error"]


def test_help_texts_have_examples() -> None:
    for group in ("wallet", "psbt", "signer"):
        result = runner.invoke(app, [group, "--help"])
        assert result.exit_code == 0
    result = invoke(["wallet", "send", "--help"])
    assert "Example" in result.stdout and "--subtract-fee" in result.stdout


def test_balance_and_help_do_not_import_grpc_pyln_or_embit(wallet: Path) -> None:
    """Cold start: commands that do not need them must not pay for the heavy libraries."""
    import sys

    probe = (
        "import sys\nfrom l2custody.cli.main import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('grpc', 'pyln', 'lndgrpc', 'embit'))\n"
        "print('HEAVY', heavy, file=sys.stderr)"
    )
    env = {**os.environ, "L2CUSTODY_CONFIG": str(wallet)}
    for argv in (["--help"], ["wallet", "balance"], ["wallet", "utxos"]):
        proc = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, env=env, timeout=60)
        assert "HEAVY []" in proc.stderr, (argv, proc.stderr[-500:])


def test_installed_command_runs_as_a_user_would(wallet: Path) -> None:
    env = {**os.environ, "L2CUSTODY_CONFIG": str(wallet)}
    proc = subprocess.run(
        [str(L2CUSTODY), "--json", "wallet", "balance"], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["total"] == 0
    proc = subprocess.run(
        [str(L2CUSTODY), "wallet", "send", MAINNET_ADDR, "1000"], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 2 and "mainnet" in proc.stderr and proc.stderr.startswith("error:")
