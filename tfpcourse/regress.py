"""Compare two runs of the course's notebooks: did an upgrade change the printed results?

A maintainer runs the chapters with a new TensorFlow/TFP (``tfpcourse run ... --output-dir
/tmp/new``) and compares them with the stored outputs (``tfpcourse regress notebooks /tmp/new``).
What counts as a change is declared per code cell, by a whole comment line in its source:

``# NBVAL_CHECK_OUTPUT``
    Deterministic output (nbval compares it in CI). After sanitising and rounding decimals to
    ``FLOAT_DIGITS`` significant digits, as nbval does, the text must be identical.
``# TOLERANCE: abs=0.5``, ``# TOLERANCE: rel=0.02``, ``# TOLERANCE: abs=0.5 rel=0.02 -- why``
    Output that depends on training. Numbers (integers too) are compared position by position;
    one is within tolerance if ``|new - old| <= abs`` or ``|new - old| <= rel * |old|`` (only the
    bounds given apply). The words around them must not change.
``# TOLERANCE: timing``
    Wall-clock timings: numbers are reported, never compared; a change of the words around them
    is reported too but does not fail (machines differ in more than numbers).
no marker
    "Untracked": changes are reported and never fail.

Sanitising (both sides): consecutive stream outputs are merged, TensorFlow's C++ log lines are
dropped from stderr, ANSI colours removed and :data:`SANITIZE_RULES` applied (the rules of
``tests/nbval_sanitize.cfg``). A cell's text is its stream text (stdout and stderr, in order) plus
the ``text/plain`` of its rich outputs, so text that merely moved between the streams is no
change; of images only the count is compared. Warning lines are taken out of the text and
compared as a set: a warning the baseline's cell did not print makes the cell "newly warning".

The exit code of ``tfpcourse regress`` is 1 when a cell newly fails (an error output the baseline
did not have, or cells not run because execution stopped), when a CHECK or TOLERANCE cell changed
beyond tolerance (numbers, words or the number of figures) or is missing from the candidate, when
a chapter is missing from the candidate, and, with ``--fail-on-warning``, when a cell newly warns.
A cell that fails in both runs ("still-failing") or only in the baseline ("fixed") is reported
and does not fail: it is no regression. Code cells are numbered from 1, counting code cells only,
in the report and in error messages.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tfpcourse._validate import check_bool
from tfpcourse.config import PROFILES
from tfpcourse.device import filter_tf_noise
from tfpcourse.notebooks import CHECK_MARKER, FLOAT_DIGITS, coalesce_streams, round_floats

__all__ = [
    "SANITIZE_RULES",
    "STATUSES",
    "CellReport",
    "ChapterReport",
    "Marker",
    "MovedNumber",
    "ProfileMismatchError",
    "RunReport",
    "compare_notebooks",
    "compare_runs",
    "parse_marker",
    "split_numbers",
    "to_json",
    "to_markdown",
    "unmarked_output_cells",
]

SANITIZE_RULES: tuple[tuple[str, str], ...] = (
    (r"0x[0-9a-fA-F]{6,}", "0xADDRESS"),  # memory addresses
    (r"\b\d+(\.\d+)?\s?(s|ms|µs|us|ns|min)\b(?!\.\w)", "DURATION"),  # durations
    (r"<(tf\.Variable|KerasVariable) '([^']*)' shape=", r"<\1 shape="),  # TF object ids
)
"""(regex, replacement) pairs applied to both sides; the same rules as tests/nbval_sanitize.cfg."""

STATUSES = (
    "equal", "changed-within-tolerance", "changed-beyond-tolerance", "text-changed",
    "newly-failing", "still-failing", "fixed", "not-run", "missing", "extra", "untracked-changed",
)
"""A cell's status. "not-run": the candidate stopped before it; "fixed": only the baseline failed.
Newly warning is not a status but :attr:`CellReport.new_warnings`, next to any status."""

_CHECK_NAME = CHECK_MARKER.lstrip("#").strip()
_TOLERANCE_LINE = re.compile(r"^#\s*TOLERANCE\b\s*(:?)(.*)$")
_TOLERANCE_ITEM = re.compile(r"(abs|rel)=(\S+)", re.IGNORECASE)
_TOLERANCE_SYNTAX = "'abs=X', 'rel=X', 'abs=X rel=X' or 'timing', optionally followed by ' -- text'"

# Integers, decimals, scientific notation, signs and thousands separators (14,070); not the parts
# of a version string (2.21.0) or a name (conv2d_1, float32), nor 640x480.
_NUMBER = re.compile(
    r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.]?\d|_)"
)
_PLACEHOLDER = "\x00"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_WARNING = re.compile(r"\b\w*Warning\b:|^\s*WARNING\b")
_PY_WARNING = re.compile(r":\d+: \w*Warning\b:")  # warnings.showwarning: next line is the source
_PATH = re.compile(r"(?:[\w.~-]*/)+[\w.-]*")
_PROFILE = re.compile(rf"^Profile: ({'|'.join(PROFILES)})\b", re.MULTILINE)
_VERSIONS = re.compile(r"^TensorFlow \d.*$", re.MULTILINE)
_MAX_ROWS = 10
_MAX_DIFF_LINES = 12


class ProfileMismatchError(ValueError):
    """The two runs were executed in different profiles (smoke vs full)."""


@dataclass(frozen=True)
class Marker:
    """What a cell's output promises: ``kind`` is check, tolerance, timing or untracked."""

    kind: str
    abs_tol: float | None = None
    rel_tol: float | None = None
    note: str = ""

    def describe(self) -> str:
        bounds = [f"{n}={v:g}" for n, v in (("abs", self.abs_tol), ("rel", self.rel_tol))
                  if v is not None]
        return " ".join([self.kind, *bounds])

    def allows(self, old: float, new: float) -> bool:
        """Whether ``new`` is within this tolerance of ``old`` (either bound suffices)."""
        change = abs(new - old)
        slack = 1e-12 * max(abs(old), abs(new))  # 0.6 - 0.1 must be within abs=0.5
        bounds = [self.abs_tol, None if self.rel_tol is None else self.rel_tol * abs(old)]
        return any(bound is not None and change <= bound + slack for bound in bounds)


def parse_marker(source: str, where: str = "cell") -> Marker:
    """Read the marker comment of a code cell's source.

    Parameters
    ----------
    source:
        The cell's source.
    where:
        How to name the cell in an error message, e.g. ``"code cell 3 of 05_vae.ipynb"``.

    Returns
    -------
    Marker
        ``kind="untracked"`` when the cell carries no marker.

    Raises
    ------
    ValueError
        For a malformed ``# TOLERANCE`` line, two of them, or one together with
        ``# NBVAL_CHECK_OUTPUT``; the message names the cell and quotes the line.
    """
    if not isinstance(source, str):
        raise TypeError(f"source must be a string, got {type(source).__name__}")
    check = False
    found: list[tuple[str, Marker]] = []
    for raw in source.splitlines():
        line = raw.strip()
        if not line.startswith("#"):
            continue
        check = check or line.lstrip("#").strip() == _CHECK_NAME
        match = _TOLERANCE_LINE.match(line)
        if match:
            found.append((line, _parse_tolerance(match, line, where)))
    if len(found) > 1:
        raise ValueError(f"{where} has {len(found)} TOLERANCE lines ({found[0][0]!r}, "
                         f"{found[1][0]!r}); keep one")
    if found and check:
        raise ValueError(f"{where} is marked both {CHECK_MARKER} and {found[0][0]!r}; a cell's "
                         "output is either exact or within a tolerance")
    return Marker("check") if check else found[0][1] if found else Marker("untracked")


def _parse_tolerance(match: re.Match[str], line: str, where: str) -> Marker:
    colon, rest = match.groups()
    spec, _, note = rest.partition("--")
    spec = re.sub(r"\s*=\s*", "=", spec.replace(",", " ")).strip()
    bad = ValueError(f"{where}: malformed TOLERANCE line {line!r}; expected '# TOLERANCE: ' "
                     f"followed by {_TOLERANCE_SYNTAX}")
    if not colon or not spec:
        raise bad
    if spec.lower() == "timing":
        return Marker("timing", note=note.strip())
    bounds: dict[str, float] = {}
    for token in spec.split():
        item = _TOLERANCE_ITEM.fullmatch(token)
        if not item or item.group(1).lower() in bounds:
            raise bad
        try:
            value = float(item.group(2))
        except ValueError:
            raise bad from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{where}: {item.group(1)} in {line!r} must be a finite number "
                             f">= 0, got {item.group(2)!r}")
        bounds[item.group(1).lower()] = value
    return Marker("tolerance", bounds.get("abs"), bounds.get("rel"), note.strip())


def split_numbers(text: str) -> tuple[str, list[str]]:
    """Split ``text`` into a skeleton (numbers replaced, blanks collapsed) and its numbers.

    A comma followed by exactly three digits is a thousands separator (``14,070``); one followed
    by a space separates (``[1, 2]``), as Python and NumPy print lists, so ``(64,128)`` would read
    as one number. Names (``conv2d_1``, ``float32``) and version strings hold no numbers.

    >>> split_numbers("epoch 3: loss -1.5e-3, 14,070 params, tf 2.21.0, conv2d_1")
    ('epoch \\x00: loss \\x00, \\x00 params, tf 2.21.0, conv2d_1', ['3', '-1.5e-3', '14,070'])
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    numbers = _NUMBER.findall(text)
    skeleton = _NUMBER.sub(_PLACEHOLDER, text)
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in skeleton.split("\n")]
    return "\n".join(lines), numbers


def _value(token: str) -> float:
    return float(token.replace(",", ""))


@dataclass(frozen=True)
class _Output:
    """A cell's outputs after sanitising."""

    text: str
    warnings: tuple[str, ...]
    images: int
    error: str | None
    ran: bool


def _sanitize(text: str) -> str:
    text = _ANSI.sub("", text)
    for regex, replace in SANITIZE_RULES:
        text = re.sub(regex, replace, text)
    return text


def _drop_tf_noise(text: str) -> str:
    # line by line, so that blank lines and a missing final newline survive as on stdout
    return "".join(line for line in text.splitlines(keepends=True)
                   if not line.strip() or filter_tf_noise(line))


def _take_warnings(text: str) -> tuple[str, list[str]]:
    kept: list[str] = []
    found: list[str] = []
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not _WARNING.search(line):
            kept.append(line)
            continue
        found.append(line.rstrip("\n")[:200])
        if _PY_WARNING.search(line) and i < len(lines) and lines[i].startswith("  "):
            i += 1  # the source line Python prints under a warning
        if i < len(lines) and lines[i].startswith("Instructions for updating:"):
            i += 2  # TensorFlow's deprecation notes are three lines
    return "".join(kept), found


def _warning_key(line: str) -> str:
    match = re.search(r"\w*Warning\b:.*", line)
    return split_numbers(_PATH.sub("PATH", match.group() if match else line))[0]


def _read_output(cell: Any) -> _Output:
    pieces: list[str] = []
    warnings: list[str] = []
    images, error = 0, None
    for out in coalesce_streams(list(cell.get("outputs", []))):
        kind = out.get("output_type")
        if kind == "stream":
            text = out.get("text", "")
            text = _drop_tf_noise(text) if out.get("name") == "stderr" else text
            text, found = _take_warnings(_sanitize(text))
            pieces.append(text)
            warnings += found
        elif kind in ("execute_result", "display_data"):
            data = out.get("data", {})
            images += any(key.startswith("image/") for key in data)
            if "text/plain" in data:
                if pieces and pieces[-1] and not pieces[-1].endswith("\n"):
                    pieces.append("\n")
                pieces.append(_sanitize(data["text/plain"]).rstrip("\n") + "\n")
        elif kind == "error":
            error = f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"[:200]
    ran = bool(cell.get("outputs")) or cell.get("execution_count") is not None
    return _Output("".join(pieces), tuple(warnings), images, error, ran)


@dataclass(frozen=True)
class MovedNumber:
    """A number at the same place in both texts whose value changed."""

    position: int  # 1-based, among the cell's numbers
    old: str  # as printed
    new: str
    change: float | None  # new - old (None if not finite)
    rel_change: float | None  # change / |old| (None if old is 0)
    ok: bool  # within the cell's tolerance (always True for timing, False for untracked)
    context: str  # the candidate's line it is on


@dataclass
class CellReport:
    """The comparison of one code cell (numbered from 1 among the code cells)."""

    index: int
    candidate_index: int | None
    marker: str
    kind: str
    status: str
    first_line: str
    fails: bool = False
    beyond: bool = False  # changed beyond tolerance: numbers, words, figures, a missing cell
    source_changed: bool = False
    moved: list[MovedNumber] = field(default_factory=list)
    new_warnings: list[str] = field(default_factory=list)
    gone_warnings: list[str] = field(default_factory=list)
    diff: list[str] = field(default_factory=list)
    images: tuple[int, int] = (0, 0)
    error: str = ""
    note: str = ""


@dataclass
class ChapterReport:
    """The comparison of one chapter's two runs."""

    name: str
    baseline: str
    candidate: str
    cells: list[CellReport] = field(default_factory=list)
    baseline_profile: str | None = None
    candidate_profile: str | None = None
    baseline_versions: str = ""
    candidate_versions: str = ""
    problem: str = ""  # e.g. the chapter exists on one side only
    fails_alone: bool = False  # the problem fails the chapter
    fail_on_warning: bool = False

    @property
    def counts(self) -> dict[str, int]:
        c = self.cells
        return {
            "cells": len(c),
            "equal": sum(x.status == "equal" for x in c),
            "within": sum(x.status == "changed-within-tolerance" for x in c),
            "beyond": sum(x.beyond for x in c),
            "newly_failing": sum(x.status == "newly-failing" for x in c),
            "newly_warning": sum(bool(x.new_warnings) for x in c),
            "not_run": sum(x.status == "not-run" for x in c),
            "other": sum(x.status not in ("equal", "changed-within-tolerance", "newly-failing",
                                          "not-run") and not x.beyond for x in c),
        }

    @property
    def passed(self) -> bool:
        return not self.fails_alone and not any(x.fails for x in self.cells)


@dataclass
class RunReport:
    """The comparison of two runs, chapter by chapter."""

    baseline: str
    candidate: str
    chapters: list[ChapterReport]
    fail_on_warning: bool = False

    @property
    def passed(self) -> bool:
        return all(ch.passed for ch in self.chapters)

    def totals(self) -> str:
        """The counts over all chapters, in words."""
        t = {k: sum(ch.counts[k] for ch in self.chapters) for k in ChapterReport("", "", "").counts}
        failed = sum(not ch.passed for ch in self.chapters)
        return (f"{failed} of {len(self.chapters)} chapters fail; {t['cells']} code cells: "
                f"{t['equal']} equal, {t['within']} within tolerance, {t['beyond']} beyond, "
                f"{t['newly_failing']} newly failing, {t['newly_warning']} newly warning, "
                f"{t['not_run']} not run, {t['other']} other changes")

    def summary(self) -> str:
        """One line: the verdict and the totals."""
        return f"regress: {'PASS' if self.passed else 'FAIL'} ({self.totals()})"


def _read_notebook(path: Path) -> Any:
    import nbformat

    return nbformat.read(path, as_version=4)


def _code_cells(nb: Any, name: str) -> list[tuple[Any, Marker]]:
    cells = [c for c in nb.cells if c.cell_type == "code"]
    return [(c, parse_marker(c.source, f"code cell {i} of {name}"))
            for i, c in enumerate(cells, start=1)]


def unmarked_output_cells(nb_path: str | os.PathLike[str]) -> list[int]:
    """The code cells (numbered from 1) that have outputs but no marker.

    Parameters
    ----------
    nb_path:
        A stored ``.ipynb``.

    Returns
    -------
    list of int
        Empty when every output cell says how its output may change.

    Raises
    ------
    FileNotFoundError
        If ``nb_path`` is not a file.
    ValueError
        For a malformed marker (see :func:`parse_marker`).
    """
    path = _existing(nb_path, "nb_path", file=True)
    cells = _code_cells(_read_notebook(path), path.name)
    return [i for i, (c, m) in enumerate(cells, start=1)
            if c.get("outputs") and m.kind == "untracked"]


def _stream_text(nb: Any) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []) if o.get("output_type") == "stream")


def _existing(path: Any, name: str, *, file: bool = False) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path, got {type(path).__name__}")
    path = Path(path)
    if not (path.is_file() if file else path.exists()):
        raise FileNotFoundError(f"{name} {path} does not exist" if not path.exists()
                                else f"{name} {path} is not a file")
    return path


def _first_line(source: str) -> str:
    lines = [ln for ln in source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return (lines or source.splitlines() or [""])[0].strip()[:80]


def compare_notebooks(
    baseline_path: str | os.PathLike[str],
    candidate_path: str | os.PathLike[str],
    *,
    fail_on_warning: bool = False,
    allow_profile_mismatch: bool = False,
) -> ChapterReport:
    """Compare the outputs of two runs of one notebook, cell by cell.

    Parameters
    ----------
    baseline_path, candidate_path:
        The two executed ``.ipynb`` files (e.g. the stored chapter and a run with a new TF).
    fail_on_warning:
        Whether a newly warning cell fails the chapter.
    allow_profile_mismatch:
        Compare even when the set-up cells printed different ``Profile:`` lines.

    Returns
    -------
    ChapterReport

    Raises
    ------
    FileNotFoundError
        If a path is not a file.
    ProfileMismatchError
        If the runs used different profiles and ``allow_profile_mismatch`` is False.
    ValueError
        For a malformed marker (see :func:`parse_marker`).
    """
    base_path = _existing(baseline_path, "baseline_path", file=True)
    cand_path = _existing(candidate_path, "candidate_path", file=True)
    check_bool("fail_on_warning", fail_on_warning)
    check_bool("allow_profile_mismatch", allow_profile_mismatch)
    base_nb, cand_nb = _read_notebook(base_path), _read_notebook(cand_path)
    report = ChapterReport(base_path.name, str(base_path), str(cand_path),
                           fail_on_warning=fail_on_warning)
    for side, nb in (("baseline", base_nb), ("candidate", cand_nb)):
        text = _stream_text(nb)
        profile, versions = _PROFILE.search(text), _VERSIONS.search(text)
        setattr(report, f"{side}_profile", profile.group(1) if profile else None)
        setattr(report, f"{side}_versions", versions.group() if versions else "")
    profiles = (report.baseline_profile, report.candidate_profile)
    if None not in profiles and profiles[0] != profiles[1]:
        message = (f"{base_path.name}: the baseline ran in the {profiles[0]!r} profile, the "
                   f"candidate in {profiles[1]!r}")
        if not allow_profile_mismatch:
            raise ProfileMismatchError(f"{message}; their numbers are not comparable. Run both "
                                       "in the same profile (or allow the profile mismatch)")
        report.problem = message
    base = _code_cells(base_nb, base_path.name)
    cand = _code_cells(cand_nb, cand_path.name)
    for bi, ci in _match(base, cand):
        report.cells.append(_compare_cell(base, cand, bi, ci, fail_on_warning))
    return report


def _match(base: list[Any], cand: list[Any]) -> list[tuple[int | None, int | None]]:
    """Pairs of 0-based indices: by position when the counts agree, else by source."""
    if len(base) == len(cand):
        return [(i, i) for i in range(len(base))]
    sources = [[c.source.strip() for c, _ in cells] for cells in (base, cand)]
    matcher = difflib.SequenceMatcher(None, *sources, autojunk=False)
    pairs: list[tuple[int | None, int | None]] = []
    for _, b0, b1, c0, c1 in matcher.get_opcodes():
        common = min(b1 - b0, c1 - c0)
        pairs += [(b0 + k, c0 + k) for k in range(common)]
        pairs += [(b, None) for b in range(b0 + common, b1)]
        pairs += [(None, c) for c in range(c0 + common, c1)]
    return pairs


def _compare_cell(base: list[Any], cand: list[Any], bi: int | None, ci: int | None,
                  fail_on_warning: bool) -> CellReport:
    cell, marker = cand[ci] if ci is not None else base[bi]  # the candidate's marker rules
    index = bi + 1 if bi is not None else ci + 1
    report = CellReport(index, None if ci is None else ci + 1, marker.describe(), marker.kind,
                        "equal", _first_line(cell.source), note=marker.note)
    tracked = marker.kind in ("check", "tolerance")
    if ci is None or bi is None:
        report.status = "missing" if ci is None else "extra"
        report.fails = report.beyond = ci is None and tracked and bool(cell.get("outputs"))
        return report
    report.source_changed = base[bi][0].source.strip() != cell.source.strip()
    old, new = _read_output(base[bi][0]), _read_output(cell)
    report.images = (old.images, new.images)
    old_keys = {_warning_key(w) for w in old.warnings}
    new_keys = {_warning_key(w) for w in new.warnings}
    report.new_warnings = [w for w in new.warnings if _warning_key(w) not in old_keys]
    report.gone_warnings = [w for w in old.warnings if _warning_key(w) not in new_keys]
    if new.error or old.error:
        report.status = ("newly-failing" if not old.error else
                         "still-failing" if new.error else "fixed")
        report.error = new.error or old.error or ""
        if new.error and old.error and new.error != old.error:
            report.note = f"baseline: {old.error}"
    elif not new.ran and old.ran:
        report.status = "not-run"
    else:
        report.status, report.moved, report.diff = _compare_text(old, new, marker)
    report.beyond = tracked and report.status in ("changed-beyond-tolerance", "text-changed")
    report.fails = (report.beyond or report.status in ("newly-failing", "not-run")
                    or (fail_on_warning and bool(report.new_warnings)))
    return report


def _compare_text(old: _Output, new: _Output, marker: Marker
                  ) -> tuple[str, list[MovedNumber], list[str]]:
    old_skeleton, old_numbers = split_numbers(old.text)
    new_skeleton, new_numbers = split_numbers(new.text)
    untracked = marker.kind == "untracked"
    if old_skeleton != new_skeleton or old.images != new.images:
        diff = _diff(old.text, new.text)
        if old.images != new.images:
            diff.append(f"figures: {old.images} in the baseline, {new.images} in the candidate")
        return ("untracked-changed" if untracked else "text-changed"), [], diff
    lines = new.text.split("\n")
    line_of = [new.text.count("\n", 0, m.start()) for m in _NUMBER.finditer(new.text)]
    moved = []
    for k, (a, b) in enumerate(zip(old_numbers, new_numbers)):
        va, vb = _value(a), _value(b)
        if va == vb:
            continue
        if marker.kind == "check":
            ok = round_floats(a, FLOAT_DIGITS) == round_floats(b, FLOAT_DIGITS)
        else:
            ok = marker.kind == "timing" or (marker.kind == "tolerance" and marker.allows(va, vb))
        change = vb - va if math.isfinite(vb - va) else None
        rel = change / abs(va) if change is not None and va != 0 else None
        context = lines[line_of[k]].strip()[:80]
        moved.append(MovedNumber(k + 1, a, b, change, rel, ok, context))
    if marker.kind == "check" and round_floats(old.text) != round_floats(new.text):
        if not all(m.ok for m in moved):
            return "changed-beyond-tolerance", moved, []
        return "text-changed", moved, _diff(old.text, new.text)  # e.g. blanks: nbval sees them
    if not moved:
        return "equal", [], []
    if untracked:
        return "untracked-changed", moved, []
    within = all(m.ok for m in moved)
    return ("changed-within-tolerance" if within else "changed-beyond-tolerance"), moved, []


def _diff(old: str, new: str) -> list[str]:
    lines = list(difflib.unified_diff(old.splitlines(), new.splitlines(), "baseline",
                                      "candidate", n=1, lineterm=""))[2:]
    lines = [ln[:160] for ln in lines]
    if len(lines) > _MAX_DIFF_LINES:
        lines = [*lines[:_MAX_DIFF_LINES], f"... {len(lines) - _MAX_DIFF_LINES} more diff lines"]
    return lines


def _chapters(path: Any, name: str) -> dict[str, Path]:
    from tfpcourse.notebooks import find_notebooks

    path = _existing(path, name)
    if path.is_file():
        return {path.name: path}
    found = {p.name: p for p in find_notebooks(path)}
    if not found:
        raise FileNotFoundError(f"{name} folder {path} holds no chapter notebooks (NN_*.ipynb)")
    return found


def compare_runs(
    baseline: str | os.PathLike[str],
    candidate: str | os.PathLike[str],
    *,
    fail_on_warning: bool = False,
    allow_profile_mismatch: bool = False,
) -> RunReport:
    """Compare two runs of the chapters, matched by file name.

    Parameters
    ----------
    baseline, candidate:
        Each a folder of ``NN_*.ipynb`` or a single ``.ipynb``. Two single files are compared
        whatever their names.
    fail_on_warning, allow_profile_mismatch:
        As in :func:`compare_notebooks`.

    Returns
    -------
    RunReport
        A chapter on one side only is reported; missing from the candidate, it fails.

    Raises
    ------
    FileNotFoundError
        If a path does not exist or a folder holds no chapters.
    ProfileMismatchError, ValueError
        As in :func:`compare_notebooks`.
    """
    check_bool("fail_on_warning", fail_on_warning)
    check_bool("allow_profile_mismatch", allow_profile_mismatch)
    base, cand = _chapters(baseline, "baseline"), _chapters(candidate, "candidate")
    if len(base) == 1 and len(cand) == 1 and Path(baseline).is_file() and Path(candidate).is_file():
        cand = {next(iter(base)): next(iter(cand.values()))}
    chapters = []
    for name in sorted(set(base) | set(cand)):
        if name in base and name in cand:
            chapters.append(compare_notebooks(
                base[name], cand[name], fail_on_warning=fail_on_warning,
                allow_profile_mismatch=allow_profile_mismatch))
        else:
            side = "baseline" if name in base else "candidate"
            chapters.append(ChapterReport(name, str(base.get(name, "")), str(cand.get(name, "")),
                                          problem=f"only in the {side}",
                                          fails_alone=side == "baseline",
                                          fail_on_warning=fail_on_warning))
    return RunReport(str(baseline), str(candidate), chapters, fail_on_warning)


def _fmt(x: float | None) -> str:
    """Changes readably: ``+1.2e-07`` and ``+3.1`` differ at a glance."""
    if x is None:
        return "n/a"
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:+,.0f}"
    return f"{x:+.3g}"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _chapter_markdown(ch: ChapterReport) -> list[str]:
    out = [f"## {ch.name}", ""]
    if ch.problem:
        out += [f"*{ch.problem}*", ""]
    if ch.baseline_versions != ch.candidate_versions:
        out += [f"Baseline: {ch.baseline_versions or 'versions not printed'}; candidate: "
                f"{ch.candidate_versions or 'versions not printed'}.", ""]
    not_run = [c.index for c in ch.cells if c.status == "not-run"]
    if not_run:
        out += [f"{len(not_run)} code cells not run (execution stopped), from code cell "
                f"{not_run[0]} on.", ""]
    for c in ch.cells:
        if c.status in ("equal", "not-run") and not (c.new_warnings or c.source_changed):
            continue
        flags = [c.status] + (["newly warning"] if c.new_warnings else []) \
            + (["source changed"] if c.source_changed else [])
        verdict = "FAILS" if c.fails else "ok"
        out += [f"### code cell {c.index}: {', '.join(flags)} ({c.marker}; {verdict})", "",
                _code(c.first_line) + (f" ({c.note})" if c.note else ""), ""]
        if c.error:
            out += [f"Error: {_code(c.error)}", ""]
        out += [f"- new warning: {_code(w)}" for w in c.new_warnings]
        out += [f"- warning gone: {_code(w)}" for w in c.gone_warnings]
        if c.new_warnings or c.gone_warnings:
            out.append("")
        if c.moved:
            tolerance = {"check": f"round-off ({FLOAT_DIGITS} s.f.)", "timing": "not compared",
                         "untracked": "untracked"}.get(c.kind, c.marker.replace("tolerance ", ""))
            out += ["| # | old | new | abs change | rel change | tolerance | ok? | line |",
                    "|---|---|---|---|---|---|---|---|"]
            for m in c.moved[:_MAX_ROWS]:
                out.append(f"| {m.position} | {m.old} | {m.new} | {_fmt(m.change)} | "
                           f"{_fmt(m.rel_change)} | {tolerance} | {'yes' if m.ok else 'NO'} | "
                           f"{_cell(m.context)} |")
            if len(c.moved) > _MAX_ROWS:
                out.append(f"| ... {len(c.moved) - _MAX_ROWS} more | | | | | | | |")
            out.append("")
        if c.diff:
            out += ["```diff", *c.diff, "```", ""]
    return out


def _as_run(report: Any) -> RunReport:
    if isinstance(report, ChapterReport):
        return RunReport(report.baseline, report.candidate, [report], report.fail_on_warning)
    if not isinstance(report, RunReport):
        raise TypeError(f"report must be a RunReport or ChapterReport, got "
                        f"{type(report).__name__}")
    return report


def to_markdown(report: RunReport | ChapterReport) -> str:
    """The report as Markdown: a table of chapters, then the cells that changed.

    Parameters
    ----------
    report:
        From :func:`compare_runs` or :func:`compare_notebooks`.

    Returns
    -------
    str
    """
    report = _as_run(report)
    out = [f"# Regression report: `{report.baseline}` vs `{report.candidate}`", "",
           f"**{'PASS' if report.passed else 'FAIL'}**: {report.totals()}.",
           "", "| chapter | cells | equal | within tol | beyond tol | newly failing | "
           "newly warning | not run | other changes | result |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for ch in report.chapters:
        n = ch.counts
        result = ("pass" if ch.passed else "FAIL") + (f" ({ch.problem})" if ch.problem else "")
        out.append(f"| {ch.name} | {n['cells']} | {n['equal']} | {n['within']} | {n['beyond']} "
                   f"| {n['newly_failing']} | {n['newly_warning']} | {n['not_run']} | "
                   f"{n['other']} | {result} |")
    out += ["", "*Other changes*: untracked cells, the words of timing cells, still failing, "
            "fixed, extra or missing untracked cells; reported, never failing. Newly warning "
            + ("fails (--fail-on-warning)." if report.fail_on_warning else "does not fail."), ""]
    for ch in report.chapters:
        if ch.problem or any(c.status != "equal" or c.new_warnings or c.source_changed
                             for c in ch.cells) or ch.baseline_versions != ch.candidate_versions:
            out += _chapter_markdown(ch)
    return "\n".join(out).rstrip() + "\n"


def to_json(report: RunReport | ChapterReport) -> dict[str, Any]:
    """The report as a JSON-serialisable dict (with each chapter's counts and verdict)."""
    report = _as_run(report)
    data = asdict(report)
    data["passed"] = report.passed
    for chapter, ch in zip(data["chapters"], report.chapters):
        chapter["counts"], chapter["passed"] = ch.counts, ch.passed
        for cell in chapter["cells"]:
            cell["images"] = list(cell["images"])
    return data
