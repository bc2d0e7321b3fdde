"""The ``tfpcourse`` command.

::

    tfpcourse data list                 # datasets, files and their cache state
    tfpcourse data download [NAME ...]  # fetch and verify ahead of a class (default: all)
    tfpcourse run [NOTEBOOK ...]        # execute notebooks, report time and memory
    tfpcourse checks [NOTEBOOK ...]     # how many output cells nbval compares, per notebook
    tfpcourse book [--execute]          # build the course website, print where it is
    tfpcourse doctor                    # check this environment, say what to fix
    tfpcourse student [--output-dir D]  # write student versions (solutions -> stubs)
    tfpcourse regress BASELINE CANDIDATE  # what changed between two runs, chapter by chapter
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _human(nbytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if nbytes < 1000 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return f"{nbytes:.1f} GB"  # pragma: no cover


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def _data_list(args: argparse.Namespace) -> int:
    from tfpcourse import data
    from tfpcourse.config import get_config

    names = args.names or None
    statuses = data.cache_status(names)
    mirror = get_config().data_mirror
    header = ["dataset", "file", "size", "cache"] + (["in mirror"] if mirror else [])
    rows = []
    for s in statuses:
        row = [s.dataset, s.filename, _human(s.size), s.state]
        if mirror:
            row.append("?" if s.in_mirror is None else ("yes" if s.in_mirror else "no"))
        rows.append(row)
    print(f"Cache folder: {data.cache_dir()}")
    print(f"Mirror: {mirror or '(none; set TFPCOURSE_DATA_MIRROR to use one)'}")
    print(_table(rows, header))
    return 0


def _data_download(args: argparse.Namespace) -> int:
    from tfpcourse import data

    names = args.names or list(data.DATASETS)
    failures = 0
    for name in names:
        if name not in data.DATASETS:
            print(f"Unknown dataset {name!r}; choose from {', '.join(data.DATASETS)}",
                  file=sys.stderr)
            return 2
        info = data.DATASETS[name]
        for split in data.SPLITS:
            try:
                # Loading also writes the decoded cache, so a class's first load is fast.
                data.load(name, splits=(split,))
                print(f"{info.title:15s} {split:5s}  ok (verified)")
            except data.DataError as err:
                failures += 1
                print(f"{info.title:15s} {split:5s}  FAILED\n{err}\n", file=sys.stderr)
    print(f"Cache folder: {data.cache_dir()}")
    return 1 if failures else 0


def _run(args: argparse.Namespace) -> int:
    from tfpcourse import notebooks as nbs

    paths = [Path(p) for p in args.notebooks] or nbs.find_notebooks(args.folder)
    if not paths:
        print("No notebooks to run.", file=sys.stderr)
        return 2
    results = []
    out_dir = Path(args.output_dir) if args.output_dir else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(paths, start=1):
        print(f"[{i}/{len(paths)}] {path.name} ({args.profile}) ...", flush=True)
        output = path if args.inplace else (out_dir / path.name if out_dir else None)
        result = nbs.execute(path, profile=args.profile, output=output, timeout=args.timeout,
                             strip=args.strip_images)
        status = "ok" if result.ok else f"FAILED: {result.error}"
        print(f"    {result.seconds:7.1f} s  {result.peak_rss_mb:7.0f} MB  {status}", flush=True)
        results.append(result)
    rows = [
        [r.notebook, f"{r.seconds:.1f}", f"{r.peak_rss_mb:.0f}", "pass" if r.ok else "FAIL"]
        for r in results
    ]
    total = sum(r.seconds for r in results)
    rows.append(["total", f"{total:.1f}", f"{max(r.peak_rss_mb for r in results):.0f}",
                 "pass" if all(r.ok for r in results) else "FAIL"])
    print()
    print(_table(rows, ["notebook", "wall time (s)", "peak RSS (MB)", "result"]))
    if args.json:
        Path(args.json).write_text(
            json.dumps([r.as_dict() for r in results], indent=2) + "\n", encoding="utf-8"
        )
        print(f"Report written to {args.json}")
    return 0 if all(r.ok for r in results) else 1


def _checks(args: argparse.Namespace) -> int:
    from tfpcourse import notebooks as nbs

    paths = [Path(p) for p in args.notebooks] or nbs.find_notebooks(args.folder)
    rows = []
    for path in paths:
        s = nbs.check_stats(path)
        rows.append([s.notebook, str(s.output_cells), str(s.checked_cells),
                     str(s.tolerance_cells), str(s.timing_cells), f"{s.ratio:.0%}",
                     f"{s.compared_ratio:.0%}"])
    print(_table(rows, ["notebook", "output cells", "exact (nbval)", "within tolerance",
                        "timing", "exact", "compared in CI"]))
    return 0


def _book(args: argparse.Namespace) -> int:
    from tfpcourse import book

    try:
        result = book.build(args.book_dir, args.output_dir, execute=args.execute,
                            quiet=not args.verbose)
    except book.BookError as err:
        print(f"Cannot build the book: {err}", file=sys.stderr)
        return 2
    if not result.ok:
        print(f"Book build FAILED (exit status {result.returncode}) after {result.seconds:.1f} s; "
              "the warnings above say why (warnings are errors).", file=sys.stderr)
        return 1
    print(f"Built {len(result.pages)} pages in {result.seconds:.1f} s "
          f"({'re-executed' if args.execute else 'stored outputs'}).")
    print(f"Site: {result.index.resolve()}")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from tfpcourse import doctor

    print("Checking this environment for the tfpcourse notebooks ...\n", flush=True)
    text, status = doctor.report(doctor.diagnose(tensorflow=not args.no_tensorflow))
    print(text)
    return status


def _student(args: argparse.Namespace) -> int:
    from tfpcourse import classroom
    from tfpcourse import notebooks as nbs

    paths = args.notebooks or nbs.find_notebooks(args.folder)
    try:
        written = classroom.write_student_versions(paths, args.output_dir)
    except (classroom.ExerciseFormatError, ValueError, FileNotFoundError) as err:
        print(f"Cannot write student versions: {err}", file=sys.stderr)
        return 2
    rows = [[path.name, str(n)] for path, n in written]
    print(_table(rows, ["student notebook", "exercises"]))
    print(f"\nWritten to {Path(args.output_dir).resolve()} (solutions replaced by stubs with "
          f"hints; exercise outputs cleared).")
    return 0


def _regress(args: argparse.Namespace) -> int:
    from tfpcourse import regress

    try:
        report = regress.compare_runs(args.baseline, args.candidate,
                                      fail_on_warning=args.fail_on_warning,
                                      allow_profile_mismatch=args.allow_profile_mismatch)
    except (OSError, ValueError) as err:  # missing folders, other profiles, malformed markers
        print(f"Cannot compare the runs: {err}", file=sys.stderr)
        return 2
    text = regress.to_markdown(report)
    if args.markdown:
        Path(args.markdown).write_text(text, encoding="utf-8")
        print(f"{report.summary()}; report written to {args.markdown}")
    else:
        print(text, end="")
    if args.json:
        Path(args.json).write_text(json.dumps(regress.to_json(report), indent=2) + "\n",
                                   encoding="utf-8")
        print(f"JSON report written to {args.json}")
    return 0 if report.passed else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfpcourse", description="Tools for the tfpcourse notebooks and their data."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p_data = sub.add_parser("data", help="list or download the datasets")
    data_sub = p_data.add_subparsers(dest="data_command", required=True)
    p_list = data_sub.add_parser("list", help="show datasets and their cache state")
    p_list.add_argument("names", nargs="*", help="datasets (default: all)")
    p_list.set_defaults(func=_data_list)
    p_dl = data_sub.add_parser("download", help="fetch and verify datasets ahead of time")
    p_dl.add_argument("names", nargs="*", help="datasets (default: all)")
    p_dl.set_defaults(func=_data_download)

    from tfpcourse.config import PROFILES

    p_run = sub.add_parser("run", help="execute notebooks and report time and memory")
    p_run.add_argument("notebooks", nargs="*", help=".ipynb files (default: all chapters)")
    p_run.add_argument("--folder", default="notebooks", help="where the chapters are")
    p_run.add_argument("--profile", choices=PROFILES, default=PROFILES[0])
    where = p_run.add_mutually_exclusive_group()
    where.add_argument("--inplace", action="store_true", help="write outputs into the notebooks")
    where.add_argument("--output-dir", help="write executed copies here")
    p_run.add_argument("--timeout", type=int, default=3600, help="seconds allowed per cell")
    p_run.add_argument("--json", help="also write the report as JSON to this file")
    p_run.add_argument("--strip-images", action="store_true",
                       help="write the executed notebooks without image data (the smoke "
                            "baseline in tests/baselines/smoke is made this way)")
    p_run.set_defaults(func=_run)

    p_checks = sub.add_parser("checks", help="count the output cells nbval compares")
    p_checks.add_argument("notebooks", nargs="*")
    p_checks.add_argument("--folder", default="notebooks")
    p_checks.set_defaults(func=_checks)

    p_book = sub.add_parser(
        "book", help="build the course website (Jupyter Book) with warnings as errors"
    )
    p_book.add_argument("--execute", action="store_true",
                        help="re-execute every chapter (with a cache) instead of showing the "
                             "outputs stored in the notebooks")
    p_book.add_argument("--book-dir", default="book", help="the book's source folder")
    p_book.add_argument("--output-dir", default=None,
                        help="the site goes to OUTPUT_DIR/_build/html (default: the book folder)")
    p_book.add_argument("-v", "--verbose", action="store_true",
                        help="show Sphinx's progress lines too")
    p_book.set_defaults(func=_book)

    p_doctor = sub.add_parser("doctor", help="check this environment and say what to fix")
    p_doctor.add_argument("--no-tensorflow", action="store_true",
                          help="skip importing TensorFlow (faster)")
    p_doctor.set_defaults(func=_doctor)

    p_student = sub.add_parser(
        "student", help="write student versions of the notebooks (solutions -> stubs)"
    )
    p_student.add_argument("notebooks", nargs="*", help=".ipynb files (default: all chapters)")
    p_student.add_argument("--folder", default="notebooks", help="where the chapters are")
    p_student.add_argument("--output-dir", default="student",
                           help="where to write them (default: ./student)")
    p_student.set_defaults(func=_student)

    p_regress = sub.add_parser(
        "regress", help="compare two runs of the notebooks (e.g. before and after an upgrade)"
    )
    p_regress.add_argument("baseline", help="folder of NN_*.ipynb or one .ipynb (e.g. notebooks)")
    p_regress.add_argument("candidate", help="the same, from the new run")
    p_regress.add_argument("--markdown", help="write the report here (print a summary line)")
    p_regress.add_argument("--json", help="also write the report as JSON to this file")
    p_regress.add_argument("--fail-on-warning", action="store_true",
                           help="exit 1 when a cell prints a warning the baseline did not")
    p_regress.add_argument("--allow-profile-mismatch", action="store_true",
                           help="compare runs made in different profiles (smoke vs full)")
    p_regress.set_defaults(func=_regress)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tfpcourse`` command."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
