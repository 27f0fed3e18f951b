"""l2custody: Lightning channel custody manager.

Channels on LND and Core Lightning nodes funded straight from a k-of-n
multisig, cooperative closes committed back to it, force-close proceeds swept
back to it. See docs/architecture.md for the layers and the custody invariants.
"""

__version__ = "0.1.0"
