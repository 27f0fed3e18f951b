"""``l2custody wallet rotate | generations | migrate``: change the keys while channels stay open."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from l2custody.cli.main import STATE, emit
from l2custody.cli.params import number, path
from l2custody.cli.render import table
from l2custody.cli.wallet import sub


@sub.command("rotate")
def rotate(
    reason: Annotated[str, typer.Option(help="Why the keys change; kept in the audit log (required).")],
    add: Annotated[
        Optional[list[str]], typer.Option("--add", help="A new cosigner key [fp/48h/1h/0h/2h]tpub... (repeat).")
    ] = None,
    remove: Annotated[
        Optional[list[str]],
        typer.Option("--remove", help="A key to drop: signer name, master fingerprint or the key (repeat)."),
    ] = None,
    threshold: Annotated[
        Optional[int], typer.Option("--threshold", "-k", help="Signatures needed in the new generation.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Create the wallet's next generation: add, remove or replace keys, or change the threshold.

    Every new address (receive, change, channel close addresses, the guard's and the
    plugin's close_to, sweeps) then comes from the new generation. Channels already open
    keep paying the generation they committed to: `report` and `channel list` show that
    exposure, `watch` follows it, and `wallet migrate` moves old coins once the new
    generation is registered on every signer and rehearsed.

    Examples:

      l2custody wallet rotate --remove carol --add '[0a1b2c3d/48h/1h/0h/2h]tpub...' --reason "carol left"

      l2custody wallet rotate --remove 5c9e228d --add '[...]tpub...' --reason "key of bob exposed"

      l2custody wallet rotate --threshold 3 --add '[...]tpub...' --reason "3-of-4 from now on"
    """
    from l2custody import api
    from l2custody.wallet.formats import export_wallet

    plan = api.plan_rotation(STATE.config, add=add or [], remove=remove or [], threshold=threshold, reason=reason)
    old, new = plan.previous, plan.descriptor
    if not yes:  # also with --json: the plan and the question go to stderr
        typer.echo(
            f"Generation now: {old.threshold}-of-{old.n}; next: {new.threshold}-of-{new.n}."
            + "".join(f"\n  remove {k.to_string()}" for k in plan.removed)
            + "".join(f"\n  add    {k.to_string()}" for k in plan.added)
            + f"\nReason: {plan.reason}",
            err=True,
        )
        typer.confirm("Create the next generation?", abort=True, err=True)
    with api.rotate_wallet(STATE.config, plan) as w:
        record = w.record
        bsms = export_wallet(w.descriptor, "bsms")
        first = w.descriptor.first_address()
    emit(
        {
            "generation": record.generation,
            "descriptor": record.descriptor,
            "bsms": bsms,
            "first_address": first,
            "threshold": new.threshold,
            "keys": new.n,
            "removed": [k.fingerprint for k in plan.removed],
            "added": [k.fingerprint for k in plan.added],
            "reason": plan.reason,
        },
        f"Generation {record.generation} created ({new.threshold}-of-{new.n}).\n"
        f"Descriptor: {record.descriptor}\n\nBSMS record (register it on every signer):\n{bsms}\n"
        f"First address (compare it on every signer): {first}\n\n"
        "Next:\n"
        "  1. register the new descriptor on every signer and add new signers (`l2custody signer add`);\n"
        f"  2. move one coin (`l2custody wallet utxos --generation {record.generation - 1}`, then `l2custody wallet "
        f"migrate --generation {record.generation - 1} --utxo TXID:N`) and rehearse the new generation with it "
        "(`l2custody wallet rehearse`);\n"
        f"  3. move the rest of generation {record.generation - 1} (`l2custody wallet migrate`).\n"
        "Channels opened before keep their close addresses: see `l2custody report`.",
    )


@sub.command("generations")
def generations() -> None:
    """List the wallet's generations: keys, coins, and whether each quorum can still sign.

    Example: l2custody wallet generations
    """
    from l2custody import api

    infos = api.wallet_generations(STATE.config)

    def keys(info) -> str:
        return " ".join(
            (k.signer or k.fingerprint) + ("" if k.usable else f" (removed in {k.removed_in}: {k.removed_reason})")
            for k in info.keys
        )

    emit(
        [i.to_dict() for i in infos],
        table(
            ["gen", "", "quorum", "balance", "coins", "can sign", "keys"],
            [
                [
                    i.generation,
                    "current" if i.current else "",
                    f"{i.threshold}-of-{len(i.keys)}",
                    i.balance_sat,
                    i.coins,
                    "yes" if i.can_sign else "NO",
                    keys(i),
                ]
                for i in infos
            ],
        ),
    )


@sub.command("migrate")
def migrate(
    generation: Annotated[
        Optional[int], typer.Option(help="Only this older generation (default: every one holding coins).")
    ] = None,
    fee_rate: Annotated[
        Optional[float], typer.Option(help="sat/vB (default: the chain's estimate).", parser=number)
    ] = None,
    utxo: Annotated[
        Optional[list[str]], typer.Option("--utxo", help="Move exactly this coin TXID:N (repeat; needs --generation).")
    ] = None,
    out_dir: Annotated[Path, typer.Option(help="Directory for the PSBT files.", parser=path)] = Path("."),
) -> None:
    """Build the PSBTs that move older generations' coins into the newest generation.

    Each old generation's PSBT is signed by that generation's own quorum (`psbt sign`
    finds the generation); the fee comes out of the amount. Rehearse the new generation
    first, and try one coin (`--utxo`) before moving everything.

    Examples:

      l2custody wallet migrate

      l2custody wallet migrate --generation 1 --utxo TXID:0 --fee-rate 2

    Then: l2custody psbt sign FILE --signer NAME (K times), l2custody psbt broadcast FILE
    """
    from l2custody import api

    moves = api.migrate_wallet(STATE.config, generation=generation, fee_rate=fee_rate, utxos=utxo)
    files = [api.write_psbt_file(out_dir / f"{m.session.id}.psbt", m.session.psbt, session=m.session.id) for m in moves]
    emit(
        [
            {
                "from_generation": m.from_generation,
                "to_generation": m.to_generation,
                "session": m.session.id,
                "file": str(f),
                "amount_sat": m.amount_sat,
                "fee_sat": m.session.summary.fee,
                "coins": m.coins,
                "address": m.address,
                "signers": list(m.signers),
                "target_rehearsed": m.target_rehearsed,
            }
            for m, f in zip(moves, files)
        ],
        (
            ""
            if all(m.target_rehearsed for m in moves)
            else f"Note: generation {moves[0].to_generation} has not been rehearsed yet. The safe order: move one "
            f"coin (--generation {moves[0].from_generation} --utxo TXID:N), rehearse generation "
            f"{moves[0].to_generation} with it (`l2custody wallet rehearse`), then move the rest; abort these "
            "sessions (`l2custody psbt abort SESSION`) to keep that order.\n"
        )
        + "\n".join(
            f"Generation {m.from_generation} -> {m.to_generation}: {m.coins} coin(s), {m.amount_sat:,} sat "
            f"(fee {m.session.summary.fee:,} sat) to {m.address}\n"
            f"  session {m.session.id}, PSBT {f}; signers of generation {m.from_generation}: "
            f"{', '.join(m.signers) or 'none registered'}\n"
            f"  next: l2custody psbt sign {f} --signer NAME (K times), then l2custody psbt broadcast {f}"
            for m, f in zip(moves, files)
        ),
    )
