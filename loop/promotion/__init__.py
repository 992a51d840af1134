"""The promotion stage (`configs/promotion/`): which candidate, if any, is nominated.

    promotion=greedy   loop/promotion/greedy.py
"""
