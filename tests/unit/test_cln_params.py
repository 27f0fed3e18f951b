"""The plugin's parameter tables are lightningd's own (v25.12.1): each handler's ``param()``
order, and the names its ``doc/schemas`` document. Regenerated and compared when the
Core Lightning source tree is present (``/opt/src/lightning`` or ``$CLN_SOURCE``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from l2custody.custody.cln_policy.commands import FILTERED, PARAMS, SIGNATURES
from tests.tools.cln_params import build

TREE = Path(os.environ.get("CLN_SOURCE", "/opt/src/lightning"))


def test_every_filtered_command_has_a_table() -> None:
    assert set(FILTERED) == set(PARAMS) == set(SIGNATURES)
    for command, entry in PARAMS.items():
        assert set(entry["required"]) <= set(entry["positional"]), command
        assert entry["positional"][: len(entry["required"])] == entry["required"] or command == "splice_signed"


def test_fundchannel_takes_utxos_before_push_msat_and_close_to() -> None:
    """The order the code runs, not the schema's (which lists close_to before utxos)."""
    order = SIGNATURES["fundchannel"]
    assert (order.index("utxos"), order.index("push_msat"), order.index("close_to")) == (5, 6, 7)
    assert PARAMS["fundchannel"]["schema"].index("close_to") == 6


def test_names_agree_with_the_schemas_except_the_known_differences() -> None:
    for command, entry in PARAMS.items():
        extra = set(entry["positional"]) - set(entry["schema"])
        assert extra == ({"skip_stfu"} if command == "splice_init" else set()), command
        assert set(entry["schema"]) <= set(entry["positional"]), command


@pytest.mark.skipif(not (TREE / "lightningd").is_dir(), reason=f"no Core Lightning source tree at {TREE}")
def test_the_stored_table_is_what_the_source_tree_says() -> None:
    assert build(TREE)["commands"] == PARAMS
