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

from l2custody.cli.params import path
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
            parser=path,
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


#: Every top-level command: the modules that define it, and its line in ``l2custody --help``.
#: A command run imports only its own modules (``channel list`` never builds ``wallet``'s
#: options); ``l2custody --help`` builds none of them. A unit test keeps these lines equal to
#: the modules' own help.
COMMANDS: dict[str, tuple[tuple[str, ...], str]] = {
    "init": (("init",), "Write a commented starting config (0600) and create the data directory."),
    "wallet": (
        ("wallet", "wallet_generations", "wallet_rehearse", "wallet_recovery"),
        "The k-of-n multisig wallet: create or import it, get addresses, follow the chain, spend.",
    ),
    "psbt": (("psbt",), "Check, sign, combine, finalize and broadcast PSBTs of the wallet."),
    "signer": (("signer",), "Register signers: software keys, air-gapped file exchange, hardware wallets."),
    "node": (
        ("node", "guard", "node_enforce"),
        "Lightning nodes (lnd, Core Lightning): register them, check them, forget them.",
    ),
    "channel": (
        ("channel", "channel_open", "channel_view", "channel_close"),
        "Channels funded from the multisig: open, batch, list, show, close.",
    ),
    "session": (("session",), "Funding sessions: list, show, sign, status, broadcast, abort."),
    "sweep": (("sweep",), "Move the node's confirmed on-chain funds to a fresh multisig address."),
    "sweep-status": (("sweep",), "The sweeps made so far, unfinished ones checked against the wallet."),
    "report": (("report",), "Balances by place and the custody checks, per wallet and node."),
    "watch": (("watch",), "Follow every node and the chain until stopped (SIGTERM or Ctrl-C)."),
}
_GROUPS = ("wallet", "psbt", "signer", "node", "channel", "session")
#: Groups whose commands live in several modules: a command loads only its own module.
_SUBCOMMANDS: dict[str, dict[str, tuple[str, ...]]] = {
    "channel": {
        "open": ("channel", "channel_open"),
        "batch": ("channel", "channel_open"),
        "list": ("channel", "channel_view"),
        "show": ("channel", "channel_view"),
        "close": ("channel", "channel_close"),
        "close-status": ("channel", "channel_close"),
    },
    "wallet": {c: ("wallet", "wallet_generations") for c in ("rotate", "generations", "migrate")}
    | {"rehearse": ("wallet", "wallet_rehearse")}
    | {c: ("wallet", "wallet_recovery") for c in ("refresh", "recover")}
    | {
        c: ("wallet",)
        for c in ("create", "import", "export", "address", "addresses", "sync", "balance", "utxos", "send")
    },
    "node": {"guard": ("node", "guard"), "enforce": ("node", "node_enforce"), "macaroon": ("node", "node_enforce")}
    | {c: ("node",) for c in ("add", "list", "check", "remove")},
}
#: Global options that take a value (the command name is the first other word).
_VALUE_OPTIONS = ("--config", "-c")


def _register(names: tuple[str, ...] | None = None, sub: str | None = None) -> None:
    """Import the modules of the commands ``names`` (all of them by default; with ``sub``,
    only the module of that sub-command of the one group named); each module registers its
    commands on ``app``. Importing them stays cheap: typer only, the library is imported
    inside command bodies."""
    import importlib

    for name in names if names is not None else tuple(COMMANDS):
        modules = _SUBCOMMANDS.get(name, {}).get(sub or "") or COMMANDS[name][0]
        for module in modules:
            importlib.import_module(f"l2custody.cli.{module}")


def command_name(argv: list[str]) -> str | None:
    """The top-level command ``argv`` runs (None: none given, only global options)."""
    return _words(argv)[0]


def _words(argv: list[str]) -> tuple[str | None, str | None]:
    """The command and the word after it (a group's sub-command, when it is one)."""
    words = iter(argv)
    for word in words:
        if word in _VALUE_OPTIONS:
            next(words, None)
        elif not word.startswith("-"):
            following = next(words, None)
            return word, following if following and not following.startswith("-") else None
    return None, None


def _json_requested(argv: list[str]) -> bool:
    """Whether ``--json`` was given as the global option (before the command)."""
    name = command_name(argv)
    before = argv if name is None else argv[: argv.index(name)]
    return "--json" in before


def _help_app() -> typer.Typer:
    """The app as ``l2custody --help`` (or a mistyped command) shows it: global options and
    one line per command, without building any command's own options."""
    shallow = typer.Typer(
        name=app.info.name,
        help=app.info.help,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    shallow.callback()(_globals)
    for name, (_modules, line) in COMMANDS.items():
        if name in _GROUPS:
            shallow.add_typer(typer.Typer(help=line), name=name)
        else:
            shallow.command(name, help=line)(_not_loaded)
    return shallow


def _not_loaded() -> None:  # pragma: no cover - only listed, never run
    raise typer.Exit(2)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    name, sub = _words(args)
    if name in COMMANDS:
        _register((name,), sub)
        target = app
    else:  # --help, nothing, or a mistyped command: click lists the commands
        target = _help_app()
    try:
        code = target(args=args, standalone_mode=False)
    except L2CustodyError as exc:
        fail(exc)
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        sys.exit(1)
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.exceptions.ClickException):
            if _json_requested(args):  # scripts get JSON for usage errors too
                from l2custody.errors import UsageError

                typer.echo(json.dumps(UsageError(exc.format_message()).to_dict()))
            else:
                exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        raise
    # without standalone mode click returns a command's typer.Exit(code) instead of exiting
    if isinstance(code, int) and code:
        sys.exit(code)


def fail(exc: L2CustodyError) -> None:
    from l2custody import redact

    message = redact.text(exc.message)  # the last edge: nothing secret leaves in an error
    if STATE.json:
        typer.echo(json.dumps({**exc.to_dict(), "error": message}))
    else:
        typer.echo(f"error: {message}", err=True)
    sys.exit(2 if exc.code < 100 else 1)


def run() -> None:
    """The ``l2custody`` console script: :func:`main`, then leave without the interpreter's
    shutdown once the command has finished cleanly.

    Everything a command opens (store, wallet, node connections) is closed inside
    :func:`main`. What the interpreter's shutdown would still do is gRPC's C-core shutdown
    and tearing down every module, 15 to 30 ms after each node call: a tenth of a read
    command. So output is flushed and the process exits with the command's code. A command
    that leaves a non-daemon thread running, or ends with an unexpected exception (a
    traceback), goes through the normal shutdown.
    """
    import os
    import threading

    try:
        main()
        code = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:  # a message, as sys.exit("...") prints it
            print(exc.code, file=sys.stderr)
            code = 1
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    if "logging" in sys.modules:
        sys.modules["logging"].shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # a reader that went away (| head), a closed stream
            pass
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
