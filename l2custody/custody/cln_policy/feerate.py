"""Feerate parameters as lightningd v25.12.1 reads them (``lightningd/feerate.c``
``param_feerate``), so a command cannot ask for a fee above the ``[policy] max_fee_rate``.

A feerate is a name lightningd resolves from its own estimates (``slow``, ``normal``,
``urgent``, ``minimum``, ``opening``, ``mutual_close``, ``unilateral_close``,
``unilateral_anchor_close``, ``penalty``, ``<N>blocks``), or an unsigned integer with an
optional ``perkb`` (the default) or ``perkw`` suffix. A number is checked against the cap;
a name is the node's estimate and is not (the PSBT check still caps the fee the node's
wallet pays).
"""

from __future__ import annotations

import re
from typing import Any

from l2custody.custody.cln_policy.psbt_check import Malformed

NAMED = (
    "slow",
    "normal",
    "urgent",
    "minimum",
    "opening",
    "mutual_close",
    "unilateral_close",
    "unilateral_anchor_close",
    "penalty",
)
_NUMBER = re.compile(r"([0-9]+)(perkb|perkw)?")
_BLOCKS = re.compile(r"[0-9]+blocks")
#: lightningd parses the number as a u32.
_U32 = 2**32 - 1


def sat_per_vbyte(name: str, value: Any) -> float | None:
    """The rate in sat/vB of a numeric feerate, None for a named one; Malformed otherwise."""
    if isinstance(value, bool):
        raise Malformed(f"{name} must be a feerate, got {value!r}")
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        raise Malformed(f"{name} must be a feerate (e.g. 2000perkb, normal), got {value!r}")
    if text in NAMED or _BLOCKS.fullmatch(text):
        return None
    match = _NUMBER.fullmatch(text)
    if match is None or int(match.group(1)) > _U32:
        raise Malformed(f"{name}={value!r} is not a feerate lightningd reads (an integer with perkb/perkw, or a name)")
    number = int(match.group(1))
    per_kw = number if match.group(2) == "perkw" else number / 4
    return per_kw * 4 / 1000
