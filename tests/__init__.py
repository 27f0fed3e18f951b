"""l2custody's tests: unit/ (no daemons), integration/ (real daemons), support/ (helpers)."""
