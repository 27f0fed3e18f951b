"""``l2custody psbt ...``: check, sign, combine, finalize and broadcast the wallet's PSBTs.

Every command but ``show`` and ``list`` verifies the PSBT first (our inputs,
our change, the verified outputs, the policy, unchanged since verification)
and refuses, naming the output, otherwise. Signed and finalized PSBTs are
written back to the file (or ``--out``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from l2custody.cli.main import STATE, app, emit
from l2custody.cli.params import path
from l2custody.cli.render import data, psbt_summary, table

sub = typer.Typer(help="Check, sign, combine, finalize and broadcast PSBTs of the wallet.", no_args_is_help=True)
app.add_typer(sub, name="psbt")

FileArg = Annotated[Path, typer.Argument(help="PSBT file (binary, base64 or hex).", parser=path)]
OutOpt = Annotated[Optional[Path], typer.Option(help="Write the result here instead of back into FILE.", parser=path)]


def _load(path: Path):
    from l2custody import api

    return api.read_psbt_file(path)


def _write(path: Path, psbt, session: str | None = None) -> None:
    from l2custody import api

    api.write_psbt_file(path, psbt, session=session)


@sub.command("show")
def show(file: FileArg) -> None:
    """Print what the PSBT does: each input and output (ours? change? foreign?), fee, warnings.

    Example: l2custody psbt show pay.psbt
    """
    from l2custody import api

    psbt = _load(file)
    with api.open_wallet(STATE.config) as w:
        summary, session = w.for_psbt(psbt).summarize(psbt)
    emit(
        {"summary": summary.to_dict(), "session": data(session) if session else None},
        psbt_summary(summary, session),
    )


@sub.command("verify")
def verify(file: FileArg) -> None:
    """Run the checks done before every signature and broadcast; exit non-zero if any fails.

    Example: l2custody psbt verify pay.psbt && echo safe to sign
    """
    from l2custody import api

    psbt = _load(file)
    with api.open_wallet(STATE.config) as w:
        s = w.for_psbt(psbt).verify(psbt)
    emit(
        {"ok": True, "session": s.id, "summary": s.summary.to_dict()},
        psbt_summary(s.summary, s) + f"\n\nOK: session {s.id} verified.",
    )


@sub.command("sign")
def sign(
    file: FileArg,
    signer: Annotated[str, typer.Option("--signer", "-s", help="A registered signer (see `signer list`).")],
    out: OutOpt = None,
) -> None:
    """Verify, then sign with a registered signer.

    A file signer writes the PSBT to its directory the first time; run the
    same command again once the signed file is back.

    Examples:

      l2custody psbt sign pay.psbt --signer alice

      l2custody psbt sign pay.psbt --signer coldcard   # exports, then collects
    """
    from l2custody import api

    psbt = _load(file)
    with api.open_wallet(STATE.config) as w:
        r = w.for_psbt(psbt).sign(psbt, signer)
    target = out or file
    _write(target, r.session.psbt)
    have = min((i.signatures for i in r.session.summary.inputs), default=0)
    if r.exported:
        human = (
            f"PSBT exported for {r.signer}: {', '.join(str(p) for p in r.exported)}.\n"
            f"Sign it on the device, put the signed file back into that directory as "
            f"{r.session.id}-signed.psbt, then run this command again."
        )
    else:
        human = f"{r.signer} added {r.added} signature(s); {have} of {r.session.summary.threshold} on every input" + (
            ". Complete: run `l2custody psbt broadcast " + str(target) + "`." if r.complete else "."
        )
    emit(
        {
            "session": r.session.id,
            "signer": r.signer,
            "added": r.added,
            "complete": r.complete,
            "exported": [str(p) for p in r.exported],
            "file": str(target),
        },
        human + f"\nPSBT saved to {target}.",
    )


@sub.command("combine")
def combine(
    files: Annotated[list[Path], typer.Argument(help="Copies of one PSBT signed by different signers.", parser=path)],
    out: Annotated[
        Optional[Path], typer.Option(help="Where to write the result (default: the first FILE).", parser=path)
    ] = None,
) -> None:
    """Merge the signatures of several copies of one PSBT.

    Example: l2custody psbt combine alice.psbt bob.psbt --out both.psbt
    """
    from l2custody import api

    psbts = [_load(f) for f in files]
    with api.open_wallet(STATE.config) as w:
        s = w.for_psbt(psbts[0]).combine(psbts) if psbts else w.combine(psbts)
    target = out or files[0]
    _write(target, s.psbt)
    emit(
        {"session": s.id, "complete": s.summary.complete, "file": str(target)},
        f"Combined {len(files)} PSBTs of session {s.id} into {target}; complete: {'yes' if s.summary.complete else 'no'}.",
    )


@sub.command("finalize")
def finalize(file: FileArg, out: OutOpt = None) -> None:
    """Verify and finalize (needs K valid signatures per input); prints the raw transaction.

    Example: l2custody psbt finalize pay.psbt
    """
    from l2custody import api

    psbt = _load(file)
    with api.open_wallet(STATE.config) as w:
        s, raw = w.for_psbt(psbt).finalize(psbt)
    target = out or file
    _write(target, s.psbt)
    emit(
        {"session": s.id, "txid": s.txid, "hex": raw.hex(), "file": str(target)},
        f"Finalized session {s.id} (txid {s.txid}) into {target}.\n{raw.hex()}",
    )


@sub.command("broadcast")
def broadcast(file: FileArg) -> None:
    """Verify, finalize if needed, and broadcast through the chain source.

    If the answer is lost the outcome is unknown: run `wallet sync` and look
    for the txid before trying again.

    Example: l2custody psbt broadcast pay.psbt
    """
    from l2custody import api

    psbt = _load(file)
    with api.open_wallet(STATE.config) as w:
        r = w.for_psbt(psbt).broadcast(psbt)
    emit({"session": r.session.id, "txid": r.txid}, f"Broadcast {r.txid} (session {r.session.id}).")


@sub.command("list")
def list_(
    state: Annotated[Optional[str], typer.Option(help="Only sessions in this state (e.g. verified, signed).")] = None,
) -> None:
    """List PSBT sessions and their state.

    Example: l2custody psbt list --state partially-signed
    """
    from l2custody import api

    with api.open_wallet(STATE.config) as w:
        rows = w.store.psbts(state=state)
    emit(
        [
            {
                "id": r.id,
                "kind": r.kind,
                "state": r.state,
                "txid": r.txid,
                "fee": r.details.get("fee"),
                "created": r.created,
                "updated": r.updated,
            }
            for r in rows
        ],
        table(
            ["session", "kind", "state", "fee", "to"],
            [[r.id, r.kind, r.state, r.details.get("fee"), r.details.get("to")] for r in rows],
        ),
    )


@sub.command("export")
def export(
    session: Annotated[str, typer.Argument(help="Session id (see `psbt list`).")],
    out: Annotated[Optional[Path], typer.Option(help="File to write (default: ./SESSION.psbt).", parser=path)] = None,
) -> None:
    """Write a session's PSBT, with every signature collected so far, to a file.

    Example: l2custody psbt export 3f2a9c0d1e2b4a5c --out pay.psbt
    """
    from l2custody import api

    with api.open_wallet(STATE.config) as w:
        s = w.for_session(session).session(session)
    target = out or Path(f"{s.id}.psbt")
    _write(target, s.psbt, s.id)
    emit(
        {"session": s.id, "state": s.state, "file": str(target), "psbt": s.base64},
        f"Session {s.id} ({s.state}) written to {target}.",
    )


@sub.command("abort")
def abort(
    session: Annotated[str, typer.Argument(help="Session id (see `psbt list`).")],
    reason: Annotated[str, typer.Option(help="Why, for the audit log.")] = "",
) -> None:
    """Abandon a session that was not broadcast; its coins become spendable again.

    Example: l2custody psbt abort 3f2a9c0d1e2b4a5c --reason "wrong amount"
    """
    from l2custody import api

    with api.open_wallet(STATE.config) as w:
        released = w.for_session(session).abort(session, reason)
    emit({"session": session, "released": released}, f"Session {session} aborted; {released} coin(s) released.")
