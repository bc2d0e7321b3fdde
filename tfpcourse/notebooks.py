"""Bookkeeping for the course's notebooks: pairs, execution, nbval checks.

Each chapter is a pair: ``notebooks/NN_topic.py`` (jupytext ``py:percent``, the reviewed source)
and ``notebooks/NN_topic.ipynb`` (the same cells, committed *with outputs*). This module

* compares the two halves of a pair (:func:`pair_differences`),
* executes notebooks in a chosen profile and measures them (:func:`execute`),
* counts which output cells nbval compares (:func:`check_stats`).
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tfpcourse.config import PROFILE_ENV, PROFILES, _check_profile

__all__ = [
    "BOOTSTRAP_SOURCE",
    "BOOTSTRAP_TAG",
    "CHECK_MARKER",
    "FLOAT_DIGITS",
    "ROUNDOFF",
    "CheckStats",
    "RunResult",
    "check_stats",
    "coalesce_streams",
    "execute",
    "find_notebooks",
    "pair_differences",
    "round_floats",
    "strip_images",
]

CHECK_MARKER = "# NBVAL_CHECK_OUTPUT"

REPOSITORY_URL = "https://github.com/tfpcourse/tfpcourse"
"""The course's repository (the same address as ``repository.url`` in ``book/_config.yml``)."""

BOOTSTRAP_TAG = "hide-cell"
"""The tag of the bootstrap cell: the book collapses it behind a "show" button."""

BOOTSTRAP_SOURCE = f"""\
# Colab, Binder, a fresh Python: install the course if this kernel lacks it (else: nothing).
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("tfpcourse") is None:
    source = os.environ.get("TFPCOURSE_INSTALL", "git+{REPOSITORY_URL}")
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", source],
                         capture_output=True, text=True)
    if pip.returncode != 0:
        raise RuntimeError(f"Installing the course failed:\\n{{pip.stderr}}")
    importlib.invalidate_caches()
from tfpcourse import stack

stack.require_supported()"""
"""The first code cell of every chapter (tested). It installs the course when the kernel does
not have it, without replacing a TensorFlow that is already inside the supported range
(``TFPCOURSE_INSTALL`` may name another source, e.g. a local wheel, as the tests do), then stops
with a message that says what to install when the TensorFlow stack is unsupported. It prints
nothing on a supported set-up, so nbval's checked outputs do not depend on it."""

FLOAT_DIGITS = 4
"""Checked outputs are compared after rounding every decimal number to this many significant
digits, so that a last-digit difference between CPUs does not fail the suite."""

ROUNDOFF = 1e-12
"""Decimal numbers smaller than this in magnitude compare as ``0``: they are float64 round-off
(``1e-16`` on one machine, ``2e-16`` on another), which a notebook prints to show that two
computations agree. Float32 round-off (around ``1e-7``) is above it and still compared."""

_FLOAT = re.compile(
    r"(?<![\w.])-?\d+\.\d+(?:[eE][-+]?\d+)?(?![\w.])"  # 0.5, -1.25e-3
    r"|(?<![\w.])-?\d+[eE][-+]?\d+(?![\w.])"  # 5e-05
)


def round_floats(text: str, digits: int = FLOAT_DIGITS) -> str:
    """Rewrite every decimal number in ``text`` rounded to ``digits`` significant digits.

    Integers, version strings (``2.21.0``) and names (``conv2d_1``) are left alone; ``-0`` becomes
    ``0``, and so does any number smaller than :data:`ROUNDOFF` in magnitude.

    >>> round_floats("loss 0.394378066 after 300 steps, lr 5e-05, tf 2.21.0, error 2e-16")
    'loss 0.3944 after 300 steps, lr 5e-05, tf 2.21.0, error 0'
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")

    def fix(match: re.Match[str]) -> str:
        value = float(match.group())
        if abs(value) < ROUNDOFF:
            return "0"
        rounded = f"{value:.{digits}g}"
        return "0" if rounded in ("-0", "0") else rounded

    return _FLOAT.sub(fix, text)


def coalesce_streams(outputs: list[Any]) -> list[Any]:
    """Merge consecutive stream outputs of the same stream (stdout/stderr) into one.

    A kernel sends printed text in as many messages as it happens to flush, so one ``print``
    loop can arrive as one output or three; the text is what matters.
    """
    merged: list[Any] = []
    for out in outputs:
        if (
            merged
            and out.get("output_type") == "stream"
            and merged[-1].get("output_type") == "stream"
            and merged[-1].get("name") == out.get("name")
        ):
            previous = merged[-1]
            combined = type(previous)(previous)  # same mapping type (nbformat NotebookNode)
            combined["text"] = previous["text"] + out["text"]
            merged[-1] = combined
        else:
            merged.append(out)
    return merged


def find_notebooks(folder: str | os.PathLike[str] = "notebooks") -> list[Path]:
    """The chapter notebooks (``NN_*.ipynb``) in ``folder``, in chapter order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"notebook folder {folder} does not exist")
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def _cells(path: Path) -> list[tuple[str, str, tuple[str, ...]]]:
    import jupytext

    nb = jupytext.read(path)
    return [
        (c.cell_type, c.source.strip(), tuple(sorted(c.metadata.get("tags", []))))
        for c in nb.cells
    ]


def pair_differences(
    py_path: str | os.PathLike[str], ipynb_path: str | os.PathLike[str]
) -> list[str]:
    """Describe how the inputs of a ``.py``/``.ipynb`` pair differ; an empty list means in sync.

    Cell types, sources and tags are compared; outputs and execution counts are not (only the
    ``.ipynb`` has them).
    """
    py_path, ipynb_path = Path(py_path), Path(ipynb_path)
    for p in (py_path, ipynb_path):
        if not p.is_file():
            return [f"{p} is missing"]
    a, b = _cells(py_path), _cells(ipynb_path)
    problems = []
    if len(a) != len(b):
        problems.append(f"{py_path.name} has {len(a)} cells, {ipynb_path.name} has {len(b)}")
    for i, (ca, cb) in enumerate(zip(a, b), start=1):
        if ca != cb:
            what = "type" if ca[0] != cb[0] else "source" if ca[1] != cb[1] else "tags"
            first_line = (ca[1].splitlines() or [""])[0][:60]
            problems.append(f"cell {i} differs in {what} (py starts: {first_line!r})")
            if len(problems) >= 5:
                problems.append("...")
                break
    return problems


@dataclass(frozen=True)
class CheckStats:
    """How a notebook's output cells are compared in CI.

    ``checked_cells`` are marked ``# NBVAL_CHECK_OUTPUT`` (nbval: exact after rounding);
    ``tolerance_cells`` carry ``# TOLERANCE: abs=... / rel=...`` and are compared number by
    number, within that tolerance, with the stored smoke baseline (``tests/baselines/smoke``,
    see :func:`strip_images`) by ``tfpcourse regress``; ``timing_cells``
    (``# TOLERANCE: timing``) are compared in form only, their numbers being wall-clock times.
    """

    notebook: str
    code_cells: int
    output_cells: int
    checked_cells: int
    tolerance_cells: int = 0
    timing_cells: int = 0

    @property
    def ratio(self) -> float:
        """The share of output cells nbval compares exactly."""
        return self.checked_cells / self.output_cells if self.output_cells else 0.0

    @property
    def compared_ratio(self) -> float:
        """The share of output cells CI compares: exactly (nbval) or within a tolerance."""
        if not self.output_cells:
            return 0.0
        return (self.checked_cells + self.tolerance_cells) / self.output_cells


def check_stats(path: str | os.PathLike[str]) -> CheckStats:
    """Count a stored notebook's output cells by how CI compares them (see :class:`CheckStats`).
    """
    import nbformat

    from tfpcourse.regress import parse_marker

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    with_output = [c for c in code if c.get("outputs")]
    kinds = [parse_marker(c.source, f"a cell of {path.name}").kind for c in with_output]
    return CheckStats(path.name, len(code), len(with_output), kinds.count("check"),
                      kinds.count("tolerance"), kinds.count("timing"))


def strip_images(nb: Any) -> Any:
    """Empty the image data of every output of ``nb`` (in place; returns ``nb``).

    The smoke baseline (``tests/baselines/smoke``) keeps each chapter's printed text, which
    ``tfpcourse regress`` compares, and the number of figures per cell, but not their pixels:
    a few kB per chapter instead of a megabyte.
    """
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            for key in [k for k in data if k.startswith("image/")]:
                data[key] = ""
    return nb


@dataclass(frozen=True)
class RunResult:
    """The outcome of executing one notebook."""

    notebook: str
    profile: str
    seconds: float
    peak_rss_mb: float
    ok: bool
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _RssSampler(threading.Thread):
    """Samples the resident memory of a process (and its children) until stopped."""

    def __init__(self, pid: int, interval: float = 0.1):
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        import psutil

        try:
            proc = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop_event.is_set():
            try:
                rss = proc.memory_info().rss
                for child in proc.children(recursive=True):
                    rss += child.memory_info().rss
                self.peak = max(self.peak, rss)
            except psutil.Error:
                pass
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=2)


def execute(
    path: str | os.PathLike[str],
    *,
    profile: str = PROFILES[0],
    output: str | os.PathLike[str] | None = None,
    timeout: int = 3600,
    strip: bool = False,
) -> RunResult:
    """Execute a notebook in a fresh kernel of this Python, in the given profile.

    Parameters
    ----------
    path:
        The ``.ipynb`` to run (its cells are executed from the top, as a reader would).
    profile:
        ``"full"`` or ``"smoke"``; passed to the kernel as ``TFPCOURSE_PROFILE``.
    output:
        Where to write the executed notebook: ``path`` itself for in place, another path, or
        ``None`` to discard it.
    timeout:
        Seconds allowed per cell.
    strip:
        Write the executed notebook without image data (:func:`strip_images`).

    Returns
    -------
    RunResult
        Wall time, peak resident memory of the kernel, and whether every cell ran.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    profile = _check_profile(profile, "profile")
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    # Cells run with the notebook's folder as working directory, like JupyterLab does.
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        # The kernel's own log (e.g. its note that local TCP traffic is unencrypted) is not for
        # readers of a run report; cell errors still arrive as messages.
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
        # Cells run with the notebook's folder as working directory, as in JupyterLab.
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    ok, error = True, ""
    sampler = None
    saved_env = os.environ.copy()
    try:
        os.environ[PROFILE_ENV] = profile  # the kernel inherits this process's environment
        # ipykernel does not capture C-level output when it believes it runs under pytest;
        # a notebook executed here must behave as in JupyterLab, even when called by a test.
        os.environ.pop("PYTEST_CURRENT_TEST", None)
        # A headless shell's MPLBACKEND=Agg would reach the kernel and replace Jupyter's inline
        # backend: figures would silently vanish from the executed notebook.
        os.environ.pop("MPLBACKEND", None)
        with client.setup_kernel():
            pid = _kernel_pid(client)
            if pid:
                sampler = _RssSampler(pid)
                sampler.start()
            index = 0
            try:
                for index, cell in enumerate(nb.cells):
                    client.execute_cell(cell, index)
            except CellExecutionError as err:
                ok = False
                # The cells after the failing one did not run: they must not keep the outputs
                # of an earlier run (a report would compare those as if they were new).
                for later in nb.cells[index + 1:]:
                    if later.cell_type == "code":
                        later.outputs = []
                        later.execution_count = None
                text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))  # drop terminal colours
                lines = [ln for ln in text.strip().splitlines() if ln.strip()]
                error = lines[-1][:300] if lines else "error"
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        if sampler is not None:
            sampler.stop()
    seconds = time.perf_counter() - start
    if output is not None:
        nbformat.write(strip_images(nb) if strip else nb, output)
    peak = (sampler.peak if sampler else 0) / 2**20
    return RunResult(path.name, profile, seconds, peak, ok, error)


def _kernel_pid(client: Any) -> int | None:
    try:
        return int(client.km.provisioner.process.pid)
    except AttributeError:
        return None
