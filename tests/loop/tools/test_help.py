"""`rsi-loop --help` keeps the config it composed in the user's cache, under a hash of what made it."""

from __future__ import annotations

import shutil

import pytest

from loop.tools import cli


@pytest.fixture
def configs(tmp_path, monkeypatch):
    """A copy of configs/ for the help to read, and an empty cache."""
    copy = tmp_path / "configs"
    shutil.copytree(cli.CONFIG_DIR, copy)
    monkeypatch.setattr(cli, "CONFIG_DIR", str(copy))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return copy


def cached(configs) -> list:
    return sorted((configs.parent / "cache" / "rsi-loop").glob("config-*.yaml"))


def test_a_changed_config_file_is_composed_afresh(configs):
    first = cli.composed_yaml([])
    assert "steps: 600" in first and len(cached(configs)) == 1
    assert cli.composed_yaml([]) == first and len(cached(configs)) == 1  # read back
    digits = configs / "objective" / "digits.yaml"
    digits.write_text(digits.read_text().replace("steps: 600", "steps: 601"))
    assert "steps: 601" in cli.composed_yaml([]) and len(cached(configs)) == 2
    assert "steps: 77" in cli.composed_yaml(["objective.budget.steps=77"])  # overrides are part of the key


def test_a_new_config_file_is_part_of_the_key(configs):
    cli.composed_yaml([])
    (configs / "gate" / "mine.yaml").write_text("_target_: loop.gate.gates.Off\n")
    assert "loop.gate.gates.Off" in cli.composed_yaml(["gate=mine"])
    assert len(cached(configs)) == 2


def test_a_cache_that_cannot_be_written_or_read_only_costs_time(configs, monkeypatch, tmp_path):
    (tmp_path / "cache").write_text("a file where the cache folder would be")
    assert "steps: 600" in cli.composed_yaml([])
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "fresh"))
    text = cli.composed_yaml([])
    (entry,) = (tmp_path / "fresh" / "rsi-loop").glob("config-*.yaml")
    entry.unlink()
    entry.mkdir()  # unreadable as a file: composed again
    assert cli.composed_yaml([]) == text


def test_only_the_newest_entries_are_kept(configs, monkeypatch):
    monkeypatch.setattr(cli, "HELP_CACHE", 2)
    for steps in (1, 2, 3):
        cli.composed_yaml([f"objective.budget.steps={steps}"])
    assert len(cached(configs)) == 2
    assert "steps: 3" in cli.composed_yaml(["objective.budget.steps=3"]) and len(cached(configs)) == 2
