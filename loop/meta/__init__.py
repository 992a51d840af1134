"""The level above the loop: improvers, measured the way the field measures them (DESIGN.md, "Two levels").

An *improver* is the machinery that turns an incumbent into better successors: the generator
plugin and its settings, and the generator genes a successor carries. Its *meta-utility* is what
fresh inner loops achieve with it frozen, on tasks it never saw: imp@k, the truth gain of the
incumbent after k inner generations, over paired seeds (the same task draws and seeds for every
improver compared).

    loop/meta/improver.py   an improver frozen into an inner loop's config (Snapshot, Protocol, inner_config; IMPROVER_GENES)
    loop/meta/utility.py    running inner loops, imp@k, paired differences with bootstrap intervals
"""
