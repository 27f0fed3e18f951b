"""Cooperative and force closes: the destination chosen, the close recorded, the outcome verified on chain."""
