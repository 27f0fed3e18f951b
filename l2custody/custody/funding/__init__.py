"""Funding sessions: channels funded by the multisig, secured before anyone signs."""
