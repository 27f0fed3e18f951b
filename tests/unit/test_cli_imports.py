"""What each command loads: a command imports its own CLI module and the library parts it
needs, nothing else (start-up time is most of what a read command costs; see
benchmarks/bench_cli.py). Each case runs the real entry point in a fresh interpreter and
lists the modules it ended with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli_runner import create_wallet, init_regtest, ok, software_signers

PROBE = (
    "import sys\nfrom l2custody.cli.main import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
    "print('MODULES', __import__('json').dumps(sorted(sys.modules)), file=sys.stderr)"
)
#: Never needed by any command (typer must not build options through pydantic; lnd-grpc-client's
#: own clients and their asyncio layer are not ours).
NEVER = ("pydantic", "lndgrpc.client", "lndgrpc.aio")
HEAVY = ("grpc", "pyln", "lndgrpc", "embit", "google.protobuf")


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A regtest wallet with one lnd node registered at a closed port (reads fail fast)."""
    d = tmp_path_factory.mktemp("imports")
    path = init_regtest(d)
    create_wallet(path, software_signers(path, d))
    (d / "tls.cert").write_text("not a certificate\n")
    (d / "admin.macaroon").write_bytes(b"\x02\x01" + bytes(62))  # shaped like lnd's (never used: port 9 is closed)
    ok(
        path,
        "node",
        "add",
        "west",
        "--lnd",
        "--host",
        "127.0.0.1:9",
        "--tls-cert",
        str(d / "tls.cert"),
        "--macaroon",
        str(d / "admin.macaroon"),
    )
    (d / "lightning-rpc").write_text("")
    ok(path, "node", "add", "east", "--cln", "--rpc-file", str(d / "lightning-rpc"))
    return path


def loaded(config: Path, *argv: str) -> set[str]:
    env = {**os.environ, "L2CUSTODY_CONFIG": str(config)}
    proc = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, env=env, timeout=60)
    line = next(ln for ln in proc.stderr.splitlines() if ln.startswith("MODULES "))
    return set(json.loads(line.split(" ", 1)[1]))


def family(modules: set[str], *prefixes: str) -> set[str]:
    return {m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes)}


def cli_modules(modules: set[str]) -> set[str]:
    return {m.split(".")[2] for m in family(modules, "l2custody.cli") if m.count(".") >= 2} - {
        "main",
        "render",
        "params",
    }


@pytest.mark.parametrize(
    ("argv", "cli", "heavy_allowed"),
    [
        (["--help"], set(), set()),
        (["wallet", "balance"], {"wallet"}, set()),
        (["wallet", "utxos"], {"wallet"}, set()),
        (["wallet", "rehearse", "--abort"], {"wallet", "wallet_rehearse"}, {"embit"}),  # its error is redacted
        (["node", "list"], {"node"}, set()),
        (["session", "list"], {"session", "funding_render"}, {"embit"}),
        (["report", "--no-sync", "--node", "nowhere"], {"report"}, {"embit"}),
        (
            ["channel", "list", "--node", "west"],
            {"channel", "channel_view"},
            {"grpc", "lndgrpc", "google.protobuf", "embit"},
        ),
        (
            ["channel", "list", "--node", "east"],
            {"channel", "channel_view"},
            {"pyln", "embit"},
        ),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_a_command_loads_only_what_it_needs(
    config: Path, argv: list[str], cli: set[str], heavy_allowed: set[str]
) -> None:
    modules = loaded(config, *argv)
    assert not family(modules, *NEVER), family(modules, *NEVER)
    assert cli_modules(modules) <= cli, cli_modules(modules) - cli
    heavy = {
        m.split(".")[0] if not m.startswith("google.protobuf") else "google.protobuf" for m in family(modules, *HEAVY)
    }
    assert heavy <= heavy_allowed, heavy - heavy_allowed
    if "grpc" in heavy_allowed:  # only lnd's lightning and walletkit stubs (walletkit needs signer's)
        assert family(modules, "lndgrpc.compiled") == {
            "lndgrpc.compiled",
            "lndgrpc.compiled.lightning_pb2",
            "lndgrpc.compiled.lightning_pb2_grpc",
            "lndgrpc.compiled.walletkit_pb2",
            "lndgrpc.compiled.walletkit_pb2_grpc",
            "lndgrpc.compiled.signer_pb2",
        }
    if "pyln" in heavy_allowed:  # only pyln-client's JSON-RPC client, not its plugin framework or pyln-proto
        assert family(modules, "pyln") == {"pyln", "pyln.client", "pyln.client.lightning"}, family(modules, "pyln")
    if argv != ["--help"]:
        assert not family(
            modules,
            "l2custody.custody.funding.negotiate",
            "l2custody.custody.watch",
            "l2custody.custody.sweeping",
            "l2custody.wallet.review",
        )


def test_help_builds_no_command() -> None:
    modules = loaded(Path("/nonexistent/config.toml"), "--help")
    assert cli_modules(modules) == set() and not family(modules, "l2custody.api", "l2custody.config")


def test_the_help_lines_are_the_commands_own() -> None:
    """``l2custody --help`` lists COMMANDS' lines without loading the commands: they must be
    the lines the commands' own modules declare."""
    import typer.main

    from l2custody.cli import main

    main._register()
    real = typer.main.get_command(main.app)
    assert set(real.commands) == set(main.COMMANDS)  # type: ignore[attr-defined]
    for name, (_modules, line) in main.COMMANDS.items():
        assert real.commands[name].get_short_help_str(limit=300) == line, name  # type: ignore[attr-defined]


def test_the_node_libraries_are_still_whole_for_whoever_asks_for_them() -> None:
    code = (
        "from l2custody.backends.partial_import import submodule\n"
        "submodule('lndgrpc', 'compiled.lightning_pb2')\nsubmodule('pyln.client', 'lightning')\n"
        "import sys\nassert 'lndgrpc.client' not in sys.modules and 'pyln.client.plugin' not in sys.modules\n"
        "import lndgrpc\nfrom pyln.client import Plugin\nprint(lndgrpc.LNDClient.__name__, Plugin.__name__)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "LNDClient Plugin", proc.stderr


def test_a_usage_error_is_a_message_not_a_traceback(config: Path) -> None:
    env = {**os.environ, "L2CUSTODY_CONFIG": str(config)}
    for argv in (["wallet", "balance", "--bogus"], ["nosuchcommand"], ["channel", "show"]):
        proc = subprocess.run(
            [sys.executable, "-m", "l2custody.cli.main", *argv], capture_output=True, text=True, env=env, timeout=60
        )
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, (argv, proc.stderr[-800:])
        assert "Error" in proc.stderr or "error" in proc.stderr
