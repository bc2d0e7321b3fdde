"""The TensorFlow-stack check: supported ranges, the tf-keras match, what to install."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tfpcourse import stack

LOCKED = {name: stack.STORED_OUTPUTS_STACK[name] for name in (*stack.CORE, "keras")}


def versions(**changes):
    out = dict(LOCKED)
    out.update({k.replace("_", "-"): v for k, v in changes.items()})
    return out


def test_the_stack_of_the_stored_outputs_has_no_problem():
    assert stack.problems(LOCKED) == []
    assert stack.notice(LOCKED) is None


def test_an_older_tensorflow_inside_the_range_is_fine():
    assert stack.problems(versions(tensorflow="2.18.0", tf_keras="2.18.0")) == []


def test_tensorflow_below_the_range_is_a_problem():
    found = stack.problems(versions(tensorflow="2.17.1", tf_keras="2.17.0"))
    assert found[0] == "tensorflow 2.17.1 is outside the supported range >=2.18,<2.22"
    assert any(p.startswith("tf-keras 2.17.0 is outside") for p in found)


def test_a_nightly_of_the_next_version_is_outside_the_range():
    found = stack.problems(versions(tensorflow="2.23.0.dev20261026"))
    assert "tensorflow 2.23.0.dev20261026 is outside the supported range >=2.18,<2.22" in found


def test_mismatched_tf_keras_minor_version_is_a_problem():
    found = stack.problems(versions(tensorflow="2.19.0", tf_keras="2.21.0"))
    assert found == [
        "tf-keras 2.21.0 does not match TensorFlow 2.19.0 (their major.minor versions must "
        "be equal)"
    ]
    # A patch release of the same minor version is a match.
    assert stack.problems(versions(tensorflow="2.20.0", tf_keras="2.20.1")) == []


def test_a_missing_package_is_a_problem():
    found = stack.problems(versions(tensorflow_probability=None))
    assert found == ["tensorflow-probability is not installed"]


def test_install_command_keeps_a_supported_tensorflow_and_matches_tf_keras():
    command = stack.install_command(versions(tensorflow="2.19.0", tf_keras="2.21.0"))
    assert '"tensorflow==2.19.0"' in command
    assert '"tf-keras==2.19.*"' in command
    assert '"tensorflow-probability>=0.25,<0.26"' in command


def test_install_command_proposes_the_locked_stack_for_an_unsupported_tensorflow():
    command = stack.install_command(versions(tensorflow="2.17.1", tf_keras="2.17.0"))
    assert '"tensorflow==2.21.0"' in command and '"tf-keras==2.21.0"' in command


def test_require_supported_stops_with_what_to_install(monkeypatch):
    monkeypatch.delenv(stack.ALLOW_ENV, raising=False)
    bad = versions(tensorflow="2.17.1", tf_keras="2.17.0")
    with pytest.raises(stack.UnsupportedStackError) as err:
        stack.require_supported(bad)
    message = str(err.value)
    assert "tensorflow 2.17.1 is outside the supported range" in message
    assert stack.install_command(bad) in message
    assert "restart" in message
    stack.require_supported(LOCKED)  # no error on a supported stack


def test_require_supported_can_be_told_to_go_on(monkeypatch, capsys):
    monkeypatch.setenv(stack.ALLOW_ENV, "1")
    stack.require_supported(versions(tensorflow="2.23.0.dev20261026"))
    err = capsys.readouterr().err
    assert err.startswith("tfpcourse: running on an unsupported stack")
    assert err.count("\n") == 1


def test_notice_is_one_line_naming_what_differs():
    line = stack.notice(versions(tensorflow="2.19.0", tf_keras="2.19.0"))
    assert line is not None and "\n" not in line
    assert "tensorflow 2.19.0" in line and "tensorflow 2.21.0" in line
    assert "tf-keras 2.19.0" in line
    assert "tensorflow-probability" not in line  # unchanged packages are not listed


def test_problems_rejects_a_non_mapping():
    with pytest.raises(TypeError, match="versions must be a mapping"):
        stack.problems(["tensorflow", "2.21.0"])


def test_importing_the_course_prints_at_most_the_one_line_notice():
    result = subprocess.run([sys.executable, "-c", "import tfpcourse"], capture_output=True,
                            text=True, check=True)
    expected = stack.notice()
    assert result.stdout == ""
    assert result.stderr == ("" if expected is None else expected + "\n")


def test_installed_versions_reads_the_real_environment():
    found = stack.installed_versions()
    import tensorflow as tf

    assert found["tensorflow"] == tf.__version__
    assert set(found) == {*stack.CORE, "keras"}
