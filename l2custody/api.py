"""The library's one way in: every function an ``l2custody`` command calls.

Each function takes the ``--config`` path (``None``: ``$L2CUSTODY_CONFIG`` or
the default), opens what the command needs (config, store, wallet, nodes),
does one thing and closes everything again. They return typed results with a
``to_dict()``; formatting is the CLI's job. They raise ``l2custody.errors``
only.

Importing this module is cheap: the flows, grpc, pyln and embit are imported
inside the functions that need them, so ``l2custody --help`` and commands that
talk to no node do not pay for them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import logging

    from l2custody.backends.node_check import NodeCheck
    from l2custody.backends.node_registry import NodeRecord, NodeRegistry
    from l2custody.config import Config
    from l2custody.custody.channels import ChannelDetail, ChannelView
    from l2custody.custody.closing.close import ClosePlan, CloseReport, CloseStatus
    from l2custody.custody.enforce.service import EnforceEvent, EnforceSummary
    from l2custody.custody.funding.lifecycle import SessionAbort, SessionBroadcast, SignOutcome
    from l2custody.custody.funding.session import ChannelRequest, SessionView
    from l2custody.custody.guard import GuardEvent, GuardPolicy, GuardSummary
    from l2custody.custody.report.snapshot import Snapshot
    from l2custody.custody.sweeping.sweep import SweepReport, SweepStatus
    from l2custody.wallet.generations import GenerationInfo, Migration, RotationPlan
    from l2custody.wallet.recovery import RecoveryPlan, RefreshPlan
    from l2custody.wallet.rehearsal import ConfirmAddress, RehearsalResult
    from l2custody.wallet.service import Wallet
    from l2custody.wallet.signer_registry import SignerInfo

ConfigPath = Path | str | None
Progress = Callable[[str], None]


def _quiet(_message: str) -> None:
    pass


def load_config(config: ConfigPath) -> Config:
    """The validated config at ``config`` (ConfigError names the file and key)."""
    from l2custody.config import load_config as load

    return load(config)


# --- init ---------------------------------------------------------------------------------------
def init(config: ConfigPath, network: str, **options: Any) -> Config:
    """``init``: write a commented config for ``network`` (see ``config.init_config`` for the
    options) and create the data directory."""
    from l2custody.config import init_config

    return init_config(config, network, **options)


# --- signers ------------------------------------------------------------------------------------
def add_signer(
    config: ConfigPath,
    name: str,
    *,
    software: Path | None = None,
    file_dir: Path | None = None,
    hwi: str | None = None,
    fingerprint: str | None = None,
    device_type: str | None = None,
    generate: bool = False,
) -> SignerInfo:
    """``signer add``: exactly one of ``software`` (a key file), ``file_dir`` (an air-gapped
    signer's exchange directory) or ``hwi`` (a device fingerprint); ``generate`` writes a
    new 24-word mnemonic to the ``software`` key file first (mode 0600)."""
    from l2custody.errors import UsageError
    from l2custody.wallet.signer_registry import add_signer as register

    given = [(k, v) for k, v in (("software", software), ("file", file_dir), ("hwi", hwi)) if v is not None]
    if len(given) != 1:
        raise UsageError("give exactly one of --software FILE, --file-dir DIR or --hwi FINGERPRINT")
    kind, source = given[0]
    loaded = load_config(config)
    if generate:
        if kind != "software":
            raise UsageError("--generate works with --software FILE only")
        from l2custody.user_paths import user_path
        from l2custody.wallet.signers import generate_mnemonic, write_secret_file

        key_file = user_path(str(source), "--software", UsageError)
        write_secret_file(key_file, generate_mnemonic(24) + "\n")
        try:
            return register(loaded, name, kind, str(key_file), fingerprint=fingerprint, device_type=device_type)
        except BaseException:  # a refused signer leaves no key behind: nobody has seen this seed
            key_file.unlink(missing_ok=True)
            raise
    return register(loaded, name, kind, str(source), fingerprint=fingerprint, device_type=device_type)


def list_signers(config: ConfigPath) -> list[SignerInfo]:
    """``signer list``."""
    from l2custody.wallet.signer_registry import list_signers as listed

    return listed(load_config(config))


# --- the wallet and PSBTs -----------------------------------------------------------------------
def create_wallet(
    config: ConfigPath,
    threshold: int,
    keys: Sequence[str],
    *,
    name: str = "treasury",
    birthday: int | None = None,
    recovery: Sequence[str] = (),
) -> Wallet:
    """``wallet create``: the wsh(sortedmulti) wallet of ``keys``, or with ``recovery`` paths
    (``KEY@BLOCKS``) the recovery wallet; the caller closes it."""
    from l2custody.wallet.service import Wallet

    return Wallet.create(load_config(config), threshold, list(keys), name=name, birthday=birthday, recovery=recovery)


def import_wallet(config: ConfigPath, source: str, *, name: str | None = None, birthday: int | None = None) -> Wallet:
    """``wallet import``: a descriptor, or a file another wallet wrote; the caller closes it."""
    from l2custody.wallet.service import Wallet

    return Wallet.import_(load_config(config), source, name=name, birthday=birthday)


def open_wallet(config: ConfigPath) -> Wallet:
    """The configured wallet (WalletNotFound says how to create one); the caller closes it.
    ``wallet ...`` and ``psbt ...`` commands call its methods."""
    from l2custody.wallet.service import Wallet

    return Wallet.open(load_config(config))


# --- wallet generations (wallet/generations.py) ------------------------------------------------
def plan_rotation(
    config: ConfigPath,
    *,
    add: Sequence[str] = (),
    remove: Sequence[str] = (),
    threshold: int | None = None,
    reason: str,
) -> RotationPlan:
    """``wallet rotate`` without saving: the next generation's descriptor (checked)."""
    from l2custody.errors import UsageError
    from l2custody.wallet import generations
    from l2custody.wallet.descriptor import MultisigDescriptor

    with open_wallet(config) as wallet:
        current = wallet.descriptor
        if not isinstance(current, MultisigDescriptor):
            raise UsageError(
                "wallet rotate changes the keys of a wsh(sortedmulti) wallet; this wallet has recovery paths "
                "(a miniscript): create a new wallet with the new keys and send the coins to it"
            )
        return generations.plan_rotation(
            current,
            add=add,
            remove=remove,
            threshold=threshold,
            reason=reason,
            signers=generations.registered_fingerprints(wallet.store),
            history=wallet.store.generations(),
        )


def rotate_wallet(config: ConfigPath, plan: RotationPlan) -> Wallet:
    """``wallet rotate``: save ``plan`` as the next generation; returns its wallet (caller closes)."""
    from l2custody.wallet import generations

    with open_wallet(config) as wallet:
        generations.rotate(wallet, plan)
    return open_wallet(config)


def wallet_generations(config: ConfigPath) -> list[GenerationInfo]:
    """``wallet generations``: every generation with its keys, coins and quorum."""
    from l2custody.wallet import generations

    with open_wallet(config) as wallet:
        return generations.generation_infos(wallet.store, generations.registered_fingerprints(wallet.store))


def migrate_wallet(
    config: ConfigPath,
    *,
    generation: int | None = None,
    fee_rate: float | None = None,
    utxos: Sequence[str] | None = None,
) -> list[Migration]:
    """``wallet migrate``: PSBTs moving older generations' coins to the newest."""
    from l2custody.wallet import generations

    with open_wallet(config) as wallet:
        return generations.migrate(wallet, generation=generation, fee_rate=fee_rate, utxos=utxos)


# --- recovery wallets (wallet/recovery.py) ---------------------------------------------------------
def refresh_wallet(
    config: ConfigPath, *, margin: int | None = None, fee_rate: float | None = None, utxos: Sequence[str] | None = None
) -> RefreshPlan:
    """``wallet refresh``: re-spend coins whose recovery path opens soon, with the primary keys."""
    from l2custody.wallet import recovery

    with open_wallet(config) as wallet:
        return recovery.refresh(wallet, margin=margin, fee_rate=fee_rate, utxos=utxos)


def recover_wallet(
    config: ConfigPath, *, key: str, to: str, fee_rate: float | None = None, utxos: Sequence[str] | None = None
) -> RecoveryPlan:
    """``wallet recover``: spend the coins a recovery path may already spend, to ``to``."""
    from l2custody.wallet import recovery

    with open_wallet(config) as wallet:
        return recovery.recover(wallet, key=key, to=to, fee_rate=fee_rate, utxos=utxos)


def load_psbt(data: bytes | str) -> Any:
    """A PSBT from binary or base64 (PsbtError says what is wrong)."""
    from l2custody.wallet.psbt import load_psbt as load

    return load(data)


def read_psbt_file(path: Path) -> Any:
    """The PSBT in the file at ``path`` (binary, base64 or hex); PsbtError naming the file."""
    from l2custody.errors import PsbtError
    from l2custody.user_paths import user_path, why
    from l2custody.wallet.psbt import load_psbt as load

    path = user_path(path, "PSBT file", PsbtError)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PsbtError(f"cannot read {path}: {why(exc)}") from None
    try:
        return load(raw)
    except PsbtError as exc:
        raise PsbtError(f"{path}: {exc.message}") from None


def write_psbt_file(path: Path, psbt: Any, *, session: str | None = None) -> Path:
    """Write ``psbt`` (binary) to ``path`` atomically; PsbtError naming the file (and how to
    get the PSBT again from its ``session``) when it cannot be written."""
    from l2custody.errors import PsbtError
    from l2custody.private_files import write_private_file
    from l2custody.user_paths import user_path, why

    again = f"; write it elsewhere with `l2custody psbt export {session} --out FILE`" if session else ""
    path = user_path(path, "PSBT file", PsbtError)
    try:
        write_private_file(path, psbt.serialize())
    except OSError as exc:
        raise PsbtError(f"cannot write the PSBT to {path}: {why(exc)}{again}") from None
    return path


# --- rehearsals ---------------------------------------------------------------------------------
def rehearse(
    config: ConfigPath,
    *,
    signers: Sequence[str] = (),
    amount: str | None = None,
    fee_rate: float | None = None,
    wait_signers: float = 0.0,
    timeout: float = 3600.0,
    poll_seconds: float = 2.0,
    progress: Progress = _quiet,
    confirm_address: ConfirmAddress | None = None,
) -> RehearsalResult:
    """``wallet rehearse``: start the rehearsal of the wallet's current generation, or continue
    the unfinished one, as far as it goes now (see ``wallet/rehearsal.py``). ``amount`` as
    ``parse_sats`` reads it; ``confirm_address`` asks the operator about a hardware signer's screen."""
    from l2custody.errors import UsageError
    from l2custody.wallet.rehearsal import Rehearsal, RehearsalOptions

    for option, value in (("--wait-signers", wait_signers), ("--timeout", timeout)):
        if value < 0:
            raise UsageError(f"{option} is a number of seconds (0 or more), not {value:g}")
    options = RehearsalOptions(
        signers=tuple(signers),
        amount_sat=parse_sats(amount) if amount is not None else None,
        fee_rate=fee_rate,
        wait_signers=wait_signers,
        timeout=timeout,
        poll_seconds=poll_seconds,
    )
    with open_wallet(config) as wallet:
        return Rehearsal(wallet, progress, confirm_address).run(options)


def abort_rehearsal(config: ConfigPath, reason: str = "", *, progress: Progress = _quiet) -> RehearsalResult:
    """``wallet rehearse --abort``: give up the unfinished rehearsal; its coins are released."""
    from l2custody.wallet.rehearsal import Rehearsal

    with open_wallet(config) as wallet:
        return Rehearsal(wallet, progress).abort(reason)


# --- nodes --------------------------------------------------------------------------------------
@contextmanager
def _registry(config: ConfigPath) -> Iterator[NodeRegistry]:
    from l2custody.backends.node_registry import NodeRegistry
    from l2custody.store import Store

    loaded = load_config(config)
    with Store.open(loaded.store_path) as store:
        yield NodeRegistry(store, loaded.data_dir)


def add_node(config: ConfigPath, name: str, kind: str, **options: Any) -> NodeRecord:
    """``node add``: see ``NodeRegistry.add`` for the options. No network access."""
    with _registry(config) as registry:
        return registry.add(name, kind, **options)


def list_nodes(config: ConfigPath) -> list[NodeRecord]:
    """``node list``."""
    with _registry(config) as registry:
        return registry.all()


def remove_node(config: ConfigPath, name: str) -> NodeRecord:
    """``node remove``."""
    with _registry(config) as registry:
        return registry.remove(name)


def check_node(config: ConfigPath, name: str) -> NodeCheck:
    """``node check``: reachable, synced, network, version, permissions, anchor reserve."""
    from l2custody.backends.node_check import check_node as check
    from l2custody.backends.node_registry import backend_for
    from l2custody.errors import NotSupported

    loaded = load_config(config)
    with _registry(config) as registry:
        record = registry.get(name)
    try:
        backend = backend_for(record)
    except NotSupported:
        return check(record, loaded.network)  # reports it as an item
    try:
        return check(record, loaded.network, backend)
    finally:
        backend.close()


def guard_node(
    config: ConfigPath,
    node: str,
    policy: GuardPolicy,
    stop: threading.Event,
    *,
    log: Callable[[GuardEvent], None] | None = None,
) -> GuardSummary:
    """``node guard NODE``: answer the node's inbound channel requests until ``stop``."""
    from l2custody.custody.context import open_custody
    from l2custody.custody.guard import run_guard
    from l2custody.errors import NetworkMismatch

    with open_custody(config) as custody:
        backend = custody.node(node)
        info = backend.info()  # fail fast (unreachable, bad macaroon, wrong network) before guarding
        if info.network != custody.wallet.record.network:
            raise NetworkMismatch(
                f"node {node!r} is on {info.network} but the wallet is on {custody.wallet.record.network}; "
                "its close addresses would be useless there"
            )
        return run_guard(backend, custody.wallet, policy, stop, log=log)


def guard_policy(
    *,
    min_size: str | None = None,
    max_size: str | None = None,
    allowed_peers: Sequence[str] = (),
    denied_peers: Sequence[str] = (),
    allow_private: bool = True,
) -> GuardPolicy:
    """The inbound policy of ``node guard`` from its options (amounts as ``parse_sats`` reads
    them; UsageError/AmountError name a bad option). Touches nothing."""
    from l2custody.custody.guard import GuardPolicy

    return GuardPolicy.build(
        min_channel_sat=parse_sats(min_size) if min_size else 0,
        max_channel_sat=parse_sats(max_size) if max_size else None,
        allowed_peers=allowed_peers,
        denied_peers=denied_peers,
        allow_private=allow_private,
    )


# --- channels -----------------------------------------------------------------------------------
def list_channels(config: ConfigPath, node: str | None = None, *, include_closed: bool = True) -> list[ChannelView]:
    """``channel list``: the channels of one node or of every registered node."""
    from l2custody.custody.context import open_custody

    with open_custody(config, lazy=True) as custody:
        return custody.channel_views(node, include_closed=include_closed)


def show_channel(config: ConfigPath, ref: str, node: str | None = None) -> ChannelDetail:
    """``channel show``: one channel by channel point or short id."""
    from l2custody.custody.channels import ChannelDetail
    from l2custody.custody.closing.records import close_record
    from l2custody.custody.context import open_custody

    with open_custody(config, lazy=True) as custody:
        _backend, view = custody.locate(ref, node)
        store = custody.wallet.store
        record = close_record(store, view.channel_point)
        history = tuple(
            {"ts": e.ts, "actor": e.actor, "action": e.action, "details": e.details}
            for e in store.audit_log(subject=view.channel_point)
        )
        return ChannelDetail(view, record.to_dict() if record else None, history)


# --- funding sessions ---------------------------------------------------------------------------
def channel_request(node: str, peer: str, amount: str, *, private: bool = False, push: str | int = 0) -> ChannelRequest:
    """One ``channel open`` request (UsageError/AmountError name the bad part)."""
    from l2custody.custody.funding.requests import channel_request as request

    return request(node, peer, amount, private=private, push=push)


def read_batch(path: Path) -> list[ChannelRequest]:
    """The requests of a ``channel batch`` file (CSV or JSON)."""
    from l2custody.custody.funding.requests import read_batch as read

    return read(path)


def open_channels(
    config: ConfigPath,
    requests: Sequence[ChannelRequest],
    *,
    fee_rate: float | None = None,
    interactive: bool = False,
    signers: Sequence[str] = (),
    allow_no_upfront_shutdown: bool = False,
    timeout: float = 540.0,
    progress: Progress = _quiet,
) -> SessionView:
    """``channel open`` / ``channel batch``: negotiate the channels and secure them with an
    unsigned PSBT (signed later, ``session sign``); or, ``interactive``, the classic flow with
    ``signers`` at hand within the peers' timers."""
    from l2custody.custody.context import open_custody
    from l2custody.custody.funding.interactive import open_interactive
    from l2custody.custody.funding.lifecycle import view
    from l2custody.custody.funding.negotiate import open_channels as negotiate
    from l2custody.errors import UsageError

    if signers and not interactive:
        raise UsageError(
            "--signer goes with --interactive; otherwise sign later with `l2custody session sign ID --signer NAME`"
        )
    with open_custody(config, progress=progress) as ctx:
        if interactive:
            session = open_interactive(
                ctx,
                list(requests),
                list(signers),
                fee_rate=fee_rate,
                allow_no_upfront_shutdown=allow_no_upfront_shutdown,
                timeout=timeout,
            )
        else:
            session = negotiate(
                ctx, list(requests), fee_rate=fee_rate, allow_no_upfront_shutdown=allow_no_upfront_shutdown
            )
        return view(ctx, session)


def list_sessions(config: ConfigPath, *, include_final: bool = False) -> list[dict[str, Any]]:
    """``session list``: open sessions (``include_final``: every one), without their PSBTs."""
    from l2custody.custody.funding.records import list_sessions as listed

    with open_wallet(config) as wallet:
        rows = [s.to_dict() for s in listed(wallet.store, include_final=include_final)]
    for row in rows:
        row.pop("psbt", None)
    return rows


def show_session(config: ConfigPath, session_id: str, *, progress: Progress = _quiet) -> SessionView:
    """``session show``: the session as stored."""
    from l2custody.custody.context import open_custody
    from l2custody.custody.funding.lifecycle import show

    with open_custody(config, progress=progress) as ctx:
        return show(ctx, session_id)


def sign_session(
    config: ConfigPath, session_id: str, signer: str, *, broadcast: bool = True, progress: Progress = _quiet
) -> SignOutcome:
    """``session sign``: one signer's signatures; the last needed one broadcasts."""
    from l2custody.custody.context import open_custody
    from l2custody.custody.funding.lifecycle import sign_session as sign

    with open_custody(config, progress=progress) as ctx:
        return sign(ctx, session_id, signer, broadcast=broadcast)


def session_status(
    config: ConfigPath,
    session_id: str,
    *,
    wait: bool = False,
    timeout: float = 3600.0,
    on_update: Callable[[SessionView], None] | None = None,
    progress: Progress = _quiet,
) -> SessionView:
    """``session status``: bring the session up to date (``wait``: until its channels are open)."""
    from l2custody.custody.context import open_custody
    from l2custody.custody.funding.lifecycle import follow, refresh

    with open_custody(config, progress=progress) as ctx:
        if wait:
            return follow(ctx, session_id, timeout=timeout, on_update=on_update)
        return refresh(ctx, session_id)


def broadcast_session(config: ConfigPath, session_id: str, *, progress: Progress = _quiet) -> SessionBroadcast:
    """``session broadcast``: finalize and broadcast a fully signed session."""
    from l2custody.custody.context import open_custody
    from l2custody.custody.funding.lifecycle import SessionBroadcast, view
    from l2custody.custody.funding.lifecycle import broadcast_session as broadcast

    with open_custody(config, progress=progress) as ctx:
        out = broadcast(ctx, session_id)
        return SessionBroadcast(out.txid, view(ctx, out.session))


def abort_session(
    config: ConfigPath, session_id: str, reason: str = "", *, force: bool = False, progress: Progress = _quiet
) -> SessionAbort:
    """``session abort``: nodes forget the session's channels, coins are released."""
    from l2custody.custody.context import open_custody
    from l2custody.custody.funding.lifecycle import SessionAbort, leftovers, view
    from l2custody.custody.funding.lifecycle import abort_session as abort

    with open_custody(config, progress=progress) as ctx:
        session = abort(ctx, session_id, reason, force=force)
        return SessionAbort(view(ctx, session), tuple(leftovers(session)))


# --- closes -------------------------------------------------------------------------------------
def close_channel(
    config: ConfigPath,
    ref: str,
    *,
    node: str | None = None,
    force: bool = False,
    fee_rate: float | None = None,
    allow_foreign: bool = False,
    confirm: Callable[[ClosePlan], None] | None = None,
    wait: bool = False,
    timeout: float = 3600.0,
    progress: Callable[[CloseStatus], None] | None = None,
) -> CloseReport:
    """``channel close``: plan, let ``confirm`` see the plan (it raises to stop: nothing is
    recorded then), close, and with ``wait`` follow the close until it is verified (or
    ``timeout``)."""
    from l2custody.custody.closing import close
    from l2custody.custody.closing.close import CloseReport
    from l2custody.custody.context import open_custody

    with open_custody(config) as custody:
        backend, view = custody.locate(ref, node)
        plan = close.plan_close(view, force=force, allow_foreign=allow_foreign)
        if confirm is not None:
            confirm(plan)
        outcome = close.close_channel(
            backend, custody.wallet, view, force=force, fee_rate=fee_rate, allow_foreign=allow_foreign
        )
        status = None
        if wait:
            status = close.wait_for_close(
                backend, custody.wallet, view.channel_point, timeout=timeout, progress=progress
            )
        return CloseReport(outcome, status)


def close_status(
    config: ConfigPath,
    ref: str,
    *,
    node: str | None = None,
    wait: bool = False,
    timeout: float = 3600.0,
    progress: Callable[[CloseStatus], None] | None = None,
) -> CloseStatus:
    """``channel close-status``: verify (and with ``wait`` follow) one close."""
    from l2custody.custody.closing import close
    from l2custody.custody.context import open_custody

    with open_custody(config) as custody:
        backend, view = custody.locate(ref, node)
        if wait:
            return close.wait_for_close(backend, custody.wallet, view.channel_point, timeout=timeout, progress=progress)
        return close.close_status(backend, custody.wallet, view.channel_point)


# --- sweeps -------------------------------------------------------------------------------------
def sweep(
    config: ConfigPath,
    node: str,
    *,
    keep_sat: int | None = None,
    fee_rate: float | None = None,
    dry_run: bool = False,
    wait: bool = False,
    timeout: float = 3600.0,
    progress: Callable[[SweepStatus], None] | None = None,
) -> SweepReport:
    """``sweep NODE``: preview (``dry_run``) or sweep, and with ``wait`` follow it until the
    wallet holds the output."""
    from l2custody.custody.context import open_custody
    from l2custody.custody.sweeping.sweep import SweepReport, preview_sweep, sweep_node, wait_for_sweep

    with open_custody(config) as custody:
        backend = custody.node(node)
        if dry_run:
            return SweepReport(preview_sweep(backend, custody.wallet, keep_sat=keep_sat, fee_rate=fee_rate), None, None)
        record = sweep_node(backend, custody.wallet, keep_sat=keep_sat, fee_rate=fee_rate)
        status = None
        if wait:
            status = wait_for_sweep(custody.wallet, record.id, timeout=timeout, progress=progress)
        return SweepReport(None, record, status)


def sweep_statuses(config: ConfigPath, node: str | None = None) -> list[SweepStatus]:
    """``sweep-status``: every sweep (of ``node``), verifying the unfinished ones (one wallet sync)."""
    from l2custody.custody.sweeping.records import sweep_records
    from l2custody.custody.sweeping.sweep import sweep_status

    with open_wallet(config) as wallet:
        records = sweep_records(wallet.store, node)
        if any(not r.state.settled for r in records):
            wallet.sync()
        return [sweep_status(wallet, r.id, sync=False) for r in records]


# --- report and watch ---------------------------------------------------------------------------
def report(config: ConfigPath, node: str | None = None, *, sync: bool = True) -> Snapshot:
    """``report``: one node or every registered node (none registered: the wallet only)."""
    from l2custody.custody.context import open_custody
    from l2custody.custody.report.observe import read_inputs
    from l2custody.custody.report.snapshot import ReportSettings, build_snapshot

    with open_custody(config) as custody:
        backends = custody.nodes(node) if node is not None else [custody.node(n) for n in custody.node_names()]
        return build_snapshot(
            read_inputs(custody.wallet, backends, sync=sync), ReportSettings.from_config(custody.wallet.config)
        )


def watch(
    config: ConfigPath,
    *,
    metrics_listen: str | None = None,
    once: bool = False,
    poll_seconds: float | None = None,
    auto_sweep: bool | None = None,
    logger: logging.Logger | None = None,
) -> Snapshot | None:
    """``watch``: follow every node and the chain until SIGTERM/SIGINT (``once``: one round)."""
    from l2custody.custody.watch.service import run_watch
    from l2custody.custody.watch.watcher import LOGGER

    return run_watch(
        load_config(config),
        metrics_listen=metrics_listen,
        once=once,
        poll_seconds=poll_seconds,
        auto_sweep=auto_sweep,
        logger=logger or LOGGER,
    )


def parse_sats(text: str) -> int:
    """``150000``, ``150000sat`` or ``0.0015btc`` as integer satoshis (AmountError otherwise)."""
    from l2custody.amounts import parse_sats as parse

    return parse(text)


# --- node enforce / node macaroon ----------------------------------------------------------
def enforce_node(
    config: ConfigPath,
    node: str,
    stop: threading.Event,
    *,
    macaroon: Path | None = None,
    audit: bool = True,
    log: Callable[[EnforceEvent], None] | None = None,
) -> EnforceSummary:
    """``node enforce NODE``: judge the node's caveat-macaroon requests (and audit the rest) until ``stop``."""
    from l2custody.custody.context import open_custody
    from l2custody.custody.enforce.service import run_enforcer

    with open_custody(config) as custody:
        return run_enforcer(custody.node(node), custody.wallet, stop, macaroon=macaroon, audit=audit, log=log)


def bake_enforced_macaroon(
    config: ConfigPath, node: str, out: Path, *, permissions: Sequence[str] | None = None, holder: str = ""
) -> dict[str, Any]:
    """``node macaroon NODE --out FILE``: a macaroon whose requests lnd sends to ``node enforce``."""
    from l2custody.custody.context import open_custody
    from l2custody.custody.enforce.macaroons import bake

    with open_custody(config) as custody:
        return bake(custody.node(node), custody.wallet, out, permissions, holder).to_dict()
