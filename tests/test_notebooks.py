"""The notebooks as code: pairs in sync, outputs stored, checks that really fail."""

from __future__ import annotations

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
NOTEBOOKS = ROOT / "notebooks"
CHAPTERS = nbs.find_notebooks(NOTEBOOKS)
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))


def test_there_are_chapters():
    assert CHAPTERS, "no notebooks/NN_*.ipynb found"


@pytest.mark.parametrize("py", SOURCES, ids=lambda p: p.name)
def test_every_source_has_its_notebook(py):
    assert py.with_suffix(".ipynb").is_file(), f"{py.name} has no paired .ipynb"


@pytest.mark.parametrize("ipynb", CHAPTERS, ids=lambda p: p.name)
def test_every_notebook_has_its_source(ipynb):
    assert ipynb.with_suffix(".py").is_file(), f"{ipynb.name} has no paired .py source"


@pytest.mark.parametrize("ipynb", CHAPTERS, ids=lambda p: p.name)
def test_pair_is_in_sync(ipynb):
    problems = nbs.pair_differences(ipynb.with_suffix(".py"), ipynb)
    assert not problems, (
        f"{ipynb.name} and its .py differ:\n  " + "\n  ".join(problems)
        + "\nRun `jupytext --sync notebooks/*.py`, then re-execute (see CONTRIBUTING)."
    )


@pytest.mark.parametrize("ipynb", CHAPTERS, ids=lambda p: p.name)
def test_notebook_is_committed_executed_in_the_full_profile(ipynb):
    nb = nbformat.read(ipynb, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    assert all(isinstance(n, int) for n in counts), "some code cells were never executed"
    assert counts == list(range(1, len(code) + 1)), "cells were not executed top to bottom"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"stored outputs contain errors: {errors[0].ename}"
    setup = next(c for c in code if "device.setup(" in c.source)
    setup_text = "".join(o.get("text", "") for o in setup.outputs)
    assert "Profile: full" in setup_text, "the stored run was not made in the full profile"
    stderr = [o.text for c in code for o in c.outputs if o.get("name") == "stderr"]
    assert not stderr, f"stored outputs contain stderr noise: {stderr[0][:200]!r}"


@pytest.mark.parametrize("py", SOURCES, ids=lambda p: p.name)
def test_notebooks_do_not_read_environment_variables(py):
    # The bootstrap cell (tested below) is the one exception: it runs before tfpcourse exists.
    text = py.read_text(encoding="utf-8").replace(nbs.BOOTSTRAP_SOURCE, "")
    assert not re.search(r"os\.environ|getenv\(", text), (
        f"{py.name} reads the environment; ask tfpcourse.config.get_config() instead"
    )


@pytest.mark.parametrize("ipynb", CHAPTERS, ids=lambda p: p.name)
def test_first_code_cell_is_the_bootstrap(ipynb):
    """Colab/Binder: the first code cell installs the course when it is missing; it is the
    same everywhere, collapsed in the book, and prints nothing on a supported stack."""
    nb = nbformat.read(ipynb, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert first.source == nbs.BOOTSTRAP_SOURCE, "the first code cell must be the bootstrap"
    assert nbs.BOOTSTRAP_TAG in first.metadata.get("tags", [])
    assert first.outputs == [], "the bootstrap printed something in the stored run"
    later = [c for c in nb.cells if c.cell_type == "code"][1:]
    assert all(nbs.BOOTSTRAP_SOURCE not in c.source for c in later)


def test_bootstrap_installs_from_the_books_repository():
    import yaml

    config = yaml.safe_load((ROOT / "book" / "_config.yml").read_text(encoding="utf-8"))
    assert config["repository"]["url"] == nbs.REPOSITORY_URL
    assert f"git+{nbs.REPOSITORY_URL}" in nbs.BOOTSTRAP_SOURCE


def test_bootstrap_does_nothing_when_the_course_is_installed(capsys):
    namespace: dict = {}
    exec(compile(nbs.BOOTSTRAP_SOURCE, "bootstrap", "exec"), namespace)
    assert "source" not in namespace  # the install branch did not run
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("py", SOURCES, ids=lambda p: p.name)
def test_every_figure_has_a_caption(py):
    """Each cell that draws (plt.show()) is followed by a markdown cell starting with a caption."""
    import jupytext

    cells = jupytext.read(py).cells
    for i, cell in enumerate(cells):
        if cell.cell_type == "code" and "plt.show()" in cell.source:
            following = cells[i + 1] if i + 1 < len(cells) else None
            assert following is not None and following.cell_type == "markdown", cell.source[:80]
            assert following.source.lstrip().startswith("*Figure"), (
                f"the figure drawn by {cell.source[:60]!r} has no '*Figure N.*' caption"
            )


@pytest.mark.parametrize("ipynb", CHAPTERS, ids=lambda p: p.name)
def test_every_figure_is_stored_as_an_image(ipynb):
    """A run under a headless backend (MPLBACKEND=Agg) drops figures without an error; the
    committed notebook must hold one image per cell that shows a figure."""
    nb = nbformat.read(ipynb, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "plt.show()" in cell.source:
            images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
            assert images, f"{ipynb.name}: no stored figure for {cell.source[:60]!r}"


# ---- the pairing check itself fails when one side is edited ----------------------------------


@pytest.fixture
def pair(tmp_path):
    src = CHAPTERS[0]
    shutil.copy(src, tmp_path / src.name)
    shutil.copy(src.with_suffix(".py"), tmp_path / src.with_suffix(".py").name)
    return tmp_path / src.with_suffix(".py").name, tmp_path / src.name


def test_pair_check_fails_when_only_the_source_is_edited(pair):
    py, ipynb = pair
    text = py.read_text().replace("N_OBS, N_FEATURES = 1000, 5", "N_OBS, N_FEATURES = 999, 5")
    py.write_text(text)
    problems = nbs.pair_differences(py, ipynb)
    assert problems and "differs in source" in problems[0]


def test_pair_check_fails_when_only_the_notebook_is_edited(pair):
    py, ipynb = pair
    nb = nbformat.read(ipynb, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("print('added only here')"))
    nbformat.write(nb, ipynb)
    problems = nbs.pair_differences(py, ipynb)
    assert problems and "cells" in problems[0]


def test_pair_check_fails_when_tags_differ(pair):
    py, ipynb = pair
    nb = nbformat.read(ipynb, as_version=4)
    nb.cells[3].metadata["tags"] = ["solution"]
    nbformat.write(nb, ipynb)
    assert any("tags" in p for p in nbs.pair_differences(py, ipynb))


def test_pair_check_reports_a_missing_half(tmp_path):
    assert nbs.pair_differences(tmp_path / "a.py", tmp_path / "a.ipynb") == [
        f"{tmp_path / 'a.py'} is missing"
    ]


# ---- the comparison rules nbval uses ---------------------------------------------------------


def test_round_floats_rounds_decimals_but_not_integers_or_versions():
    text = "loss 0.394378066 after 300 steps, lr 5e-05, TF 2.21.0, [-0.00000001  1.579]"
    expected = "loss 0.3944 after 300 steps, lr 5e-05, TF 2.21.0, [-1e-08  1.579]"
    assert nbs.round_floats(text) == expected
    assert nbs.round_floats("-0.00004") == "-4e-05"
    assert nbs.round_floats("[-0.0  0.0]") == "[0  0]"
    assert nbs.round_floats("0.39443") == nbs.round_floats("0.39438")


def test_round_floats_still_sees_real_changes():
    assert nbs.round_floats("0.3944") != nbs.round_floats("0.3954")


def test_float64_roundoff_compares_equal_but_float32_roundoff_does_not():
    assert nbs.round_floats("error 1e-16") == nbs.round_floats("error 2e-16") == "error 0"
    assert nbs.round_floats("0e+00 and -4.4e-16") == "0 and 0"
    assert nbs.round_floats("1.2e-07") != nbs.round_floats("2.4e-07")
    assert nbs.round_floats("2e-16") != nbs.round_floats("3e-06")  # a real regression shows


def test_coalesce_streams_merges_only_neighbouring_outputs_of_one_stream():
    out = [
        {"output_type": "stream", "name": "stdout", "text": "a\n"},
        {"output_type": "stream", "name": "stdout", "text": "b\n"},
        {"output_type": "stream", "name": "stderr", "text": "c\n"},
        {"output_type": "stream", "name": "stdout", "text": "d\n"},
    ]
    merged = nbs.coalesce_streams(out)
    assert [m["text"] for m in merged] == ["a\nb\n", "c\n", "d\n"]
    assert out[0]["text"] == "a\n"  # the input is not modified


# Chapters without long training runs must have most of their output cells compared.
MIN_CHECKED_RATIO = {"02_distributions.ipynb": 0.8, "03_bijectors.ipynb": 0.8}


@pytest.mark.parametrize("name, minimum", sorted(MIN_CHECKED_RATIO.items()))
def test_chapters_without_training_check_most_outputs(name, minimum):
    stats = nbs.check_stats(NOTEBOOKS / name)
    assert stats.ratio >= minimum, (
        f"{name}: {stats.checked_cells} of {stats.output_cells} output cells checked "
        f"({stats.ratio:.0%}), target {minimum:.0%}"
    )


def test_check_stats_counts_marked_output_cells():
    stats = nbs.check_stats(CHAPTERS[0])
    assert 0 < stats.checked_cells <= stats.output_cells <= stats.code_cells


# ---- a changed checked output fails the nbval run --------------------------------------------


def _truncated_copy(tmp_path: Path, mutate: str | None) -> Path:
    """A copy of chapter 01 cut after its first checked cell, optionally with that cell's
    stored output edited, plus the suite's nbval configuration."""
    nb = nbformat.read(CHAPTERS[0], as_version=4)
    first_checked = next(
        i for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and nbs.CHECK_MARKER in c.source
    )
    nb.cells = nb.cells[: first_checked + 1]
    if mutate is not None:
        output = nb.cells[first_checked].outputs[0]
        assert mutate in output.text
        output.text = output.text.replace(mutate, mutate + "1")
    path = tmp_path / "chapter.ipynb"
    nbformat.write(nb, path)
    shutil.copy(ROOT / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "tests").mkdir()
    shutil.copy(ROOT / "tests" / "nbval_sanitize.cfg", tmp_path / "tests" / "nbval_sanitize.cfg")
    return path


def _nbval(path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, TFPCOURSE_PROFILE="smoke")
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(path), "-p", "no:cacheprovider", "-q",
         "--rootdir", str(path.parent), "-c", os.devnull,
         "--nbval-lax", "--nbval-current-env",
         f"--nbval-sanitize-with={path.parent / 'tests' / 'nbval_sanitize.cfg'}"],
        capture_output=True, text=True, env=env, cwd=path.parent, timeout=600,
    )


@pytest.mark.slow
def test_nbval_passes_on_an_untouched_copy_and_fails_when_a_checked_output_changes(tmp_path):
    clean_dir, edited_dir = tmp_path / "clean", tmp_path / "edited"
    clean_dir.mkdir()
    edited_dir.mkdir()
    clean = _nbval(_truncated_copy(clean_dir, mutate=None))
    assert clean.returncode == 0, clean.stdout[-2000:]
    assert re.search(r"\d+ passed", clean.stdout)
    edited = _nbval(_truncated_copy(edited_dir, mutate="share of ones 0.512"))
    assert edited.returncode == 1, edited.stdout[-2000:]
    assert "mismatch 'stdout'" in edited.stdout
    assert "ones 0.5121" in edited.stdout  # the report shows the edited stored value
    assert "1 failed" in edited.stdout


@pytest.mark.parametrize("ipynb", CHAPTERS, ids=lambda p: p.name)
def test_every_output_cell_says_how_its_output_may_change(ipynb):
    """Each output cell is checked by nbval (# NBVAL_CHECK_OUTPUT) or carries a tolerance for
    the full-profile upgrade report (# TOLERANCE: ...), so that `tfpcourse regress` covers
    every printed number. The one exception is the set-up cell, whose versions and devices
    change with the stack by design (the report shows them, never fails on them)."""
    from tfpcourse import regress

    nb = nbformat.read(ipynb, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    unmarked = [i for i in regress.unmarked_output_cells(ipynb)
                if "device.setup(" not in code[i - 1].source]
    assert not unmarked, (
        f"{ipynb.name}: code cells {unmarked} have outputs but neither # NBVAL_CHECK_OUTPUT "
        "nor # TOLERANCE: ... (see CONTRIBUTING.md)"
    )


@pytest.mark.parametrize("ipynb", CHAPTERS, ids=lambda p: p.name)
def test_at_least_85_percent_of_output_cells_are_compared_in_ci(ipynb):
    """CI compares an output cell either exactly (nbval) or, for results that depend on the
    profile, within its tolerance against the stored smoke baseline (tfpcourse regress)."""
    stats = nbs.check_stats(ipynb)
    assert stats.compared_ratio >= 0.85, (
        f"{ipynb.name}: {stats.checked_cells} exact + {stats.tolerance_cells} within a "
        f"tolerance of {stats.output_cells} output cells ({stats.compared_ratio:.0%}); the "
        "course's target is 85% per chapter"
    )


BASELINE = ROOT / "tests" / "baselines" / "smoke"


@pytest.mark.parametrize("ipynb", CHAPTERS, ids=lambda p: p.name)
def test_smoke_baseline_is_a_run_of_the_current_notebook(ipynb):
    """The smoke baseline must be re-made when a chapter changes (make execute does it)."""
    baseline = BASELINE / ipynb.name
    assert baseline.is_file(), f"no smoke baseline for {ipynb.name}: run `make execute`"
    ours = [c.source for c in nbformat.read(ipynb, as_version=4).cells if c.cell_type == "code"]
    theirs = nbformat.read(baseline, as_version=4)
    code = [c for c in theirs.cells if c.cell_type == "code"]
    assert [c.source for c in code] == ours, (
        f"tests/baselines/smoke/{ipynb.name} was made from another version of the chapter: "
        "re-make it with `make execute`"
    )
    setup = next(c for c in code if "device.setup(" in c.source)
    assert "Profile: smoke" in "".join(o.get("text", "") for o in setup.outputs)
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors
    images = [o["data"]["image/png"] for c in code for o in c.outputs
              if "image/png" in o.get("data", {})]
    assert images and all(data == "" for data in images), "the baseline keeps no pixels"


def test_strip_images_keeps_text_and_the_number_of_figures():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("plt.show()")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=",
                                                     "text/plain": "<Figure size 640x480>"}),
        nbformat.v4.new_output("stream", name="stdout", text="loss 1.5\n"),
    ]
    nb.cells.append(cell)
    nbs.strip_images(nb)
    assert cell.outputs[0]["data"] == {"image/png": "", "text/plain": "<Figure size 640x480>"}
    assert cell.outputs[1]["text"] == "loss 1.5\n"


def test_check_stats_counts_exact_tolerance_and_timing_cells(tmp_path):
    nb = nbformat.v4.new_notebook()
    for source in ["# NBVAL_CHECK_OUTPUT\nprint(1)", "# TOLERANCE: abs=0.5\nprint(2)",
                   "# TOLERANCE: timing\nprint(3)", "print(4)", "x = 5"]:
        cell = nbformat.v4.new_code_cell(source)
        if "print" in source:
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
        nb.cells.append(cell)
    path = tmp_path / "01_x.ipynb"
    nbformat.write(nb, path)
    stats = nbs.check_stats(path)
    assert (stats.code_cells, stats.output_cells, stats.checked_cells, stats.tolerance_cells,
            stats.timing_cells) == (5, 4, 1, 1, 1)
    assert stats.ratio == 0.25 and stats.compared_ratio == 0.5


def test_a_failed_run_keeps_no_stale_outputs_after_the_failing_cell(tmp_path):
    nb = nbformat.v4.new_notebook()
    stale = nbformat.v4.new_code_cell("print('after')")
    stale.outputs = [nbformat.v4.new_output("stream", name="stdout", text="from an old run\n")]
    stale.execution_count = 3
    nb.cells = [nbformat.v4.new_code_cell("print('before')"),
                nbformat.v4.new_code_cell("raise ValueError('boom')"), stale]
    path = tmp_path / "probe.ipynb"
    nbformat.write(nb, path)
    result = nbs.execute(path, profile="smoke", output=path)
    assert not result.ok and "boom" in result.error
    ran = nbformat.read(path, as_version=4)
    assert ran.cells[0].outputs[0]["text"] == "before\n"
    assert ran.cells[2].outputs == [] and ran.cells[2].execution_count is None


def test_the_checkpointing_vae_chapter_runs_data_parallel_on_two_devices(tmp_path, monkeypatch):
    """Chapter 06 (checkpoint and resume, a learned mixture prior, IWAE scoring) in the smoke
    profile with the CPU split into two logical devices: the rehearsal of a multi-GPU box."""
    monkeypatch.setenv("TFPCOURSE_LOGICAL_CPUS", "2")
    source = NOTEBOOKS / "06_vae_tfp_distributions.ipynb"
    output = tmp_path / source.name
    result = nbs.execute(source, profile="smoke", output=output)
    assert result.ok, result.error
    ran = nbformat.read(output, as_version=4)
    text = "\n".join(
        out.get("text", "") for cell in ran.cells if cell.cell_type == "code"
        for out in cell.outputs if out.get("output_type") == "stream"
    )
    assert "Strategy: MirroredStrategy over 2 replicas" in text
    assert "resumed from the last saved epoch: True" in text
    assert "restored weights equal the saved ones: True" in text


PRIVATE_ACCESS = re.compile(r"(?<!\bself)(?<!\bcls)\.(_[A-Za-z][A-Za-z0-9_]*)")


def _code_without_comments_and_strings(source: str) -> str:
    import io
    import tokenize

    kept = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in (tokenize.COMMENT, tokenize.STRING):
            kept.append(token.string)
    return " ".join(kept).replace(" . ", ".").replace(" .", ".").replace(". ", ".")


@pytest.mark.parametrize("py", SOURCES, ids=lambda p: p.name)
def test_notebooks_touch_no_private_attribute(py):
    hits = PRIVATE_ACCESS.findall(_code_without_comments_and_strings(py.read_text()))
    assert not hits, f"{py.name} reaches into private attributes: {sorted(set(hits))}"


def test_the_private_attribute_check_can_fail():
    code = "masks = made._masks\nnet = layer._shift_and_log_scale_fn(x)\nself._ok = 1\n"
    hits = PRIVATE_ACCESS.findall(_code_without_comments_and_strings(code))
    assert hits == ["_masks", "_shift_and_log_scale_fn"]
    assert not PRIVATE_ACCESS.findall(_code_without_comments_and_strings(
        "x = obj.__class__  # a ._comment\ny = '._in_a_string'\n"))


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@pytest.mark.parametrize("py", SOURCES, ids=lambda p: p.name)
def test_sources_hold_no_control_characters(py):
    """A backslash escape written through a non-raw Python string (``"\\alpha"`` is a bell
    character plus ``lpha``) breaks the math on the website without any other error."""
    bad = [(n, line) for n, line in enumerate(py.read_text().splitlines(), 1)
           if _CONTROL.search(line)]
    assert not bad, f"{py.name}: control characters on lines {[n for n, _ in bad]}"


def test_the_control_character_check_can_fail():
    assert _CONTROL.search("$e^{\alpha}$")  # the bell character, as the bug wrote it
    assert not _CONTROL.search(r"$e^{\alpha}$")
