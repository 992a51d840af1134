"""rsi-loop: the engine and the stages of a recursive self-improvement loop at toy scale."""

__version__ = "0.1.0"
