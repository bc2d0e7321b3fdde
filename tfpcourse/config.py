"""Run profiles and the course's environment settings, read in one place.

The course runs in one of two *profiles*:

``full`` (the default)
    What readers run and what the committed notebook outputs show: real dataset sizes and enough
    training steps for the results the text describes.
``smoke``
    A tiny run (small subsets, a handful of steps) that exercises every code path in a few
    seconds. Continuous integration uses it.

Notebooks never read environment variables themselves; they ask the config::

    from tfpcourse.config import get_config

    cfg = get_config()
    n_steps = cfg.pick(full=2000, smoke=50)

Environment variables (all optional):

``TFPCOURSE_PROFILE``
    ``full`` or ``smoke``.
``TFPCOURSE_DATA_DIR``
    Where downloaded datasets are cached (default: the user cache directory).
``TFPCOURSE_DATA_MIRROR``
    A folder or base URL holding copies of the dataset files (see :mod:`tfpcourse.data`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

__all__ = [
    "PROFILES",
    "Config",
    "ProfileError",
    "get_config",
]

PROFILES: tuple[str, ...] = ("full", "smoke")
"""The valid values of ``TFPCOURSE_PROFILE``; the first is the default."""

PROFILE_ENV = "TFPCOURSE_PROFILE"
DATA_DIR_ENV = "TFPCOURSE_DATA_DIR"
DATA_MIRROR_ENV = "TFPCOURSE_DATA_MIRROR"

T = TypeVar("T")


class ProfileError(ValueError):
    """Raised when ``TFPCOURSE_PROFILE`` (or a ``profile`` argument) is not a known profile."""


def _check_profile(profile: str, source: str) -> str:
    if not isinstance(profile, str):
        raise TypeError(f"{source} must be a string, got {type(profile).__name__}")
    cleaned = profile.strip().lower()
    if cleaned not in PROFILES:
        valid = ", ".join(repr(p) for p in PROFILES)
        raise ProfileError(f"{source} must be one of {valid}; got {profile!r}")
    return cleaned


@dataclass(frozen=True)
class Config:
    """The settings of one run of the course.

    Parameters
    ----------
    profile:
        ``"full"`` or ``"smoke"``.
    data_dir:
        The dataset cache folder, or ``None`` for the default user cache folder.
    data_mirror:
        A folder or base URL that holds the dataset files, or ``None`` to use the datasets'
        own download sites.
    """

    profile: str = PROFILES[0]
    data_dir: Path | None = None
    data_mirror: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "profile", _check_profile(self.profile, "profile"))

    @property
    def is_smoke(self) -> bool:
        """``True`` in the ``smoke`` profile."""
        return self.profile == "smoke"

    def pick(self, *, full: T, smoke: T) -> T:
        """Return the value for the current profile.

        >>> Config("smoke").pick(full=2000, smoke=50)
        50
        """
        return smoke if self.is_smoke else full


def get_config() -> Config:
    """Read the course settings from the environment.

    It is read afresh on every call (it is cheap), so a test or a notebook that changes the
    environment sees the change.

    Raises
    ------
    ProfileError
        If ``TFPCOURSE_PROFILE`` is set to something other than a known profile.
    """
    profile = os.environ.get(PROFILE_ENV, "").strip() or PROFILES[0]
    profile = _check_profile(profile, PROFILE_ENV)
    data_dir = os.environ.get(DATA_DIR_ENV, "").strip()
    mirror = os.environ.get(DATA_MIRROR_ENV, "").strip()
    return Config(
        profile=profile,
        data_dir=Path(data_dir).expanduser() if data_dir else None,
        data_mirror=mirror or None,
    )
