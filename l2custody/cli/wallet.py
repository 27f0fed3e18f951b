"""``l2custody wallet ...``: the multisig wallet (create, import, addresses, sync, balance, send)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from l2custody.cli.main import STATE, app, emit
from l2custody.cli.params import number, path
from l2custody.cli.render import data, table

sub = typer.Typer(
    help="The k-of-n multisig wallet: create or import it, get addresses, follow the chain, spend.",
    no_args_is_help=True,
)
app.add_typer(sub, name="wallet")


@sub.command("create")
def create(
    threshold: Annotated[int, typer.Option("--threshold", "-k", help="Signatures needed (K of N).")],
    key: Annotated[
        list[str],
        typer.Option("--key", help="A cosigner key with origin: [fingerprint/48h/1h/0h/2h]tpub... (repeat N times)."),
    ],
    name: Annotated[str, typer.Option(help="Wallet name.")] = "treasury",
    birthday: Annotated[
        Optional[int], typer.Option(help="First block to scan (default: [wallet] birthday of the config).")
    ] = None,
    recovery: Annotated[
        Optional[list[str]],
        typer.Option(
            "--recovery",
            help="A recovery path: KEY@BLOCKS (that key alone, BLOCKS after a coin confirms), or "
            "K:KEY1,KEY2,...@BLOCKS (K of those keys). Repeat for later paths.",
        ),
    ] = None,
) -> None:
    """Create the wsh(sortedmulti(K, keys.../<0;1>/*)) wallet, or with --recovery a recovery wallet.

    Keys need their origin ([fingerprint/path]) so hardware signers can find
    their key and check change outputs.

    --recovery makes the Liana-style miniscript wallet
    wsh(or_d(multi(K,keys...),and_v(v:pkh(R),older(BLOCKS)))): K of the keys
    spend at any time; the recovery key(s) alone once a coin has BLOCKS
    confirmations (144 a day, at most 65535). Every key, recovery keys too,
    must come from its own seed.

    Examples:

      l2custody wallet create -k 2 --key '[a1b2c3d4/48h/1h/0h/2h]tpub...' \\
          --key '[...]tpub...' --key '[...]tpub...'

      l2custody wallet create -k 2 --key ... --key ... --key ... \\
          --recovery '[e5f6a7b8/48h/1h/0h/2h]tpub...@52560' \\
          --recovery '2:[...]tpub...,[...]tpub...,[...]tpub...@65000'
    """
    from l2custody import api

    with api.create_wallet(STATE.config, threshold, key, name=name, birthday=birthday, recovery=recovery or ()) as w:
        _created(w)


@sub.command("import")
def import_(
    source: Annotated[
        str,
        typer.Argument(
            help="A descriptor, or a file: Bitcoin Core, BSMS, Caravan, Coldcard, Sparrow, Specter, Electrum, BlueWallet."
        ),
    ],
    name: Annotated[Optional[str], typer.Option(help="Wallet name (default: from the file, or 'treasury').")] = None,
    birthday: Annotated[Optional[int], typer.Option(help="First block to scan.")] = None,
) -> None:
    """Import an existing multisig wallet.

    Examples:

      l2custody wallet import 'wsh(sortedmulti(2,[...]tpub.../<0;1>/*,...))#checksum'

      l2custody wallet import sparrow-export.txt --birthday 800000
    """
    from l2custody import api

    with api.import_wallet(STATE.config, source, name=name, birthday=birthday) as w:
        _created(w)


def _created(w) -> None:
    desc = w.descriptor
    warnings = w.warnings()
    first = desc.first_address()
    recovery = [
        {"blocks": p.delay, "threshold": p.threshold, "fingerprints": [k.fingerprint for k in p.keys]}
        for p in desc.recovery_paths
    ]
    emit(
        {
            "name": w.record.name,
            "descriptor": w.record.descriptor,
            "threshold": desc.threshold,
            "keys": desc.n,
            "recovery": recovery,
            "network": w.record.network,
            "birthday": w.record.birthday,
            "first_address": first,
            "warnings": warnings,
        },
        f"Wallet {w.record.name}: {desc.threshold}-of-{desc.n} on {w.record.network}, scanning from block "
        f"{w.record.birthday}.\n"
        + "".join(
            f"Recovery after {r['blocks']} blocks: {r['threshold']} of {', '.join(r['fingerprints'])}\n"
            for r in recovery
        )
        + f"Descriptor: {w.record.descriptor}\n"
        f"First address (compare it on every signer): {first}" + "".join(f"\nwarning: {x}" for x in warnings),
    )


@sub.command("export")
def export(
    format: Annotated[
        str,
        typer.Option("--format", "-f", help="descriptor, bsms, core, or policy (BIP-388, for hardware signers)."),
    ] = "descriptor",
    generation: Annotated[
        Optional[int], typer.Option(help="This generation (default: the newest; see `wallet generations`).")
    ] = None,
    all_generations: Annotated[
        bool, typer.Option("--all", help="Every generation, oldest first (back up all of them).")
    ] = False,
) -> None:
    """Print the wallet for backup or for other software.

    After `wallet rotate` the wallet has several generations: channels opened before
    still pay the older ones, so back up every generation (--all).

    Examples:

      l2custody wallet export > backup.txt

      l2custody wallet export --all > backup-all-generations.txt

      l2custody wallet export --format core   # for bitcoin-cli importdescriptors

      l2custody wallet export --format policy # BIP-388 template + keys, to register on a hardware signer
    """
    from l2custody import api

    with api.open_wallet(STATE.config) as w:
        records = w.store.generations(w.record.name)
        if generation is not None:
            records = [w.store.wallet(w.record.name, generation=generation)]
        elif not all_generations:
            records = [w.record]
        exports = [(r.generation, w.sibling(r).export(format)) for r in records]
    if len(exports) == 1 and not all_generations:
        text = exports[0][1]
        emit({"format": format, "generation": exports[0][0], "export": text}, text)
        return
    emit(
        {"format": format, "generations": [{"generation": g, "export": t} for g, t in exports]},
        "\n".join(f"# generation {g}\n{t.rstrip()}" for g, t in exports),
    )


@sub.command("address")
def address(
    label: Annotated[Optional[str], typer.Option(help="A note stored with the address.")] = None,
) -> None:
    """Hand out the next unused receive address (recorded, never handed out twice).

    Example: l2custody wallet address --label "from exchange"
    """
    from l2custody import api

    with api.open_wallet(STATE.config) as w:
        a = w.next_address(label=label)
    emit(data(a), a.address)


@sub.command("addresses")
def addresses(
    show_used: Annotated[bool, typer.Option("--show-used", help="Include addresses that received coins.")] = False,
    change: Annotated[bool, typer.Option("--change", help="List the change branch instead.")] = False,
) -> None:
    """List handed-out addresses (unused ones unless --show-used).

    Example: l2custody wallet addresses --show-used
    """
    from l2custody import api

    with api.open_wallet(STATE.config) as w:
        rows = w.addresses(show_used=show_used, change=change)
    emit(
        data(rows),
        table(["index", "address", "used", "label"], [[a.index, a.address, a.used, a.label] for a in rows]),
    )


@sub.command("sync")
def sync() -> None:
    """Scan new blocks for the wallet (resumes where the last sync stopped; handles reorgs).

    Example: l2custody wallet sync && l2custody wallet balance
    """
    from l2custody import api

    def progress(height: int, tip: int) -> None:
        if not STATE.json and tip - result_start[0] >= 100:
            typer.echo(f"\rscanned block {height:,} of {tip:,}", err=True, nl=height >= tip)

    result_start = [0]
    with api.open_wallet(STATE.config) as w:
        scanned = w.store.scanned_tip()
        result_start[0] = scanned[0] if scanned else w.record.birthday
        r = w.sync(progress=progress)
    reorg = f"; reorg: rolled back to block {r.reorg_fork}" if r.reorg_fork is not None else ""
    emit(
        data(r),
        f"Synced to block {r.tip_height:,}: {r.blocks:,} blocks, {r.transactions:,} transactions in "
        f"{r.seconds:.1f} s; {r.received} new coins, {r.spent} spent{reorg}.",
    )


@sub.command("balance")
def balance() -> None:
    """Show the balance from the last sync (no network; run `wallet sync` first).

    Example: l2custody --json wallet balance
    """
    from l2custody import api

    with api.open_wallet(STATE.config) as w:
        b = w.balance()
        generation = w.record.generation
        older = [(r.generation, w.sibling(r).balance()) for r in w.store.generations(w.record.name)[:-1]]
    height = f"block {b.scanned_height:,}" if b.scanned_height is not None else "never synced"
    rows = [[b.confirmed, b.unconfirmed, b.reserved, b.spendable, b.total]]
    header = ["confirmed", "unconfirmed", "reserved", "spendable", "total"]
    human = table(header, rows) + f"\n(sat; {b.utxos} coins; as of {height})"
    if older:
        human = (
            table(
                ["generation", *header],
                [[f"{generation} (current)", *rows[0]]]
                + [[g, x.confirmed, x.unconfirmed, x.reserved, x.spendable, x.total] for g, x in older],
            )
            + f"\n(sat; as of {height}; move older generations' coins with `l2custody wallet migrate`)"
        )
    emit(
        {
            **data(b),
            "total": b.total,
            "generation": generation,
            "older_generations": [{"generation": g, **data(x), "total": x.total} for g, x in older],
        },
        human,
    )


@sub.command("utxos")
def utxos(
    generation: Annotated[
        Optional[int], typer.Option(help="Coins of this generation (default: the newest; see `wallet generations`).")
    ] = None,
) -> None:
    """List unspent coins with their address index and confirmations.

    Examples:

      l2custody wallet utxos

      l2custody wallet utxos --generation 1   # an older generation's coins, e.g. for wallet migrate --utxo
    """
    from l2custody import api

    with api.open_wallet(STATE.config) as w:
        owner = w if generation is None else w.sibling(w.store.wallet(w.record.name, generation=generation))
        rows = owner.utxos()
    emit(
        [{**data(u), "outpoint": u.outpoint} for u in rows],  # TXID:N, as --utxo takes it
        table(
            ["outpoint", "value", "branch", "index", "confs", "reserved by"],
            [
                [u.outpoint, u.value, "change" if u.change else "receive", u.index, u.confirmations, u.reserved_by]
                for u in rows
            ],
        ),
    )


@sub.command("send")
def send(
    address: Annotated[str, typer.Argument(help="Destination address (our own, or allowed by [policy]).")],
    amount: Annotated[str, typer.Argument(help="150000, 150000sat or 0.0015btc.")],
    fee_rate: Annotated[
        Optional[float], typer.Option(help="sat/vB (default: the chain's estimate).", parser=number)
    ] = None,
    utxo: Annotated[
        Optional[list[str]], typer.Option("--utxo", help="Spend exactly this coin TXID:N (repeat).")
    ] = None,
    subtract_fee: Annotated[bool, typer.Option("--subtract-fee", help="The amount pays the fee.")] = False,
    out: Annotated[
        Optional[Path], typer.Option(help="PSBT file to write (default: ./SESSION.psbt).", parser=path)
    ] = None,
) -> None:
    """Build and verify a PSBT (coins reserved), ready for the signers.

    Examples:

      l2custody wallet send bcrt1q... 0.0015btc --fee-rate 2

      l2custody wallet send bcrt1q... 150000 --utxo TXID:0 --subtract-fee --out pay.psbt

    Then: l2custody psbt sign pay.psbt --signer NAME (K times), psbt broadcast pay.psbt
    """
    from l2custody import api

    sats = api.parse_sats(amount)
    with api.open_wallet(STATE.config) as w:
        s = w.create_send(address, sats, fee_rate=fee_rate, utxos=utxo, subtract_fee=subtract_fee)
    path = api.write_psbt_file(out or Path(f"{s.id}.psbt"), s.psbt, session=s.id)
    emit(
        {"session": s.id, "file": str(path), "psbt": s.base64, "summary": s.summary.to_dict()},
        f"Session {s.id}: pays {s.summary.sent:,} sat, fee {s.summary.fee:,} sat "
        f"({s.summary.fee_rate:.2f} sat/vB). PSBT written to {path}.\n"
        f"Next: l2custody psbt sign {path} --signer NAME",
    )
