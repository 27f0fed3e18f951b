"""After a funding broadcast, nodes that must see the signed PSBT (CLN `sendpsbt`) are told.

The nodes here are stand-ins (named as such): the behaviour under test is which
backends the session layer calls and what it records, not the node itself; the
real lightningd path is covered by tests/integration/test_cln_funding.py.
"""

from types import SimpleNamespace

from l2custody.backends.base import Capability
from l2custody.custody.funding.lifecycle import _publish_through_nodes
from l2custody.custody.funding.session import (
    ChannelRequest,
    FundingLeg,
    FundingSession,
    SessionState,
)
from l2custody.errors import NodeUnreachable


class StandInNode:
    def __init__(self, publishes: bool, fails: bool = False) -> None:
        self.capabilities = {Capability.PUBLISH_PSBT} if publishes else set()
        self.fails = fails
        self.published: list[bytes] = []

    def supports(self, cap: Capability) -> bool:
        return cap in self.capabilities

    def publish_psbt(self, psbt: bytes) -> str:
        if self.fails:
            raise NodeUnreachable("lightningd is not running")
        self.published.append(psbt)
        return "ab" * 32


def run(nodes: dict[str, StandInNode]):
    audits: list[tuple[str, dict]] = []
    notes: list[str] = []
    ctx = SimpleNamespace(node=nodes.__getitem__, audit=lambda a, s, d: audits.append((a, d)), progress=notes.append)
    legs = tuple(
        FundingLeg(
            request=ChannelRequest(node=name, peer_pubkey="02" + "11" * 32, amount_sat=100_000), close_address="bcrt1qx"
        )
        for name in ("cln-a", "lnd-b", "cln-a")
    )
    session = FundingSession(id="fs-1", state=SessionState.BROADCAST, start_height=1, legs=legs, txid="cd" * 32)
    _publish_through_nodes(ctx, session, b"signed-psbt")
    return audits, notes


def test_each_node_that_needs_the_psbt_is_told_once_and_others_are_left_alone():
    nodes = {"cln-a": StandInNode(publishes=True), "lnd-b": StandInNode(publishes=False)}
    audits, notes = run(nodes)
    assert nodes["cln-a"].published == [b"signed-psbt"]
    assert nodes["lnd-b"].published == []
    assert [a for a, _ in audits] == ["funding-node-published"] and notes == []


def test_a_node_that_cannot_be_told_is_recorded_and_the_operator_told_to_retry():
    nodes = {"cln-a": StandInNode(publishes=True, fails=True), "lnd-b": StandInNode(publishes=False)}
    audits, notes = run(nodes)
    assert audits == [("funding-node-publish-failed", {"node": "cln-a", "reason": "lightningd is not running"})]
    assert "session broadcast fs-1" in notes[0]
