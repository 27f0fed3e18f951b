"""The key-lifecycle sections of the config, [rehearsal] (issue 12) and [recovery] (issue 13):
defaults, what they accept, what they refuse (naming the key and the file), and that
`l2custody init` writes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from l2custody.config import RecoveryConfig, RehearsalConfig, load_config, render_config
from l2custody.errors import ConfigError
from tests.unit.test_config import BASE, write


def test_without_the_section_rehearsal_is_required_and_signers_age_out_after_90_days(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, BASE)).rehearsal == RehearsalConfig(required=True, max_age_days=90)


def test_the_section_is_read(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, BASE + "[rehearsal]\nrequired = false\nmax_age_days = 30\n"))
    assert cfg.rehearsal == RehearsalConfig(required=False, max_age_days=30)


@pytest.mark.parametrize(
    "extra, key, problem",
    [
        ('[rehearsal]\nrequired = "no"\n', "rehearsal.required", "expected true or false"),
        ("[rehearsal]\nrequired = 0\n", "rehearsal.required", "expected true or false"),
        ("[rehearsal]\nmax_age_days = 0\n", "rehearsal.max_age_days", "at least 1"),
        ("[rehearsal]\nmax_age_days = 40000\n", "rehearsal.max_age_days", "at most 36500"),
        ("[rehearsal]\nmax_age_days = 9.5\n", "rehearsal.max_age_days", "expected an integer"),
        ("[rehearsal]\nmax_age_days = true\n", "rehearsal.max_age_days", "expected an integer"),
        ("[rehearsal]\nrequierd = false\n", "rehearsal.requierd", "unknown key"),
        ("rehearsal = 1\n", "rehearsal", "expected a table"),
        ("[recovery]\nrefresh_margin_blocks = -1\n", "recovery.refresh_margin_blocks", "at least 0"),
        ("[recovery]\nrefresh_margin_blocks = 70000\n", "recovery.refresh_margin_blocks", "at most 65535"),
        ('[recovery]\nrefresh_margin_blocks = "144"\n', "recovery.refresh_margin_blocks", "expected an integer"),
        ("[recovery]\nrefresh_margin_blocks = nan\n", "recovery.refresh_margin_blocks", "expected an integer"),
        ('[recovery]\nauto_refresh_psbt = "yes"\n', "recovery.auto_refresh_psbt", "expected true or false"),
        ("[recovery]\nmargin = 5\n", "recovery.margin", "unknown key"),
        ("recovery = []\n", "recovery", "expected a table"),
    ],
)
def test_bad_values_name_the_key_and_the_file(tmp_path: Path, extra: str, key: str, problem: str) -> None:
    # a top-level key must come before the first table
    text = extra + BASE if not extra.startswith("[") else BASE + extra
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert str(path) in exc.value.message and key in exc.value.message and problem in exc.value.message


@pytest.mark.parametrize("network", ["regtest", "mainnet"])
def test_init_writes_the_section_with_its_defaults(tmp_path: Path, network: str) -> None:
    text = render_config(network, tmp_path / "d")
    assert "\n[rehearsal]\n" in text and "\nrequired = true " in text and "\nmax_age_days = 90 " in text
    assert load_config(write(tmp_path, text)).rehearsal == RehearsalConfig()
    flipped = write(tmp_path, text.replace("required = true", "required = false", 1))
    assert load_config(flipped).rehearsal.required is False


def test_without_the_recovery_section_refresh_warns_30_days_ahead_and_prepares_psbts(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, BASE)).recovery == RecoveryConfig(
        refresh_margin_blocks=4320, auto_refresh_psbt=True
    )
    cfg = load_config(write(tmp_path, BASE + "[recovery]\nrefresh_margin_blocks = 0\nauto_refresh_psbt = false\n"))
    assert cfg.recovery == RecoveryConfig(refresh_margin_blocks=0, auto_refresh_psbt=False)


def test_init_writes_the_recovery_section_with_its_defaults(tmp_path: Path) -> None:
    text = render_config("regtest", tmp_path / "d")
    assert "\n[recovery]\n" in text and "\nrefresh_margin_blocks = 4320 " in text
    assert load_config(write(tmp_path, text)).recovery == RecoveryConfig()
