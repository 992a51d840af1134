"""The run's tools: what a person uses around a run, never a stage of it.

    rsi-loop, -report, -verify, -approve   loop/tools/cli.py
    report.md of one run                   loop/tools/report.py (plots: loop/tools/plots.py; the sections
                                           of runs of one kind: loop/tools/sections.py; numbers: fmt.py)
    report.md comparing a sweep's runs     loop/tools/compare.py (its arm comparisons: loop/tools/arms.py)
    a sweep's runs on worker processes     loop/tools/launcher.py (hydra/launcher=processes)
    checking a run directory               loop/tools/verify.py
"""
