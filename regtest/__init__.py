"""The regtest harness: real btcd/bitcoind, lnd and lightningd on loopback.

    from regtest import Network, wait_for
    net = Network.start(workdir, lnd=2)
    net.fund_node(net.lnd[0], 1_000_000)
    net.connect(net.lnd[0], net.lnd[1])
    net.mine(6)
    net.stop()

From a shell: ``python -m regtest up | down | mine N | fund ADDRESS AMOUNT``.
"""

import os as _os

# Daemons are started with a preexec_fn (daemon.py), so Python forks for real; grpcio >= 1.81
# then runs gRPC's fork handlers in the child, which can abort it before exec while channels
# are busy (lnd restarts failing with "epoll_wait error: Bad file descriptor", code -6;
# grpc/grpc#43055). The harness forks only to exec: gRPC's fork support is not wanted. Set
# before anything imports grpc.
_os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
_os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

from regtest.errors import (  # noqa: E402
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
from regtest.network import Network, cln_unavailable, confirmed_balance, is_peer  # noqa: E402
from regtest.util import wait_for  # noqa: E402

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
