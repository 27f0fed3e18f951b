"""Entry point of the ``l2custody`` command.

This is the one place where an L2CustodyError becomes output: the message on
stderr (or ``{"error", "code"}`` on stdout with ``--json``) and a non-zero
exit code. Sub-command modules import the library lazily inside command
bodies so ``l2custody --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from l2custody.errors import L2CustodyError


@dataclass
class Globals:
    config: Optional[Path] = None
    json: bool = False


STATE = Globals()

app = typer.Typer(
    name="l2custody",
    help=(
        "Lightning channel custody manager: open channels funded from a k-of-n multisig, "
        "commit their close address to it, and bring every satoshi back.\n\n"
        "Start with: l2custody init --network regtest"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _globals(
    config: Annotated[
        Optional[Path],
        typer.Option(
            "--config",
            "-c",
            envvar="L2CUSTODY_CONFIG",
            help="Config file (default ~/.config/l2custody/config.toml).",
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable JSON output (errors too).")] = False,
) -> None:
    STATE.config = config
    STATE.json = json_output


def emit(data: object, human: str | None = None) -> None:
    """Print ``data`` as JSON with --json, else ``human`` (or JSON if no human form)."""
    if STATE.json or human is None:
        typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        typer.echo(human)


def _register() -> None:
    # Sub-command modules register themselves on ``app``; importing them must
    # stay cheap (typer only), the library is imported inside command bodies.
    import importlib

    for name in (
        "init",
        "wallet",
        "psbt",
        "signer",
        "node",
        "guard",
        "channel",
        "channel_open",
        "channel_close",
        "session",
        "sweep",
        "report",
        "watch",
    ):
        importlib.import_module(f"l2custody.cli.{name}")


def main(argv: list[str] | None = None) -> None:
    _register()
    try:
        code = app(args=argv, standalone_mode=False)
    except L2CustodyError as exc:
        fail(exc)
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        sys.exit(1)
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        raise
    # without standalone mode click returns a command's typer.Exit(code) instead of exiting
    if isinstance(code, int) and code:
        sys.exit(code)


def fail(exc: L2CustodyError) -> None:
    if STATE.json:
        typer.echo(json.dumps(exc.to_dict()))
    else:
        typer.echo(f"error: {exc.message}", err=True)
    sys.exit(2 if exc.code < 100 else 1)


if __name__ == "__main__":  # pragma: no cover
    main()
