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


def test_density_1d_draws_one_curve_per_batch_member_and_a_histogram(tf):
    import tensorflow_probability as tfp

    from tfpcourse.plot import density_1d

    tfd = tfp.distributions
    samples = np.random.default_rng(0).normal(size=500)
    fig = density_1d({"N": tfd.Normal(0.0, 1.0), "pair": tfd.Normal([0.0, 1.0], [1.0, 0.5])},
                     (-4.0, 4.0), samples=samples, title="t")
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.lines]
    assert labels == ["N", "pair [0]", "pair [1]"]
    peak = max(ax.lines[2].get_ydata())
    assert peak == pytest.approx(1 / (0.5 * np.sqrt(2 * np.pi)), rel=1e-3)  # N(1, 0.5) at its mode
    assert ax.patches and ax.get_xlabel() == "x" and ax.get_ylabel() == "density"
    plt.close(fig)


def test_density_1d_accepts_a_callable_and_checks_the_range():
    from tfpcourse.plot import density_1d

    fig = density_1d(lambda x: -0.5 * x**2 - 0.5 * np.log(2 * np.pi), (-1.0, 1.0))
    assert fig.axes[0].lines[0].get_ydata()[200] == pytest.approx(0.3989, abs=1e-3)
    plt.close(fig)
    with pytest.raises(ValueError, match="x_range must be"):
        density_1d(lambda x: x, (1.0, -1.0))
    with pytest.raises(TypeError, match="density must be a distribution"):
        density_1d(3.0, (0.0, 1.0))


def test_density_2d_shows_the_density_on_a_grid_with_samples(tf):
    import tensorflow_probability as tfp

    from tfpcourse.plot import density_2d

    mvn = tfp.distributions.MultivariateNormalDiag([0.0, 0.0], [1.0, 1.0])
    pts = np.zeros((10, 2))
    fig = density_2d(mvn, (-3.0, 3.0), (-3.0, 3.0), samples=pts, grid=41)
    ax = fig.axes[0]
    values = ax.collections[0].get_array()
    assert values.max() == pytest.approx(1 / (2 * np.pi), rel=1e-3)  # the peak at the origin
    assert len(ax.collections) == 2  # the heat map and the sample dots
    assert ax.get_xlabel() == "$x_1$" and len(fig.axes) == 2  # with a colour bar
    plt.close(fig)
    with pytest.raises(ValueError, match=r"samples must have shape \(n, 2\)"):
        density_2d(mvn, (-1.0, 1.0), (-1.0, 1.0), samples=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="ylim must be"):
        density_2d(mvn, (-1.0, 1.0), (1.0, 1.0))
