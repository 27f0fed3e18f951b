"""Following something that settles on its own (a close, a sweep, a funding session)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll_until(
    read: Callable[[], T],
    finished: Callable[[T], bool],
    *,
    timeout: float,
    interval: float,
    progress: Callable[[T], None] | None = None,
) -> T:
    """Call ``read`` until ``finished`` holds for its result or ``timeout`` seconds pass,
    and return the last result (timing out is not an error: the caller reads the result).
    ``progress`` hears every reading."""
    deadline = time.monotonic() + timeout
    while True:
        result = read()
        if progress is not None:
            progress(result)
        if finished(result) or time.monotonic() >= deadline:
            return result
        time.sleep(interval)
