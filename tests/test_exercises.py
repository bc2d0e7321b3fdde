"""Every chapter's exercises: well formed, solved by their solutions, and the student version
runs with every check saying "not yet"."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

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


# Chapters whose every exercise must list typical wrong answers (``# wrong:`` lines, at least
# this many per exercise) that its check rejects.
MIN_WRONG_ANSWERS = 2
WRONG_ANSWERS_REQUIRED = {
    "01_graphs_logistic_regression", "02_distributions", "03_bijectors", "04_normalizing_flows",
}

_PROBE = """\
# Injected by tests/test_exercises.py: the solution, then each typical wrong answer, each in a
# copy of the namespace (the student version's own variables stay untouched), then the check.
def __tfpcourse_probe(solution, check_source, wrongs):
    import ast
    import traceback

    def run(namespace, source):
        tree = ast.parse(source)
        if tree.body and isinstance(tree.body[-1], ast.Expr):  # show it, as a cell would
            value = tree.body[-1].value
            tree.body[-1] = ast.Expr(ast.Call(ast.Name("print", ast.Load()),
                                              [ast.Call(ast.Name("repr", ast.Load()),
                                                        [value], [])], []))
            ast.fix_missing_locations(tree)
        try:
            exec(compile(tree, "<exercise>", "exec"), namespace)
        except Exception:
            print("<<<raised>>>", traceback.format_exc())

    base = dict(globals())
    run(base, solution)
    print("<<<solution>>>")
    run(dict(base), check_source)
    for i, wrong in enumerate(wrongs):
        namespace = dict(base)
        run(namespace, wrong)
        print(f"<<<wrong {i}>>>")
        run(namespace, check_source)
    print("<<<end>>>")


__tfpcourse_probe(%r, %r, %r)
"""
_SECTION = re.compile(r"<<<(solution|wrong \d+|end)>>>")


def _probe_sections(text: str) -> dict[str, str]:
    """The check output of the solution and of each wrong answer, from a probe cell's text."""
    parts = _SECTION.split(text)
    # parts: [before, label1, text1, label2, text2, ...]; a label's text follows it, and the
    # text before a label belongs to the run that precedes it (the answer's own cell output).
    return {label: parts[k + 2] if k + 2 < len(parts) else ""
            for k, label in enumerate(parts[1::2]) for k in [2 * k]}


@pytest.fixture(scope="module")
def student_runs(tmp_path_factory):
    """Each chapter's student version, executed once in the smoke profile, with a probe cell
    after every check cell (run by both tests below)."""
    cache: dict[Path, tuple[Any, list, int]] = {}

    def run(path: Path):
        if path not in cache:
            original = nbformat.read(path, as_version=4)
            found_original = classroom.exercises(original, name=path.name)
            tmp = tmp_path_factory.mktemp(path.stem)
            written = classroom.write_student_versions([path], tmp)
            student_path, n_exercises = written[0]
            student = nbformat.read(student_path, as_version=4)
            for ex in reversed(found_original):
                source = _PROBE % (original.cells[ex.solution_index].source,
                                   original.cells[ex.check_index].source, list(ex.wrongs))
                probe = nbformat.v4.new_code_cell(source)
                probe.metadata["tags"] = ["probe"]
                student.cells.insert(ex.check_index + 1, probe)
            nbformat.write(student, student_path)
            executed = tmp / "executed.ipynb"
            result = nbs.execute(student_path, profile="smoke", output=executed)
            assert result.ok, f"the student version of {path.name} stopped: {result.error}"
            cache[path] = (nbformat.read(executed, as_version=4), found_original, n_exercises)
        return cache[path]

    return run


@pytest.mark.slow
@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_student_version_runs_to_the_end_and_every_check_fails_on_the_stubs(path, student_runs):
    executed, _, n_exercises = student_runs(path)
    nb = copy.deepcopy(executed)  # the fixture's copy is shared with the next test
    nb.cells = [c for c in nb.cells if "probe" not in c.metadata.get("tags", [])]
    found = classroom.exercises(nb, name=path.name)
    assert len(found) == n_exercises >= 3
    for ex in found:
        assert nb.cells[ex.solution_index].source.startswith(classroom.STUB_HEADER)
        text = _output_text(nb.cells[ex.check_index])
        assert check.FAIL_MARK in text, f"{path.name}, cell {ex.check_index}: {text!r}"
        assert check.PASS_MARK not in text, f"{path.name}, cell {ex.check_index}: {text!r}"


@pytest.mark.slow
@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_exercise_check_rejects_its_typical_wrong_answers(path, student_runs):
    """Run in the smoke profile: each solution passes its check, and each ``# wrong:`` answer
    gets at least one "not yet" from it."""
    nb, found, _ = student_runs(path)
    probes = [c for c in nb.cells if "probe" in c.metadata.get("tags", [])]
    assert len(probes) == len(found)
    problems = []
    for ex, probe in zip(found, probes, strict=True):
        where = f"{path.name}, exercise with answers {', '.join(ex.answers)}"
        if path.stem in WRONG_ANSWERS_REQUIRED and len(ex.wrongs) < MIN_WRONG_ANSWERS:
            problems.append(f"{where}: lists {len(ex.wrongs)} '# wrong:' answers, "
                            f"expected at least {MIN_WRONG_ANSWERS}")
        sections = _probe_sections(_output_text(probe))
        if "end" not in sections or "<<<raised>>>" in _output_text(probe):
            problems.append(f"{where}: the probe did not finish: {_output_text(probe)[-1500:]}")
            continue
        solution = sections["solution"]
        if check.PASS_MARK not in solution or check.FAIL_MARK in solution:
            problems.append(f"{where}: the solution does not pass in smoke: {solution!r}")
        for i, wrong in enumerate(ex.wrongs):
            text = sections.get(f"wrong {i}", "")
            if check.FAIL_MARK not in text:
                problems.append(f"{where}: the check accepts the wrong answer {wrong!r}: {text!r}")
    assert not problems, "\n".join(problems)


def test_probe_sections_split_the_check_output_per_answer():
    text = "x\n<<<solution>>>\n✓ ok\n<<<wrong 0>>>\n✗ no\n<<<wrong 1>>>\n✓ oops\n<<<end>>>\n"
    sections = _probe_sections(text)
    assert sections["solution"].strip() == "✓ ok"
    assert sections["wrong 0"].strip() == "✗ no"
    assert sections["wrong 1"].strip() == "✓ oops"
    assert "end" in sections


def test_wrong_answer_lines_are_read_and_dropped_from_the_student_version():
    nb = nbformat.v4.new_notebook()
    solution = nbformat.v4.new_code_cell(
        "# answer: x\n# hint: two\n# wrong: x = 3  # off by one\n# wrong: x = -2\nx = 2")
    solution.metadata["tags"] = ["solution"]
    checker = nbformat.v4.new_code_cell("check.close('x', x, expected=2)")
    checker.metadata["tags"] = ["check"]
    nb.cells = [solution, checker]
    (ex,) = classroom.exercises(nb)
    assert ex.wrongs == ("x = 3  # off by one", "x = -2")
    stub = classroom.student_version(nb).cells[0].source
    assert "wrong" not in stub and "x = 3" not in stub
    assert stub.endswith("x = None")


def test_a_wrong_answer_line_that_is_not_python_is_rejected():
    nb = nbformat.v4.new_notebook()
    solution = nbformat.v4.new_code_cell("# answer: x\n# wrong: x = = 3\nx = 2")
    solution.metadata["tags"] = ["solution"]
    checker = nbformat.v4.new_code_cell("check.close('x', x, expected=2)")
    checker.metadata["tags"] = ["check"]
    nb.cells = [solution, checker]
    with pytest.raises(classroom.ExerciseFormatError, match="# wrong:"):
        classroom.exercises(nb)
