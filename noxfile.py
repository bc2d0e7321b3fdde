"""The version matrices of the course (slow: run on demand, not in CI).

Two matrices, each session in a fresh environment made with ``uv``, the course installed
*non-editable* from a freshly built wheel, and the tests run from a copy of the repository
that has no ``tfpcourse/`` folder (so the installed wheel is what gets tested):

``nox -s tests``        Python 3.10, 3.11, 3.12 and 3.13 (each one found; a missing
                        interpreter is reported, not skipped silently), on the locked
                        TensorFlow stack: the unit tests and the nbval smoke run of every
                        chapter (the website's tests are left to CI).
``nox -s stack``        the TensorFlow stacks ``oldest`` (the lower bounds of every
                        dependency), ``locked`` (requirements/lock.txt, the stack of the stored
                        outputs) and ``canary`` (tf-nightly, tfp-nightly, tf-keras-nightly and
                        the newest releases of everything else): every chapter executed
                        (smoke profile; ``-- --full`` for the stored one), then the upgrade
                        report ``tfpcourse regress`` of each stack against the locked one
                        (against the stored outputs with ``--full``).
``nox -s table``        the Markdown table of both matrices from their JSON results.

One cell: ``nox -s "tests(3.12)"``, ``nox -s "stack(canary)"``. Results are written to
``benchmarks/results/matrix/`` (JSON per run, Markdown tables dated); executed notebooks and
environments stay in ``build/matrix/``. ``make matrix`` and ``make stacks`` run the two
matrices, ``make stacks`` with the table at the end.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import nox
import nox.command

ROOT = Path(__file__).resolve().parent
BUILD = ROOT / "build" / "matrix"
RESULTS = ROOT / "benchmarks" / "results" / "matrix"
LOCK = ROOT / "requirements" / "lock.txt"
OLDEST = ROOT / "requirements" / "oldest.txt"
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
STACK_PYTHON = "3.11"  # the stacks differ in TensorFlow & co., not in Python
# TensorFlow's Python wheels: a (Python, stack) cell outside these cannot exist.
TF_PYTHONS = {"2.18": ["3.9", "3.10", "3.11", "3.12"], "2.19": ["3.9", "3.10", "3.11", "3.12"],
              "2.20": ["3.9", "3.10", "3.11", "3.12", "3.13"],
              "2.21": ["3.10", "3.11", "3.12", "3.13"]}

nox.options.default_venv_backend = "none"
nox.options.sessions = ["tests", "stack", "table"]


# ---- helpers ---------------------------------------------------------------------------------


def _interpreter(minor: str) -> str | None:
    """The newest CPython ``minor`` (e.g. "3.12") from pyenv, else from PATH."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = sorted(
        (p for p in pyenv.glob(f"{minor}.*") if re.fullmatch(rf"{re.escape(minor)}\.\d+", p.name)),
        key=lambda p: int(p.name.rsplit(".", 1)[1]),
    )
    for candidate in reversed(found):
        exe = candidate / "bin" / f"python{minor}"
        if exe.is_file():
            return str(exe)
    on_path = shutil.which(f"python{minor}")
    if on_path:
        probe = subprocess.run([on_path, "-c", "import sys; print(sys.version_info[:2])"],
                               capture_output=True, text=True)
        if probe.returncode == 0:
            return on_path
    return None


def _uv(session: nox.Session) -> str:
    exe = shutil.which("uv")
    if exe is None:
        session.error("uv is needed (it is in the dev extra: pip install -e '.[dev]')")
    return exe


def _wheel(session: nox.Session) -> Path:
    """A wheel of the committed tree (HEAD)."""
    dist = BUILD / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    source = _checkout(BUILD / "source")
    session.run(_uv(session), "build", "--wheel", "--out-dir", str(dist), str(source),
                external=True, silent=True)
    (wheel,) = dist.glob("tfpcourse-*.whl")
    return wheel


def _venv(session: nox.Session, name: str, python: str) -> Path:
    env = BUILD / f"venv-{name}"
    shutil.rmtree(env, ignore_errors=True)
    session.run(_uv(session), "venv", "--quiet", "--seed", "-p", python, str(env), external=True)
    return env


def _install(session: nox.Session, env: Path, *args: str) -> None:
    session.run(_uv(session), "pip", "install", "--quiet", "--python", str(env / "bin" / "python"),
                *args, external=True)


def _versions(env: Path) -> dict[str, str]:
    code = ("import json, platform; from importlib import metadata as m\n"
            "names = ['tensorflow', 'tf-nightly', 'tensorflow-probability', 'tfp-nightly', "
            "'tf-keras', 'tf-keras-nightly', 'keras', 'keras-nightly', 'numpy', 'matplotlib']\n"
            "out = {'python': platform.python_version()}\n"
            "for n in names:\n"
            "    try: out[n] = m.version(n)\n"
            "    except m.PackageNotFoundError: pass\n"
            "print(json.dumps(out))")
    result = subprocess.run([str(env / "bin" / "python"), "-c", code], capture_output=True,
                            text=True, check=True)
    return json.loads(result.stdout)


def _commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()


def _checkout(dest: Path) -> Path:
    """The committed tree (HEAD) in ``dest``: what the matrix tests is a commit, not whatever
    the working tree holds at the moment."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "--format=tar", "HEAD"], cwd=ROOT,
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    (dest / ".commit").write_text(_commit(), encoding="utf-8")  # what this run tests
    return dest


def _tree_without_package(dest: Path) -> Path:
    """The committed tree minus tfpcourse/, so that the tests import the installed wheel."""
    _checkout(dest)
    shutil.rmtree(dest / "tfpcourse")
    return dest


def _test_env() -> dict[str, str]:
    env = {"TFPCOURSE_PROFILE": "smoke", "TFPCOURSE_DATA_DIR": str(BUILD / "data"),
           "MPLBACKEND": "Agg"}
    mirror = os.environ.get("TFPCOURSE_DATA_MIRROR") or str(ROOT.parent / "shared" / "data")
    if Path(mirror).is_dir() or "://" in mirror:
        env["TFPCOURSE_DATA_MIRROR"] = mirror
    return env


def _junit_counts(path: Path) -> dict[str, dict[str, int]]:
    """Passed/failed/skipped counts of a JUnit file, split into unit tests and notebook cells."""
    counts = {k: {"passed": 0, "failed": 0, "skipped": 0} for k in ("tests", "cells")}
    for case in ET.parse(path).getroot().iter("testcase"):
        kind = "cells" if ".ipynb" in (case.get("file") or case.get("classname") or "") else "tests"
        if case.find("failure") is not None or case.find("error") is not None:
            counts[kind]["failed"] += 1
        elif case.find("skipped") is not None:
            counts[kind]["skipped"] += 1
        else:
            counts[kind]["passed"] += 1
    return counts


def _write_result(name: str, result: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


# ---- the Python matrix -----------------------------------------------------------------------


@nox.session(python=False)
@nox.parametrize("python", PYTHONS, ids=PYTHONS)
def tests(session: nox.Session, python: str) -> None:
    """Unit tests + nbval smoke run of every chapter, course installed from a wheel."""
    exe = _interpreter(python)
    result: dict = {"python": python, "stack": "locked", "date": str(_dt.date.today()),
                    "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    if exe is None:
        result.update(status="no interpreter", note=f"no CPython {python} found (pyenv or PATH)")
        _write_result(f"python-{python}", result)
        session.skip(result["note"])
    wheel = _wheel(session)
    env = _venv(session, f"py{python}", exe)
    start = time.perf_counter()
    # The lock resolves on Python 3.11.7-3.13; elsewhere, the lock's TensorFlow core pins with
    # the newest of everything else inside the course's ranges.
    lockable = subprocess.run([exe, "-c", "import sys; sys.exit(not (3, 11, 7) <= "
                                          "sys.version_info[:3] < (3, 14))"]).returncode == 0
    constraint = LOCK if lockable else _core_constraints()
    _install(session, env, f"{wheel}[dev]", "-c", str(constraint))
    result["install_s"] = round(time.perf_counter() - start, 1)
    result["versions"] = _versions(env)
    result["constraints"] = "requirements/lock.txt" if lockable else "lock's TF/TFP/tf-keras"
    tree = _tree_without_package(BUILD / f"tree-py{python}")
    result["commit"] = (tree / ".commit").read_text(encoding="utf-8")
    junit = BUILD / f"junit-py{python}.xml"
    start = time.perf_counter()
    ok = True
    with session.chdir(tree):
        try:
            session.run(str(env / "bin" / "python"), "-m", "pytest", "tests", "notebooks",
                        "--ignore=tests/test_book.py", "-p", "no:cacheprovider", "-q",
                        f"--junitxml={junit}", external=True, env=_test_env())
        except nox.command.CommandFailed:  # a failing run is a result to record
            ok = False
    result["test_s"] = round(time.perf_counter() - start, 1)
    result.update(_junit_counts(junit) if junit.is_file() else {})
    result["status"] = "passed" if ok else "failed"
    _write_result(f"python-{python}", result)
    if not ok:
        session.error(f"Python {python}: the tests failed (see above)")


def _core_constraints() -> Path:
    """The TensorFlow core of the lock, as a constraints file (Keras is left to resolve:
    Keras 3.15 needs Python 3.11, and TensorFlow 2.21 accepts older Keras 3 releases)."""
    text = LOCK.read_text(encoding="utf-8")
    pins = [f"{n}=={v}" for n, v in re.findall(r"^([a-z0-9-]+)==(\S+)", text, re.M)
            if n in ("tensorflow", "tensorflow-probability", "tf-keras")]
    out = BUILD / "core-constraints.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(pins) + "\n", encoding="utf-8")
    return out


# ---- the TensorFlow-stack matrix -------------------------------------------------------------

STACKS = ["oldest", "locked", "canary"]


@nox.session(python=False)
@nox.parametrize("stack", STACKS, ids=STACKS)
def stack(session: nox.Session, stack: str) -> None:
    """Execute every chapter on one TensorFlow stack; report the changes against `locked`."""
    full = "--full" in session.posargs
    profile = "full" if full else "smoke"
    exe = _interpreter(STACK_PYTHON)
    if exe is None:
        session.error(f"no CPython {STACK_PYTHON} found")
    wheel = _wheel(session)
    env = _venv(session, f"stack-{stack}", exe)
    start = time.perf_counter()
    run_env = _test_env()
    if stack == "locked":
        _install(session, env, f"{wheel}[dev]", "-c", str(LOCK))
    elif stack == "oldest":
        _install(session, env, f"{wheel}[dev]", "-c", str(OLDEST))
    else:  # canary: nightlies of the core (outside the course's ranges by design)
        _install(session, env, "--prerelease=allow", "tf-nightly", "tfp-nightly",
                 "tf-keras-nightly")
        _install(session, env, "--no-deps", str(wheel))
        _install(session, env, "--prerelease=if-necessary-or-explicit", *_non_core_deps(),
                 "-c", str(_nightly_pins(env)))
        run_env["TFPCOURSE_ALLOW_UNSUPPORTED"] = "1"
    install_s = round(time.perf_counter() - start, 1)
    out = BUILD / f"{stack}-{profile}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    report = out / "run.json"
    start = time.perf_counter()
    tfpcourse = str(env / "bin" / "tfpcourse")
    tree = _checkout(BUILD / f"tree-stack-{stack}")
    session.run(tfpcourse, "run", "--profile", profile, "--folder",
                str(tree / "notebooks"), "--output-dir", str(out), "--json", str(report),
                external=True, env=run_env, success_codes=[0, 1])
    run_s = round(time.perf_counter() - start, 1)
    chapters = json.loads(report.read_text(encoding="utf-8")) if report.is_file() else []
    result = {"stack": stack, "profile": profile, "python": STACK_PYTHON,
              "commit": (tree / ".commit").read_text(encoding="utf-8"),
              "date": str(_dt.date.today()), "versions": _versions(env),
              "install_s": install_s, "run_s": run_s, "chapters": chapters}
    baseline = tree / "notebooks" if full else BUILD / f"locked-{profile}"
    if stack != "locked" or full:
        if baseline.is_dir() and any(baseline.glob("[0-9][0-9]_*.ipynb")):
            md = RESULTS / f"regress-{stack}-vs-{'stored' if full else 'locked'}-{profile}.md"
            js = md.with_suffix(".json")
            RESULTS.mkdir(parents=True, exist_ok=True)
            code = subprocess.run([tfpcourse, "regress", str(baseline), str(out),
                                   "--markdown", str(md), "--json", str(js)],
                                  env={**os.environ, **run_env}).returncode
            if code not in (0, 1):
                session.error(f"tfpcourse regress failed (exit code {code})")
            result["regress"] = {"report": str(md.relative_to(ROOT)),
                                 "beyond_tolerance": code == 1}
        else:
            session.warn(f"no locked run in {baseline}: run `nox -s 'stack(locked)'` first")
    _write_result(f"stack-{stack}-{profile}", result)


def _non_core_deps() -> list[str]:
    """The course's dependencies and dev extra, minus the TensorFlow core."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    deps = project["dependencies"] + project["optional-dependencies"]["dev"] + \
        project["optional-dependencies"]["notebooks"]
    core = ("tensorflow", "tensorflow-probability", "tf-keras")
    keep = []
    for dep in deps:
        name = re.split(r"[<>=!~;\[ ]", dep, maxsplit=1)[0].strip().lower()
        if name in core or name == "tfpcourse":
            continue
        keep.append(dep)
    return keep


def _nightly_pins(env: Path) -> Path:
    """Keep the nightlies just installed while the rest is resolved around them."""
    versions = _versions(env)
    pins = [f"{n}=={versions[n]}" for n in ("tf-nightly", "tfp-nightly", "tf-keras-nightly",
                                            "keras") if n in versions]
    out = BUILD / "nightly-pins.txt"
    out.write_text("\n".join(pins) + "\n", encoding="utf-8")
    return out


# ---- tables ----------------------------------------------------------------------------------


@nox.session(python=False)
def table(session: nox.Session) -> None:
    """Write benchmarks/results/matrix/README.md from the JSON results of both matrices."""
    lines = [f"# Version matrices ({_dt.date.today()})", "",
             "Written by `nox -s table` from the JSON files beside it; each row is one run of "
             "`nox -s tests(...)` or `nox -s stack(...)` on this machine.", "",
             "## Python x locked TensorFlow stack (unit tests + nbval smoke run, installed "
             "from the wheel)", "",
             "| Python | TensorFlow / TFP / tf-keras / numpy | unit tests passed | notebook "
             "cells passed (nbval) | install | tests | status | commit |",
             "|---|---|---|---|---|---|---|---|"]
    for minor in PYTHONS:
        path = RESULTS / f"python-{minor}.json"
        if not path.is_file():
            lines.append(f"| {minor} | (not run) | | | | | | |")
            continue
        r = json.loads(path.read_text(encoding="utf-8"))
        if r.get("status") == "no interpreter":
            lines.append(f"| {minor} | | | | | | {r['note']} | |")
            continue
        v = r["versions"]
        t, c = r.get("tests", {}), r.get("cells", {})
        lines.append(
            f"| {v['python']} | {v.get('tensorflow')} / {v.get('tensorflow-probability')} / "
            f"{v.get('tf-keras')} / {v.get('numpy')} | {t.get('passed', 0)} of "
            f"{sum(t.values()) if t else 0} ({t.get('skipped', 0)} skipped) | "
            f"{c.get('passed', 0)} of {sum(c.values()) if c else 0} | {r['install_s']:.0f} s | "
            f"{r['test_s'] / 60:.1f} min | {r['status']} | {r.get('commit', '')} |")
    lines += ["", "nbval runs every code cell of the seven chapters and compares the "
              "`# NBVAL_CHECK_OUTPUT` ones (251 of the 304 output cells) with the stored "
              "outputs; a cell fails if it raises or if its checked output differs.", "",
              "Cells that cannot exist: TensorFlow 2.18 and 2.19 have no Python 3.13 "
              "wheels, so the `oldest` stack is tested on Python 3.11 (as are the other "
              "stacks).", "",
              "## TensorFlow stacks (Python 3.11, every chapter executed)", "",
              "| stack | TensorFlow / TFP / tf-keras / Keras / numpy | profile | chapters "
              "run | install | run | upgrade report | commit |",
              "|---|---|---|---|---|---|---|---|"]
    for path in sorted(RESULTS.glob("stack-*.json")):
        r = json.loads(path.read_text(encoding="utf-8"))
        v = r["versions"]
        tf_v = v.get("tensorflow") or v.get("tf-nightly")
        tfp_v = v.get("tensorflow-probability") or v.get("tfp-nightly")
        keras_v = v.get("tf-keras") or v.get("tf-keras-nightly")
        ok = sum(1 for ch in r["chapters"] if ch.get("ok"))
        report = r.get("regress", {}).get("report", "")
        link = f"[{Path(report).name}]({Path(report).name})" if report else "(baseline)"
        keras3 = v.get("keras") or v.get("keras-nightly")
        lines.append(f"| {r['stack']} | {tf_v} / {tfp_v} / {keras_v} / {keras3} / "
                     f"{v.get('numpy')} | {r['profile']} | {ok} of {len(r['chapters'])} | "
                     f"{r['install_s']:.0f} s | {r['run_s'] / 60:.1f} min | {link} | "
                     f"{r.get('commit', '')} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    session.log(f"wrote {RESULTS / 'README.md'}")
