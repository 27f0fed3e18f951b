"""``l2custody init``: write a starting config and create the data directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from l2custody.cli.main import STATE, app, emit
from l2custody.cli.params import path


@app.command("init")
def init(
    network: Annotated[str, typer.Option("--network", "-n", help="regtest, signet, testnet or mainnet.")] = "regtest",
    chain_url: Annotated[
        Optional[str],
        typer.Option(help="JSON-RPC URL of bitcoind (http://...) or btcd (https://...). Default: the network's port."),
    ] = None,
    chain_kind: Annotated[
        str, typer.Option(help="auto, bitcoind or btcd (auto: btcd when --chain-cert is given).")
    ] = "auto",
    chain_user: Annotated[Optional[str], typer.Option(help="RPC user name.")] = None,
    chain_password: Annotated[
        Optional[str],
        typer.Option(help="RPC password (stored in the 0600 config).", envvar="L2CUSTODY_CHAIN_PASSWORD"),
    ] = None,
    chain_cookie: Annotated[
        Optional[Path], typer.Option(help="bitcoind's .cookie file, instead of user/password.", parser=path)
    ] = None,
    chain_cert: Annotated[Optional[Path], typer.Option(help="btcd's rpc.cert (TLS, pinned).", parser=path)] = None,
    data_dir: Annotated[
        Optional[Path],
        typer.Option(help="Where the store lives (default ~/.local/share/l2custody/NETWORK).", parser=path),
    ] = None,
    birthday: Annotated[int, typer.Option(help="First block height to scan for the wallet.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing config.")] = False,
) -> None:
    """Write a commented starting config (0600) and create the data directory.

    Examples:

      l2custody init --network regtest --chain-url https://127.0.0.1:18334 \\
          --chain-user me --chain-password pw --chain-cert ~/.btcd/rpc.cert

      l2custody --config ./signet.toml init --network signet --chain-cookie ~/.bitcoin/signet/.cookie
    """
    from l2custody import api

    cfg = api.init(
        STATE.config,
        network,
        data_dir=data_dir,
        force=force,
        chain_url=chain_url,
        chain_kind=chain_kind,
        chain_user=chain_user,
        chain_password=chain_password,
        chain_cookie=chain_cookie,
        chain_cert=chain_cert,
        birthday=birthday,
    )
    emit(
        {"config": str(cfg.path), "network": cfg.network, "data_dir": str(cfg.data_dir), "chain": cfg.chain.url},
        f"Wrote {cfg.path} ({cfg.network}); data in {cfg.data_dir}.\n"
        f"Chain source: {cfg.chain.url}. Review the [policy] section, then create the wallet:\n"
        "  l2custody wallet create --threshold 2 --key '[fingerprint/48h/1h/0h/2h]tpub...' ...",
    )
