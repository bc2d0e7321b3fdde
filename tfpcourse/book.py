"""The course website: a Jupyter Book (1.x) built from the committed notebooks.

The book lives in ``book/``: its configuration (``_config.yml``, ``_toc.yml``), the
introduction, glossary and references pages, and the BibTeX file. Its chapters are the
notebooks themselves, reached through the symlink ``book/notebooks -> ../notebooks``, so no
notebook is copied. ::

    from tfpcourse import book

    result = book.build()                  # HTML from the stored outputs; nothing executes
    print(result.index)                    # book/_build/html/index.html
    book.build(execute=True)               # re-execute every chapter first, with a cache

:func:`build` runs ``jupyter-book build`` with warnings as errors (``-W -n --keep-going``) and
rebuilds every page (``--all``), so a warning in any page fails every build, not only the
first. Execution is off in ``_config.yml``; ``execute=True`` builds with a copy of that
configuration whose ``execute_notebooks`` is ``cache``: notebooks run in the current
``TFPCOURSE_PROFILE`` (``full`` by default), and results are cached in
``<output>/_build/.jupyter_cache``, so an unchanged chapter is not run again. Nothing is
written back into ``notebooks/``.

:func:`toc_files` and :func:`missing_chapters` read the table of contents, so that tests (and
the command) can insist that every chapter ``notebooks/NN_topic.ipynb`` is in it.

The module is also a small Sphinx extension, loaded by ``_config.yml``
(``sphinx: extra_extensions``): :func:`setup` drops repeated ``<script>`` entries from every
page (see :func:`unique_scripts`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfpcourse._validate import check_bool

__all__ = [
    "BOOK_DIR",
    "BookBuild",
    "BookError",
    "build",
    "build_command",
    "chapter_files",
    "execute_config",
    "html_dir",
    "missing_chapters",
    "setup",
    "toc_files",
    "unique_scripts",
]

BOOK_DIR = Path(__file__).resolve().parents[1] / "book"
"""The book's source folder in this repository."""

WARNING_FLAGS = ("-W", "-n", "--keep-going")
"""Warnings are errors, missing references are warnings, and all of them are reported."""


class BookError(RuntimeError):
    """Raised when the book cannot be built: no book folder, no jupyter-book, a bad toc."""


@dataclass(frozen=True)
class BookBuild:
    """What one :func:`build` did.

    Attributes:
        returncode: ``jupyter-book``'s exit status (0: built without a warning).
        seconds: wall time of the build.
        html: the folder with the site.
        index: the site's entry page (``html / "index.html"``).
        pages: the built pages of the table of contents, as paths relative to ``html``.
        log: everything ``jupyter-book`` printed (stdout and stderr), when it was captured.
    """

    returncode: int
    seconds: float
    html: Path
    index: Path
    pages: tuple[str, ...]
    log: str = ""

    @property
    def ok(self) -> bool:
        """True when the build succeeded with no warning."""
        return self.returncode == 0 and self.index.is_file()


def _as_path(name: str, value: Any) -> Path:
    if not isinstance(value, str | os.PathLike):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {type(value).__name__}")
    return Path(value)


def _book_dir(book_dir: Any) -> Path:
    path = _as_path("book_dir", book_dir)
    if not (path / "_config.yml").is_file() or not (path / "_toc.yml").is_file():
        raise BookError(f"book_dir {str(path)!r} has no _config.yml and _toc.yml")
    return path


def _load_yaml(path: Path) -> Any:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8"))


def toc_files(book_dir: str | os.PathLike[str] = BOOK_DIR) -> list[str]:
    """The documents of the book's ``_toc.yml``, in reading order, without file extensions.

    Args:
        book_dir: the book's source folder.

    Returns:
        e.g. ``["intro", "notebooks/01_graphs_logistic_regression", ..., "references"]``.

    Raises:
        TypeError: ``book_dir`` is not a path.
        BookError: the folder has no ``_config.yml``/``_toc.yml``, or the toc has no ``root``.
    """
    path = _book_dir(book_dir)
    toc = _load_yaml(path / "_toc.yml")
    if not isinstance(toc, dict) or "root" not in toc:
        raise BookError(f"{path / '_toc.yml'} has no 'root' entry")
    files = [str(toc["root"])]

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            if "file" in node:
                files.append(str(node["file"]))
            for key in ("parts", "chapters", "sections"):
                walk(node.get(key))

    walk(toc)
    return [str(Path(f).with_suffix("")) if Path(f).suffix in (".md", ".ipynb") else f
            for f in files]


def chapter_files(book_dir: str | os.PathLike[str] = BOOK_DIR) -> list[str]:
    """The chapters of the toc (its entries under ``notebooks/``), in reading order."""
    return [f for f in toc_files(book_dir) if f.startswith("notebooks/")]


def missing_chapters(
    book_dir: str | os.PathLike[str] = BOOK_DIR, notebooks_dir: str | os.PathLike[str] | None = None
) -> list[Path]:
    """Chapter notebooks (``NN_*.ipynb``) that the toc does not list.

    Args:
        book_dir: the book's source folder.
        notebooks_dir: where the chapters are (default: ``book_dir / "notebooks"``).

    Returns:
        The unlisted notebooks, sorted; empty when the toc is complete.
    """
    book = _book_dir(book_dir)
    folder = (
        book / "notebooks" if notebooks_dir is None else _as_path("notebooks_dir", notebooks_dir)
    )
    listed = {Path(f).name for f in chapter_files(book)}
    return [nb for nb in sorted(folder.glob("[0-9][0-9]_*.ipynb")) if nb.stem not in listed]


def execute_config(book_dir: str | os.PathLike[str] = BOOK_DIR) -> dict[str, Any]:
    """The book's ``_config.yml`` with notebook execution switched on, with a cache.

    Returns:
        The configuration as a dictionary; only ``execute.execute_notebooks`` differs from the
        file (it becomes ``"cache"``).
    """
    config = _load_yaml(_book_dir(book_dir) / "_config.yml")
    if not isinstance(config, dict):
        raise BookError(f"{Path(book_dir) / '_config.yml'} is not a mapping")
    config.setdefault("execute", {})["execute_notebooks"] = "cache"
    return config


def html_dir(output_dir: str | os.PathLike[str]) -> Path:
    """Where ``jupyter-book build --path-output OUTPUT_DIR`` writes the HTML."""
    return _as_path("output_dir", output_dir) / "_build" / "html"


def _jupyter_book() -> str:
    scripts = Path(sysconfig.get_path("scripts"))
    for name in ("jupyter-book", "jupyter-book.exe"):
        if (scripts / name).is_file():
            return str(scripts / name)
    found = shutil.which("jupyter-book")
    if found is None:
        raise BookError(
            "jupyter-book is not installed; install the course with its book extra: "
            'pip install -e ".[book]"'
        )
    return found


def build_command(
    book_dir: str | os.PathLike[str] = BOOK_DIR,
    output_dir: str | os.PathLike[str] | None = None,
    *,
    config: str | os.PathLike[str] | None = None,
) -> list[str]:
    """The ``jupyter-book build`` command line :func:`build` runs.

    Args:
        book_dir: the book's source folder.
        output_dir: the site goes to ``output_dir/_build/html`` (default: ``book_dir``).
        config: a configuration file to use instead of ``book_dir/_config.yml``.

    Returns:
        The command, as a list for :func:`subprocess.run`.
    """
    book = _book_dir(book_dir)
    out = book if output_dir is None else _as_path("output_dir", output_dir)
    command = [_jupyter_book(), "build", str(book), "--path-output", str(out), "--all",
               *WARNING_FLAGS]
    if config is not None:
        command += ["--config", str(_as_path("config", config))]
    return command


def build(
    book_dir: str | os.PathLike[str] = BOOK_DIR,
    output_dir: str | os.PathLike[str] | None = None,
    *,
    execute: bool = False,
    capture: bool = False,
    quiet: bool = True,
    check_toc: bool = True,
) -> BookBuild:
    """Build the site's HTML with warnings as errors.

    Args:
        book_dir: the book's source folder.
        output_dir: the site goes to ``output_dir/_build/html`` (default: ``book_dir``).
        execute: re-execute every chapter first (``execute_notebooks: cache``) instead of
            showing the outputs stored in the notebooks.
        capture: collect ``jupyter-book``'s output in :attr:`BookBuild.log` instead of letting
            it through to the terminal.
        quiet: pass ``-q`` (Sphinx's progress lines are left out; warnings are still shown).
        check_toc: refuse to build when a chapter notebook is missing from the toc (the site
            would silently lack it); ``False`` builds the chapters the toc lists.

    Returns:
        A :class:`BookBuild`; check :attr:`BookBuild.ok`.

    Raises:
        TypeError: an argument has the wrong type.
        BookError: no book in ``book_dir``, a chapter missing from the toc, or no jupyter-book.
    """
    check_bool("execute", execute)
    check_bool("capture", capture)
    check_bool("quiet", quiet)
    check_bool("check_toc", check_toc)
    book = _book_dir(book_dir)
    out = book if output_dir is None else _as_path("output_dir", output_dir)
    missing = missing_chapters(book) if check_toc else []
    if missing:
        names = ", ".join(nb.name for nb in missing)
        raise BookError(f"{book / '_toc.yml'} does not list these chapters: {names}")

    with tempfile.TemporaryDirectory(prefix="tfpcourse-book-") as tmp:
        config = None
        if execute:
            import yaml

            config = Path(tmp) / "_config.yml"
            config.write_text(yaml.safe_dump(execute_config(book), sort_keys=False),
                              encoding="utf-8")
        command = build_command(book, out, config=config)
        if quiet:
            command.append("-q")
        start = time.perf_counter()
        proc = subprocess.run(
            command,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.STDOUT if capture else None,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - start

    html = html_dir(out)
    pages = tuple(
        f"{doc}.html" for doc in toc_files(book) if (html / f"{doc}.html").is_file()
    )
    return BookBuild(
        returncode=proc.returncode,
        seconds=seconds,
        html=html,
        index=html / "index.html",
        pages=pages,
        log=(proc.stdout or "") if capture else "",
    )


# ---- a Sphinx extension: ``sphinx: extra_extensions: [tfpcourse.book]`` in _config.yml ----------


def unique_scripts(scripts: list[Any]) -> list[Any]:
    """``scripts`` without repeats: the first of several equal ``<script>`` entries is kept.

    Two entries are equal when they have the same file (``None`` and ``""`` both meaning an
    inline script) and the same attributes, inline body included. Sphinx 7.4 can list one inline
    script twice, once with each spelling of "no file", when an extension adds it after the
    builder started (sphinx-thebe does, on every page); the page then declares the same
    ``const`` twice and the browser reports a JavaScript error.

    Args:
        scripts: Sphinx's ``script_files`` of a page (``_JavaScript`` objects, or strings).

    Returns:
        A new list, in the original order.
    """
    if not isinstance(scripts, list):
        raise TypeError(f"scripts must be a list, got {type(scripts).__name__}")
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    unique = []
    for script in scripts:
        filename = str(getattr(script, "filename", script) or "")
        attributes = getattr(script, "attributes", {}) or {}
        key = (filename, tuple(sorted((str(k), str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    return unique


def _dedupe_page_scripts(app: Any, pagename: str, templatename: str, context: dict[str, Any],
                         doctree: Any) -> None:
    scripts = context.get("script_files")
    if isinstance(scripts, list):
        scripts[:] = unique_scripts(scripts)


def setup(app: Any) -> dict[str, Any]:
    """Sphinx entry point: repeated ``<script>`` entries are dropped from every page."""
    app.connect("html-page-context", _dedupe_page_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
