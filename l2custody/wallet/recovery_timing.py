"""When each coin's time-locked recovery paths open (BIP-68 relative block locks).

A miniscript wallet's recovery path ``older(N)`` lets its keys spend a coin N blocks
after the coin confirmed: a spend whose input carries nSequence = N may be mined in a
block at height ``confirmed_height + N`` or later. The mempool accepts it once the next
block may hold it, that is when ``tip + 1 >= confirmed_height + N``.

Pure functions over (coin height, tip, delays): no store, no node. ``wallet refresh``
uses :func:`due_for_refresh` (coins whose first path opens within the margin, so the
primary keys re-spend them to restart the clock), ``wallet recover`` uses
:func:`lock_of` to spend only open coins and to name the height at which each other
coin opens, and ``report``/``watch`` warn from the same facts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class CoinLock:
    """One coin and one recovery path: the height from which the path may spend it."""

    outpoint: str
    value: int
    height: int | None  # the block that confirmed the coin; None: unconfirmed (the clock has not started)
    delay: int  # the path's older(N)
    tip: int

    @property
    def opens_at(self) -> int | None:
        """The first block height that may include a spend on this path (None while unconfirmed)."""
        return None if self.height is None else self.height + self.delay

    @property
    def blocks_left(self) -> int | None:
        """Blocks still to be mined before the next block may include the spend (0: open now)."""
        opens = self.opens_at
        return None if opens is None else max(0, opens - (self.tip + 1))

    @property
    def is_open(self) -> bool:
        return self.blocks_left == 0

    def to_dict(self) -> dict[str, object]:
        return {
            "outpoint": self.outpoint,
            "value": self.value,
            "height": self.height,
            "delay": self.delay,
            "opens_at": self.opens_at,
            "blocks_left": self.blocks_left,
            "open": self.is_open,
        }


def lock_of(outpoint: str, value: int, height: int | None, delay: int, tip: int) -> CoinLock:
    if delay < 1:
        raise ValueError(f"a recovery delay is at least 1 block, not {delay}")
    return CoinLock(outpoint, int(value), height, int(delay), int(tip))


def first_opening(outpoint: str, value: int, height: int | None, delays: Sequence[int], tip: int) -> CoinLock | None:
    """The coin's lock on its shortest recovery path (None for a wallet without recovery paths)."""
    if not delays:
        return None
    return lock_of(outpoint, value, height, min(delays), tip)


def due_for_refresh(locks: Iterable[CoinLock | None], margin: int) -> list[CoinLock]:
    """Coins whose first recovery path opens within ``margin`` blocks (or is open already),
    soonest first: the primary keys should re-spend them before a recovery key can."""
    due = [c for c in locks if c is not None and c.blocks_left is not None and c.blocks_left <= margin]
    return sorted(due, key=lambda c: (c.blocks_left or 0, c.outpoint))


def split_open(locks: Iterable[CoinLock]) -> tuple[list[CoinLock], list[CoinLock]]:
    """(open now, still locked) for one recovery path; unconfirmed coins are locked."""
    opened: list[CoinLock] = []
    locked: list[CoinLock] = []
    for lock in locks:
        (opened if lock.is_open else locked).append(lock)
    return opened, locked


def describe_locked(locks: Iterable[CoinLock]) -> str:
    """``txid:n opens at block H (K blocks)`` for each, for refusals."""
    parts = []
    for c in locks:
        if c.opens_at is None:
            parts.append(f"{c.outpoint} is unconfirmed (its {c.delay}-block clock starts when it confirms)")
        else:
            parts.append(f"{c.outpoint} opens at block {c.opens_at:,} ({c.blocks_left:,} blocks from now)")
    return "; ".join(parts)
