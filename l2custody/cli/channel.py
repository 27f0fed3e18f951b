"""`l2custody channel ...`: the sub-app and the arguments its commands share. Commands live
in cli/channel_open.py (open, batch), cli/channel_view.py (list, show) and
cli/channel_close.py (close, close-status), which register on ``channel_app``."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from l2custody.cli.main import app

channel_app = typer.Typer(
    help="Channels funded from the multisig: open, batch, list, show, close.",
    no_args_is_help=True,
)
app.add_typer(channel_app, name="channel")

NodeOpt = Annotated[
    Optional[str],
    typer.Option("--node", "-n", help="Only this node (see `l2custody node list`); default: every node."),
]
ChanArg = Annotated[
    str,
    typer.Argument(help="The channel: its channel point FUNDING_TXID:OUTPUT or short id BLOCKxTXxOUTPUT."),
]
