"""Student versions of the notebooks: solutions replaced by stubs, exercise outputs cleared.

How an exercise is written (see CONTRIBUTING.md)
-----------------------------------------------
Each exercise is a markdown cell with the task, then a **solution cell** tagged ``solution``,
then a **check cell** tagged ``check``. The solution cell names the variables it defines and may
give hints, in comment lines that the student version keeps, and lists *typical wrong
answers* in ``# wrong:`` lines, which the student version drops::

    # %% tags=["solution"]
    # answer: kl_pq, stderr
    # hint: draw from p, then average log p(x) - log q(x).
    # wrong: kl_pq = -kl_pq  # log q(x) - log p(x): the sign flipped
    # wrong: stderr = res.stderr ** 2  # the variance of the estimate, not its standard error
    res = kl_monte_carlo(p, q, 100_000, seed=15)
    kl_pq, stderr = res.estimate, res.stderr

    # %% tags=["check"]
    check.close("kl_pq", kl_pq, expected=normal_kl(0.0, 1.0, 1.0, 0.5), atol=0.01)

:func:`student_version` turns the solution cell into a stub that keeps the hints and sets
every answer to ``None``::

    # Exercise: write your solution here, then run the check cell below.
    # answer: kl_pq, stderr
    # hint: draw from p, then average log p(x) - log q(x).
    kl_pq = None
    stderr = None

(the ``# answer:`` line stays, so a student version is itself a valid exercise notebook)
so the check cell runs and says ``✗ Not yet (kl_pq): ... still None``, and "Run all" still
reaches the end of the notebook. The outputs of solution and check cells are cleared;
everything else (text, other code, their outputs) is kept.

Each ``# wrong:`` line is one line of Python that re-assigns answer names to a mistake a
learner would make; it runs after the correct solution, so it may use the solution's
variables. The course's tests run every check on the solution (it must pass) and on each wrong
answer (it must fail), so that no check accepts a typical mistake.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Exercise",
    "ExerciseFormatError",
    "exercises",
    "student_version",
    "write_student_versions",
]

SOLUTION_TAG = "solution"
CHECK_TAG = "check"
STUB_HEADER = "# Exercise: write your solution here, then run the check cell below."
_ANSWER = re.compile(r"^#\s*answer:\s*(.+)$", re.IGNORECASE)
_HINT = re.compile(r"^#\s*hint:", re.IGNORECASE)
_WRONG = re.compile(r"^#\s*wrong:\s*(.*)$", re.IGNORECASE)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ExerciseFormatError(ValueError):
    """A notebook's exercise cells do not follow the solution/check convention."""


@dataclass(frozen=True)
class Exercise:
    """One exercise of a notebook: the indices of its solution and check cells, the answer
    names, the hint lines and the typical wrong answers (``# wrong:`` lines, as Python)."""

    solution_index: int
    check_index: int
    answers: tuple[str, ...]
    hints: tuple[str, ...]
    wrongs: tuple[str, ...] = ()


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _source(cell: Any) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def exercises(nb: Any, *, name: str = "notebook") -> list[Exercise]:
    """Find and validate the exercises of a notebook (an ``nbformat`` notebook).

    Raises
    ------
    ExerciseFormatError
        If a solution cell has no ``# answer:`` line or an invalid name in it, or is not
        followed directly by a code cell tagged ``check``, or a check cell has no solution.
    """
    cells = nb["cells"]
    found: list[Exercise] = []
    paired_checks: set[int] = set()
    for i, cell in enumerate(cells):
        if SOLUTION_TAG not in _tags(cell):
            continue
        where = f"{name}, cell {i}"
        if cell.get("cell_type") != "code":
            raise ExerciseFormatError(f"{where}: a cell tagged 'solution' must be a code cell")
        lines = _source(cell).splitlines()
        answer_lines = [m.group(1) for ln in lines if (m := _ANSWER.match(ln.strip()))]
        if not answer_lines:
            raise ExerciseFormatError(
                f"{where}: a solution cell must name its answers in a comment line like "
                f"'# answer: kl, stderr' (the student version sets them to None)"
            )
        answers = tuple(a.strip() for part in answer_lines for a in part.split(",") if a.strip())
        bad = [a for a in answers if not _NAME.match(a)]
        if bad or not answers:
            raise ExerciseFormatError(
                f"{where}: '# answer:' must list Python names, got {answer_lines[0]!r}"
            )
        hints = tuple(ln.strip() for ln in lines if _HINT.match(ln.strip()))
        wrongs = tuple(m.group(1).strip() for ln in lines if (m := _WRONG.match(ln.strip())))
        for wrong in wrongs:
            try:
                compile(wrong, f"{where}, # wrong:", "exec")
            except SyntaxError as err:
                raise ExerciseFormatError(
                    f"{where}: a '# wrong:' line must be one line of Python that assigns a "
                    f"wrong answer, got {wrong!r} ({err.msg})"
                ) from None
        nxt = i + 1
        if nxt >= len(cells) or CHECK_TAG not in _tags(cells[nxt]) or \
                cells[nxt].get("cell_type") != "code":
            raise ExerciseFormatError(
                f"{where}: a solution cell must be followed directly by a code cell tagged "
                f"'check' that checks its answers"
            )
        paired_checks.add(nxt)
        found.append(Exercise(i, nxt, answers, hints, wrongs))
    for i, cell in enumerate(cells):
        if CHECK_TAG in _tags(cell) and i not in paired_checks:
            raise ExerciseFormatError(
                f"{name}, cell {i}: a cell tagged 'check' must directly follow a solution cell"
            )
    return found


def _stub(exercise: Exercise) -> str:
    lines = [STUB_HEADER, f"# answer: {', '.join(exercise.answers)}", *exercise.hints,
             *(f"{a} = None" for a in exercise.answers)]
    return "\n".join(lines)


def student_version(nb: Any, *, name: str = "notebook") -> Any:
    """Return a copy of ``nb`` with every solution replaced by its stub and the outputs of the
    exercise cells (solutions and checks) cleared. ``nb`` itself is not changed."""
    found = exercises(nb, name=name)
    out = copy.deepcopy(nb)
    # A student copy is a plain notebook: without this, JupyterLab's jupytext would create a
    # paired .py beside it on the first save.
    out.get("metadata", {}).pop("jupytext", None)
    for ex in found:
        solution = out["cells"][ex.solution_index]
        solution["source"] = _stub(ex)
        for index in (ex.solution_index, ex.check_index):
            cell = out["cells"][index]
            cell["outputs"] = []
            cell["execution_count"] = None
    return out


def write_student_versions(
    notebooks: list[str | os.PathLike[str]], output_dir: str | os.PathLike[str]
) -> list[tuple[Path, int]]:
    """Write the student version of each ``.ipynb`` into ``output_dir`` (same file names).

    Returns ``(written path, number of exercises)`` per notebook. The output folder must not
    be the folder of any input notebook (that would overwrite the solutions).
    """
    import nbformat

    output_dir = Path(output_dir)
    paths = [Path(p) for p in notebooks]
    if not paths:
        raise ValueError("notebooks must list at least one .ipynb file")
    for p in paths:
        if p.suffix != ".ipynb":
            raise ValueError(f"notebooks must be .ipynb files, got {p}")
        if not p.is_file():
            raise FileNotFoundError(f"notebook not found: {p}")
        if output_dir.resolve() == p.parent.resolve():
            raise ValueError(
                f"output_dir must differ from the notebooks' folder ({p.parent}): writing "
                f"there would replace the solutions"
            )
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for p in paths:
        nb = nbformat.read(p, as_version=4)
        student = student_version(nb, name=p.name)
        target = output_dir / p.name
        nbformat.write(student, target)
        written.append((target, len(exercises(nb, name=p.name))))
    return written
