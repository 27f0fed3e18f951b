"""``l2custody channel open | batch``: channels funded straight from the multisig.

Registered on the shared ``channel`` sub-app (cli/channel.py). The nodes
negotiate and the peers counter-sign in seconds, with no signer present;
the signatures follow at the signers' pace with `l2custody session sign`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from l2custody.cli.channel import channel_app
from l2custody.cli.main import STATE, emit
from l2custody.cli.params import number, path

FeeOpt = Annotated[
    Optional[float],
    typer.Option(
        "--fee-rate",
        help="Fee rate of the funding transaction in sat/vB (default: the chain's estimate "
        "or [wallet] fallback_fee_rate).",
        parser=number,
    ),
]
InteractiveOpt = Annotated[
    bool,
    typer.Option(
        "--interactive",
        help="Classic flow: sign right away (with --signer) and let the node publish; "
        "the peers drop the open after about 10 minutes.",
    ),
]
SignerOpt = Annotated[
    Optional[list[str]],
    typer.Option("--signer", "-s", help="With --interactive: a registered signer at hand (repeat for each)."),
]
NoUpfrontOpt = Annotated[
    bool,
    typer.Option(
        "--allow-no-upfront-shutdown",
        help="Open even if the peer cannot commit the close address (close it with a multisig "
        "delivery address later). Default: refuse such peers.",
    ),
]
TimeoutOpt = Annotated[
    float, typer.Option("--timeout", help="With --interactive: seconds to wait for the signatures.", parser=number)
]


def progress(message: str) -> None:
    typer.echo(f"… {message}", err=True)


def _run(
    requests: list,
    fee_rate: Optional[float],
    interactive: bool,
    signer: Optional[list[str]],
    allow_no_upfront_shutdown: bool,
    timeout: float,
) -> None:
    from l2custody import api
    from l2custody.cli.funding_render import session_text

    data = api.open_channels(
        STATE.config,
        requests,
        fee_rate=fee_rate,
        interactive=interactive,
        signers=signer or [],
        allow_no_upfront_shutdown=allow_no_upfront_shutdown,
        timeout=timeout,
        progress=progress,
    ).to_dict()
    emit(data, session_text(data))


@channel_app.command("open")
def open_(
    node: Annotated[str, typer.Argument(help="The node that opens the channel (see `l2custody node list`).")],
    peer: Annotated[str, typer.Argument(help="The peer: PUBKEY, or PUBKEY@HOST:PORT to connect first.")],
    amount: Annotated[str, typer.Argument(help="Channel size: 500000, 500000sat or 0.005btc.")],
    private: Annotated[bool, typer.Option("--private", help="Do not announce the channel.")] = False,
    fee_rate: FeeOpt = None,
    push: Annotated[str, typer.Option("--push", help="Give the peer this much of the channel at open.")] = "0",
    interactive: InteractiveOpt = False,
    signer: SignerOpt = None,
    allow_no_upfront_shutdown: NoUpfrontOpt = False,
    timeout: TimeoutOpt = 540.0,
) -> None:
    """Open a channel funded by the multisig, its close address a fresh multisig address.

    The peer counter-signs before anyone signs the funding transaction, so
    the signers can take their time: the session waits (up to about 1870
    blocks) for `l2custody session sign`, then broadcasts.

    Examples:

      l2custody channel open west 02ab...ef@203.0.113.5:9735 0.05btc --fee-rate 4

      l2custody channel open west 02ab...ef 2000000 --private

      l2custody channel open west 02ab...ef 2000000 --interactive -s alice -s bob
    """
    from l2custody import api

    request = api.channel_request(node, peer, amount, private=private, push=push)
    _run([request], fee_rate, interactive, signer, allow_no_upfront_shutdown, timeout)


@channel_app.command("batch")
def batch(
    file: Annotated[
        Path, typer.Argument(help="CSV (header node,peer,amount[,private][,push]) or JSON list.", parser=path)
    ],
    fee_rate: FeeOpt = None,
    interactive: InteractiveOpt = False,
    signer: SignerOpt = None,
    allow_no_upfront_shutdown: NoUpfrontOpt = False,
    timeout: TimeoutOpt = 540.0,
) -> None:
    """Open several channels (several peers, several nodes) in ONE funding transaction.

    It is broadcast only once every channel in it is counter-signed; if any
    negotiation fails, the others are cancelled and nothing is broadcast.

    Example file (channels.csv):

      node,peer,amount,private
      west,02ab...ef@203.0.113.5:9735,2000000,false
      west,03cd...01,1000000,true

    Example: l2custody channel batch channels.csv --fee-rate 3
    """
    from l2custody import api

    _run(api.read_batch(file), fee_rate, interactive, signer, allow_no_upfront_shutdown, timeout)
