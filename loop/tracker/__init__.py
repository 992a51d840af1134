"""Trackers (`configs/tracker/`): where a run's numbers go besides the ledger.

    tracker=wandb, none   loop/tracker/trackers.py
"""
