"""``l2custody signer ...``: register the signers PSBTs can be signed with."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from l2custody.cli.main import STATE, app, emit
from l2custody.cli.params import path
from l2custody.cli.render import data, table

sub = typer.Typer(
    help="Register signers: software keys, air-gapped file exchange, hardware wallets.", no_args_is_help=True
)
app.add_typer(sub, name="signer")


@sub.command("add")
def add(
    name: Annotated[str, typer.Argument(help="A name for the signer (letters, digits, _ - .).")],
    software: Annotated[
        Optional[Path], typer.Option(help="Key file (BIP-39 mnemonic or xprv), mode 0600.", parser=path)
    ] = None,
    file_dir: Annotated[
        Optional[Path], typer.Option(help="Directory to exchange PSBT files with an air-gapped signer.", parser=path)
    ] = None,
    hwi: Annotated[
        Optional[str], typer.Option(help="Master fingerprint of a hardware wallet (needs l2custody[hwi]).")
    ] = None,
    fingerprint: Annotated[
        Optional[str], typer.Option(help="Master fingerprint of the key behind a --file-dir signer.")
    ] = None,
    device_type: Annotated[Optional[str], typer.Option(help="HWI device type (e.g. coldcard, trezor).")] = None,
    generate: Annotated[
        bool, typer.Option("--generate", help="With --software: create the key file with a new 24-word mnemonic.")
    ] = False,
) -> None:
    """Register a signer. Exactly one of --software, --file-dir, --hwi.

    Examples:

      l2custody signer add alice --software ~/keys/alice.key

      l2custody signer add regtest-key --software ./k.key --generate

      l2custody signer add vault --file-dir /media/usb/psbt --fingerprint a1b2c3d4

      l2custody signer add ledger --hwi a1b2c3d4
    """
    from l2custody import api

    info = api.add_signer(
        STATE.config,
        name,
        software=software,
        file_dir=file_dir,
        hwi=hwi,
        fingerprint=fingerprint,
        device_type=device_type,
        generate=generate,
    )
    extra = f"\nKey for `wallet create --key`: {info.key}" if info.key else ""
    emit(data(info), f"Signer {info.name} ({info.kind}, fingerprint {info.fingerprint or 'unknown'}) added.{extra}")


@sub.command("list")
def list_() -> None:
    """List registered signers and whether their key is in the wallet.

    Example: l2custody signer list
    """
    from l2custody import api

    rows = api.list_signers(STATE.config)
    emit(
        data(rows),
        table(
            ["name", "kind", "fingerprint", "in wallet", "generations", "path / key"],
            [
                [
                    s.name,
                    s.kind,
                    s.fingerprint or "-",
                    s.in_wallet,
                    ",".join(map(str, s.generations)) or "-",
                    s.path or s.key,
                ]
                for s in rows
            ],
        ),
    )
