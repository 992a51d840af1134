"""The control gate (`configs/gate/`): may the nominee be promoted; should the loop pause. The
probes it runs live in `evaluators/probes/`.

    gate=probes, strict, tokens, human, off   loop/gate/gates.py (tripwires included)
    paired statistics of the probe gate       loop/gate/paired.py
"""
