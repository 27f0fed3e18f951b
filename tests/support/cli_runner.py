"""Running the real ``l2custody`` entry point inside CliRunner's isolation, for CLI tests.

``l2custody.cli.main.main`` holds the error translation (message on stderr or
``{"error", "code"}`` with --json, non-zero exit), so tests go through it
rather than through ``app`` alone.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from typer.testing import CliRunner

import l2custody.cli.main

if TYPE_CHECKING:  # pragma: no cover
    from regtest.chain import ChainNode

l2custody.cli.main._register()
runner = CliRunner()
#: The installed console script, for the one subprocess run per suite.
L2CUSTODY = Path(sys.executable).parent / "l2custody"


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def invoke(argv: list[str]) -> Result:
    """Run ``l2custody ARGV`` in-process; returns exit code, stdout and stderr."""
    with runner.isolation() as (out, err, _mixed):
        try:
            l2custody.cli.main.main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return Result(code, out.getvalue().decode(), err.getvalue().decode())


def run(config: Path, *args: str, json_out: bool = False) -> Result:
    return invoke(["--config", str(config)] + (["--json"] if json_out else []) + list(args))


def ok(config: Path, *args: str) -> Any:
    """Run with --json, assert success, return the decoded output."""
    result = run(config, *args, json_out=True)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def fails(config: Path, *args: str, code: int | None = None) -> dict[str, Any]:
    """Run with --json, assert failure (and the error code), return the error object."""
    result = run(config, *args, json_out=True)
    assert result.exit_code != 0, result.output
    err = json.loads(result.stdout.strip().splitlines()[-1])
    if code is not None:
        assert err["code"] == code, err
    return err


def init_regtest(directory: Path) -> Path:
    """``l2custody init`` a regtest config at ``directory/config.toml`` (data in
    ``directory/data``, a chain login that is never dialled); returns its path."""
    path = directory / "config.toml"
    ok(
        path,
        "init",
        "--network",
        "regtest",
        "--data-dir",
        str(directory / "data"),
        "--chain-user",
        "u",
        "--chain-password",
        "p",
    )
    return path


def set_config(config: Path, table: str, key: str, value: str) -> None:
    """Set ``key = value`` (TOML text) in ``[table]`` of a config ``l2custody init`` wrote."""
    lines = config.read_text().splitlines(keepends=True)
    start = lines.index(f"[{table}]\n")
    for i in range(start + 1, len(lines)):
        if lines[i].startswith("["):
            break
        if lines[i].split("=")[0].strip() == key:
            comment = lines[i].partition("#")[2]
            lines[i] = f"{key} = {value}" + (f"   #{comment}" if comment else "\n")
            config.write_text("".join(lines))
            return
    raise AssertionError(f"{config} has no {key} in [{table}]")


def allow_unrehearsed_opens(config: Path) -> None:
    """``[rehearsal] required = false``: the tests that open channels without a rehearsal first
    (every one but those about rehearsal, tests/*/test_rehearsal*.py) use this config."""
    set_config(config, "rehearsal", "required", "false")


def init_on_chain(directory: Path, chain: ChainNode, *, rehearsal_required: bool = False) -> Path:
    """``l2custody init`` a regtest config at ``directory/config.toml`` that follows the
    harness ``chain`` (its RPC login, btcd's certificate, birthday = its height now). Channel
    opens need no rehearsal unless ``rehearsal_required`` (see ``allow_unrehearsed_opens``)."""
    path = directory / "config.toml"
    cert = ["--chain-cert", str(chain.rpc_cert)] if chain.rpc_cert is not None else []
    ok(
        path,
        "init",
        "--network",
        "regtest",
        "--data-dir",
        str(directory / "data"),
        "--chain-url",
        chain.rpc_url,
        "--chain-user",
        chain.rpc_user,
        "--chain-password",
        chain.rpc_password,
        *cert,
        "--birthday",
        str(chain.height()),
    )
    if not rehearsal_required:
        allow_unrehearsed_opens(path)
    return path


def software_signers(config: Path, directory: Path, names: tuple[str, ...] = ("alice", "bob", "carol")) -> list[str]:
    """``signer add NAME --software directory/NAME.key --generate`` for each name;
    returns their keys for ``wallet create``."""
    return [
        ok(config, "signer", "add", n, "--software", str(directory / f"{n}.key"), "--generate")["key"] for n in names
    ]


def create_wallet(config: Path, keys: list[str], threshold: int = 2, recovery: tuple[str, ...] = ()) -> Any:
    """``wallet create -k THRESHOLD --key ... [--recovery SPEC ...]`` from ``keys``; its output."""
    recoveries = sum((["--recovery", r] for r in recovery), [])
    return ok(config, "wallet", "create", "-k", str(threshold), *sum((["--key", k] for k in keys), []), *recoveries)


def copy_home(home: Path, into: Path) -> Path:
    """A copy of the l2custody home ``home`` (config.toml, data, key files) in ``into``, its
    config pointing at the copy: one prepared setup, a fresh store for every example."""
    import shutil

    shutil.copytree(home, into, dirs_exist_ok=True)
    config = into / "config.toml"
    config.write_text(config.read_text().replace(str(home), str(into)))
    return config
