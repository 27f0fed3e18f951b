"""JSON an operator or another tool hands us (batch files, wallet exports), read strictly.

Python's ``json`` keeps the *last* of two members with the same name, reads ``NaN`` and
``Infinity``, and raises ``RecursionError`` on deep nesting. A file that says
``"amount": 1000, ..., "amount": 100000000`` must not be read as either: every
duplicate is refused, non-finite numbers are refused, and each fault is ``error``
naming the file and the place.
"""

from __future__ import annotations

import json
from typing import Any

from l2custody.errors import L2CustodyError

#: Deeper than any file we read; far below Python's recursion limit.
MAX_DEPTH = 64


def loads(text: str, what: str, error: type[L2CustodyError]) -> Any:
    """The value of the JSON ``text`` (``what`` names it in errors)."""
    if _depth(text) > MAX_DEPTH:
        raise error(f"{what}: JSON nested more than {MAX_DEPTH} levels deep; is it the right file?")
    try:
        return decode(text)
    except json.JSONDecodeError as exc:
        raise error(f"{what}: not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno})") from None
    except Refused as exc:
        raise error(f"{what}: {exc}") from None


class Refused(ValueError):
    """Text that JSON libraries read, but not with one meaning: a member given twice, NaN."""


def decode(text: str) -> Any:
    """``json.loads`` without its silent choices: :class:`Refused` for a member given twice
    (libraries keep the last, lightningd acts on the first) or NaN/Infinity;
    ``json.JSONDecodeError`` for what is no JSON. Callers bound the nesting first."""
    return json.loads(text, object_pairs_hook=_unique_members, parse_constant=_no_constant)


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise Refused(f"the member {key!r} appears twice in one object; which one is meant is unclear")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise Refused(f"{name} is not JSON: write numbers as digits")


def _depth(text: str) -> int:
    """The deepest nesting of brackets outside strings (a cheap pre-check)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest
