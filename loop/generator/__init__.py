"""The generator stage (`configs/generator/`): which genomes to try next. Generators see genomes,
proxy scores and decisions of past generations, never data.

    generator=mutate, self_adaptive, fixed   loop/generator/mutation.py
    generator=crossover                      loop/generator/crossover.py
    generator=bandit                         loop/generator/bandit.py
    generator=credit                         loop/generator/credit.py (GESMR's group elite)
"""
