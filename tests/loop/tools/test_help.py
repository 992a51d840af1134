"""`rsi-loop --help` keeps the config it composed in the user's cache, under a hash of what made it."""

from __future__ import annotations

import shutil

import pytest

from loop.tools import usage


@pytest.fixture
def configs(tmp_path, monkeypatch):
    """A copy of configs/ for the help to read, and an empty cache."""
    copy = tmp_path / "configs"
    shutil.copytree(usage.CONFIG_DIR, copy)
    monkeypatch.setattr(usage, "CONFIG_DIR", str(copy))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return copy


def cached(configs) -> list:
    return sorted((configs.parent / "cache" / "rsi-loop").glob("config-*.yaml"))


def test_a_changed_config_file_is_composed_afresh(configs):
    first = usage.composed_yaml([])
    assert "steps: 600" in first and len(cached(configs)) == 1
    assert usage.composed_yaml([]) == first and len(cached(configs)) == 1  # read back
    digits = configs / "objective" / "digits.yaml"
    digits.write_text(digits.read_text().replace("steps: 600", "steps: 601"))
    assert "steps: 601" in usage.composed_yaml([]) and len(cached(configs)) == 2
    assert "steps: 77" in usage.composed_yaml(["objective.budget.steps=77"])  # overrides are part of the key


def test_a_new_config_file_is_part_of_the_key(configs):
    usage.composed_yaml([])
    (configs / "gate" / "mine.yaml").write_text("_target_: loop.gate.gates.Off\n")
    assert "loop.gate.gates.Off" in usage.composed_yaml(["gate=mine"])
    assert len(cached(configs)) == 2


def test_a_cache_that_cannot_be_written_or_read_only_costs_time(configs, monkeypatch, tmp_path):
    (tmp_path / "cache").write_text("a file where the cache folder would be")
    assert "steps: 600" in usage.composed_yaml([])
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "fresh"))
    text = usage.composed_yaml([])
    (entry,) = (tmp_path / "fresh" / "rsi-loop").glob("config-*.yaml")
    entry.unlink()
    entry.mkdir()  # unreadable as a file: composed again
    assert usage.composed_yaml([]) == text


def test_only_the_newest_entries_are_kept(configs, monkeypatch):
    monkeypatch.setattr(usage, "HELP_CACHE", 2)
    for steps in (1, 2, 3):
        usage.composed_yaml([f"objective.budget.steps={steps}"])
    assert len(cached(configs)) == 2
    assert "steps: 3" in usage.composed_yaml(["objective.budget.steps=3"]) and len(cached(configs)) == 2
