"""The VAE plot helpers: latent scatter, latent grid, interpolation rows, training curves."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from tfpcourse.plot import interpolation, latent_grid, latent_scatter, training_curves


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


CODES = np.random.default_rng(0).normal(size=(30, 2))
LABELS = np.arange(30) % 3


def test_latent_scatter_draws_one_labelled_group_per_class():
    fig = latent_scatter(CODES, LABELS, class_names=["zero", "one", "two"], title="codes")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "$z_1$" and ax.get_ylabel() == "$z_2$"
    assert ax.get_title() == "codes"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["zero", "one", "two"]
    assert len(ax.collections) == 3
    for label, collection in enumerate(ax.collections):
        np.testing.assert_allclose(collection.get_offsets(), CODES[LABELS == label])


def test_latent_scatter_without_labels_and_with_shared_limits():
    fig = latent_scatter(CODES, limits=(-3.0, 3.0))
    ax = fig.axes[0]
    assert ax.get_legend() is None and len(ax.collections) == 1
    np.testing.assert_allclose(ax.collections[0].get_offsets(), CODES)
    assert ax.get_xlim() == (-3.0, 3.0) and ax.get_ylim() == (-3.0, 3.0)


def test_latent_scatter_draws_into_a_given_axis():
    fig, axes = plt.subplots(1, 2)
    assert latent_scatter(CODES, LABELS, ax=axes[1]) is fig
    assert len(axes[1].collections) == 3 and not axes[0].collections
    assert [t.get_text() for t in axes[1].get_legend().get_texts()] == ["0", "1", "2"]


def test_latent_scatter_draws_the_prior_circles_asked_for():
    from matplotlib.patches import Circle

    ax = latent_scatter(CODES, LABELS, prior_circles=(1.0, 2.0)).axes[0]
    circles = [p for p in ax.patches if isinstance(p, Circle)]
    assert [c.get_radius() for c in circles] == [1.0, 2.0]
    assert all(tuple(c.center) == (0.0, 0.0) and not c.get_fill() for c in circles)
    assert not latent_scatter(CODES).axes[0].patches  # none by default


def test_latent_scatter_rejects_a_non_positive_circle_radius():
    with pytest.raises(ValueError, match="prior_circles"):
        latent_scatter(CODES, prior_circles=(1.0, 0.0))


@pytest.mark.parametrize("codes, labels, match", [
    (np.zeros((5, 3)), None, r"codes must have shape \(n, 2\).*got \(5, 3\)"),
    (np.zeros(4), None, r"codes must have shape \(n, 2\)"),
    (np.zeros((0, 2)), None, r"codes must have shape \(n, 2\) with n >= 1"),
    (np.zeros((5, 2)), [0, 1], r"labels must have shape \(5,\) to match codes, got \(2,\)"),
])
def test_latent_scatter_rejects_bad_shapes(codes, labels, match):
    with pytest.raises(ValueError, match=match):
        latent_scatter(codes, labels)


def _coordinate_images(points, low=-2.0, high=2.0):
    """Tiny 2x2 "images" that store the latent point: pixel (0, 0) holds z_1 and pixel (0, 1)
    z_2, both rescaled from [low, high] to [0, 1]."""
    images = np.zeros((len(points), 2, 2), np.float32)
    images[:, 0, 0] = (points[:, 0] - low) / (high - low)
    images[:, 0, 1] = (points[:, 1] - low) / (high - low)
    return images


def test_latent_grid_decodes_n_squared_points_with_z2_upwards():
    calls = []

    def decode(points):
        calls.append(np.array(points))
        return _coordinate_images(points)

    fig = latent_grid(decode, limits=(-2.0, 2.0), n=3, title="grid")
    assert isinstance(fig, Figure)
    assert len(calls) == 1 and calls[0].shape == (9, 2)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "$z_1$" and ax.get_ylabel() == "$z_2$"
    assert ax.get_title() == "grid"
    canvas = np.asarray(ax.images[0].get_array())
    assert canvas.shape == (6, 6)  # 3 x 3 tiles of 2 x 2 pixels
    # Top-left tile: (z_1, z_2) = (low, high); bottom-right: (high, low); centre: (0, 0).
    np.testing.assert_allclose(canvas[0, :2], [0.0, 1.0])
    np.testing.assert_allclose(canvas[4, 4:6], [1.0, 0.0])
    np.testing.assert_allclose(canvas[2, 2:4], [0.5, 0.5])
    # Along the top row z_1 grows and z_2 stays at its maximum.
    np.testing.assert_allclose(canvas[0, 0::2], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(canvas[0, 1::2], [1.0, 1.0, 1.0])
    # The axes are in latent coordinates: tile centres at -2, 0, 2 (half a step of margin).
    assert ax.images[0].get_extent() == pytest.approx([-3.0, 3.0, -3.0, 3.0])


def test_latent_grid_accepts_images_with_a_channel_axis_and_a_given_axis():
    fig, axes = plt.subplots(1, 2)
    assert latent_grid(lambda p: _coordinate_images(p)[..., None], n=2, ax=axes[0]) is fig
    assert np.asarray(axes[0].images[0].get_array()).shape == (4, 4)
    assert not axes[1].images


@pytest.mark.parametrize("kwargs, error, match", [
    ({"n": 1}, ValueError, "n must be >= 2"),
    ({"n": 2.0}, TypeError, "n must be an integer"),
    ({"limits": (2.0, -2.0)}, ValueError, r"limits must be \(low, high\) with low < high"),
    ({"limits": (1.0, 1.0)}, ValueError, "limits must be"),
])
def test_latent_grid_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        latent_grid(_coordinate_images, **kwargs)


@pytest.mark.parametrize("decode", [
    lambda p: np.zeros((len(p) - 1, 2, 2)),  # one image short
    lambda p: np.zeros((len(p), 4)),  # flat vectors, not images
    lambda p: np.zeros((len(p), 2, 2, 3)),  # colour images
])
def test_latent_grid_rejects_decoders_returning_the_wrong_shape(decode):
    with pytest.raises(ValueError, match=r"decode must return 9 images of shape \(h, w\)"):
        latent_grid(decode, n=3)


def test_interpolation_lays_out_one_labelled_row_per_morph():
    rows = {"vae": np.zeros((5, 4, 4)), "mmd": np.ones((5, 4, 4, 1))}
    fig = interpolation(rows, title="morphs")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 10
    assert fig.axes[0].get_ylabel() == "vae" and fig.axes[5].get_ylabel() == "mmd"
    assert [ax.get_xlabel() for ax in fig.axes[5:]] == ["t=0", "t=0.25", "t=0.5", "t=0.75",
                                                        "t=1"]
    assert fig._suptitle.get_text() == "morphs"
    np.testing.assert_array_equal(fig.axes[7].images[0].get_array(), np.ones((4, 4)))


def test_interpolation_accepts_a_single_unlabelled_row_and_uint8_images():
    images = np.full((3, 4, 4), 255, np.uint8)
    fig = interpolation(images)
    assert len(fig.axes) == 3 and fig.axes[0].get_ylabel() == ""
    assert fig.axes[0].images[0].get_clim() == (0, 255)


@pytest.mark.parametrize("rows, match", [
    ({"a": np.zeros((5, 4, 4)), "b": np.zeros((4, 4, 4))},
     r"all rows must have the same number of steps, got \[4, 5\]"),
    ({}, "rows must hold at least one row"),
    ({"a": np.zeros((1, 4, 4))}, r"row 'a' must have shape \(steps, h, w\) with steps >= 2"),
    ({"a": np.zeros((5, 16))}, r"row 'a' must have shape"),
])
def test_interpolation_rejects_bad_rows(rows, match):
    with pytest.raises(ValueError, match=match):
        interpolation(rows)


def test_training_curves_plot_each_named_curve_from_the_start_epoch():
    fig = training_curves({"train": [3.0, 2.0, 1.5], "test": [3.2, 2.4, 2.0]}, title="loss",
                          start=1)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["train", "test"]
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(ax.get_lines()[1].get_ydata(), [3.2, 2.4, 2.0])
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "loss (nats per image)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "test"]
    fig2 = training_curves({"kl": [1.0, 2.0]}, xlabel="step", ylabel="nats", start=0)
    assert fig2.axes[0].get_xlabel() == "step" and fig2.axes[0].get_ylabel() == "nats"
    np.testing.assert_array_equal(fig2.axes[0].get_lines()[0].get_xdata(), [0, 1])
    fig3, axes = plt.subplots(1, 2)
    assert training_curves({"a": [1.0]}, ax=axes[1]) is fig3
    assert len(axes[1].get_lines()) == 1 and not axes[0].get_lines()


def test_training_curves_reject_empty_input():
    with pytest.raises(ValueError, match="curves must hold at least one named curve"):
        training_curves({})
    with pytest.raises(ValueError, match="curve 'train' must be a non-empty sequence"):
        training_curves({"train": []})
    with pytest.raises(ValueError, match="curve 'train' must be a non-empty sequence"):
        training_curves({"train": [[1.0, 2.0]]})
