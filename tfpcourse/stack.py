"""Which TensorFlow stack is installed, whether the course supports it, and what to install.

The course works with a *range* of TensorFlow / TensorFlow Probability / tf-keras versions
(the ranges in the package's own metadata, i.e. ``[project].dependencies`` of
``pyproject.toml``), but its stored notebook outputs were made with one exact stack,
:data:`STORED_OUTPUTS_STACK` (the versions pinned in ``requirements/lock.txt``; a test keeps
the two equal).

Two rules are checked here because pip cannot express them:

* tf-keras must have the same major.minor version as TensorFlow (TFP's Keras layers import
  ``tf_keras``, and a mismatched minor version fails in odd places);
* every core package must be installed and inside its range.

Nothing here imports TensorFlow: versions are read from the installed packages' metadata, so a
check costs milliseconds and works even when TensorFlow itself would crash on import.

>>> from tfpcourse import stack
>>> problems = stack.problems({"tensorflow": "2.17.1", "tensorflow-probability": "0.25.0",
...                            "tf-keras": "2.17.0"})
>>> print(problems[0])
tensorflow 2.17.1 is outside the supported range >=2.18,<2.22
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from importlib import metadata

__all__ = [
    "ALLOW_ENV",
    "CORE",
    "STORED_OUTPUTS_STACK",
    "UnsupportedStackError",
    "install_command",
    "installed_versions",
    "notice",
    "notice_once",
    "problems",
    "require_supported",
    "supported_ranges",
]

CORE: tuple[str, ...] = ("tensorflow", "tensorflow-probability", "tf-keras")
"""The packages whose versions decide whether the course runs."""

STORED_OUTPUTS_STACK: dict[str, str] = {
    "python": "3.11",
    "tensorflow": "2.21.0",
    "tensorflow-probability": "0.25.0",
    "tf-keras": "2.21.0",
    "keras": "3.15.1",
    "numpy": "2.4.6",
}
"""The exact stack that produced the notebooks' stored outputs (see ``requirements/lock.txt``)."""

# Used when the course is not installed as a distribution (e.g. run from a source tree without
# `pip install`); tests/test_stack.py keeps it equal to pyproject.toml.
_FALLBACK_RANGES: dict[str, str] = {
    "tensorflow": ">=2.18,<2.22",
    "tensorflow-probability": ">=0.25,<0.26",
    "tf-keras": ">=2.18,<2.22",
}

# A CPU/GPU TensorFlow can come from another distribution name; any of these satisfies
# "tensorflow" (the first one found wins).
_TENSORFLOW_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tf-nightly", "tensorflow-macos")
_ALIASES = {
    "tensorflow": _TENSORFLOW_DISTRIBUTIONS,
    "tensorflow-probability": ("tensorflow-probability", "tfp-nightly"),
    "tf-keras": ("tf-keras", "tf-keras-nightly"),
}

_noticed = False


class UnsupportedStackError(RuntimeError):
    """The installed TensorFlow stack cannot run the course; the message says what to install."""


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-")


def supported_ranges() -> dict[str, str]:
    """The version range of each core package, from the installed course's own metadata.

    Returns
    -------
    dict
        ``{"tensorflow": ">=2.18,<2.22", ...}`` for the packages in :data:`CORE`.
    """
    from packaging.requirements import Requirement

    try:
        requires = metadata.requires("tfpcourse") or []
    except metadata.PackageNotFoundError:
        return dict(_FALLBACK_RANGES)
    ranges = dict(_FALLBACK_RANGES)
    for line in requires:
        req = Requirement(line)
        if req.marker is not None and "extra" in str(req.marker):
            continue
        name = _canonical(req.name)
        if name in CORE:
            ranges[name] = _format_range(req.specifier)
    return ranges


def _format_range(specifier: object) -> str:
    """``">=2.18,<2.22"``: lower bounds first (packaging sorts them the other way round)."""
    parts = sorted(str(specifier).split(","), key=lambda p: (not p.startswith(">"), p))
    return ",".join(p for p in parts if p)


def installed_versions() -> dict[str, str | None]:
    """The installed version of each core package (and Keras), or ``None`` when missing.

    Nightly builds count as their package (``tf-nightly`` as ``tensorflow``, ...).
    """
    found: dict[str, str | None] = {}
    for name in (*CORE, "keras"):
        found[name] = None
        for dist in _ALIASES.get(name, (name,)):
            try:
                found[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return found


def _minor(version: str) -> tuple[int, int]:
    from packaging.version import Version

    v = Version(version)
    return v.major, v.minor


def problems(versions: Mapping[str, str | None] | None = None) -> list[str]:
    """What stops the course from running on these versions; empty when all is well.

    Parameters
    ----------
    versions:
        Package name -> installed version (``None`` for missing); defaults to what is
        installed (:func:`installed_versions`).

    Returns
    -------
    list of str
        One plain sentence per problem.
    """
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    if versions is None:
        versions = installed_versions()
    if not isinstance(versions, Mapping):
        raise TypeError(f"versions must be a mapping of package name to version, "
                        f"got {type(versions).__name__}")
    ranges = supported_ranges()
    found: list[str] = []
    for name in CORE:
        version = versions.get(name)
        if version is None:
            found.append(f"{name} is not installed")
            continue
        spec = SpecifierSet(ranges[name], prereleases=True)
        # A nightly of the next version (2.23.0.dev) is outside the range like 2.23.0 itself.
        if Version(version) not in spec:
            found.append(f"{name} {version} is outside the supported range {ranges[name]}")
    tf_version, keras_version = versions.get("tensorflow"), versions.get("tf-keras")
    if tf_version and keras_version and _minor(tf_version) != _minor(keras_version):
        found.append(
            f"tf-keras {keras_version} does not match TensorFlow {tf_version} "
            "(their major.minor versions must be equal)"
        )
    return found


def install_command(versions: Mapping[str, str | None] | None = None) -> str:
    """The ``pip install`` line that brings this environment into the supported range.

    A TensorFlow inside the range is kept; tf-keras is matched to it. Otherwise the stack of
    the stored outputs is proposed.
    """
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    if versions is None:
        versions = installed_versions()
    ranges = supported_ranges()
    tf_version = versions.get("tensorflow")
    keep_tf = tf_version is not None and Version(tf_version) in SpecifierSet(
        ranges["tensorflow"], prereleases=True)
    if keep_tf:
        major, minor = _minor(tf_version)
        tf_part = f'"tensorflow=={tf_version}"'
        keras_part = f'"tf-keras=={major}.{minor}.*"'
    else:
        tf_part = f'"tensorflow=={STORED_OUTPUTS_STACK["tensorflow"]}"'
        keras_part = f'"tf-keras=={STORED_OUTPUTS_STACK["tf-keras"]}"'
    tfp_part = f'"tensorflow-probability{ranges["tensorflow-probability"]}"'
    return f"pip install {tf_part} {tfp_part} {keras_part}"


ALLOW_ENV = "TFPCOURSE_ALLOW_UNSUPPORTED"
"""Set to ``1`` to run on an unsupported stack anyway (the canary of the version matrix does):
the problems are then printed as one line on stderr instead of stopping."""


def require_supported(versions: Mapping[str, str | None] | None = None) -> None:
    """Stop with one clear message when the installed stack cannot run the course.

    Called by each notebook's first cell, so a kernel with (say) TensorFlow 2.17 stops there,
    saying what to install, instead of failing deep inside TFP.

    Raises
    ------
    UnsupportedStackError
        When :func:`problems` finds anything; the message lists the problems and the
        ``pip install`` command that fixes them. (Not when ``TFPCOURSE_ALLOW_UNSUPPORTED=1``.)
    """
    if versions is None:
        versions = installed_versions()
    found = problems(versions)
    if found and os.environ.get(ALLOW_ENV, "").strip() not in ("", "0"):
        print(f"tfpcourse: running on an unsupported stack ({ALLOW_ENV} is set): "
              + "; ".join(found), file=sys.stderr)
        return
    if found:
        raise UnsupportedStackError(
            "This TensorFlow set-up cannot run the course: "
            + "; ".join(found)
            + f".\nFix it with:\n    {install_command(versions)}\n"
            "then restart the kernel (on Colab: Runtime > Restart session) and run this cell "
            "again."
        )


def notice(versions: Mapping[str, str | None] | None = None) -> str | None:
    """One line saying which stack the stored outputs were made with, when this one differs.

    Returns ``None`` when the installed TensorFlow, TFP, tf-keras and Keras are the ones of
    :data:`STORED_OUTPUTS_STACK`.
    """
    if versions is None:
        versions = installed_versions()
    names = (*CORE, "keras")
    different = [n for n in names if versions.get(n) != STORED_OUTPUTS_STACK[n]]
    if not different:
        return None
    yours = ", ".join(f"{n} {versions.get(n) or 'missing'}" for n in different)
    made = ", ".join(f"{n} {STORED_OUTPUTS_STACK[n]}" for n in different)
    return (f"tfpcourse: you have {yours}; the stored outputs were made with {made} "
            "(results may differ slightly).")


def notice_once() -> None:
    """Print :func:`notice` to stderr, once per process (nothing on the stored stack)."""
    global _noticed
    if _noticed:
        return
    _noticed = True
    try:
        line = notice()
    except Exception:  # never let a version probe break an import
        return
    if line:
        print(line, file=sys.stderr)
