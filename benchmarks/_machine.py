"""What machine a benchmark ran on, recorded beside its results."""

from __future__ import annotations

import os
import platform


def machine_info() -> dict[str, object]:
    """CPU count, platform, and the versions of Python, TensorFlow, TFP and Keras."""
    import keras
    import tensorflow as tf
    import tensorflow_probability as tfp

    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "tfp": tfp.__version__,
        "keras": keras.__version__,
    }
