"""Packaging: the version lives in one place, the license is an SPDX expression (setuptools
deprecates the TOML-table form; it stops building after 2027-02-18)."""

from __future__ import annotations

import tomllib
from importlib.metadata import metadata, version
from pathlib import Path

import loop

PYPROJECT = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())


def test_the_version_is_read_from_the_package_and_installed_as_such():
    project = PYPROJECT["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "loop.__version__"}
    assert version("rsi-loop") == loop.__version__


def test_the_license_is_an_spdx_expression():
    assert PYPROJECT["project"]["license"] == "MIT"
    assert PYPROJECT["build-system"]["requires"] == ["setuptools>=77"]
    assert metadata("rsi-loop").get("License-Expression") == "MIT"
