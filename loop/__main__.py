"""`python -m loop [overrides]`: the same as `rsi-loop`."""

from loop.tools.cli import main

main()
