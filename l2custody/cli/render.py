"""Human output helpers for the CLI: plain tables and PSBT summaries (no library imports at top)."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Sequence


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], empty: str = "(none)") -> str:
    """A left-aligned text table; numbers right-aligned."""
    if not rows:
        return empty
    cells = [[_cell(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    numeric = [
        all(isinstance(row[i], int) and not isinstance(row[i], bool) for row in rows) for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(parts).rstrip()

    out = [line(list(headers)), line(["-" * w for w in widths])]
    out.extend(line(r) for r in cells)
    return "\n".join(out)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def data(obj: Any) -> Any:
    """JSON-ready form of dataclasses (and lists of them); paths and bytes as strings."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return data(asdict(obj))
    if isinstance(obj, dict):
        return {k: data(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [data(v) for v in obj]
    if isinstance(obj, bytes):
        return obj.hex()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def psbt_summary(summary: Any, session: Any = None) -> str:
    """The verification summary a signer reads: every input, every output, fee, warnings."""
    lines = [
        f"PSBT {summary.txid}"
        + (f"  (session {session.id}, {session.kind}, {session.state})" if session else "  (no session of this wallet)")
    ]
    lines.append("")
    lines.append("Inputs:")
    lines.append(
        table(
            ["#", "outpoint", "value", "ours", "branch/index", "signatures"],
            [
                [
                    i.index,
                    f"{i.txid}:{i.vout}",
                    i.value,
                    i.ours,
                    _where(i.change, i.derivation_index),
                    "final" if i.finalized else f"{i.signatures}/{summary.threshold}",
                ]
                for i in summary.inputs
            ],
        )
    )
    lines.append("")
    lines.append("Outputs:")
    lines.append(
        table(
            ["#", "address", "value", "kind", "branch/index"],
            [
                [o.index, o.address or o.script_pubkey, o.value, o.kind, _where(o.change, o.derivation_index)]
                for o in summary.outputs
            ],
        )
    )
    lines.append("")
    fee = f"{summary.fee:,} sat" if summary.fee is not None else "unknown"
    rate = f"{summary.fee_rate:.2f} sat/vB" if summary.fee_rate is not None else "unknown"
    lines.append(f"Fee: {fee} ({rate}, {summary.vsize} vB)   sent out of the wallet: {summary.sent:,} sat")
    lines.append(
        f"Locktime {summary.locktime}, RBF {'on' if summary.rbf else 'off'}, complete: {'yes' if summary.complete else 'no'}"
    )
    for w in summary.warnings:
        lines.append(f"warning: {w}")
    for p in summary.problems:
        lines.append(f"PROBLEM: {p}")
    return "\n".join(lines)


def _where(change: bool | None, index: int | None) -> str:
    if index is None:
        return "-"
    return f"{'change' if change else 'receive'}/{index}"
