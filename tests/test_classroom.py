"""The classroom kit: answer checks, student versions and the environment doctor."""

import json

import nbformat
import numpy as np
import pytest

from tfpcourse import check, classroom, doctor

# --------------------------------------------------------------------------------------------
# tfpcourse.check
# --------------------------------------------------------------------------------------------


def test_close_passes_within_tolerance_and_says_so():
    result = check.close("kl", 0.44310, expected=0.4431, atol=1e-4)
    assert result.passed and bool(result)
    assert str(result).startswith("✓ Correct (kl)")


def test_close_explains_the_largest_difference_and_where():
    result = check.close("x", [1.0, 2.0, 3.5], expected=[1.0, 2.0, 3.0], atol=1e-3)
    assert not result.passed
    text = str(result)
    assert text.startswith("✗ Not yet (x)")
    assert "largest difference 0.5 at index (2,)" in text
    assert "got 3.5, expected 3" in text


def test_close_reports_a_shape_mismatch_before_values():
    result = check.close("logp", np.zeros((3, 1)), expected=np.zeros(3))
    assert not result.passed
    assert "shape (3, 1), expected (3,)" in result.message


def test_close_on_a_stub_answer_says_fill_in_the_cell():
    result = check.close("logp", None, expected=1.0)
    assert not result.passed
    assert "still None" in result.message and "exercise cell above" in result.message


def test_close_flags_nan_and_non_numbers():
    assert "NaN" in check.close("v", [np.nan, 1.0], expected=[0.0, 1.0]).message
    assert "number" in check.close("v", "abc", expected=1.0).message


def test_close_accepts_tensors(tf):
    assert check.close("t", tf.constant([1.0, 2.0]), expected=np.array([1.0, 2.0])).passed


def test_close_rejects_negative_tolerance():
    with pytest.raises(ValueError, match="atol"):
        check.close("x", 1.0, expected=1.0, atol=-1.0)


def test_equal_compares_shapes_lists_and_tuples(tf):
    assert check.equal("shape", tf.TensorShape([2, 3]), (2, 3)).passed
    assert check.equal("shape", [2, 3], (2, 3)).passed
    bad = check.equal("k", 4, 5)
    assert not bad.passed and "is 4, expected 5" in bad.message


def test_that_turns_errors_in_a_condition_into_not_yet():
    answer = None
    result = check.that("samples", lambda: answer.shape == (3,), "samples has shape (3,)")
    assert not result.passed
    assert "could not be checked: AttributeError" in result.message
    assert check.that("s", lambda: True, "it holds").passed
    assert not check.that("s", [True, False], "all hold").passed


def test_shapes_checks_batch_and_event_and_hints_at_independent(tf):
    import tensorflow_probability as tfp

    tfd = tfp.distributions
    normal = tfd.Normal(tf.zeros([4, 3]), 1.0)
    assert check.shapes("d", tfd.Independent(normal, 1), batch_shape=[4],
                        event_shape=[3]).passed
    wrong = check.shapes("d", normal, batch_shape=[4], event_shape=[3])
    assert not wrong.passed
    assert "batch shape is [4, 3], expected [4]" in wrong.message
    assert "tfd.Independent" in wrong.message
    assert "TFP distribution" in check.shapes("d", 3.0, batch_shape=[], event_shape=[]).message


def test_bijector_check_passes_a_correct_bijector_and_fails_a_wrong_log_det(tf):
    import tensorflow_probability as tfp

    tfb = tfp.bijectors
    x = np.linspace(-2, 2, 9).astype(np.float32)
    good = check.bijector("b", tfb.Shift(1.0)(tfb.Scale(2.0)), x,
                          expected_forward=lambda v: 2 * v + 1)
    assert good.passed, good.message

    class WrongLogDet(tfb.Bijector):
        def __init__(self):
            super().__init__(forward_min_event_ndims=0, name="wrong")

        def _forward(self, v):
            return 3.0 * v

        def _inverse(self, y):
            return y / 3.0

        def _forward_log_det_jacobian(self, v):
            return tf.zeros_like(v)  # should be log 3

    bad = check.bijector("b", WrongLogDet(), x)
    assert not bad.passed and "log-det-Jacobian" in bad.message
    wrong_map = check.bijector("b", tfb.Scale(2.0), x, expected_forward=lambda v: 3 * v)
    assert not wrong_map.passed


# --------------------------------------------------------------------------------------------
# tfpcourse.classroom
# --------------------------------------------------------------------------------------------


def _notebook(*cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["jupytext"] = {"formats": "ipynb,py:percent"}
    for kind, source, tags, outputs in cells:
        if kind == "md":
            cell = nbformat.v4.new_markdown_cell(source)
        else:
            cell = nbformat.v4.new_code_cell(source)
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=o)
                            for o in outputs]
            cell.execution_count = 1 if outputs else None
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    return nb


SOLUTION = ("# answer: total, mean\n# hint: use np.sum and divide by the count.\n"
            "total = np.sum(values)\nmean = total / len(values)")
CHECK = 'check.close("mean", mean, expected=2.0)'


def _exercise_notebook():
    return _notebook(
        ("code", "values = np.array([1.0, 2.0, 3.0])\nprint(values)", [], ["[1. 2. 3.]\n"]),
        ("md", "**1.** Compute the total and the mean.", [], []),
        ("code", SOLUTION, ["solution"], ["done\n"]),
        ("code", CHECK, ["check"], ["✓ Correct (mean): ...\n"]),
    )


def test_student_version_replaces_the_solution_by_a_stub_with_hints():
    nb = _exercise_notebook()
    student = classroom.student_version(nb)
    stub = student.cells[2].source
    assert stub.splitlines() == [
        classroom.STUB_HEADER,
        "# answer: total, mean",
        "# hint: use np.sum and divide by the count.",
        "total = None",
        "mean = None",
    ]
    assert "np.sum(values)" not in stub


def test_student_version_clears_only_the_exercise_outputs():
    student = classroom.student_version(_exercise_notebook())
    assert student.cells[0].outputs[0]["text"] == "[1. 2. 3.]\n"  # kept
    assert student.cells[2].outputs == [] and student.cells[3].outputs == []
    assert student.cells[3].source == CHECK  # the check itself is kept
    assert "jupytext" not in student.metadata


def test_student_version_does_not_change_the_original():
    nb = _exercise_notebook()
    before = json.dumps(nb, sort_keys=True)
    classroom.student_version(nb)
    assert json.dumps(nb, sort_keys=True) == before


def test_stub_makes_the_check_fail_and_the_solution_makes_it_pass():
    nb = _exercise_notebook()
    namespace = {"np": np, "check": check}
    exec(nb.cells[0].source, namespace)
    exec(nb.cells[2].source, namespace)
    assert eval(CHECK, namespace).passed
    exec(classroom.student_version(nb).cells[2].source, namespace)
    result = eval(CHECK, namespace)
    assert not result.passed and "still None" in result.message


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        ([("code", "x = 1", ["solution"], []), ("code", CHECK, ["check"], [])], "# answer:"),
        ([("code", "# answer: x\nx = 1", ["solution"], [])], "followed directly"),
        ([("code", "# answer: x\nx = 1", ["solution"], []), ("md", "text", [], []),
          ("code", CHECK, ["check"], [])], "followed directly"),
        ([("code", CHECK, ["check"], [])], "directly follow a solution"),
        ([("code", "# answer: 2x\nx = 1", ["solution"], []), ("code", CHECK, ["check"], [])],
         "Python names"),
    ],
)
def test_badly_formed_exercises_are_rejected_with_a_reason(cells, message):
    with pytest.raises(classroom.ExerciseFormatError, match=message):
        classroom.exercises(_notebook(*cells), name="demo.ipynb")


def test_write_student_versions_refuses_to_overwrite_the_solutions(tmp_path):
    path = tmp_path / "01_demo.ipynb"
    nbformat.write(_exercise_notebook(), path)
    with pytest.raises(ValueError, match="replace the solutions"):
        classroom.write_student_versions([path], tmp_path)
    written = classroom.write_student_versions([path], tmp_path / "student")
    assert written == [(tmp_path / "student" / "01_demo.ipynb", 1)]
    copy = nbformat.read(written[0][0], as_version=4)
    assert copy.cells[2].source.startswith(classroom.STUB_HEADER)


def test_write_student_versions_rejects_missing_or_non_notebook_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        classroom.write_student_versions([tmp_path / "nope.ipynb"], tmp_path / "out")
    with pytest.raises(ValueError, match=r"\.ipynb files"):
        classroom.write_student_versions([tmp_path / "x.py"], tmp_path / "out")
    with pytest.raises(ValueError, match="at least one"):
        classroom.write_student_versions([], tmp_path / "out")


# --------------------------------------------------------------------------------------------
# tfpcourse.doctor
# --------------------------------------------------------------------------------------------


def test_doctor_accepts_every_supported_python_and_fails_an_old_one():
    for version in ((3, 10, 13), (3, 11, 7), (3, 12, 1), (3, 13, 0)):
        assert doctor.check_python(version).status == doctor.OK, version
    assert "stored outputs" in doctor.check_python((3, 11, 7)).detail
    for version in ((3, 8, 10), (3, 9, 18), (3, 14, 0)):
        old = doctor.check_python(version)
        assert old.status == doctor.FAIL and "3.10 to 3.13" in old.detail, version


def test_doctor_flags_a_tf_keras_that_does_not_match_tensorflow():
    versions = {"tensorflow": "2.21.0", "tensorflow-probability": "0.25.0",
                "tf-keras": "2.19.0", "keras": "3.15.1"}
    findings = {f.topic: f for f in doctor.check_packages(versions.get)}
    assert findings["tensorflow"].status == doctor.OK
    assert findings["tf-keras"].status == doctor.FAIL
    assert "does not match TensorFlow 2.21.0" in findings["tf-keras"].detail
    assert '"tf-keras==2.21.*"' in findings["tf-keras"].fix


def test_doctor_reports_missing_packages_as_failures():
    findings = {f.topic: f for f in doctor.check_packages(lambda name: None)}
    assert all(f.status == doctor.FAIL for f in findings.values())
    assert "pip install" in findings["tensorflow"].fix


def test_doctor_accepts_an_older_supported_stack_and_says_it_differs():
    versions = {"tensorflow": "2.19.0", "tensorflow-probability": "0.25.0",
                "tf-keras": "2.19.0", "keras": "3.10.0"}
    findings = {f.topic: f for f in doctor.check_packages(versions.get)}
    assert all(f.status == doctor.OK for f in findings.values())
    assert "stored outputs were made with 2.21.0" in findings["tensorflow"].detail


def test_doctor_fails_versions_outside_the_range():
    versions = {"tensorflow": "2.22.0", "tensorflow-probability": "0.26.0",
                "tf-keras": "2.22.0", "keras": "3.16.0"}
    findings = {f.topic: f for f in doctor.check_packages(versions.get)}
    assert findings["tensorflow"].status == doctor.FAIL
    assert "outside the supported range >=2.18,<2.22" in findings["tensorflow"].detail
    assert findings["tensorflow-probability"].status == doctor.FAIL
    assert findings["keras"].status == doctor.OK  # no range of its own: TensorFlow picks it
    assert 'pip install "tensorflow==2.21.0"' in findings["tensorflow"].fix


def test_doctor_finds_an_unwritable_cache_folder(tmp_path, monkeypatch):
    # A folder "inside" a regular file cannot be created, even by root (CI runs as root, where
    # permission bits would not stop a write).
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("TFPCOURSE_DATA_DIR", str(blocker / "cache"))
    cache = next(f for f in doctor.check_data() if f.topic == "data cache")
    assert cache.status == doctor.FAIL and "TFPCOURSE_DATA_DIR" in cache.fix
    assert "cannot write" in cache.detail


def test_doctor_reports_an_empty_cache_and_a_missing_mirror(tmp_path, monkeypatch):
    monkeypatch.setenv("TFPCOURSE_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TFPCOURSE_DATA_MIRROR", str(tmp_path / "no-such-mirror"))
    findings = {f.topic: f for f in doctor.check_data()}
    assert findings["data cache"].status == doctor.OK
    assert findings["data mirror"].status == doctor.FAIL
    assert findings["dataset mnist"].status != doctor.OK
    assert "tfpcourse data download mnist" in findings["dataset mnist"].fix


def test_doctor_report_exit_status_follows_failures():
    ok = doctor.Finding("a", doctor.OK, "fine")
    warn = doctor.Finding("b", doctor.WARN, "hmm", "do this")
    fail = doctor.Finding("c", doctor.FAIL, "broken", "fix that")
    assert doctor.report([ok])[1] == 0 and "Everything is ready" in doctor.report([ok])[0]
    assert doctor.report([ok, warn])[1] == 0
    text, status = doctor.report([ok, warn, fail])
    assert status == 1 and "-> fix that" in text and "1 problem(s)" in text


def test_doctor_on_this_machine_finds_tensorflow_and_a_kernel():
    findings = {f.topic: f for f in doctor.check_tensorflow()}
    assert findings["TensorFlow import"].status == doctor.OK
    assert "CPU" in findings["devices"].detail
    assert doctor.check_kernel().status in (doctor.OK, doctor.WARN)


# --------------------------------------------------------------------------------------------
# The commands
# --------------------------------------------------------------------------------------------


def test_student_command_writes_stubbed_copies(tmp_path, capsys):
    from tfpcourse.cli import main

    path = tmp_path / "01_demo.ipynb"
    nbformat.write(_exercise_notebook(), path)
    assert main(["student", str(path), "--output-dir", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "01_demo.ipynb" in out and "stubs" in out
    copy = nbformat.read(tmp_path / "out" / "01_demo.ipynb", as_version=4)
    assert copy.cells[2].source.endswith("mean = None")


def test_student_command_explains_a_badly_formed_exercise(tmp_path, capsys):
    from tfpcourse.cli import main

    path = tmp_path / "01_bad.ipynb"
    nbformat.write(_notebook(("code", "x = 1", ["solution"], [])), path)
    assert main(["student", str(path), "--output-dir", str(tmp_path / "out")]) == 2
    assert "# answer:" in capsys.readouterr().err


def test_doctor_command_prints_a_report_and_an_exit_status(capsys, monkeypatch, tmp_path):
    from tfpcourse.cli import main

    monkeypatch.setenv("TFPCOURSE_DATA_MIRROR", str(tmp_path / "missing-mirror"))
    status = main(["doctor", "--no-tensorflow"])
    out = capsys.readouterr().out
    assert "[  ok] Python" in out
    assert "[FAIL] data mirror" in out and status == 1
