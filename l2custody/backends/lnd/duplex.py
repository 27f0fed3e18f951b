"""A bidirectional lnd stream we answer (ChannelAcceptor, RegisterRPCMiddleware).

lnd sends requests; we queue our answers, which a generator hands to gRPC. ``stop``
ends the stream from another thread: a watcher cancels the call, and the cancellation
that follows is the normal end, not an error.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any


class DuplexStream:
    """``open_call(answers)`` started with ``first`` queued; iterate :attr:`call` for
    lnd's requests, :meth:`send` answers, :meth:`close` in a ``finally``."""

    def __init__(
        self, open_call: Callable[[Iterator[Any]], Any], stop: threading.Event, name: str, *first: Any
    ) -> None:
        self.stop = stop
        self._answers: queue.Queue[Any] = queue.Queue()
        for item in first:
            self._answers.put(item)
        self.call = open_call(self._outgoing())
        self._finished = threading.Event()
        threading.Thread(target=self._watch, name=name, daemon=True).start()

    def _outgoing(self) -> Iterator[Any]:
        while True:
            item = self._answers.get()
            if item is None:
                return
            yield item

    def _watch(self) -> None:
        while not self.stop.wait(0.2):
            if self._finished.is_set():
                return
        self.call.cancel()

    def send(self, answer: Any) -> None:
        self._answers.put(answer)

    def ended_by_stop(self, exc: Any) -> bool:
        """Whether the ``grpc.RpcError`` ``exc`` is the cancellation ``stop`` asked for."""
        import grpc

        return self.stop.is_set() and exc.code() == grpc.StatusCode.CANCELLED

    def close(self) -> None:
        self._finished.set()
        self._answers.put(None)
        self.call.cancel()
