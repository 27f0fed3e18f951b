"""Who is acting, for the audit log (shared by the Wallet and the signer registry)."""

from __future__ import annotations


def default_actor() -> str:
    """Who is acting, for the audit log: the operating-system user (``wallet`` if unknown)."""
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no user name in the environment (containers)
        return "wallet"
