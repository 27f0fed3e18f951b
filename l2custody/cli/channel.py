"""`l2custody channel ...`: the sub-app. Commands live in cli/channel_open.py
(open, batch) and cli/channel_close.py (list, show, close), which register on
``channel_app``."""

from __future__ import annotations

import typer

from l2custody.cli.main import app

channel_app = typer.Typer(
    help="Channels funded from the multisig: open, batch, list, show, close.",
    no_args_is_help=True,
)
app.add_typer(channel_app, name="channel")
