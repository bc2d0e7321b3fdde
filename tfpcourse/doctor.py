"""``tfpcourse doctor``: the first command a student runs. It checks the environment and says,
in plain words, what to fix.

Checks, in order (each ends ``ok``, ``warn`` or ``FAIL`` with a fix):

1. Python version (3.10 to 3.13; the stored outputs were made on 3.11);
2. the installed versions of TensorFlow, TensorFlow Probability, tf-keras and Keras against
   the supported ranges (:mod:`tfpcourse.stack`; tf-keras must match TensorFlow's minor
   version: TFP refuses to import without it), noting where they differ from the stack of the
   stored outputs;
3. that TensorFlow and TFP import, and which devices TensorFlow sees (CPU, GPUs);
4. the data: the cache folder is writable, and which dataset files are cached, in the mirror
   (``TFPCOURSE_DATA_MIRROR``) or still to download;
5. a Jupyter kernel named ``python3`` that runs this Python (otherwise notebooks may start in
   another environment without the course installed).

A ``FAIL`` makes the command exit with status 1; warnings do not.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SUPPORTED_PYTHONS", "Finding", "diagnose", "report"]

SUPPORTED_PYTHONS = ((3, 10), (3, 11), (3, 12), (3, 13))
"""The Python versions the course supports (``requires-python`` in pyproject.toml)."""

OK, WARN, FAIL = "ok", "warn", "FAIL"


@dataclass(frozen=True)
class Finding:
    """One line of the doctor's report: what was checked, the verdict, and what to do."""

    topic: str
    status: str
    detail: str
    fix: str = ""

    def __str__(self) -> str:
        line = f"[{self.status:>4}] {self.topic}: {self.detail}"
        if self.fix and self.status != OK:
            line += f"\n       -> {self.fix}"
        return line


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def check_python(version: tuple[int, ...] | None = None) -> Finding:
    """Python 3.10-3.13 are supported (3.11 made the stored outputs); others get a FAIL."""
    from tfpcourse.stack import STORED_OUTPUTS_STACK

    v = tuple(sys.version_info[:3]) if version is None else tuple(version)
    text = ".".join(map(str, v))
    stored = STORED_OUTPUTS_STACK["python"]
    if v[:2] in SUPPORTED_PYTHONS:
        note = "; the stored outputs used it" if ".".join(map(str, v[:2])) == stored else ""
        return Finding("Python", OK, f"{text} (supported{note})")
    return Finding("Python", FAIL, f"{text} is not supported (the course needs 3.10 to 3.13)",
                   f"install Python {stored} (or 3.10-3.13) and recreate the environment "
                   "(make, or conda env create -f environment.yml)")


def check_packages(version_of: Callable[[str], str | None] = _version) -> list[Finding]:
    """Check the core stack against the supported ranges and the tf-keras match
    (:mod:`tfpcourse.stack`), and say where it differs from the stack of the stored outputs."""
    from tfpcourse import stack

    versions = {dist: version_of(dist) for dist in (*stack.CORE, "keras")}
    problems = stack.problems(versions)
    fix = stack.install_command(versions)
    findings = []
    for dist in (*stack.CORE, "keras"):
        installed = versions[dist]
        mine = [p for p in problems if p.startswith(f"{dist} ")]
        stored = stack.STORED_OUTPUTS_STACK[dist]
        if installed is None:
            findings.append(Finding(dist, FAIL, "not installed", fix))
        elif mine:
            findings.append(Finding(dist, FAIL, "; ".join(mine), fix))
        elif installed == stored:
            findings.append(Finding(dist, OK, f"{installed} (the stored outputs' version)"))
        else:
            findings.append(Finding(dist, OK, f"{installed} (supported; the stored outputs "
                                    f"were made with {stored}, numbers may differ slightly)"))
    return findings


def check_tensorflow() -> list[Finding]:
    """Import TensorFlow and TFP (quietly) and list the devices."""
    try:
        from tfpcourse import device

        with device.quiet_stderr():
            import tensorflow as tf
            import tensorflow_probability as tfp  # noqa: F401 - the import is the check
            gpus = tf.config.list_physical_devices("GPU")
            cpus = tf.config.list_physical_devices("CPU")
    except Exception as error:  # any import failure is the finding
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return [Finding("TensorFlow import", FAIL, f"{type(error).__name__}: {first}",
                        "reinstall the course's dependencies (pip install -e .); if the error "
                        "mentions tf_keras, install tf-keras matching your TensorFlow")]
    found = [Finding("TensorFlow import", OK, "tensorflow and tensorflow_probability import")]
    if gpus:
        found.append(Finding("devices", OK, f"{len(cpus)} CPU, {len(gpus)} GPU(s): "
                                            + ", ".join(g.name for g in gpus)))
    else:
        found.append(Finding(
            "devices", OK,
            f"{len(cpus)} CPU device, no GPU ({os.cpu_count()} cores): every chapter runs on "
            f"the CPU",
        ))
    return found


def check_data() -> list[Finding]:
    """The cache folder is writable; which files are cached, mirrored or missing."""
    from tfpcourse import data
    from tfpcourse.config import get_config

    findings = []
    folder = data.cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
        findings.append(Finding("data cache", OK, f"{folder} is writable"))
    except OSError as error:
        findings.append(Finding(
            "data cache", FAIL, f"cannot write to {folder} ({error.strerror or error})",
            "set TFPCOURSE_DATA_DIR to a folder you can write to",
        ))
    mirror = get_config().data_mirror
    if mirror:
        exists = "://" in mirror or Path(mirror).expanduser().is_dir()
        findings.append(Finding(
            "data mirror", OK if exists else FAIL, f"TFPCOURSE_DATA_MIRROR={mirror}",
            "" if exists else "the mirror folder does not exist: fix the path or unset it",
        ))
    for name in data.DATASETS:
        rows = data.cache_status([name])
        states = [r.state for r in rows]
        if all(s == "ok" for s in states):
            findings.append(Finding(f"dataset {name}", OK, f"all {len(rows)} files cached"))
            continue
        corrupt = sum(s == "corrupt" for s in states)
        missing = len(rows) - corrupt - sum(s == "ok" for s in states)
        in_mirror = sum(bool(r.in_mirror) for r in rows if r.state != "ok")
        detail = f"{missing} missing, {corrupt} damaged of {len(rows)} files"
        if in_mirror:
            detail += f" ({in_mirror} available in the mirror)"
        optional = name == "kmnist"
        findings.append(Finding(
            f"dataset {name}", WARN if optional or in_mirror or not corrupt else FAIL, detail,
            f"run: tfpcourse data download {name}"
            + (" (optional: one exercise uses it)" if optional else ""),
        ))
    return findings


def check_kernel() -> Finding:
    """A ``python3`` Jupyter kernel that starts this interpreter."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    except ImportError:
        return Finding("Jupyter kernel", WARN, "Jupyter is not installed",
                       "pip install -e '.[notebooks]' to run the notebooks in JupyterLab")
    try:
        spec = KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        return Finding("Jupyter kernel", FAIL, "no 'python3' kernel found",
                       f"{sys.executable} -m ipykernel install --user")
    exe = spec.argv[0] if spec.argv else ""
    same = exe in ("python", "python3", "{python}") or _same_file(exe, sys.executable)
    if same:
        return Finding("Jupyter kernel", OK, f"'python3' runs {sys.executable}")
    return Finding(
        "Jupyter kernel", WARN, f"'python3' runs {exe}, not this Python ({sys.executable})",
        f"start JupyterLab from this environment, or: {sys.executable} -m ipykernel install "
        f"--user --name tfpcourse, then pick the 'tfpcourse' kernel",
    )


def _same_file(a: str, b: str) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def diagnose(*, tensorflow: bool = True) -> list[Finding]:
    """Run every check; ``tensorflow=False`` skips importing TensorFlow (fast)."""
    findings = [check_python(), *check_packages()]
    if tensorflow:
        findings += check_tensorflow()
    findings += check_data()
    findings.append(check_kernel())
    return findings


def report(findings: list[Finding]) -> tuple[str, int]:
    """The printed report and the exit status (1 if anything FAILed)."""
    lines = [str(f) for f in findings]
    fails = sum(f.status == FAIL for f in findings)
    warns = sum(f.status == WARN for f in findings)
    if fails:
        lines.append(f"\n{fails} problem(s) to fix before the course will run (see -> lines).")
    elif warns:
        lines.append(f"\nReady, with {warns} note(s) above.")
    else:
        lines.append("\nEverything is ready. Start with: jupyter lab notebooks/")
    return "\n".join(lines), 1 if fails else 0
