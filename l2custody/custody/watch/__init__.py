"""`l2custody watch`: rounds that follow nodes, chain and sessions, raise alerts, sweep, back up and export metrics."""
