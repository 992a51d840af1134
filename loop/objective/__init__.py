"""The objective stage (`configs/objective/`): what is improved, on which data, under which budget.

    objective=digits, modular_arithmetic, sequence   loop/objective/tasks.py
    objective=digits_shortcut                        loop/objective/scenarios.py (gaming studies)
    objective=family                                 loop/objective/families.py (task families, held-out tasks)
"""
