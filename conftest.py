"""Test-suite configuration shared by tests/ and the nbval run over notebooks/.

nbval re-executes every notebook and compares the outputs of cells marked
``# NBVAL_CHECK_OUTPUT`` with the stored ones (``--nbval-lax``). Two adjustments make that
comparison strict about content but not about noise:

* consecutive stream outputs are merged before comparing, because a kernel splits printed text
  into however many messages it happened to flush;
* TensorFlow's C++ log lines on stderr are dropped (they depend on the CPU);
* every decimal number is rounded to ``tfpcourse.notebooks.FLOAT_DIGITS`` significant digits
  (on both sides), on top of the regex rules in ``tests/nbval_sanitize.cfg`` (memory addresses,
  timings).

At the end of a run the terminal summary lists, per notebook, how many output cells were
compared.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent


def _patch_nbval() -> None:
    try:
        import nbval.plugin as plugin
    except ImportError:  # nbval not installed: nothing to patch
        return
    from tfpcourse.device import filter_tf_noise
    from tfpcourse.notebooks import coalesce_streams, round_floats

    if getattr(plugin, "_tfpcourse_patched", False):
        return
    original_transform = plugin.transform_streams_for_comparison
    original_sanitize = plugin.IPyNbCell.sanitize

    def drop_tf_noise(outputs):
        # A second line of defence behind device.setup(): TensorFlow's C++ log lines (which
        # some CPUs print and others do not) never take part in a comparison.
        kept = []
        for out in outputs:
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                text = filter_tf_noise(out["text"])
                if not text:
                    continue
                out = type(out)(out)
                out["text"] = text
            kept.append(out)
        return kept

    def transform(outputs):
        return original_transform(drop_tf_noise(coalesce_streams(list(outputs))))

    def sanitize(self, s):
        s = original_sanitize(self, s)
        return round_floats(s) if isinstance(s, str) else s

    plugin.transform_streams_for_comparison = transform
    plugin.IPyNbCell.sanitize = sanitize
    plugin._tfpcourse_patched = True


def pytest_configure(config: pytest.Config) -> None:
    _patch_nbval()
    # Notebooks executed by nbval inherit this environment. Default to the smoke profile so a
    # plain `pytest` is quick; an explicit TFPCOURSE_PROFILE wins.
    os.environ.setdefault("TFPCOURSE_PROFILE", "smoke")
    # nbval's kernels inherit this environment: MPLBACKEND=Agg (CI exports it) would replace
    # Jupyter's inline backend there, figures would vanish and the checked figure cells (their
    # "<Figure size ...>" text) would differ. The tests themselves draw with Agg.
    os.environ.pop("MPLBACKEND", None)
    try:
        import matplotlib
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        pass
    else:
        matplotlib.use("Agg")


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    notebooks = sorted(
        {
            Path(str(item.fspath))
            for item in getattr(terminalreporter, "_tfpcourse_items", [])
            if str(item.fspath).endswith(".ipynb")
        }
    )
    if not notebooks:
        return
    from tfpcourse.notebooks import check_stats

    terminalreporter.section("nbval: output cells compared per notebook")
    total_out = total_checked = total_tol = 0
    for path in notebooks:
        stats = check_stats(path)
        total_out += stats.output_cells
        total_checked += stats.checked_cells
        total_tol += stats.tolerance_cells
        terminalreporter.write_line(
            f"{stats.notebook:45s} {stats.checked_cells:3d} of {stats.output_cells:3d} "
            f"output cells checked ({stats.ratio:.0%}); {stats.tolerance_cells} more within "
            "a tolerance by `tfpcourse regress` against tests/baselines/smoke"
        )
    terminalreporter.write_line(
        f"{'all notebooks':45s} {total_checked:3d} of {total_out:3d} output cells checked, "
        f"{total_tol} within a tolerance"
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--colab", action="store_true", default=False,
        help="also run the slow Colab-like install test (tests/test_colab.py, several minutes)",
    )


def pytest_collection_modifyitems(session, config, items) -> None:
    config.pluginmanager.get_plugin("terminalreporter")._tfpcourse_items = list(items)
    if not config.getoption("--colab"):
        skip = pytest.mark.skip(reason="opt-in and slow: pytest tests/test_colab.py --colab")
        for item in items:
            if "colab" in item.keywords:
                item.add_marker(skip)
