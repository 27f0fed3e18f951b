"""``l2custody wallet refresh | recover``: the spends of a wallet with time-locked recovery paths."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from l2custody.cli.main import STATE, emit
from l2custody.cli.params import number, path
from l2custody.cli.wallet import sub


@sub.command("refresh")
def refresh(
    margin: Annotated[
        Optional[int],
        typer.Option(help="Blocks before a recovery path opens (default: [recovery] refresh_margin_blocks)."),
    ] = None,
    fee_rate: Annotated[
        Optional[float], typer.Option(help="sat/vB (default: the chain's estimate).", parser=number)
    ] = None,
    utxo: Annotated[
        Optional[list[str]], typer.Option("--utxo", help="Refresh exactly this coin TXID:N (repeat).")
    ] = None,
    out: Annotated[
        Optional[Path], typer.Option(help="PSBT file to write (default: ./SESSION.psbt).", parser=path)
    ] = None,
) -> None:
    """Re-spend coins whose recovery path opens soon to the wallet itself, restarting the clock.

    A recovery key may spend a coin once the coin is as old as its path's delay. Before
    that, the primary keys move the coins due (within the margin) to a fresh address of
    the wallet: the new coin's clock starts from its own confirmation. The fee comes out
    of the amount.

    Examples:

      l2custody wallet refresh

      l2custody wallet refresh --margin 1008 --fee-rate 2

    Then: l2custody psbt sign FILE --signer NAME (K primary signers), l2custody psbt broadcast FILE
    """
    from l2custody import api

    plan = api.refresh_wallet(STATE.config, margin=margin, fee_rate=fee_rate, utxos=utxo)
    file = api.write_psbt_file(out or Path(f"{plan.session.id}.psbt"), plan.session.psbt, session=plan.session.id)
    emit(
        {
            "session": plan.session.id,
            "file": str(file),
            "coins": [c.to_dict() for c in plan.coins],
            "amount_sat": plan.amount_sat,
            "fee_sat": plan.session.summary.fee,
            "address": plan.address,
            "margin": plan.margin,
        },
        f"Session {plan.session.id}: refresh {len(plan.coins)} coin(s), {plan.amount_sat:,} sat "
        f"(fee {plan.session.summary.fee:,} sat) to the wallet's {plan.address}.\n"
        + "\n".join(
            f"  {c.outpoint}: {c.value:,} sat, recovery opens at block {c.opens_at:,} ({c.blocks_left:,} blocks)"
            for c in plan.coins
            if c.opens_at is not None and c.blocks_left is not None
        )
        + f"\nPSBT written to {file}. Next: l2custody psbt sign {file} --signer NAME (primary keys), then "
        f"l2custody psbt broadcast {file}",
    )


@sub.command("recover")
def recover(
    key: Annotated[str, typer.Option("--key", help="A recovery key: its signer name or master fingerprint.")],
    to: Annotated[str, typer.Option("--to", help="Where the recovered coins go (allowed by [policy], or ours).")],
    fee_rate: Annotated[
        Optional[float], typer.Option(help="sat/vB (default: the chain's estimate).", parser=number)
    ] = None,
    utxo: Annotated[
        Optional[list[str]], typer.Option("--utxo", help="Recover exactly this coin TXID:N (repeat).")
    ] = None,
    out: Annotated[
        Optional[Path], typer.Option(help="PSBT file to write (default: ./SESSION.psbt).", parser=path)
    ] = None,
) -> None:
    """Spend, with the recovery keys only, every coin whose recovery path has opened.

    For when the primary keys can no longer sign. The coins the path of --key may spend
    already go to --to; coins still locked are left alone and listed with the block at
    which each opens (with --utxo, a locked coin is refused).

    Examples:

      l2custody wallet recover --key heir --to bcrt1q...

      l2custody wallet recover --key 5c9e228d --to bcrt1q... --utxo TXID:1 --fee-rate 2

    Then: l2custody psbt sign FILE --signer RECOVERY-SIGNER, l2custody psbt broadcast FILE
    """
    from l2custody import api

    plan = api.recover_wallet(STATE.config, key=key, to=to, fee_rate=fee_rate, utxos=utxo)
    file = api.write_psbt_file(out or Path(f"{plan.session.id}.psbt"), plan.session.psbt, session=plan.session.id)
    emit(
        {
            "session": plan.session.id,
            "file": str(file),
            "delay": plan.delay,
            "threshold": plan.threshold,
            "keys": list(plan.keys),
            "coins": [c.to_dict() for c in plan.coins],
            "locked": [c.to_dict() for c in plan.locked],
            "amount_sat": plan.amount_sat,
            "fee_sat": plan.session.summary.fee,
            "to": plan.address,
        },
        f"Session {plan.session.id}: recover {len(plan.coins)} coin(s), {plan.amount_sat:,} sat "
        f"(fee {plan.session.summary.fee:,} sat) to {plan.address} on the path after {plan.delay} blocks "
        f"({plan.threshold} of {', '.join(plan.keys)}).\n"
        + "".join(
            f"  still locked: {c.outpoint} ({c.value:,} sat) opens at block {c.opens_at:,}\n"
            if c.opens_at is not None
            else f"  still locked: {c.outpoint} ({c.value:,} sat) is unconfirmed\n"
            for c in plan.locked
        )
        + f"PSBT written to {file}. Next: l2custody psbt sign {file} --signer NAME (recovery keys), then "
        f"l2custody psbt broadcast {file}",
    )
