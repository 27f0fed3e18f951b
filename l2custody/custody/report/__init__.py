"""The custody snapshot (`l2custody report`): facts read from the wallet, the nodes and the sessions, and the checks over them."""
