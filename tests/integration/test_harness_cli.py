"""``python -m regtest`` as a user runs it: up, a second up refused, mine, fund, status, down."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from regtest import Network, confirmed_balance, wait_for
from regtest.daemon import Daemon

pytestmark = pytest.mark.integration


def _cli(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "regtest", *args, "--dir", str(workdir)],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def test_network_outlives_up_and_is_driven_by_later_commands(tmp_path: Path) -> None:
    workdir = tmp_path / "rt"
    up = _cli(workdir, "up", "--lnd", "1", "--json")
    assert up.returncode == 0, up.stderr
    info = json.loads(up.stdout)
    pids = [info["chain"]["pid"], info["lnd"][0]["pid"]]
    try:
        net = Network.attach(workdir)
        assert net.running()
        lnd = net.lnd[0]
        assert lnd.info().identity_pubkey == info["lnd"][0]["pubkey"]
        assert Path(info["lnd"][0]["admin_macaroon"]).exists()

        again = _cli(workdir, "up")
        assert again.returncode == 1
        assert "already running" in again.stderr and "python -m regtest down" in again.stderr

        mined = _cli(workdir, "mine", "2", "--json")
        assert mined.returncode == 0, mined.stderr
        assert json.loads(mined.stdout)["height"] == net.chain.height()

        funded = _cli(workdir, "fund", lnd.new_address(), "0.001btc", "--confirm", "--json")
        assert funded.returncode == 0, funded.stderr
        assert json.loads(funded.stdout)["sats"] == 100_000
        wait_for(lambda: confirmed_balance(lnd) == 100_000, 30, what="lnd to see the funds")

        status = _cli(workdir, "status")
        assert status.returncode == 0 and info["lnd"][0]["grpc_host"] in status.stdout
    finally:
        down = _cli(workdir, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    for pid in pids:
        assert not Daemon.attach("x", pid, workdir / "x", str(workdir)).alive()
    assert _cli(workdir, "status").returncode == 1
