"""The custody flows: funding sessions, closes, sweeps, monitor, policy."""
