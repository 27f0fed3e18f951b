"""Core Lightning JSON -> our dataclasses, and the version-dependent request
shapes. Pure functions, no network: unit-tested on real lightningd output
(tests/unit/test_backend_cln*.py, ../shared/cln-fixtures).

Field meanings follow CLN's published schemas (doc/schemas/listpeerchannels.json,
listclosedchannels.json, listfunds.json, getinfo.json, fundchannel_complete.json).
Amounts arrive as integers of msat (or pyln ``Millisatoshi``, or ``"...msat"``
strings from older nodes); they become whole satoshis here.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from l2custody.backends.base import (
    ChannelInfo,
    ChannelState,
    CloseType,
    NodeInfo,
    OnchainBalance,
)
from l2custody.networks import reported_network

MIN_CLN_VERSION = (23, 5)  # listpeerchannels (v23.02), listclosedchannels (v23.05)
WITHHOLD_SINCE = (25, 12)  # fundchannel_complete `withhold`, sendpsbt clears it
DEFAULT_EMERGENCY_SAT = 25_000  # lightningd's min-emergency-msat default

_PENDING = {
    "CHANNELD_AWAITING_LOCKIN",
    "DUALOPEND_AWAITING_LOCKIN",
    "DUALOPEND_OPEN_COMMITTED",
    "DUALOPEND_OPEN_COMMIT_READY",
}
_OPEN = {"CHANNELD_NORMAL", "CHANNELD_AWAITING_SPLICE"}
_CLOSING = {"CHANNELD_SHUTTING_DOWN", "CLOSINGD_SIGEXCHANGE", "CLOSINGD_COMPLETE"}
# No funding output yet: a negotiation (fundchannel_start), not a channel.
NEGOTIATING = {"OPENINGD", "DUALOPEND_OPEN_INIT"}
_ANCHOR_NAMES = {"anchors/even", "anchor_outputs/even", "anchors_zero_fee_htlc_tx/even"}
_ANCHOR_FEATURES = {"option_anchors", "option_anchor_outputs", "option_anchors_zero_fee_htlc_tx"}
_MATURITY_RE = re.compile(r"in (\d+) blocks will spend")


def msat(value: Any) -> int:
    """An amount in msat as CLN sends it (int, pyln Millisatoshi, ``"1000msat"``)."""
    if value is None:
        return 0
    if isinstance(value, str):
        return int(value[:-4]) if value.endswith("msat") else int(value)
    return int(value)


def sat(value: Any) -> int:
    """msat -> whole satoshis (rounded down, like the node's own on-chain amounts)."""
    return msat(value) // 1000


# --- versions -------------------------------------------------------------------------------
def parse_version(text: str) -> tuple[int, int, int]:
    """``"v25.12.1"`` -> ``(25, 12, 1)``; ``"v25.12rc2"``, ``"v24.11.1-modded"``,
    ``"25.09"`` work too. Unknown shapes give ``(0, 0, 0)``."""
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if not m:
        return (0, 0, 0)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))


def supports_withhold(version: str) -> bool:
    """Whether ``fundchannel_complete`` knows ``withhold`` (it is an unknown,
    refused parameter before v25.12)."""
    return parse_version(version)[:2] >= WITHHOLD_SINCE


def complete_params(peer: str, psbt_b64: str, version: str) -> dict[str, Any]:
    """The exact parameters for ``fundchannel_complete`` with a PSBT the node
    will not broadcast itself (we broadcast once the signers are done).

    From v25.12 ``withhold: true`` is passed explicitly: the channel is marked
    as "funding not broadcast" until ``sendpsbt`` hands lightningd the signed
    PSBT (which it then stores and rebroadcasts after a restart), so that
    (a) lightningd does not try to sign and send our unsigned PSBT itself
    after a restart (v25.12 does that for non-withheld channels), and (b) a
    channel that fails before we broadcast is simply forgotten instead of
    lightningd broadcasting a commitment that spends a transaction that does
    not exist. lightningd itself defaults to false, pyln-client's wrapper to
    true: we never rely on either. Before v25.12 the parameter is left out.
    """
    params: dict[str, Any] = {"id": peer, "psbt": psbt_b64}
    if supports_withhold(version):
        params["withhold"] = True
    return params


# --- getinfo ----------------------------------------------------------------------------------
def node_info(info: Mapping[str, Any]) -> NodeInfo:
    """``getinfo`` -> NodeInfo. CLN reports no block hash there (left empty);
    it is synced when getinfo carries neither ``warning_bitcoind_sync`` nor
    ``warning_lightningd_sync``."""
    pubkey = str(info["id"])
    announced = info.get("address") or []
    bound = info.get("binding") or []
    uris = tuple(
        f"{pubkey}@{a['address']}:{a['port']}"
        for a in (announced or bound)
        if a.get("type") in ("ipv4", "ipv6", "torv3", "dns") and a.get("address") and a.get("port")
    )
    synced = not info.get("warning_bitcoind_sync") and not info.get("warning_lightningd_sync")
    return NodeInfo(
        pubkey=pubkey,
        alias=str(info.get("alias", "")),
        version=str(info.get("version", "")),
        network=reported_network(str(info.get("network", "unknown"))),  # liquid: `node check` says it does not match
        synced_to_chain=synced,
        block_height=int(info.get("blockheight", 0)),
        block_hash="",
        kind="cln",
        num_peers=int(info.get("num_peers", 0)),
        num_active_channels=int(info.get("num_active_channels", 0)),
        num_pending_channels=int(info.get("num_pending_channels", 0)),
        uris=uris,
    )


# --- channels ---------------------------------------------------------------------------------
def is_anchor(entry: Mapping[str, Any]) -> bool:
    names = set((entry.get("channel_type") or {}).get("names", []))
    return bool(names & _ANCHOR_NAMES) or bool(set(entry.get("features") or []) & _ANCHOR_FEATURES)


def commitment_type(entry: Mapping[str, Any]) -> str:
    """Our words for CLN's channel_type (the same names as for lnd)."""
    names = (entry.get("channel_type") or {}).get("names")
    if names is None and not entry.get("features"):
        return "unknown"
    if is_anchor(entry):
        return "anchors"
    if "static_remotekey/even" in (names or []) or "option_static_remotekey" in (entry.get("features") or []):
        return "static_remote_key"
    return "legacy"


def _seen_states(entry: Mapping[str, Any]) -> set[str]:
    seen = {str(entry.get("state", ""))}
    for change in entry.get("state_changes") or []:
        seen.add(str(change.get("old_state", "")))
        seen.add(str(change.get("new_state", "")))
    return seen


def close_kind(entry: Mapping[str, Any]) -> CloseType | None:
    """How a channel that is closing/closed was closed, from onchaind's billboard
    and the states it went through; None while it is not closing."""
    status = " ".join(entry.get("status") or [])
    if "Tracking mutual close" in status:
        return CloseType.COOPERATIVE
    if "Tracking our own unilateral close" in status:
        return CloseType.LOCAL_FORCE
    if "Tracking their illegal close" in status:
        return CloseType.BREACH
    if "Tracking their unilateral close" in status:
        return CloseType.REMOTE_FORCE
    seen = _seen_states(entry)
    if "AWAITING_UNILATERAL" in seen:
        return CloseType.LOCAL_FORCE
    if "CLOSINGD_COMPLETE" in seen:
        return CloseType.COOPERATIVE
    if seen & {"FUNDING_SPEND_SEEN", "ONCHAIN"}:
        return CloseType.UNKNOWN
    return None


def _resolved(entry: Mapping[str, Any]) -> bool:
    return any("All outputs resolved" in s for s in entry.get("status") or [])


def channel_state(entry: Mapping[str, Any]) -> tuple[ChannelState, CloseType | None]:
    """CLN's state (+ how it closed) -> ours.

    A cooperative close counts as CLOSED once lightningd saw it on chain
    (FUNDING_SPEND_SEEN/ONCHAIN: CLN only learns of spends from blocks); a
    unilateral one stays FORCE_CLOSING until onchaind reports every output
    resolved.
    """
    state = str(entry.get("state", ""))
    kind = close_kind(entry)
    if state in _PENDING or state in NEGOTIATING:
        return ChannelState.PENDING_OPEN, None
    if state in _OPEN:
        return ChannelState.OPEN, None
    if state in _CLOSING:
        return ChannelState.CLOSING, CloseType.COOPERATIVE if state == "CLOSINGD_COMPLETE" else None
    if state == "AWAITING_UNILATERAL":
        return ChannelState.FORCE_CLOSING, CloseType.LOCAL_FORCE
    if state in ("FUNDING_SPEND_SEEN", "ONCHAIN", "CLOSED"):
        if kind is CloseType.COOPERATIVE or state == "CLOSED" or _resolved(entry):
            return ChannelState.CLOSED, kind
        return ChannelState.FORCE_CLOSING, kind
    return ChannelState.PENDING_OPEN, None  # unknown newer states: never reported as usable


def _closing_txid(entry: Mapping[str, Any], kind: CloseType | None) -> str | None:
    # scratch_txid is "the txid we would use if we went onchain now": our latest
    # commitment, or the agreed mutual close once closingd is done. It is only
    # the real closing transaction for a mutual close or our own unilateral one.
    state = str(entry.get("state", ""))
    if state == "AWAITING_UNILATERAL" or kind in (CloseType.COOPERATIVE, CloseType.LOCAL_FORCE):
        if state in ("CLOSINGD_COMPLETE", "AWAITING_UNILATERAL", "FUNDING_SPEND_SEEN", "ONCHAIN", "CLOSED"):
            return entry.get("scratch_txid") or None
    return None


def channel_info(node: str, entry: Mapping[str, Any], own_addresses: Collection[str] = ()) -> ChannelInfo | None:
    """One ``listpeerchannels`` entry -> ChannelInfo; None for a negotiation that
    has no funding output yet (state OPENINGD).

    CLN's ``close_to``/``close_to_addr`` is where a mutual close pays our side:
    the upfront shutdown script when one was committed, otherwise the node's
    own default (a fresh address of its wallet, which ``close`` may still
    replace with a destination). ``own_addresses`` are addresses known to be
    the node wallet's (``listaddresses``): such a close_to is reported as no
    upfront address (None). CLN reports close_to in every state, so
    ``close_address_known`` is True unless the script has no address form. Balances: ``to_us_msat`` of ``total_msat``.
    """
    txid = entry.get("funding_txid")
    if not txid:
        return None
    state, kind = channel_state(entry)
    total = sat(entry.get("total_msat"))
    ours = sat(entry.get("to_us_msat"))
    funding = entry.get("funding") or {}
    if not total:
        total = sat(funding.get("local_funds_msat")) + sat(funding.get("remote_funds_msat"))
    close_to_addr = entry.get("close_to_addr") or None
    # close_to without close_to_addr: a script with no address form; not "none".
    close_known = close_to_addr is not None or not entry.get("close_to")
    if close_to_addr in own_addresses:
        close_to_addr = None  # the node's default destination, not an upfront commitment
    settled = None
    limbo = 0
    maturity = None
    if state is ChannelState.CLOSED and kind is CloseType.COOPERATIVE:
        fee = sat(entry.get("last_tx_fee_msat")) if entry.get("opener") == "local" else 0
        settled = max(ours - fee, 0)
    elif state is ChannelState.CLOSED:
        settled = ours
    elif state is ChannelState.FORCE_CLOSING:
        limbo = ours
        for line in entry.get("status") or []:
            m = _MATURITY_RE.search(line)
            if m:
                maturity = int(m.group(1))
    return ChannelInfo(
        node=node,
        channel_point=f"{txid}:{int(entry.get('funding_outnum', 0))}",
        peer_pubkey=str(entry.get("peer_id", "")),
        state=state,
        capacity_sat=total,
        local_balance_sat=ours,
        remote_balance_sat=max(total - ours, 0),
        short_channel_id=entry.get("short_channel_id") or None,
        active=state is ChannelState.OPEN and bool(entry.get("peer_connected")),
        private=bool(entry.get("private", False)),
        initiator=str(entry.get("opener", "unknown")),
        close_address=close_to_addr,
        close_address_known=close_known,
        commitment_type=commitment_type(entry),
        closing_txid=_closing_txid(entry, kind),
        close_type=kind,
        settled_sat=settled,
        limbo_sat=limbo,
        blocks_til_maturity=maturity,
    )


def closed_channel_info(node: str, entry: Mapping[str, Any]) -> ChannelInfo:
    """One ``listclosedchannels`` entry (channels lightningd has forgotten, 100
    blocks after they were fully resolved, or at once when their funding never
    confirmed). CLN does not say there whether a close was cooperative
    (``close_type`` UNKNOWN). A channel whose funding never confirmed (no
    short_channel_id) is ABANDONED when the operator
    cancelled it (``fundchannel_cancel``: cause "user"), FUNDING_CANCELED
    otherwise; its "last commitment" was never on chain."""
    never_funded = not entry.get("short_channel_id")
    # Withheld yet funded: lightningd forgot it without sending a closing transaction of its own.
    no_close_tx = never_funded or bool(entry.get("funding_withheld"))
    if never_funded:
        kind = CloseType.ABANDONED if entry.get("close_cause") == "user" else CloseType.FUNDING_CANCELED
    else:
        kind = CloseType.UNKNOWN
    return ChannelInfo(
        node=node,
        channel_point=f"{entry['funding_txid']}:{int(entry['funding_outnum'])}",
        peer_pubkey=str(entry.get("peer_id", "")),
        state=ChannelState.CLOSED,
        capacity_sat=sat(entry.get("total_msat")),
        local_balance_sat=0,
        short_channel_id=entry.get("short_channel_id") or None,
        private=bool(entry.get("private", False)),
        initiator=str(entry.get("opener", "unknown")),
        close_address=None,
        close_address_known=False,
        commitment_type=commitment_type(entry),
        closing_txid=None if no_close_tx else entry.get("last_commitment_txid") or None,
        close_type=kind,
        settled_sat=0 if never_funded else sat(entry.get("final_to_us_msat")),
    )


def has_anchor_channel(entries: Iterable[Mapping[str, Any]]) -> bool:
    """Whether lightningd will insist on its emergency reserve (any anchor channel,
    in any state, as lightningd's own have_anchor_channel())."""
    return any(is_anchor(e) for e in entries)


# --- wallet -----------------------------------------------------------------------------------
def emergency_reserve_sat(listconfigs: Mapping[str, Any]) -> int:
    """``listconfigs config=min-emergency-msat`` -> sat (lightningd's default when absent)."""
    configs = listconfigs.get("configs") or {}
    item = configs.get("min-emergency-msat")
    if isinstance(item, Mapping) and "value_msat" in item:
        return sat(item["value_msat"])
    if "min-emergency-msat" in listconfigs:  # pre-v23.08 flat answer
        return sat(listconfigs["min-emergency-msat"])
    return DEFAULT_EMERGENCY_SAT


def spendable_outputs(listfunds: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Wallet outputs that are not spent (any confirmation state)."""
    return [o for o in listfunds.get("outputs") or [] if o.get("status") != "spent"]


def onchain_balance(listfunds: Mapping[str, Any], reserve_sat: int) -> OnchainBalance:
    """``listfunds`` -> OnchainBalance. ``locked_sat``: outputs lightningd has
    reserved for a transaction being built; ``reserved_anchor_sat``: the
    emergency reserve it keeps while it has anchor channels (pass 0 otherwise)."""
    confirmed = unconfirmed = locked = 0
    for out in spendable_outputs(listfunds):
        amount = sat(out.get("amount_msat"))
        if out.get("status") == "confirmed":
            confirmed += amount
        else:
            unconfirmed += amount
        if out.get("reserved"):
            locked += amount
    return OnchainBalance(confirmed, unconfirmed, locked, reserve_sat)
