"""tfpcourse.regress: two runs of synthetic notebooks that differ in one known way, and a stored
chapter compared with itself."""

import json
import re
from pathlib import Path

import nbformat
import pytest

from tfpcourse import cli, regress

ROOT = Path(__file__).resolve().parents[1]
new_output = nbformat.v4.new_output


def out(text, name="stdout"):
    return new_output("stream", name=name, text=text)


def result(text):
    return new_output("execute_result", data={"text/plain": text}, execution_count=1)


def figure():
    return new_output("display_data", data={"image/png": "iVBORw0KGgo=",
                                            "text/plain": "<Figure size 640x480 with 1 Axes>"})


def error(ename="RuntimeError", evalue="broken"):
    return new_output("error", ename=ename, evalue=evalue, traceback=[])


def write(path, cells, profile="full"):
    """A notebook whose first code cell prints the profile, then ``(source, outputs)`` cells;
    ``outputs=None`` is a cell that never ran."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print(f'Profile: {cfg.profile}')", execution_count=1,
                                          outputs=[out(f"Profile: {profile}\n")])]
    for i, (source, outputs) in enumerate(cells, start=2):
        nb.cells.append(nbformat.v4.new_code_cell(
            source, execution_count=None if outputs is None else i, outputs=outputs or []))
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def compare(tmp_path, base_cells, cand_cells, **kwargs):
    base = write(tmp_path / "base" / "01_x.ipynb", base_cells)
    cand = write(tmp_path / "cand" / "01_x.ipynb", cand_cells)
    return regress.compare_notebooks(base, cand, **kwargs)


def one_cell(tmp_path, source, old, new, **kwargs):
    """The report of code cell 2 (after the profile cell) and whether the chapter passes."""
    report = compare(tmp_path, [(source, old)], [(source, new)], **kwargs)
    return report.cells[1], report.passed


TOL = "# TOLERANCE: abs=0.5 -- nats of a test ELBO\nprint(elbo)"
CHECK = "# NBVAL_CHECK_OUTPUT\nprint(x)"


# -- tolerances ----------------------------------------------------------------------------------

@pytest.mark.parametrize("new, status, passed", [
    ("ELBO -95.30 nats\n", "equal", True),
    ("ELBO -95.70 nats\n", "changed-within-tolerance", True),
    ("ELBO -95.90 nats\n", "changed-beyond-tolerance", False),
])
def test_a_number_beyond_tolerance_fails_and_one_within_passes(tmp_path, new, status, passed):
    cell, ok = one_cell(tmp_path, TOL, [out("ELBO -95.30 nats\n")], [out(new)])
    assert (cell.status, ok, cell.fails) == (status, passed, not passed)
    if status != "equal":
        (moved,) = cell.moved
        assert (moved.old, moved.new, moved.ok) == ("-95.30", new.split()[1], passed)
        assert moved.change == pytest.approx(float(new.split()[1]) + 95.30)


@pytest.mark.parametrize("spec, old, new, within", [
    ("abs=0.5", "10", "10.5", True),
    ("abs=0.5", "10", "10.6", False),
    ("abs=0.5", "0.1", "0.6", True),  # 0.6 - 0.1 is 0.49999... or 0.5000...1 in floating point
    ("rel=0.02", "100", "101.9", True),
    ("rel=0.02", "100", "97.9", False),
    ("rel=0.02", "1", "1.4", False),  # no abs bound: only rel applies
    ("abs=0.5 rel=0.02", "100", "101.9", True),  # rel suffices
    ("abs=0.5 rel=0.02", "1", "1.4", True),  # abs suffices
    ("abs=0.5 rel=0.02", "100", "103", False),
    ("rel=0.1", "0", "0.001", False),  # rel of 0 is 0
    ("abs=2", "10", "12", True),  # integers: epoch counts
    ("abs=2", "10", "13", False),
])
def test_abs_and_rel_bounds_and_integer_counts(tmp_path, spec, old, new, within):
    source = f"# TOLERANCE: {spec}\nprint(steps)"
    cell, passed = one_cell(tmp_path, source, [out(f"after {old} epochs\n")],
                            [out(f"after {new} epochs\n")])
    assert cell.status == ("changed-within-tolerance" if within else "changed-beyond-tolerance")
    assert passed is within


@pytest.mark.parametrize("line, marker", [
    ("# TOLERANCE: abs=0.5", regress.Marker("tolerance", 0.5)),
    ("#TOLERANCE:ABS = 0.5,  Rel=2e-2 -- nats", regress.Marker("tolerance", 0.5, 0.02, "nats")),
    ("    # TOLERANCE: rel=0.02", regress.Marker("tolerance", None, 0.02)),
    ("# TOLERANCE: Timing -- wall clock", regress.Marker("timing", note="wall clock")),
    ("# NBVAL_CHECK_OUTPUT", regress.Marker("check")),
    ("x = 1  # TOLERANCE: abs=0.5", regress.Marker("untracked")),  # not a whole comment line
    ("# a tolerance of 0.5 is plenty", regress.Marker("untracked")),
])
def test_markers_are_parsed_from_whole_comment_lines(line, marker):
    assert regress.parse_marker(f"x = 1\n{line}\nprint(x)") == marker


@pytest.mark.parametrize("line", [
    "# TOLERANCE: abs=fast", "# TOLERANCE:", "# TOLERANCE abs=0.5", "# TOLERANCE: abs=0.5 abs=1",
    "# TOLERANCE: timing abs=1", "# TOLERANCE: abs=-1", "# TOLERANCE: abs=nan", "# TOLERANCE: 0.5",
])
def test_a_malformed_tolerance_line_names_the_cell_and_the_text(tmp_path, line):
    with pytest.raises(ValueError, match=r"code cell 2 of 01_x\.ipynb.*" + re.escape(repr(line))):
        compare(tmp_path, [(f"{line}\nprint(1)", [out("1\n")])], [("print(1)", [out("1\n")])])


@pytest.mark.parametrize("source, match", [
    ("# NBVAL_CHECK_OUTPUT\n# TOLERANCE: abs=1", "both"),
    ("# TOLERANCE: abs=1\n# TOLERANCE: rel=1", "2 TOLERANCE lines"),
])
def test_conflicting_markers_are_refused(source, match):
    with pytest.raises(ValueError, match=f"cell 7.*{match}"):
        regress.parse_marker(source, "cell 7")


# -- text changes, figures, warnings, errors -----------------------------------------------------

@pytest.mark.parametrize("new", [
    [out("accuracy 0.9\nloss 0.5\n"), result("0.9")],  # two lines swapped
    [out("loss 0.5\n"), result("0.9")],  # a line removed
    [out("loss 0.5\naccuracy 0.9\nloss 0.5\n"), result("0.9")],  # a line added
    [out("loss 0.5\naccuracy 0.9\n")],  # the execute_result removed
    [],  # every output removed (the cell ran)
])
def test_reordered_or_missing_output_is_a_text_change(tmp_path, new):
    old = [out("loss 0.5\naccuracy 0.9\n"), result("0.9")]
    cell, passed = one_cell(tmp_path, "# TOLERANCE: rel=1\nfit()", old, new)
    assert cell.status == "text-changed" and not passed
    assert any(line.startswith(("+", "-")) for line in cell.diff)


def test_text_moved_between_stdout_and_stderr_is_equal(tmp_path):
    old = [out("step 1\n"), out("note\n", "stderr"), out("step 2\n")]
    new = [out("step 1\nnote\nstep 2\n", "stderr")]
    cell, passed = one_cell(tmp_path, CHECK, old, new)
    assert cell.status == "equal" and passed


TEXT_ONLY_FIGURE = new_output("display_data",
                              data={"text/plain": "<Figure size 640x480 with 1 Axes>"})


@pytest.mark.parametrize("source, status, passed", [
    (CHECK, "text-changed", False),
    ("plt.show()", "untracked-changed", True),
])
@pytest.mark.parametrize("left", [[], [TEXT_ONLY_FIGURE]])  # the image alone vanished
def test_a_vanished_figure_is_a_change(tmp_path, source, status, passed, left):
    cell, ok = one_cell(tmp_path, source, [out("x\n"), figure()], [out("x\n"), *left])
    assert (cell.status, ok, cell.images) == (status, passed, (1, 0))
    assert "figures: 1 in the baseline, 0 in the candidate" in cell.diff


WARNING = ("/venv/lib/python3.12/site-packages/tensorflow_probability/x.py:{}: "
           "DeprecationWarning: `foo` is deprecated\n  warnings.warn(\n")


@pytest.mark.parametrize("fail_on_warning", [False, True])
def test_a_new_warning_is_reported_and_fails_only_when_asked(tmp_path, fail_on_warning):
    new = [out("loss 0.5\n"), out(WARNING.format(12), "stderr")]
    cell, passed = one_cell(tmp_path, CHECK, [out("loss 0.5\n")], new,
                            fail_on_warning=fail_on_warning)
    assert cell.status == "equal"  # the warning (and its source line) left the text
    assert cell.new_warnings == [WARNING.format(12).splitlines()[0]]
    assert passed is not fail_on_warning


def test_a_warning_the_baseline_printed_too_is_not_new(tmp_path):
    cell, _ = one_cell(tmp_path, "fit()", [out(WARNING.format(12), "stderr")],
                       [out(WARNING.format(40), "stderr"), out("WARNING:absl:retracing\n")],
                       fail_on_warning=True)
    assert cell.new_warnings == ["WARNING:absl:retracing"]  # line 12 -> 40 is the same warning


def test_an_error_is_newly_failing_even_untracked_and_later_cells_are_not_run(tmp_path):
    old = [("train()", [out("ok\n")]), ("plot()", [figure()]), ("boom()", [error()])]
    new = [("train()", [error("ValueError", "bad shape")]), ("plot()", None),
           ("boom()", [error()])]
    report = compare(tmp_path, old, new)
    assert [c.status for c in report.cells[1:]] == ["newly-failing", "not-run", "still-failing"]
    assert report.cells[1].error == "ValueError: bad shape" and not report.passed
    assert report.counts["newly_failing"] == 1 and report.counts["not_run"] == 1
    assert regress.compare_notebooks(tmp_path / "base" / "01_x.ipynb",
                                     tmp_path / "base" / "01_x.ipynb").passed  # still failing


def test_noise_durations_and_addresses_are_no_change(tmp_path):
    old = [out("<tf.Variable 'dense/kernel:0' shape=(2,) dtype=float32> at 0x7f3a2b1c4d50\n"),
           out("took 3.2 s\n")]
    new = [out("W0000 00:00:1795289078.513615    2287 port.cc:153] oneDNN custom "
               "operations are on.\n", "stderr"),
           out("<tf.Variable 'dense_1/kernel:0' shape=(2,) dtype=float32> at 0x7f99ffee0011\n"),
           out("took 45 ms\n")]
    cell, passed = one_cell(tmp_path, CHECK, old, new)
    assert cell.status == "equal" and passed


def test_sanitize_rules_are_those_of_the_nbval_config():
    from nbval.plugin import get_sanitize_patterns

    cfg = (ROOT / "tests" / "nbval_sanitize.cfg").read_text(encoding="utf-8")
    assert [tuple(p) for p in get_sanitize_patterns(cfg)] == list(regress.SANITIZE_RULES)


# -- numbers -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, numbers", [
    ("TensorFlow 2.21.0, TFP 0.25.0", []),  # version strings
    ("conv2d_1 float32 layer_12 x3", []),  # identifiers
    ("Total params: 14,070 (54.96 KB)", ["14,070", "54.96"]),  # thousands separator
    ("shape [1, 2] and (3,)", ["1", "2", "3"]),  # list commas separate
    ("lr 5e-05, 1.5E+3, -2.5e-3", ["5e-05", "1.5E+3", "-2.5e-3"]),  # scientific notation
    ("KL -0.25 vs +2.11 ± 0.11; epochs 3-5.", ["-0.25", "+2.11", "0.11", "3", "5"]),  # signs
    ("speed-up 5.5x; figure 640x480", ["5.5"]),
])
def test_numbers_are_told_from_versions_and_names(text, numbers):
    skeleton, found = regress.split_numbers(text)
    assert found == numbers
    assert skeleton.count("\x00") == len(numbers)


def test_a_thousands_separated_number_compares_by_value(tmp_path):
    source = "# TOLERANCE: abs=10\nprint(n)"
    cell, passed = one_cell(tmp_path, source, [out("14,070 steps\n")], [out("14,075 steps\n")])
    assert cell.moved[0].change == 5 and passed


def test_check_cells_allow_round_off_only(tmp_path):
    cell, passed = one_cell(tmp_path, CHECK, [out("mean 0.1234561\n")], [out("mean 0.1234564\n")])
    assert cell.status == "changed-within-tolerance" and passed  # same at 4 significant digits
    cell, passed = one_cell(tmp_path / "2", CHECK, [out("mean 0.1234\n")], [out("mean 0.1235\n")])
    assert cell.status == "changed-beyond-tolerance" and not passed
    cell, passed = one_cell(tmp_path / "3", CHECK, [out("a  1\n")], [out("a 1\n")])
    assert cell.status == "text-changed" and not passed  # nbval sees blanks too
    cell, passed = one_cell(tmp_path / "4", CHECK, [out("shape (2, 3)\n")], [out("shape (2, 4)\n")])
    assert cell.status == "changed-beyond-tolerance" and not passed


def test_untracked_and_timing_changes_never_fail(tmp_path):
    cell, passed = one_cell(tmp_path, "fit()", [out("loss 0.5\n")], [out("loss 9.5\n")])
    assert cell.status == "untracked-changed" and passed and not cell.moved[0].ok
    timing = "# TOLERANCE: timing\nmeasure()"
    cell, passed = one_cell(tmp_path / "2", timing, [out("speed-up 5.5x\n")],
                            [out("speed-up 2x\n")])
    assert cell.status == "changed-within-tolerance" and passed and cell.moved[0].ok
    cell, passed = one_cell(tmp_path / "3", timing, [out("5.5x faster\n")], [out("2x slower\n")])
    assert cell.status == "text-changed" and passed


def test_cells_are_matched_by_source_when_their_counts_differ(tmp_path):
    a, c = ("a()", [out("1\n")]), ("c()", [out("3\n")])
    report = compare(tmp_path, [a, (CHECK, [out("2\n")]), c], [a, c])
    assert [x.status for x in report.cells] == ["equal", "equal", "missing", "equal"]
    assert not report.passed  # a checked cell went missing
    assert compare(tmp_path / "2", [a, ("b()", [out("2\n")]), c], [a, c]).passed  # untracked
    report = compare(tmp_path / "3", [a, c], [a, ("new()", [out("9\n")]), c])
    assert [x.status for x in report.cells] == ["equal", "equal", "extra", "equal"]
    assert report.passed and report.cells[2].candidate_index == 3
    report = compare(tmp_path / "4", [a], [("a(2)", [out("1\n")])])  # same count: by position
    assert report.cells[1].source_changed and report.cells[1].status == "equal"


def test_a_profile_mismatch_is_refused_unless_allowed(tmp_path):
    base = write(tmp_path / "a" / "01_x.ipynb", [], profile="full")
    cand = write(tmp_path / "b" / "01_x.ipynb", [], profile="smoke")
    with pytest.raises(regress.ProfileMismatchError, match=r"'full' profile.*'smoke'"):
        regress.compare_notebooks(base, cand)
    report = regress.compare_notebooks(base, cand, allow_profile_mismatch=True)
    assert "smoke" in report.problem and report.passed


def test_unmarked_output_cells_lists_code_cells_with_output_and_no_marker(tmp_path):
    path = write(tmp_path / "01_x.ipynb", [(CHECK, [out("1\n")]), ("x = 1", []),
                                          ("# TOLERANCE: timing\nt()", [out("1 s\n")])])
    assert regress.unmarked_output_cells(path) == [1]  # the profile cell
    with pytest.raises(FileNotFoundError, match="nb_path"):
        regress.unmarked_output_cells(tmp_path / "nope.ipynb")


def test_bad_arguments_are_named(tmp_path):
    path = write(tmp_path / "01_x.ipynb", [])
    with pytest.raises(FileNotFoundError, match="candidate_path"):
        regress.compare_notebooks(path, tmp_path / "missing.ipynb")
    with pytest.raises(TypeError, match="fail_on_warning must be True or False"):
        regress.compare_notebooks(path, path, fail_on_warning="yes")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"baseline folder .* holds no chapter notebooks"):
        regress.compare_runs(tmp_path / "empty", path)
    with pytest.raises(TypeError, match="report must be"):
        regress.to_markdown({"chapters": []})


# -- reports and the command ---------------------------------------------------------------------

def test_a_stored_chapter_compared_with_itself_is_all_equal(tmp_path):
    path = ROOT / "notebooks" / "02_distributions.ipynb"
    report = regress.compare_notebooks(path, path)
    assert report.passed and report.counts["equal"] == report.counts["cells"] > 20
    assert report.baseline_profile == "full" and report.baseline_versions.startswith("TensorFlow")
    assert cli.main(["regress", str(path), str(path), "--markdown", str(tmp_path / "r.md")]) == 0


def test_markdown_has_the_chapter_table_and_the_moved_numbers(tmp_path):
    old = [(TOL, [out("".join(f"epoch {i}: ELBO -95.{i}0\n" for i in range(12)))])]
    new = [(TOL, [out("".join(f"epoch {i}: ELBO -98.{i}1\n" for i in range(12)))])]
    text = regress.to_markdown(compare(tmp_path, old, new))
    assert "| chapter | cells | equal | within tol | beyond tol |" in text
    assert "| 01_x.ipynb | 2 | 1 | 0 | 1 | 0 | 0 | 0 | 0 | FAIL |" in text
    assert "| 2 | -95.00 | -98.01 | -3.01 | -0.0317 | abs=0.5 | NO | epoch 0: ELBO -98.01 |" in text
    assert "... 2 more" in text and "nats of a test ELBO" in text
    small = regress.to_markdown(compare(tmp_path / "2", [(TOL, [out("1.0000001\n")])],
                                        [(TOL, [out("1.0000002\n")])]))
    assert "| +1e-07 | +1e-07 |" in small  # a wobble reads differently from a 3-nat jump


def test_the_command_compares_two_folders(tmp_path, capsys):
    for side, elbo in (("base", "-95.3"), ("same", "-95.3"), ("moved", "-97.0")):
        write(tmp_path / side / "01_x.ipynb", [(TOL, [out(f"ELBO {elbo}\n")])])
        write(tmp_path / side / "02_y.ipynb", [(CHECK, [out("ok\n")])])
    assert cli.main(["regress", str(tmp_path / "base"), str(tmp_path / "same")]) == 0
    assert "| 02_y.ipynb | 2 | 2 |" in capsys.readouterr().out
    report, md = tmp_path / "r.json", tmp_path / "r.md"
    code = cli.main(["regress", str(tmp_path / "base"), str(tmp_path / "moved"),
                     "--json", str(report), "--markdown", str(md)])
    assert code == 1
    printed = capsys.readouterr().out
    assert printed.startswith("regress: FAIL (1 of 2 chapters fail") and "-97.0" in md.read_text()
    data = json.loads(report.read_text())
    assert data["passed"] is False and data["chapters"][0]["counts"]["beyond"] == 1
    assert data["chapters"][0]["cells"][1]["moved"][0]["new"] == "-97.0"
    (tmp_path / "moved" / "02_y.ipynb").unlink()
    assert cli.main(["regress", str(tmp_path / "base"), str(tmp_path / "same"),
                     "--markdown", str(md)]) == 0
    assert cli.main(["regress", str(tmp_path / "same"), str(tmp_path / "moved"),
                     "--allow-profile-mismatch", "--markdown", str(md)]) == 1  # 02 missing


def test_the_command_reports_usage_errors_without_a_traceback(tmp_path, capsys):
    write(tmp_path / "a" / "01_x.ipynb", [], profile="full")
    write(tmp_path / "b" / "01_x.ipynb", [], profile="smoke")
    assert cli.main(["regress", str(tmp_path / "a"), str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["regress", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    assert "profile" in capsys.readouterr().err
    assert cli.main(["regress", str(tmp_path / "a"), str(tmp_path / "b"),
                     "--allow-profile-mismatch"]) == 0


def test_durations_are_masked_but_standard_errors_are_not():
    from tfpcourse.regress import _sanitize

    assert _sanitize("trained in 2.0 s. Next") == "trained in DURATION. Next"
    assert _sanitize("12 ms per step") == "DURATION per step"
    assert _sanitize("within 3 s.e.: True") == "within 3 s.e.: True"
