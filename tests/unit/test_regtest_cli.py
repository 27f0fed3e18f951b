"""``python -m regtest`` refusing bad input without any daemon running."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from regtest.cli import run


def test_down_without_a_network_says_how_to_start_one(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["down", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no regtest network in" in err and "python -m regtest up" in err


def test_errors_are_json_with_code_under_json(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["mine", "3", "--dir", str(tmp_path), "--json"]) == 1
    reply = json.loads(capsys.readouterr().out)
    assert reply["kind"] == "harness-no-network" and reply["code"] == 96


def test_fund_refuses_an_unreadable_amount_before_anything_else(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["fund", "bcrt1qanything", "lots", "--dir", str(tmp_path)]) == 1
    assert "cannot read amount 'lots'" in capsys.readouterr().err


def test_env_variable_chooses_the_state_directory(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("L2C_REGTEST_DIR", str(tmp_path / "elsewhere"))
    assert run(["status"]) == 1
    assert str(tmp_path / "elsewhere") in capsys.readouterr().err


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        run(["--help"])
    assert exit_.value.code == 0
    assert "python -m regtest fund bcrt1q" in capsys.readouterr().out
