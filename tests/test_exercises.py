"""Every chapter's exercises: well formed, solved by their solutions, and the student version
runs with every check saying "not yet"."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from tfpcourse import check, classroom
from tfpcourse import notebooks as nbs

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = nbs.find_notebooks(ROOT / "notebooks")


def _output_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif out.get("output_type") in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
        elif out.get("output_type") == "error":
            parts.append(f"ERROR {out.get('ename')}: {out.get('evalue')}")
    return "".join(parts)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_has_three_to_five_well_formed_exercises(path):
    found = classroom.exercises(nbformat.read(path, as_version=4), name=path.name)
    assert 3 <= len(found) <= 5, f"{path.name} has {len(found)} exercises"
    for ex in found:
        assert ex.hints, f"{path.name}, cell {ex.solution_index}: give the student a # hint:"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_stored_solution_passes_its_checks(path):
    nb = nbformat.read(path, as_version=4)
    for ex in classroom.exercises(nb, name=path.name):
        text = _output_text(nb.cells[ex.check_index])
        assert check.PASS_MARK in text, f"{path.name}, cell {ex.check_index}: {text!r}"
        assert check.FAIL_MARK not in text, f"{path.name}, cell {ex.check_index}: {text!r}"


@pytest.mark.slow
@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_student_version_runs_to_the_end_and_every_check_fails_on_the_stubs(path, tmp_path):
    written = classroom.write_student_versions([path], tmp_path)
    student, n_exercises = written[0]
    executed = tmp_path / "executed.ipynb"
    result = nbs.execute(student, profile="smoke", output=executed)
    assert result.ok, f"the student version of {path.name} stopped: {result.error}"
    nb = nbformat.read(executed, as_version=4)
    found = classroom.exercises(nb, name=path.name)
    assert len(found) == n_exercises >= 3
    for ex in found:
        assert nb.cells[ex.solution_index].source.startswith(classroom.STUB_HEADER)
        text = _output_text(nb.cells[ex.check_index])
        assert check.FAIL_MARK in text, f"{path.name}, cell {ex.check_index}: {text!r}"
        assert check.PASS_MARK not in text, f"{path.name}, cell {ex.check_index}: {text!r}"
