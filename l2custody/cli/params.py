"""Parsers for option values that click would read too loosely.

Every path option is read by :func:`path`: click hands ``--data-dir ""`` (an unset
shell variable) over as ``Path("")``, which is the working directory.

click reads ``nan``, ``inf``, ``１００`` and ``1_0`` as floats; a fee rate or a timeout of
``nan`` passes every ``<= 0`` check downstream. Every float option of the CLI is read by
:func:`number` (a unit test checks that no option is left to click's own float).
"""

from __future__ import annotations

import re
from pathlib import Path

import typer

_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def number(text: str | float) -> float:
    """A finite decimal number written in ASCII (``2``, ``2.5``, ``1e3``)."""
    if isinstance(text, (int, float)):  # a default value
        return float(text)
    written = text.strip(" \t")  # str.strip() would also take unit separators float() refuses
    if not _NUMBER.fullmatch(written):
        raise typer.BadParameter(f"{text!r} is not a number (write it like 2, 2.5 or 1e3)")
    value = float(written)
    if value in (float("inf"), float("-inf")):
        raise typer.BadParameter(f"{text!r} is too large")
    return value


def path(text: str | Path) -> Path:
    """A path as written (``~`` is expanded later, by ``l2custody.user_paths``); never empty."""
    if isinstance(text, Path):  # a default value
        return text
    if not text.strip():
        raise typer.BadParameter("the path is empty (an unset shell variable?); give a path")
    return Path(text)
