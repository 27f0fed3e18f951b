"""``l2custody node ...``: the Lightning nodes l2custody manages (add, list, check, remove)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from l2custody.cli.main import STATE, app, emit
from l2custody.cli.params import number, path
from l2custody.cli.render import data, table

sub = typer.Typer(
    help="Lightning nodes (lnd, Core Lightning): register them, check them, forget them.",
    no_args_is_help=True,
)
app.add_typer(sub, name="node")


@sub.command("add")
def add(
    name: Annotated[str, typer.Argument(help="A name for the node, e.g. lnd-west.")],
    *,
    lnd: Annotated[bool, typer.Option("--lnd", help="The node is lnd (gRPC).")] = False,
    cln: Annotated[bool, typer.Option("--cln", help="The node is Core Lightning (lightning-rpc socket).")] = False,
    host: Annotated[
        Optional[str], typer.Option(help="lnd's gRPC address HOST:PORT (rpclisten, default port 10009).")
    ] = None,
    tls_cert: Annotated[
        Optional[Path],
        typer.Option("--tls-cert", help="lnd's tls.cert (omit only for a CA-signed certificate).", parser=path),
    ] = None,
    macaroon: Annotated[
        Optional[Path],
        typer.Option(help="A macaroon file, e.g. admin.macaroon (read when needed, never copied).", parser=path),
    ] = None,
    lndconnect: Annotated[
        Optional[str],
        typer.Option(
            help="An lndconnect://HOST:PORT?cert=...&macaroon=... URI instead of --host/--tls-cert/--macaroon "
            "(its secrets are written 0600 under the data dir).",
            envvar="L2CUSTODY_LNDCONNECT",
        ),
    ] = None,
    rpc_file: Annotated[
        Optional[Path], typer.Option("--rpc-file", help="CLN: <lightning-dir>/<network>/lightning-rpc.", parser=path)
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each node call.", parser=number)] = 30.0,
) -> None:
    """Register a node. Nothing is sent to the node; run `node check` next.

    Examples:

      l2custody node add west --lnd --host 127.0.0.1:10009 \\
          --tls-cert ~/.lnd/tls.cert --macaroon ~/.lnd/data/chain/bitcoin/mainnet/admin.macaroon

      l2custody node add west --lnd --lndconnect 'lndconnect://10.0.0.5:10009?cert=...&macaroon=...'

      l2custody node add east --cln --rpc-file ~/.lightning/bitcoin/lightning-rpc
    """
    from l2custody import api
    from l2custody.errors import UsageError

    if lnd == cln:
        raise UsageError("say which kind of node this is: --lnd or --cln")
    record = api.add_node(
        STATE.config,
        name,
        "lnd" if lnd else "cln",
        host=host,
        tls_cert=tls_cert,
        macaroon=macaroon,
        lndconnect=lndconnect,
        rpc_file=rpc_file,
        timeout=timeout,
    )
    emit(data(record), f"Added {record.kind} node {record.name!r}. Check it with: l2custody node check {record.name}")


@sub.command("list")
def list_() -> None:
    """The registered nodes (no network access).

    Example:

      l2custody node list --json
    """
    from l2custody import api

    records = api.list_nodes(STATE.config)
    rows = [[r.name, r.kind, r.host or r.rpc_file, r.tls_cert, r.macaroon] for r in records]
    emit(
        data(records),
        table(["name", "kind", "address", "tls cert", "macaroon"], rows, empty="No nodes yet: l2custody node add ..."),
    )


@sub.command("check")
def check(
    name: Annotated[str, typer.Argument(help="The node's name (see `node list`).")],
) -> None:
    """Check a node: reachable, synced to chain, on the wallet's network, recent
    enough, macaroon permissions, and the anchor reserve in its wallet.
    Exits 1 when any check fails.

    Example:

      l2custody node check west
    """
    from l2custody import api

    result = api.check_node(STATE.config, name)
    rows = [[item.name, "ok" if item.ok else "FAIL", item.detail] for item in result.items]
    verdict = "all checks passed" if result.ok else "some checks FAILED"
    emit(
        {"node": result.node, "kind": result.kind, "ok": result.ok, "checks": data(list(result.items))},
        f"Node {result.node} ({result.kind}): {verdict}\n" + table(["check", "result", "detail"], rows),
    )
    if not result.ok:
        raise typer.Exit(1)


@sub.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="The node's name.")],
) -> None:
    """Forget a node (the node itself and its channels are not touched).

    Example:

      l2custody node remove west
    """
    from l2custody import api

    record = api.remove_node(STATE.config, name)
    emit(data(record), f"Removed node {record.name!r}.")
