"""Finding and building daemons, including the failure messages.

The build failures are injected with a fake ``go`` on PATH (named fault
injection: a broken toolchain or an unreachable module proxy cannot be caused
for real here without breaking the machine's real Go).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from regtest import BuildError, MissingBinary, cln_unavailable
from regtest.binaries import (
    BTCD_BUILD,
    ENV_VARS,
    LND_BUILD,
    build_into_cache,
    find_binary,
)


@pytest.fixture
def bare_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH holds only an empty bin dir, no daemon variables, an empty binary cache."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", str(bindir))
    monkeypatch.setenv("L2C_BIN_CACHE", str(tmp_path / "cache"))
    for var in ENV_VARS.values():
        monkeypatch.delenv(var, raising=False)
    return bindir


def _executable(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def test_env_variable_wins_over_path(bare_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _executable(bare_env / "lnd", "exit 0")
    mine = _executable(tmp_path / "my-lnd", "exit 0")
    monkeypatch.setenv("L2C_LND", str(mine))
    assert find_binary("lnd") == mine
    monkeypatch.delenv("L2C_LND")
    assert find_binary("lnd") == bare_env / "lnd"


def test_env_variable_naming_no_executable_is_an_error(
    bare_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("L2C_BTCD", str(tmp_path / "nope"))
    with pytest.raises(MissingBinary, match="L2C_BTCD=.*nope is not an executable"):
        find_binary("btcd")


def test_cached_build_is_reused(bare_env: Path, tmp_path: Path) -> None:
    cached = tmp_path / "cache" / BTCD_BUILD.dirname
    cached.mkdir(parents=True)
    for name in BTCD_BUILD.binaries:
        _executable(cached / name, "exit 0")
    assert find_binary("btcd") == cached / "btcd"
    assert build_into_cache(BTCD_BUILD) == cached  # nothing to build, no go needed


def test_missing_go_toolchain_names_the_step(bare_env: Path) -> None:
    with pytest.raises(BuildError, match="step 'find the Go toolchain' failed: `go` is not on PATH"):
        build_into_cache(LND_BUILD)


def test_failed_lnd_build_names_the_step_and_its_log(bare_env: Path, tmp_path: Path) -> None:
    _executable(bare_env / "go", "echo 'go: simulated proxy failure' >&2; exit 1")
    with pytest.raises(BuildError) as err:
        build_into_cache(LND_BUILD)
    log = tmp_path / "cache" / LND_BUILD.dirname / "build.log"
    assert "step 'go mod download github.com/lightningnetwork/lnd@v0.20.1-beta' failed" in err.value.message
    assert str(log) in err.value.message and "simulated proxy failure" in err.value.message
    assert "simulated proxy failure" in log.read_text()
    assert not (tmp_path / "cache" / LND_BUILD.dirname / "lnd").exists()


def test_failed_go_build_after_download_names_the_build_step(bare_env: Path, tmp_path: Path) -> None:
    moddir = tmp_path / "mod"
    moddir.mkdir()
    _executable(
        bare_env / "go",
        f"""
case "$1" in
  mod) echo '{{"Dir": "{moddir}"}}' ;;
  build) echo 'compile: simulated error in ./cmd/lnd' >&2; exit 2 ;;
esac""",
    )
    with pytest.raises(BuildError, match=r"step 'go build ./cmd/lnd' failed \(exit 2\)"):
        build_into_cache(LND_BUILD)


def test_failed_btcd_build_names_its_step(bare_env: Path) -> None:
    _executable(bare_env / "go", "exit 1")
    with pytest.raises(BuildError, match="step 'go install btcd v0.25.0' failed"):
        build_into_cache(BTCD_BUILD)


def test_cln_skip_reason_names_exactly_the_missing_binaries(bare_env: Path) -> None:
    _executable(bare_env / "bitcoin-cli", "exit 0")
    reason = cln_unavailable()
    assert reason is not None
    assert "lightningd (not on PATH and L2C_LIGHTNINGD is unset)" in reason
    assert "bitcoind (not on PATH and L2C_BITCOIND is unset)" in reason
    assert "bitcoin-cli (" not in reason
    for name in ("lightningd", "bitcoind"):
        _executable(bare_env / name, "exit 0")
    assert cln_unavailable() is None
    assert os.environ["PATH"] == str(bare_env)
