"""``l2custody wallet rehearse``: prove the setup with a small spend to the wallet itself.

Registered on the ``wallet`` sub-app (cli/wallet.py); ``cli/main.py`` loads this module
for ``wallet rehearse`` and ``wallet --help`` only. The runner is ``wallet/rehearsal.py``.
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from l2custody.cli.main import STATE, emit
from l2custody.cli.params import number
from l2custody.cli.wallet import sub


def _progress(message: str) -> None:
    typer.echo(f"… {message}", err=True)


@sub.command("rehearse")
def rehearse(
    signers: Annotated[
        Optional[str],
        typer.Option(
            "--signers",
            help="Exactly K registered signers, comma-separated (default: the K that signed a rehearsal "
            "least recently, never-rehearsed first).",
        ),
    ] = None,
    amount: Annotated[
        Optional[str],
        typer.Option("--amount", help="What the test spend pays to the wallet itself (default 10000sat)."),
    ] = None,
    fee_rate: Annotated[
        Optional[float], typer.Option("--fee-rate", help="sat/vB (default: the chain's estimate).", parser=number)
    ] = None,
    wait_signers: Annotated[
        float,
        typer.Option(
            "--wait-signers",
            help="Seconds to wait for air-gapped (file) signers, polling their folders for the signed PSBT.",
            parser=number,
        ),
    ] = 0.0,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for the confirmation.", parser=number)
    ] = 3600.0,
    abort: Annotated[
        bool, typer.Option("--abort", help="Give up the unfinished rehearsal (its coins are released).")
    ] = False,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes", "-y", help="Do not ask to confirm the address a hardware signer shows (it still shows it)."
        ),
    ] = False,
) -> None:
    """Prove the setup: K signers sign a small spend to the wallet itself, confirmed and checked.

    The test transaction multisig guides ask for before trusting a setup, made
    rigorous: 1. the PSBT is built and reviewed (nothing may leave the wallet),
    its coins reserved; 2. each chosen signer signs (a hardware signer first
    shows the receive address for you to confirm); 3. it is broadcast; 4. the
    wallet waits for a confirmation; 5. the output and the change must be
    wallet coins again. The result is in the audit log and in `l2custody
    report`. Without --signers, rehearsals rotate through the signers so that
    each proves it can sign. `channel open` refuses a wallet that was never
    rehearsed (unless the config's rehearsal section says required = false).

    Running it again continues an unfinished rehearsal (an air-gapped signer's
    file, a confirmation); a signer that refuses, or returns its PSBT
    unsigned, fails it and its coins are released.

    Exit status: 0 when the rehearsal is confirmed (or aborted), 1 while it
    waits for a signer or a confirmation (run it again), 2 on an error or a
    failed rehearsal.

    Examples:

      l2custody wallet rehearse

      l2custody wallet rehearse --signers cosigner,vault --amount 20000sat --wait-signers 600

      l2custody wallet rehearse            # later: picks up vault's signed file, broadcasts, waits

      l2custody wallet rehearse --abort
    """
    from l2custody import api

    if abort:
        result = api.abort_rehearsal(STATE.config, progress=_progress)
    else:
        names = [n.strip() for n in (signers or "").split(",") if n.strip()]
        result = api.rehearse(
            STATE.config,
            signers=names,
            amount=amount,
            fee_rate=fee_rate,
            wait_signers=wait_signers,
            timeout=timeout,
            progress=_progress,
            confirm_address=_confirm(yes),
        )
    out = result.to_dict()
    emit(out, _text(out))
    if out["state"] not in ("confirmed", "aborted"):
        raise typer.Exit(1)


def _confirm(yes: bool) -> Any:
    def confirm(signer: str, address: str) -> bool:
        typer.echo(f"  {signer} shows the rehearsal's receive address; the wallet's is:\n    {address}", err=True)
        if yes:
            return True
        return typer.confirm(f"  Does {signer}'s screen show exactly this address?", err=True)

    return confirm


def _text(r: dict[str, Any]) -> str:
    signers = ", ".join(s["name"] for s in r["signers"])
    head = f"Rehearsal {r['id']} ({r['amount_sat']:,} sat, signers {signers}): {r['state']}"
    if r["state"] == "confirmed":
        d = r["details"]
        return (
            f"{head}. Transaction {r['txid']} confirmed in block {r['height']}; the output and the change "
            f"are wallet coins again; fee {d.get('fee_paid', 0):,} sat."
        )
    if r["state"] == "aborted":
        return f"{head}; {r['released']} coin(s) released."
    return f"{head}.\nNext: {r['next']}" if r["next"] else head
