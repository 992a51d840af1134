"""`python -m loop [overrides]`: the same as `rsi-loop`."""

from loop.cli import main

main()
