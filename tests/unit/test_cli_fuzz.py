"""Every command of the CLI with generated arguments (issue 11's "prove there is no class
left"): hypothesis picks a command from the real command tree, fills its arguments and a
random subset of its options with values an operator mistypes or an attacker tries, and
runs it against a store that has a wallet, signers and two (unreachable) nodes. Whatever
comes in, the command ends in its output or in one typed error — as JSON with --json —
and never in a traceback. ``watch`` (a service) and ``--wait`` (a poll) are left out."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
import typer.main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.cli_runner import invoke, ok
from tests.support.wallet import WALLET

NASTY = [
    "",
    " ",
    "0",
    "-1",
    "1",
    "2",
    "1e999",
    "nan",
    "２",
    "²",
    "0,5btc",
    "1,000",
    "10000",
    "0.001btc",
    "1.5btc",
    "21000001btc",
    "99999999999999999999999",
    "0x10",
    "ab" * 32 + ":0",
    "ab" * 32 + ":99999999999",
    "02" + "ab" * 32,
    "02" + "ab" * 32 + "@[::1",
    "x" * 300,
    "~nosuchuser/x",
    "/",
    "/etc/passwd",
    "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kzmrvp4",
    "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
    "west",
    "east",
    "alice",
    "0123456789abcdef",
    "127.0.0.1:99999",
    "http://u:p@[::1",
    "\x1b[31m",
    "a\tb",
    "-",
    "--",
    "'",
    '"',
    "{}",
    "[]",
    "1:2:3",
    "tprv8ZgxMBicQKsPd",
    "ünïcödé",
]


def _leaf_commands() -> list[tuple[list[str], click.Command]]:
    from l2custody.cli import main

    main._register()
    found: list[tuple[list[str], click.Command]] = []

    def walk(cmd: click.Command, path: list[str]) -> None:
        subs = getattr(cmd, "commands", {})
        if not subs and path and path[0] != "watch":
            found.append((path, cmd))
        for name, sub in subs.items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(main.app), [])
    return found


COMMANDS = _leaf_commands()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("fuzz")
    config = base / "config.toml"
    ok(
        config,
        "init",
        "--network",
        "regtest",
        "--data-dir",
        str(base / "data"),
        "--chain-user",
        "u",
        "--chain-password",
        "p",
        "--chain-url",
        "http://127.0.0.1:9",
    )
    ok(config, "wallet", "import", WALLET["descriptor"])
    for name, mnemonic in zip(("alice", "bob", "carol"), WALLET["mnemonics"]):
        key = base / f"{name}.key"
        key.write_text(mnemonic + "\n")
        key.chmod(0o600)
        ok(config, "signer", "add", name, "--software", str(key))
    macaroon = base / "admin.macaroon"
    macaroon.write_bytes(b"\x02" + b"\x01" * 63)
    ok(config, "node", "add", "west", "--lnd", "--host", "127.0.0.1:9", "--macaroon", str(macaroon))
    rpc = base / "lightning-rpc"
    rpc.write_text("")
    ok(config, "node", "add", "east", "--cln", "--rpc-file", str(rpc))
    return config


@st.composite
def command_lines(
    draw: st.DrawFn,
    commands: list[tuple[list[str], click.Command]] = COMMANDS,
    words: list[str] = NASTY,
) -> list[str]:
    """One of ``commands`` with its arguments and a random subset of its options, each value
    one of ``words`` or any text (never --wait/--wait-signers: those poll)."""
    path, cmd = draw(st.sampled_from(commands))
    argv = list(path)
    value = st.sampled_from(words) | st.text(max_size=20)
    for p in cmd.params:
        if isinstance(p, click.Argument):
            argv += [draw(value) for _ in range(1 if p.nargs == 1 else draw(st.integers(1, 2)))]
        elif p.opts[0] not in ("--wait", "--wait-signers") and draw(st.booleans()):
            argv += [p.opts[0]] if getattr(p, "is_flag", False) else [p.opts[0], draw(value)]
    return argv


def ends_in_output_or_one_typed_json_error(home: Path, argv: list[str]) -> None:
    result = invoke(["--config", str(home), "--json", *argv])  # a traceback would raise here
    if result.exit_code == 0:
        return
    assert result.stdout.strip(), (argv, result.stderr[-300:])  # with --json the error is on stdout
    text = result.stdout.strip()
    try:
        out = json.loads(text)
    except json.JSONDecodeError:
        out = json.loads(text.splitlines()[-1])
    assert "error" in out or "ok" in out, (argv, text[-300:])
    if "error" in out:
        assert isinstance(out["code"], int) and out["kind"], out


@settings(max_examples=250, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(command_lines())
def test_any_command_line_ends_in_output_or_one_typed_json_error(home: Path, argv: list[str]) -> None:
    ends_in_output_or_one_typed_json_error(home, argv)


# Issues 12 and 13 gave the wallet a history: generations (rotate, migrate, rehearse)
# and recovery paths (refresh, recover). The same fuzz again, on wallets that have one,
# with the words their options take, and coins (on a MemoryChain: the store has them).
KEY_LIFE = [
    "heir@10",
    "heir@0",
    "heir@65536",
    "heir@-1",
    "@10",
    "heir@",
    "2:heir,dave@20",
    "3:heir@20",
    "1:,@5",
    "alice@10",
    "carol",
    "dave",
    "1",
    "99",
    "rh-00000000",
    "generation 1",
]
WALLET_GROUPS = ("wallet", "psbt", "signer", "report", "channel")
HISTORY_COMMANDS = [(path, cmd) for path, cmd in COMMANDS if path[0] in WALLET_GROUPS]


def _with_coins(config: Path, values: list[int]) -> list[str]:
    """Coins paid to the wallet's current generation, as the store keeps them after a sync."""
    import os

    from embit.script import Script
    from embit.transaction import Transaction, TransactionInput, TransactionOutput

    from l2custody.chain.memory import MemoryChain
    from l2custody.config import load_config
    from l2custody.wallet.service import Wallet

    chain = MemoryChain()
    points = []
    with Wallet.open(load_config(config), chain=chain) as w:
        for value in values:
            spk = w.descriptor.derive(False, w.next_address().index).script_pubkey
            tx = Transaction(vin=[TransactionInput(os.urandom(32), 0)], vout=[TransactionOutput(value, Script(spk))])
            chain.add_block([tx])
            points.append(f"{tx.txid().hex()}:0")
        w.sync()
    return points


@pytest.fixture(scope="module", params=["recovery", "rotated"])
def history_home(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    from tests.support.cli_runner import init_regtest, software_signers

    base = tmp_path_factory.mktemp(request.param)
    config = init_regtest(base)
    keys = software_signers(config, base, ("alice", "bob", "carol", "heir"))
    create = ["wallet", "create", "-k", "2", *sum((["--key", k] for k in keys[:3]), [])]
    if request.param == "recovery":
        ok(config, *create, "--recovery", f"{keys[3]}@10")
        points = _with_coins(config, [400_000, 250_000])
    else:
        ok(config, *create)
        points = _with_coins(config, [400_000, 250_000])
        ok(config, "wallet", "rotate", "--remove", "carol", "--add", keys[3], "--reason", "carol left", "--yes")
    return config, points


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_wallets_with_generations_or_recovery_paths_never_crash_either(
    history_home: tuple[Path, list[str]], data: st.DataObject
) -> None:
    home, points = history_home
    ends_in_output_or_one_typed_json_error(home, data.draw(command_lines(HISTORY_COMMANDS, NASTY + KEY_LIFE + points)))
