"""A Colab-like run: the notebooks install the course themselves, on another Python, beside a
TensorFlow that is already there, in a folder far from the checkout.

Slow (two fresh environments, a TensorFlow install each: about 5-10 minutes with a warm
package cache) and therefore opt-in:

    pytest tests/test_colab.py --colab

What it does, as Colab would:

1. builds the course's wheel;
2. makes a fresh environment on Python 3.12 (not the development 3.11) and installs an older
   TensorFlow stack inside the supported range (TensorFlow 2.19, as Colab ships one) and the
   Jupyter kernel, but *not* the course;
3. copies two chapters into an empty temporary folder and executes them there, with the
   bootstrap cell pointed at the wheel (``TFPCOURSE_INSTALL``): they must run to the end, the
   course must have been installed by the first cell without replacing TensorFlow, and every
   ``# NBVAL_CHECK_OUTPUT`` cell must match the stored output (compared as nbval does here);
4. in a second environment with TensorFlow 2.17 (below the range) and the course installed
   without its dependencies, the first cell must stop with a message saying what to install.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tfpcourse import notebooks as nbs

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ["02_distributions.ipynb", "03_bijectors.ipynb"]
COLAB_PYTHON = "3.12"
COLAB_STACK = ["tensorflow==2.19.0", "tf-keras==2.19.0", "tensorflow-probability==0.25.0"]
OLD_STACK = ["tensorflow==2.17.1", "tf-keras==2.17.0", "tensorflow-probability==0.24.0"]
KERNEL = ["ipykernel", "nbclient", "nbformat", "matplotlib"]

pytestmark = [pytest.mark.colab, pytest.mark.slow, pytest.mark.network]

EXECUTE = """
import sys, nbformat, pathlib
from nbclient import NotebookClient
path, out = sys.argv[1], sys.argv[2]
nb = nbformat.read(path, as_version=4)
folder = str(pathlib.Path(path).parent)
client = NotebookClient(nb, timeout=900, kernel_name="python3", allow_errors=True,
                        resources={"metadata": {"path": folder}})
client.execute()
nbformat.write(nb, out)
"""


def _python(minor: str) -> str:
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = sorted(pyenv.glob(f"{minor}.*"), key=lambda p: p.name)
    for candidate in reversed(found):
        exe = candidate / "bin" / f"python{minor}"
        if exe.is_file():
            return str(exe)
    exe = shutil.which(f"python{minor}")
    if exe is None:
        pytest.skip(f"no Python {minor} on this machine (pyenv or PATH)")
    return exe


def _uv() -> str:
    exe = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if not Path(exe).exists():
        pytest.skip("uv is needed to build the environments (pip install uv)")
    return exe


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([_uv(), "build", "--wheel", "--out-dir", str(dist), str(ROOT)], check=True,
                   capture_output=True)
    (found,) = dist.glob("tfpcourse-*.whl")
    return found


def _venv(path: Path, *packages: str) -> Path:
    subprocess.run([_uv(), "venv", "--quiet", "--seed", "-p", _python(COLAB_PYTHON), str(path)],
                   check=True)
    subprocess.run([_uv(), "pip", "install", "--quiet", "--python", str(path / "bin" / "python"),
                    *packages], check=True)
    return path / "bin" / "python"


def _version(python: Path, dist: str) -> str | None:
    code = (f"from importlib import metadata as m\ntry: print(m.version({dist!r}))\n"
            "except m.PackageNotFoundError: print('')")
    # Run outside the checkout: its tfpcourse.egg-info would look like an installed course.
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True,
                         cwd=python.parents[2])
    return out.stdout.strip() or None


def _execute(python: Path, notebook: Path, env: dict[str, str]) -> nbformat.NotebookNode:
    executed = notebook.with_name("executed-" + notebook.name)
    subprocess.run([str(python), "-c", EXECUTE, str(notebook), str(executed)], check=True,
                   env=env, cwd=notebook.parent, timeout=1800)
    return nbformat.read(executed, as_version=4)


def _sanitize(outputs) -> str:
    """A cell's outputs as nbval compares them here: streams merged, TF noise dropped, the
    sanitising regexes applied, numbers rounded, images left out."""
    from tfpcourse.device import filter_tf_noise

    rules = re.findall(r"regex: (.*)\nreplace: (.*)",
                       (ROOT / "tests" / "nbval_sanitize.cfg").read_text(encoding="utf-8"))
    parts = []
    for out in nbs.coalesce_streams(list(outputs)):
        if out.output_type == "stream":
            text = filter_tf_noise(out.text) if out.name == "stderr" else out.text
            if text:
                parts.append(f"[{out.name}]{text}")
        elif out.output_type in ("execute_result", "display_data"):
            parts.append("[data]" + out.get("data", {}).get("text/plain", ""))
        elif out.output_type == "error":
            parts.append(f"[error]{out.ename}: {out.evalue}")
    text = "\n".join(parts)
    for pattern, replacement in rules:
        text = re.sub(pattern, replacement, text)
    return nbs.round_floats(text)


def _env(wheel: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "VIRTUAL_ENV"))}
    env.update(TFPCOURSE_INSTALL=str(wheel), TFPCOURSE_PROFILE="smoke", **extra)
    env.pop("MPLBACKEND", None)
    mirror = os.environ.get("TFPCOURSE_DATA_MIRROR") or str(ROOT.parent / "shared" / "data")
    if Path(mirror).is_dir():
        env["TFPCOURSE_DATA_MIRROR"] = mirror
    return env


def test_notebooks_install_the_course_themselves_beside_colabs_tensorflow(wheel, tmp_path):
    python = _venv(tmp_path / "venv", *COLAB_STACK, *KERNEL)
    assert _version(python, "tfpcourse") is None, "the course must not be installed yet"
    work = tmp_path / "somewhere" / "else"
    work.mkdir(parents=True)
    for name in CHAPTERS:
        shutil.copy(ROOT / "notebooks" / name, work / name)
    env = _env(wheel, TFPCOURSE_DATA_DIR=str(tmp_path / "data"))
    summary = {}
    for name in CHAPTERS:
        stored = nbformat.read(ROOT / "notebooks" / name, as_version=4)
        ran = _execute(python, work / name, env)
        errors = [o for c in ran.cells if c.cell_type == "code" for o in c.outputs
                  if o.output_type == "error"]
        assert not errors, f"{name}: {errors[0].ename}: {errors[0].evalue}"
        first = next(c for c in ran.cells if c.cell_type == "code")
        # On this stack the bootstrap prints the one-line notice and nothing else.
        first_text = "".join(o.get("text", "") for o in first.outputs)
        assert first_text.count("\n") <= 1, first_text
        assert "tensorflow 2.19.0" in first_text
        checked = mismatched = 0
        code_stored = [c for c in stored.cells if c.cell_type == "code"]
        code_ran = [c for c in ran.cells if c.cell_type == "code"]
        assert len(code_stored) == len(code_ran)
        for cs, cr in zip(code_stored, code_ran):
            if nbs.CHECK_MARKER in cs.source and cs.outputs:
                checked += 1
                old, new = _sanitize(cs.outputs), _sanitize(cr.outputs)
                if old != new:
                    mismatched += 1
                    diff = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="")
                    print(f"{name}: checked cell differs:\n{cs.source[:200]}\n"
                          + "\n".join(diff))
        summary[name] = (checked, mismatched)
        assert checked > 10
        assert mismatched == 0, f"{name}: {mismatched} of {checked} checked cells differ"
    # The bootstrap installed the course and kept Colab's TensorFlow.
    assert _version(python, "tfpcourse") is not None
    assert _version(python, "tensorflow") == "2.19.0"
    assert _version(python, "tf-keras") == "2.19.0"
    print(json.dumps(summary))


def test_a_tensorflow_below_the_range_stops_in_the_first_cell(wheel, tmp_path):
    python = _venv(tmp_path / "venv", *OLD_STACK, *KERNEL)
    subprocess.run([_uv(), "pip", "install", "--quiet", "--python", str(python), "--no-deps",
                    str(wheel), "platformdirs", "packaging"], check=True)
    work = tmp_path / "elsewhere"
    work.mkdir()
    shutil.copy(ROOT / "notebooks" / CHAPTERS[0], work / CHAPTERS[0])
    ran = _execute(python, work / CHAPTERS[0], _env(wheel))
    code = [c for c in ran.cells if c.cell_type == "code"]
    errors = [(i, o) for i, c in enumerate(code) for o in c.outputs if o.output_type == "error"]
    assert errors, "the notebook ran on TensorFlow 2.17 without stopping"
    index, error = errors[0]
    assert index == 0, f"it stopped in code cell {index + 1}, not in the first"
    assert error.ename == "UnsupportedStackError"
    assert "tensorflow 2.17.1 is outside the supported range >=2.18,<2.22" in error.evalue
    assert 'pip install "tensorflow==2.21.0"' in error.evalue
