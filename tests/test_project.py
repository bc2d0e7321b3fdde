"""The project's set-up files agree with each other."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

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


def test_environment_pins_agree_with_pyproject():
    project = _project_requirements()
    pinned = [Requirement(line) for line in _pip_section() if not line.startswith("-e")]
    assert pinned, "environment.yml pins nothing: expected the core TF/TFP stack"
    for req in pinned:
        assert req.name.lower() in project, f"{req.name} is in environment.yml only"
        assert req.specifier == project[req.name.lower()].specifier, (
            f"{req.name}: environment.yml says {req.specifier}, "
            f"pyproject.toml says {project[req.name.lower()].specifier}"
        )


def test_environment_installs_the_package_with_every_extra():
    editable = [line for line in _pip_section() if line.startswith("-e")]
    assert len(editable) == 1
    match = re.fullmatch(r"-e \.\[(.+)\]", editable[0])
    assert match, editable[0]
    extras = {e.strip() for e in match.group(1).split(",")}
    defined = set(PYPROJECT["project"]["optional-dependencies"])
    # `notebooks` is contained in both `dev` and `book`.
    assert extras | {"notebooks"} == defined


def test_core_stack_is_pinned_exactly():
    project = _project_requirements()
    for name, version in [("tensorflow", "2.21.0"), ("tensorflow-probability", "0.25.0"),
                          ("tf-keras", "2.21.0")]:
        assert str(project[name].specifier) == f"=={version}"
    assert project["jupyter-book"].specifier == SpecifierSet(">=1.0.4,<2")


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
