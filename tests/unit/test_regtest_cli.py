"""``python -m regtest`` refusing bad input without any daemon running."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from regtest.cli import run


def test_down_without_a_network_says_how_to_start_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["down", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no regtest network in" in err and "python -m regtest up" in err


def test_errors_are_json_with_code_under_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["mine", "3", "--dir", str(tmp_path), "--json"]) == 1
    reply = json.loads(capsys.readouterr().out)
    assert reply["kind"] == "harness-no-network" and reply["code"] == 96


def test_fund_refuses_an_unreadable_amount_before_anything_else(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["fund", "bcrt1qanything", "lots", "--dir", str(tmp_path)]) == 1
    assert "cannot read amount 'lots'" in capsys.readouterr().err


def test_env_variable_chooses_the_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("L2C_REGTEST_DIR", str(tmp_path / "elsewhere"))
    assert run(["status"]) == 1
    assert str(tmp_path / "elsewhere") in capsys.readouterr().err


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        run(["--help"])
    assert exit_.value.code == 0
    assert "python -m regtest fund bcrt1q" in capsys.readouterr().out


def _state_with_chain_pid(workdir: Path, pid: int | None) -> None:
    """A state directory as `up` leaves it, with the chain daemon at ``pid``."""
    from regtest.chain import BtcdNode
    from regtest.daemon import Daemon
    from regtest.faucet import Faucet
    from regtest.network import Network

    faucet = Faucet.load_or_create(workdir / "faucet.key")
    chain = BtcdNode(workdir / "btcd", Path("/nonexistent/btcd"), faucet.address)
    chain.dir.mkdir()
    (chain.dir / "daemon.log").write_text("old run\n")
    if pid is not None:
        chain.daemon = Daemon.attach("btcd", pid, chain.log_path, str(chain.dir))
    Network(workdir, chain, faucet, detached=True).write_state()


def test_up_refuses_while_the_recorded_daemons_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import subprocess
    import sys

    workdir = tmp_path / "rt"
    workdir.mkdir()
    # A live process whose command line carries the chain directory stands in for btcd.
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(workdir / "btcd")])
    try:
        _state_with_chain_pid(workdir, proc.pid)
        assert run(["up", "--lnd", "0", "--dir", str(workdir)]) == 1
        err = capsys.readouterr().err
        assert "already running in" in err and "btcd alive" in err and "regtest down" in err
        assert (workdir / "state.json").exists() and proc.poll() is None  # nothing touched
    finally:
        proc.kill()
        proc.wait()


def test_remains_of_a_dead_network_are_cleared_before_a_new_one(tmp_path: Path) -> None:
    from regtest.network import _clear_stale

    workdir = tmp_path / "rt"
    workdir.mkdir()
    _state_with_chain_pid(workdir, None)
    (workdir / "notes.txt").write_text("mine, keep")
    _clear_stale(workdir)
    assert sorted(p.name for p in workdir.iterdir()) == ["notes.txt"]
