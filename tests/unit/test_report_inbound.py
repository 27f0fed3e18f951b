"""An inbound channel lnd accepted without our upfront script (the guard was not connected) is flagged."""

from __future__ import annotations

from l2custody.custody.report.snapshot import build_snapshot
from tests.unit.test_report import SETTINGS, facts, inputs, node, outpoint


def test_an_inbound_channel_without_upfront_script_is_flagged_and_names_the_guard() -> None:
    n = node(
        facts(1, close_address=None, close_committed=False, close_ours=None, funding="peer", initiator="remote"),
        facts(2, close_address=None, close_committed=False, close_ours=None),
    )
    by = {(f.check, f.kind, f.subject): f for f in build_snapshot(inputs((n,)), SETTINGS).findings}
    inbound = by[("close-address", "missing", outpoint(1))]
    assert "accepted it without our upfront script" in inbound.message and "node guard west" in inbound.message
    assert "node guard" not in by[("close-address", "missing", outpoint(2))].message  # we opened that one
