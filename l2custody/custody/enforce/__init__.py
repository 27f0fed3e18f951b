"""``l2custody node enforce NODE``: lnd checks every fund-moving request with us first.

``rules`` judges one intercepted call (pure), ``facts`` answers what the rules
ask of the wallet and the node, ``service`` runs the enforcer (caveat
middleware: refuses) and the auditor (read-only middleware: audits and
alerts on requests made with unencumbered macaroons).
"""
