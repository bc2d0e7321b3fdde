"""Start-up stays lean: importing the course's light modules must not pull in TensorFlow,
Keras or matplotlib (seconds of start-up and hundreds of MB), which only the helpers that use
them import, when they are called."""

import subprocess
import sys

import pytest

LIGHT = [
    "tfpcourse",
    "tfpcourse.config",
    "tfpcourse.data",
    "tfpcourse.pipelines",
    "tfpcourse.plot",
    "tfpcourse.seeding",
    "tfpcourse.timing",
    "tfpcourse.toy2d",
    "tfpcourse.distributions",
    "tfpcourse.bijectors",
    "tfpcourse.training",
    "tfpcourse.graphs",
    "tfpcourse.notebooks",
    "tfpcourse.cli",
    "tfpcourse.device",
    "tfpcourse.latent",
    "tfpcourse.regress",
]
HEAVY = ["tensorflow", "tensorflow_probability", "keras", "tf_keras", "matplotlib", "nbclient"]


def _imported_after(module: str) -> list[str]:
    code = (
        f"import sys; import {module}; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return [m for m in out.stdout.strip().split(",") if m]


@pytest.mark.parametrize("module", LIGHT)
def test_light_module_imports_no_heavy_dependency(module):
    assert _imported_after(module) == []


def test_the_check_sees_a_heavy_import():
    # The probe itself must be able to fail: tfpcourse.vae needs TensorFlow at import.
    assert "tensorflow" in _imported_after("tfpcourse.vae")
