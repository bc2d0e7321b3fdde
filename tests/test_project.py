"""The project's set-up files agree with each other."""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
ENVIRONMENT = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))


def _pip_section() -> list[str]:
    for dep in ENVIRONMENT["dependencies"]:
        if isinstance(dep, dict) and "pip" in dep:
            return dep["pip"]
    raise AssertionError("environment.yml has no pip section")


def _project_requirements() -> dict[str, Requirement]:
    reqs = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    for extra in PYPROJECT["project"]["optional-dependencies"].values():
        reqs += [Requirement(r) for r in extra if not r.startswith("tfpcourse")]
    return {r.name.lower(): r for r in reqs}


def test_environment_python_matches_requires_python():
    conda_python = next(
        d for d in ENVIRONMENT["dependencies"] if isinstance(d, str) and d.startswith("python=")
    )
    version = conda_python.split("=", 1)[1]
    assert SpecifierSet(PYPROJECT["project"]["requires-python"]).contains(f"{version}.0")


def _lock() -> dict[str, str]:
    """name -> version of every package in requirements/lock.txt."""
    text = (ROOT / "requirements" / "lock.txt").read_text(encoding="utf-8")
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==([^ ;\\]+)", text, re.M)
    return {name.lower().replace("_", "-"): version for name, version in pins}


def test_environment_pins_are_the_locked_versions():
    lock = _lock()
    pinned = [Requirement(line) for line in _pip_section() if not line.startswith("-e")]
    assert {r.name for r in pinned} >= {"tensorflow", "tensorflow-probability", "tf-keras"}
    for req in pinned:
        (spec,) = req.specifier
        assert spec.operator == "==", f"environment.yml must pin {req.name} exactly"
        assert lock[req.name.lower()] == spec.version, (
            f"{req.name}: environment.yml says {spec.version}, "
            f"requirements/lock.txt says {lock[req.name.lower()]}"
        )


def test_lock_pins_every_dependency_inside_its_range_with_hashes():
    lock = _lock()
    for name, req in _project_requirements().items():
        if req.marker is not None and not req.marker.evaluate({"python_version": "3.11"}):
            continue
        assert name in lock, f"{name} is a dependency but not in requirements/lock.txt"
        assert req.specifier.contains(lock[name], prereleases=True), (
            f"the lock's {name} {lock[name]} is outside pyproject's {req.specifier}"
        )
    text = (ROOT / "requirements" / "lock.txt").read_text(encoding="utf-8")
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
    unhashed = [e.split()[0] for e in entries if e.strip() and "--hash=sha256:" not in e]
    assert not unhashed, f"lock entries without hashes: {unhashed[:5]}"


def test_lock_is_the_stack_of_the_stored_outputs():
    from tfpcourse.stack import STORED_OUTPUTS_STACK

    lock = _lock()
    for name, version in STORED_OUTPUTS_STACK.items():
        if name != "python":
            assert lock[name] == version, (name, lock[name], version)
    assert SpecifierSet(PYPROJECT["project"]["requires-python"]).contains(
        STORED_OUTPUTS_STACK["python"] + ".7")


def test_core_dependencies_are_ranges_that_the_stack_check_knows():
    from tfpcourse import stack

    project = _project_requirements()
    for name in stack.CORE:
        spec = project[name].specifier
        assert {s.operator for s in spec} == {">=", "<"}, f"{name} should be a range: {spec}"
        assert spec == SpecifierSet(stack._FALLBACK_RANGES[name]), (name, str(spec))
    # tf-keras follows TensorFlow's versions.
    assert project["tf-keras"].specifier == project["tensorflow"].specifier
    assert project["jupyter-book"].specifier == SpecifierSet(">=1.0.4,<2")


def test_every_supported_python_is_declared_and_ruff_targets_the_oldest():
    requires = SpecifierSet(PYPROJECT["project"]["requires-python"])
    minors = [f"3.{m}" for m in range(8, 16) if requires.contains(f"3.{m}.0")]
    assert minors == ["3.10", "3.11", "3.12", "3.13"], minors
    classifiers = PYPROJECT["project"]["classifiers"]
    for minor in minors:
        assert f"Programming Language :: Python :: {minor}" in classifiers
    assert PYPROJECT["tool"]["ruff"]["target-version"] == "py310"


def test_environment_installs_the_package_with_every_extra():
    editable = [line for line in _pip_section() if line.startswith("-e")]
    assert len(editable) == 1
    match = re.fullmatch(r"-e \.\[(.+)\]", editable[0])
    assert match, editable[0]
    extras = {e.strip() for e in match.group(1).split(",")}
    defined = set(PYPROJECT["project"]["optional-dependencies"])
    # `notebooks` is contained in both `dev` and `book`.
    assert extras | {"notebooks"} == defined


def test_readme_quick_start_has_exactly_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- quick-start -->\s*```(?:bash|sh)\n(.*?)```", readme, re.S)
    assert block, "README.md needs a ```bash block right after <!-- quick-start -->"
    commands = [ln for ln in block.group(1).splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(commands) == 2, commands
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    ci_lines = [ln.strip() for ln in ci.splitlines()]
    assert commands[1].strip() in ci_lines, f"CI does not run the README's {commands[1]!r}"
    assert "TFPCOURSE_PROFILE=smoke" in ci and "shared/data" in ci


def test_jupytext_pairs_the_notebooks_folder():
    config = tomllib.loads((ROOT / "jupytext.toml").read_text(encoding="utf-8"))
    assert config["formats"] == {"notebooks/": "ipynb,py:percent"}


def test_the_oldest_stack_pins_every_lower_bound():
    """requirements/oldest.txt (the matrix's `oldest` stack) tests the lower bounds that
    pyproject.toml claims: each core dependency is pinned exactly at its bound."""
    text = (ROOT / "requirements" / "oldest.txt").read_text(encoding="utf-8")
    pins = {Requirement(line).name.lower(): Requirement(line)
            for line in text.splitlines() if line.strip() and not line.startswith("#")}
    for dep in PYPROJECT["project"]["dependencies"]:
        req = Requirement(dep)
        lower = [s.version for s in req.specifier if s.operator == ">="]
        assert lower, f"{req.name} has no lower bound"
        pin = pins.get(req.name.lower())
        assert pin is not None, f"requirements/oldest.txt does not pin {req.name}"
        (spec,) = pin.specifier
        assert spec.operator == "==", pin
        assert spec.version.startswith(lower[0]) or spec.version == lower[0] + ".0", (
            f"{req.name}: oldest.txt tests {spec.version}, pyproject's lower bound is {lower[0]}"
        )
    tf, keras = pins["tensorflow"].specifier, pins["tf-keras"].specifier
    assert str(tf).split("==")[1].rsplit(".", 1)[0] == str(keras).split("==")[1].rsplit(".", 1)[0]
