"""Regenerate ``l2custody/custody/cln_policy/cln_params.json`` from a Core Lightning source tree.

For every command the plugin filters, the table records the parameter names in lightningd's
positional order and the names its ``doc/schemas/<command>.json`` documents. The order comes
from the ``param(...)`` call of the command's handler (``p_req``/``p_opt``), because that is
what lightningd runs: in v25.12.1 the schema of ``fundchannel`` lists ``close_to`` before
``utxos``, the code takes ``utxos`` at 5, ``push_msat`` at 6, ``close_to`` at 7. The test
``tests/unit/test_cln_params.py`` checks the stored table against both sources when the tree
is present.

Usage: ``python -m tests.tools.cln_params /opt/src/lightning > l2custody/custody/cln_policy/cln_params.json``
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

#: command -> (source file, handler function) in the v25.12.1 tree.
HANDLERS: dict[str, tuple[str, str]] = {
    "close": ("lightningd/closing_control.c", "json_close"),
    "withdraw": ("plugins/txprepare.c", "json_withdraw"),
    "multiwithdraw": ("plugins/spender/multiwithdraw.c", "json_multiwithdraw"),
    "txprepare": ("plugins/txprepare.c", "json_txprepare"),
    "signpsbt": ("wallet/walletrpc.c", "json_signpsbt"),
    "sendpsbt": ("wallet/walletrpc.c", "json_sendpsbt"),
    "fundchannel": ("plugins/spender/fundchannel.c", "json_fundchannel"),
    "fundchannel_start": ("lightningd/opening_control.c", "json_fundchannel_start"),
    "multifundchannel": ("plugins/spender/multifundchannel.c", "json_multifundchannel"),
    "openchannel_init": ("lightningd/dual_open_control.c", "json_openchannel_init"),
    "splice_init": ("lightningd/channel_control.c", "json_splice_init"),
    "splice_update": ("lightningd/channel_control.c", "json_splice_update"),
    "splice_signed": ("lightningd/channel_control.c", "json_splice_signed"),
    "exposesecret": ("plugins/exposesecret.c", "json_exposesecret"),
}
#: Commands whose parameters depend on a subcommand or a script: schema order only.
SCHEMA_ONLY = ("dev-splice", "plugin")

_PARAM = re.compile(r'p_(?:req|opt|opt_def|opt_dev)\s*\(\s*"([^"]+)"')


def code_order(tree: Path, source: str, function: str) -> list[str]:
    """The names of the first ``param``/``param_check`` call in ``function``, in order."""
    text = (tree / source).read_text()
    start = re.search(r"\n(?:static\s+)?struct command_result\s*\*\s*" + re.escape(function) + r"\s*\(", text)
    if start is None:
        raise SystemExit(f"{function} not found in {source}")
    body = text[start.end() :]
    call = re.search(r"\bparam(?:_check)?\s*\((.*?)NULL\s*\)", body, re.S)
    if call is None:
        raise SystemExit(f"no param() call in {function}")
    return _PARAM.findall(call.group(1))


def schema_request(tree: Path, command: str) -> dict[str, Any]:
    schema = json.loads((tree / "doc" / "schemas" / f"{command}.json").read_text())
    request: dict[str, Any] = schema["request"]
    return request


def schema_names(tree: Path, command: str) -> list[str]:
    return list(schema_request(tree, command).get("properties", {}))


def build(tree: Path) -> dict[str, object]:
    commands: dict[str, object] = {}
    for command, (source, function) in HANDLERS.items():
        commands[command] = {
            "positional": code_order(tree, source, function),
            "schema": schema_names(tree, command),
            "required": schema_request(tree, command).get("required", []),
            "source": f"{source}:{function}",
        }
    for command in SCHEMA_ONLY:
        names = schema_names(tree, command)
        commands[command] = {
            "positional": names,
            "schema": names,
            "required": schema_request(tree, command).get("required", []),
            "source": f"doc/schemas/{command}.json",
        }
    version = (tree / ".version").read_text().strip() if (tree / ".version").exists() else "v25.12.1"
    return {"lightningd": version, "commands": commands}


def main(argv: list[str]) -> None:
    tree = Path(argv[1] if len(argv) > 1 else "/opt/src/lightning")
    json.dump(build(tree), sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv)
