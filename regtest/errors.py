"""Errors of the regtest harness.

They subclass the project's hierarchy (``l2custody.errors``) in their own code
range, 90-99, so the harness fails the same way the product does: a message
that says what happened, where the evidence is (a log path, a log tail) and
what to do next.
"""

from __future__ import annotations

from l2custody.errors import L2CustodyError


class HarnessError(L2CustodyError):
    """Something in the regtest harness went wrong."""

    code, kind = 90, "harness"


class BuildError(HarnessError):
    """A daemon binary could not be found or built; the message names the step and its log."""

    code, kind = 91, "harness-build"


class MissingBinary(HarnessError):
    """An optional daemon (bitcoind, lightningd) is not installed."""

    code, kind = 92, "harness-missing-binary"


class DaemonStartError(HarnessError):
    """A daemon exited or never became ready during start-up; the message carries its log tail."""

    code, kind = 93, "harness-daemon-start"


class PortConflict(DaemonStartError):
    """A daemon could not bind a port we reserved (someone took it in between)."""

    code, kind = 94, "harness-port-conflict"


class NetworkRunning(HarnessError):
    """``up`` was asked for while a network already runs in the state directory."""

    code, kind = 95, "harness-network-running"


class NoNetwork(HarnessError):
    """A command needs a running network and there is none in the state directory."""

    code, kind = 96, "harness-no-network"


class WaitTimeout(HarnessError):
    """A condition polled by ``wait_for`` did not become true in time."""

    code, kind = 97, "harness-timeout"


class ChainRpcError(HarnessError):
    """The chain daemon answered a JSON-RPC call with an error (or not at all)."""

    code, kind = 98, "harness-chain-rpc"

    def __init__(self, message: str, rpc_code: int | None = None) -> None:
        super().__init__(message)
        self.rpc_code = rpc_code


class FaucetError(HarnessError):
    """The harness faucet cannot pay: bad address, or not enough mature coins."""

    code, kind = 99, "harness-faucet"
