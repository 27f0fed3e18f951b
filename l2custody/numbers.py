"""Numbers as people type and configure them: ASCII digits only, finite values only.

Two classes of input fault are decided here, once:

- ``str.isdigit()`` accepts ``²`` and ``１００``; ``int()`` then refuses the first and
  reads the second. Every digit string l2custody reads (derivation paths, thresholds,
  output indexes, ports, heights) goes through :func:`is_decimal`.
- ``nan`` and ``inf`` pass every ``<= 0`` check (``nan <= 0`` is False): a fee cap of
  ``nan`` turned the cap off. Every positive quantity goes through :func:`is_positive`.
"""

from __future__ import annotations

import math


def is_decimal(text: str) -> bool:
    """A non-empty run of ASCII digits ``0-9``, nothing else."""
    return text.isascii() and text.isdigit()


def is_positive(value: float) -> bool:
    """Finite and greater than zero (False for nan, inf and -inf)."""
    return math.isfinite(value) and value > 0
