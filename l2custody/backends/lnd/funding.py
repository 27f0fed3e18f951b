"""The pieces of lnd's PSBT funding flow that are not plain RPC calls.

``OpenStream`` holds one ``OpenChannel`` server stream in a daemon thread for
as long as the negotiation lives (lnd reports ``psbt_fund`` and later
``chan_pending`` on it), and ``funding_outpoint`` finds the channel output in a
PSBT so a secured channel can be recognised without the stream (after a
restart of our process).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from l2custody.errors import L2CustodyError, NodeUnreachable, PsbtError


@dataclass(frozen=True)
class PsbtFund:
    funding_address: str
    amount_sat: int
    psbt: bytes


class OpenStream:
    """Consumes one OpenChannel stream in a background thread.

    ``translate`` turns a ``grpc.RpcError`` into our error. The first error
    (or the stream ending) is kept in ``error``; waiting for an update that can
    no longer come raises it.
    """

    def __init__(self, call: Any, translate: Callable[[Any], L2CustodyError], what: str) -> None:
        self._call = call
        self._translate = translate
        self._what = what
        self._cond = threading.Condition()
        self._cancelled = False
        self.psbt_fund: PsbtFund | None = None
        self.chan_pending: str | None = None
        self.chan_open: str | None = None
        self.error: L2CustodyError | None = None
        self.ended = False
        self._thread = threading.Thread(target=self._run, name=f"lnd-open-{what}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import grpc

        from l2custody.backends.lnd.convert import txid_from_bytes

        try:
            for update in self._call:
                which = update.WhichOneof("update")
                with self._cond:
                    if which == "psbt_fund":
                        p = update.psbt_fund
                        self.psbt_fund = PsbtFund(p.funding_address, p.funding_amount, p.psbt)
                    elif which == "chan_pending":
                        cp = update.chan_pending
                        self.chan_pending = f"{txid_from_bytes(cp.txid)}:{cp.output_index}"
                    elif which == "chan_open":
                        cp = update.chan_open.channel_point
                        txid = cp.funding_txid_str or txid_from_bytes(cp.funding_txid_bytes)
                        self.chan_open = f"{txid}:{cp.output_index}"
                    self._cond.notify_all()
        except grpc.RpcError as exc:
            with self._cond:
                if not self._cancelled:
                    self.error = self._translate(exc)
        finally:
            with self._cond:
                self.ended = True
                self._cond.notify_all()

    def wait(self, attr: str, timeout: float) -> Any:
        """Block until ``attr`` (``psbt_fund``/``chan_pending``) is set; raise the
        stream's error, or NodeUnreachable after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while getattr(self, attr) is None:
                if self.error is not None:
                    raise self.error
                if self.ended:
                    raise NodeUnreachable(
                        f"lnd ended the channel negotiation ({self._what}) before {attr}; "
                        "check `l2custody channel list` and the node's log"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise NodeUnreachable(
                        f"no {attr} from lnd within {timeout:g}s ({self._what}); the peer may be slow or offline"
                    )
                self._cond.wait(left)
            return getattr(self, attr)

    def cancel(self) -> None:
        with self._cond:
            self._cancelled = True
        self._call.cancel()
        self._thread.join(timeout=5)


def to_psbt_v0(psbt: bytes) -> bytes:
    """lnd reads BIP-174 (v0) PSBTs only: convert a v2 PSBT, pass v0 through."""
    from embit.psbt import PSBT

    parsed = _parse(psbt)
    if parsed.version != 2:
        return psbt
    v0 = PSBT(parsed.tx)
    for src, dst in zip(parsed.inputs, v0.inputs):
        dst.update(src)
    for src, dst in zip(parsed.outputs, v0.outputs):
        dst.update(src)
    v0.version = None
    return v0.serialize()


def _parse(psbt: bytes) -> Any:
    from l2custody.wallet.psbt import load_psbt  # the one strict BIP-174/370 reader

    try:
        return load_psbt(psbt)
    except PsbtError as exc:
        raise PsbtError(f"cannot parse the funding PSBT: {exc.message}") from None


def funding_outpoint(psbt: bytes, script: bytes, amount_sat: int) -> str:
    """``txid:vout`` of the output paying exactly ``amount_sat`` to ``script``.

    PsbtError if there is no such output (lnd would refuse it too), or if there
    are several (which one would be the channel is ambiguous)."""
    tx = _parse(psbt).tx
    hits = [i for i, out in enumerate(tx.vout) if out.script_pubkey.data == script]
    if len(hits) != 1:
        what = "does not pay" if not hits else "pays more than once to"
        raise PsbtError(f"the funding PSBT {what} the channel funding script {script.hex()}")
    out = tx.vout[hits[0]]
    if out.value != amount_sat:
        raise PsbtError(
            f"the funding PSBT pays {out.value} sat to the channel output, the node "
            f"negotiated {amount_sat} sat; rebuild the PSBT"
        )
    return f"{tx.txid().hex()}:{hits[0]}"
