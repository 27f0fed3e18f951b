"""Shared pytest fixtures: regtest networks on real daemons, one per test module.

- ``network``: btcd + 2 lnd, each lnd wallet funded with 1 BTC in 4 coins.
- ``chain_network``: btcd only (plus the faucet), for chain-level tests.
- ``cln_network``: bitcoind + 1 lnd + 1 Core Lightning node, each funded;
  skipped, naming the missing binary, where lightningd/bitcoind are absent.

A module's network directory (all daemon logs) is deleted when every test of
the module passed and kept, and listed at the end of the run, when one
failed (or always with ``L2C_KEEP_DIRS=1``). In CI (``CI=true``) a missing or
unbuildable lnd/btcd fails the integration tests instead of skipping them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from regtest import HarnessError, Network, cln_unavailable, confirmed_balance, wait_for
from regtest.binaries import ensure_go_daemons
from regtest.lnd import LndNode
from tests.support import cln_plugin as cln_plugin_support
from tests.support import custody as custody_support
from tests.support import funding as funding_support

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.config import Config
    from l2custody.wallet.service import Wallet

_failed_modules: set[str] = set()
_kept_dirs: list[str] = []


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    module = getattr(item, "module", None)
    if report.failed and module is not None:
        _failed_modules.add(module.__name__)
    return report


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cln_items = [i for i in items if i.get_closest_marker("cln")]
    reason = cln_unavailable() if cln_items else None
    for item in cln_items:
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for path in _kept_dirs:
        terminalreporter.write_line(f"regtest network kept for inspection (daemon logs): {path}")


@pytest.fixture(scope="session")
def go_daemons() -> None:
    """lnd/btcd found or built once per session; fails in CI, skips elsewhere, if impossible."""
    try:
        ensure_go_daemons()
    except HarnessError as exc:
        message = f"lnd/btcd unavailable: {exc.message}"
        if _in_ci():
            pytest.fail(message + " (CI requires the lnd integration tests)", pytrace=False)
        pytest.skip(message)


# --- wallets: named factories (module-scoped fixtures use them too, so they are session-wide) ----
@pytest.fixture(scope="session")
def make_memory_wallet() -> Callable[..., Wallet]:
    """``make_memory_wallet(directory, chain=None)``: the 2-of-3 test wallet on a MemoryChain
    (see ``tests/support/custody.py``), open; the test closes it."""
    return custody_support.make_wallet


@pytest.fixture(scope="session")
def make_plugin_wallet() -> Callable[..., Config]:
    """``make_plugin_wallet(directory, allowed=(), allow_any=False)``: a regtest config with the
    test wallet created, as the Core Lightning plugin reads it (``tests/support/cln_plugin.py``)."""
    return cln_plugin_support.make_wallet


@pytest.fixture(scope="session")
def make_funded_wallet() -> Callable[..., Path]:
    """``make_funded_wallet(net, directory, coins=...)``: a 2-of-3 on the harness chain holding
    ``coins`` (``tests/support/funding.py``); returns its config path."""
    return funding_support.make_wallet


@pytest.fixture(scope="module")
def regtest_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory for this module's network: deleted if all its tests passed."""
    name = request.module.__name__.rsplit(".", 1)[-1]
    path = tmp_path_factory.mktemp(f"rt-{name}", numbered=True)
    yield path
    if request.module.__name__ in _failed_modules or os.environ.get("L2C_KEEP_DIRS"):
        _kept_dirs.append(str(path))
    else:
        shutil.rmtree(path, ignore_errors=True)


def _started(workdir: Path, lnd: int, cln: int = 0, chain: str | None = None) -> Iterator[Network]:
    net = Network.start(workdir, lnd=lnd, cln=cln, chain=chain)
    try:
        yield net
    finally:
        net.stop()  # raises, listing every daemon that misbehaved


def _has_at_least(node: LndNode, sats: int) -> Callable[[], bool]:
    return lambda: confirmed_balance(node) >= sats


@pytest.fixture(scope="module")
def network(regtest_dir: Path, go_daemons: None) -> Iterator[Network]:
    """btcd + 2 lnd (``network.lnd[0]``, ``[1]``), each wallet holding 4 x 0.25 BTC confirmed."""
    for net in _started(regtest_dir / "lnd", lnd=2):
        for node in net.lnd:
            net.fund_node(node, 100_000_000, utxos=4, confirm=False)
        net.mine(1)
        for node in net.lnd:
            wait_for(_has_at_least(node, 100_000_000), 60, what=f"{node.name} to see its funding confirmed")
        yield net


@pytest.fixture(scope="module")
def chain_network(regtest_dir: Path, go_daemons: None) -> Iterator[Network]:
    """btcd only (lnd=0): the chain daemon and the faucet."""
    yield from _started(regtest_dir / "chain", lnd=0)


@pytest.fixture(scope="module")
def cln_network(regtest_dir: Path, request: pytest.FixtureRequest) -> Iterator[Network]:
    """bitcoind + 1 lnd + 1 cln, each funded with 0.5 BTC; skipped without lightningd/bitcoind."""
    reason = cln_unavailable()
    if reason:
        pytest.skip(reason)
    request.getfixturevalue("go_daemons")
    for net in _started(regtest_dir / "cln", lnd=1, cln=1, chain="bitcoind"):
        for node in net.nodes:
            net.fund_node(node, 50_000_000)
        yield net
