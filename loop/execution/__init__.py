"""The execution stage (`configs/execution/`): train the candidates within the budget, on the train
split only.

    execution=serial             loop/execution/serial.py (also what every trainer shares:
                                 one candidate's training, quarantine, optimizers)
    execution=batched            loop/execution/batched.py
    execution=processes, ray     loop/execution/pools.py
    recipe genes inherit, distill    loop/execution/inherit.py
    recipe gene trunk            loop/execution/prior.py
"""
