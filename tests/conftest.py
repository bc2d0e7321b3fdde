import pytest


@pytest.fixture(scope="session")
def tf():
    """TensorFlow, started through the course's quiet set-up."""
    from tfpcourse import device

    device.setup(verbose=False)
    import tensorflow

    return tensorflow
