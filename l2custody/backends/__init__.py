"""Lightning node backends behind one NodeBackend protocol (base.py): lnd.py, cln.py."""
