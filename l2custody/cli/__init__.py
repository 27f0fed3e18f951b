"""The l2custody command line (Typer). Commands parse, call one library function, render."""
