"""The Core Lightning custody plugin's logic, unit-tested without lightningd.

``plugins/l2custody_plugin.py`` (pyln-client) only wires lightningd's calls to
:class:`~l2custody.custody.cln_policy.runtime.CustodyPlugin`:

- ``decision``: verdicts, rule names, what checks may ask of the wallet and the node;
- ``commands``: the rpc_command rules (close, withdraw & co, fundchannel & co, splices,
  exposesecret, plugin), over lightningd's parameter tables (``cln_params.json``);
- ``feerate``: feerate parameters as lightningd reads them;
- ``psbt_check``: signpsbt/sendpsbt outputs, in two passes (store, then node);
- ``custody/psbt_limits`` (shared with lnd's enforcer): the sighash lightningd would sign with, and the fee caps;
- ``wire``: lightningd's messages framed and read strictly (duplicates, depth, control characters);
- ``inbound``: openchannel/openchannel2 payloads and answers;
- ``node``: listpeerchannels/listaddresses results, RpcNodeLookup;
- ``options``: the plugin's lightningd options;
- ``runtime``: the state and the never-raising, fail-closed hook methods.

Nothing here imports pyln; modules import embit and the wallet lazily.
"""

from l2custody.custody.cln_policy.commands import FILTERED
from l2custody.custody.cln_policy.options import OPTIONS

__all__ = ["FILTERED", "OPTIONS"]
