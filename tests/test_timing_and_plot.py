import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest

from tfpcourse import timing
from tfpcourse.plot import image_grid, scatter_stages


def test_measure_calls_warmup_then_repeats_times_number():
    calls = []
    result = timing.measure(lambda: calls.append(1), repeats=3, number=4, warmup=2)
    assert len(calls) == 2 + 3 * 4
    assert result.repeats == 3 and result.number == 4
    assert 0 < result.best <= result.median
    assert result.per_second == pytest.approx(1 / result.median)


def test_timing_prints_readable_units():
    assert str(timing.Timing(0.00235, 0.0022, 7, 20)).startswith("2.35 ms per call")
    assert str(timing.Timing(2.5e-6, 2e-6, 1, 1)).startswith("2.5 µs")


def test_measure_rejects_bad_arguments():
    with pytest.raises(TypeError, match="fn must be callable"):
        timing.measure(3)
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        timing.measure(lambda: None, repeats=0)


def test_image_grid_lays_out_images_with_labels():
    images = np.zeros((12, 28, 28, 1), np.uint8)
    fig = image_grid(images, labels=np.arange(12) % 10, ncols=5, title="t")
    shown = [ax for ax in fig.axes if ax.images]
    assert len(fig.axes) == 15 and len(shown) == 12
    assert shown[11].get_title() == "1"
    plt.close(fig)


def test_image_grid_uses_class_names_and_checks_inputs():
    fig = image_grid(np.ones((2, 4, 4)), labels=[1, 0], class_names=["cat", "dog"])
    assert [ax.get_title() for ax in fig.axes] == ["dog", "cat"]
    plt.close(fig)
    with pytest.raises(ValueError, match="images must have shape"):
        image_grid(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="one entry per image"):
        image_grid(np.zeros((2, 4, 4)), labels=[1])


def test_scatter_stages_draws_one_panel_per_stage_and_checks_shapes():
    pts = np.random.default_rng(0).normal(size=(50, 2))
    fig = scatter_stages([pts, 2 * pts, pts + 1], titles=["a", "b", "c"], color=pts[:, 0])
    assert [ax.get_title() for ax in fig.axes] == ["a", "b", "c"]
    assert all(ax.get_xlabel() == "$x_1$" for ax in fig.axes)
    plt.close(fig)
    with pytest.raises(ValueError, match=r"stages\[1\] must have shape \(50, 2\)"):
        scatter_stages([pts, pts[:10]])
    with pytest.raises(ValueError, match="titles must have one entry per stage"):
        scatter_stages([pts], titles=["a", "b"])
