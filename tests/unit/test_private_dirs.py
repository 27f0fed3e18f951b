"""Directories l2custody creates for secrets and the store are 0700 at every level it
creates (``mkdir(parents=True, mode=0o700)`` left the parents 0755), and the operator's
existing directories keep their modes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from l2custody.private_files import private_dir
from l2custody.store import Store
from tests.support.cli_runner import ok, run


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_created_level_is_private_and_existing_ones_are_left_alone(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    old = os.umask(0o022)
    try:
        private_dir(tmp_path / "a" / "b" / "c")
    finally:
        os.umask(old)
    assert [mode(tmp_path / p) for p in ("a", "a/b", "a/b/c")] == [0o700] * 3
    assert mode(tmp_path) == 0o755
    private_dir(tmp_path / "a" / "b" / "c")  # again: nothing to do, no error


def test_the_store_the_data_dir_and_generated_keys_get_private_parents(tmp_path: Path) -> None:
    Store.open(tmp_path / "s1" / "s2" / "store.sqlite").close()
    assert mode(tmp_path / "s1") == mode(tmp_path / "s1" / "s2") == 0o700

    config = tmp_path / "conf" / "deep" / "config.toml"
    result = run(config, "init", "--network", "regtest", "--data-dir", str(tmp_path / "d1" / "d2"), json_out=True)
    assert result.exit_code == 0, result.output
    assert mode(tmp_path / "d1") == mode(tmp_path / "d1" / "d2") == 0o700
    assert mode(tmp_path / "conf") == mode(tmp_path / "conf" / "deep") == 0o700

    key = tmp_path / "k1" / "k2" / "alice.key"
    ok(config, "signer", "add", "alice", "--software", str(key), "--generate")
    assert mode(tmp_path / "k1") == mode(tmp_path / "k1" / "k2") == 0o700 and mode(key) == 0o600
