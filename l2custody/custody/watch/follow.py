"""Following a node's channel events for ``watch``, reconnecting with backoff.

A :class:`NodeFollower` thread holds one ``subscribe_channel_events`` stream
(lnd ``SubscribeChannelEvents``; the CLN backend polls behind the same
interface) and turns every event into a wake-up on the watch loop's queue.
The events only say *when* to look: the loop then reads the node and diffs,
so an event lost while the stream was down costs nothing but latency. Each
(re)subscription also wakes the loop, to catch up on what happened while
the stream was broken.

When the stream breaks (the node restarts, the network drops) the follower
waits ``delay`` seconds and subscribes again, doubling the delay up to
``max_delay``; a stream that lived a while resets it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

from l2custody.backends.base import NodeBackend
from l2custody.errors import L2CustodyError, NotSupported

#: A stream that lived this long (seconds) was healthy: the next break starts the backoff again.
HEALTHY_SECONDS = 30.0


@dataclass(frozen=True)
class Wake:
    """One reason to read ``node`` now: a channel event (``kind`` in the backend's
    words) or ``subscribed`` (the stream (re)started)."""

    node: str
    kind: str
    channel_point: str
    at: float


class NodeFollower(threading.Thread):
    """Puts a :class:`Wake` on ``wakes`` for every channel event of ``backend``.

    ``backend`` must be this follower's own instance: :meth:`shutdown` closes it
    to cancel a blocking stream.
    """

    def __init__(
        self,
        backend: NodeBackend,
        wakes: queue.Queue[Wake],
        logger: logging.Logger,
        *,
        min_delay: float = 1.0,
        max_delay: float = 60.0,
    ) -> None:
        super().__init__(name=f"follow-{backend.name}", daemon=True)
        self.backend, self.wakes, self.log = backend, wakes, logger
        self.min_delay, self.max_delay = min_delay, max_delay
        self.stopping = threading.Event()
        self.subscriptions = 0
        self.breaks = 0

    def run(self) -> None:
        name = self.backend.name
        delay = self.min_delay
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                if self.subscriptions:
                    self.backend.info()  # the node answers again (a stream may only fail at its first read)
                stream = self.backend.subscribe_channel_events()
            except NotSupported:
                self.log.info("node %s offers no channel event stream; it is polled", name)
                return
            except L2CustodyError as exc:
                self._broken(f"cannot subscribe to channel events of {name}: {exc.message}", delay)
            else:
                self.subscriptions += 1
                if self.subscriptions > 1:
                    self.log.info(
                        "node %s: following channel events again (reconnect %d)", name, self.subscriptions - 1
                    )
                self.wakes.put(Wake(name, "subscribed", "", time.time()))
                self._drain(stream, delay)
            if time.monotonic() - started >= HEALTHY_SECONDS:
                delay = self.min_delay
            if self.stopping.wait(delay):
                break
            delay = min(delay * 2, self.max_delay)

    def _drain(self, stream: object, delay: float) -> None:
        name = self.backend.name
        try:
            for event in stream:  # type: ignore[attr-defined]
                self.wakes.put(Wake(name, event.kind, event.channel_point, time.time()))
                if self.stopping.is_set():
                    return
            if not self.stopping.is_set():
                self._broken(f"the channel event stream of {name} ended", delay)
        except L2CustodyError as exc:
            if not self.stopping.is_set():
                self._broken(f"the channel event stream of {name} broke: {exc.message}", delay)
        except Exception as exc:  # a transport failure we do not translate: keep following
            if not self.stopping.is_set():
                self._broken(f"the channel event stream of {name} failed ({type(exc).__name__}: {exc})", delay)
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # already broken; nothing to release
                    pass

    def _broken(self, what: str, delay: float) -> None:
        self.breaks += 1
        self.log.warning("%s; reconnecting in %g s", what, delay)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop following: cancels the stream by closing the follower's backend."""
        self.stopping.set()
        try:
            self.backend.close()
        except Exception:  # best effort: the process is stopping
            pass
        self.join(timeout)
