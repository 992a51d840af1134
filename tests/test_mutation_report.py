"""`.ci/mutation_report.py` (behind `make mutation`), on a mutmut results folder made by hand."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

SCRIPT = ROOT / ".ci" / "mutation_report.py"


def report(tmp_path, *args):
    return subprocess.run([sys.executable, str(SCRIPT), "--mutants", str(tmp_path / "mutants"),
                           "--triage", str(tmp_path / "triage.md"), *args], capture_output=True, text=True)


def test_scores_each_module_and_lists_the_untriaged_survivors(tmp_path):
    (tmp_path / "mutants" / "loop").mkdir(parents=True)
    codes = {"loop.state.x_fold__mutmut_1": 1, "loop.state.x_fold__mutmut_2": 0, "loop.state.x_fold__mutmut_3": 0,
             "loop.state.x_fold__mutmut_4": 36, "loop.state.x_fold__mutmut_5": 33, "loop.state.x_fold__mutmut_6": None}
    (tmp_path / "mutants" / "loop" / "state.py.meta").write_text(json.dumps({"exit_code_by_key": codes}))
    (tmp_path / "triage.md").write_text("| mutant | why |\n|---|---|\n"
                                        "| `loop.state.x_fold__mutmut_3` | renames a local only |\n")
    done = report(tmp_path)
    assert done.returncode == 0, done.stderr
    written = (tmp_path / "mutants" / "report.md").read_text()
    # 6 mutants: 1 killed + 1 timeout caught, 1 equivalent left out, 1 survivor and 1 that no test reaches
    # not caught, 1 not run yet (left out of the score)
    assert "| loop.state | 6 | 1 | 1 | 1 | 1 | 1 | 1 | 50.0% |" in written
    assert "- `loop.state.x_fold__mutmut_2` (survived): `mutmut show loop.state.x_fold__mutmut_2`" in written
    assert "- `loop.state.x_fold__mutmut_5` (no tests)" in written and "mutmut_3`" not in written.split("untriaged")[1]
    assert report(tmp_path, "--check").returncode == 1  # untriaged survivors remain


def test_without_results_it_says_what_to_run(tmp_path):
    done = report(tmp_path)
    assert done.returncode != 0 and "make mutation" in done.stderr
