"""The regtest harness: real btcd/bitcoind, lnd and lightningd on loopback.

    from regtest import Network, wait_for
    net = Network.start(workdir, lnd=2)
    net.fund_node(net.lnd[0], 1_000_000)
    net.connect(net.lnd[0], net.lnd[1])
    net.mine(6)
    net.stop()

From a shell: ``python -m regtest up | down | mine N | fund ADDRESS AMOUNT``.
"""

from regtest.errors import (
    BuildError,
    DaemonStartError,
    FaucetError,
    HarnessError,
    MissingBinary,
    NetworkRunning,
    NoNetwork,
    PortConflict,
    WaitTimeout,
)
from regtest.network import Network, cln_unavailable, confirmed_balance, is_peer
from regtest.util import wait_for

__all__ = [
    "BuildError",
    "DaemonStartError",
    "FaucetError",
    "HarnessError",
    "MissingBinary",
    "Network",
    "NetworkRunning",
    "NoNetwork",
    "PortConflict",
    "WaitTimeout",
    "cln_unavailable",
    "confirmed_balance",
    "is_peer",
    "wait_for",
]
