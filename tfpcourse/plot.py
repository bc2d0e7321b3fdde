"""Plotting helpers shared by the chapters (matplotlib only).

Every helper returns the ``Figure`` so a notebook can add to it, and labels what it draws.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tfpcourse._validate import check_int, check_number

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = [
    "density_1d",
    "density_2d",
    "image_grid",
    "interpolation",
    "latent_grid",
    "latent_scatter",
    "scatter_stages",
    "training_curves",
]


def image_grid(
    images: np.ndarray,
    *,
    labels: Sequence[int] | np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    ncols: int = 10,
    title: str | None = None,
    cmap: str = "gray_r",
    size: float = 1.0,
) -> Figure:
    """Show images in a grid, optionally with their labels as titles.

    Parameters
    ----------
    images:
        Array of shape ``(n, h, w)`` or ``(n, h, w, 1)``, ``uint8`` 0..255 or floats in [0, 1].
    labels:
        Optional label per image, shown above it (as ``class_names[label]`` if given).
    ncols:
        Images per row.
    title:
        Title of the whole figure.
    cmap:
        Colour map; the default draws ink dark on a light background.
    size:
        Inches per image.
    """
    import matplotlib.pyplot as plt

    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or images.shape[0] == 0:
        raise ValueError(
            f"images must have shape (n, h, w) or (n, h, w, 1) with n >= 1, got {images.shape}"
        )
    ncols = check_int("ncols", ncols, minimum=1)
    n = images.shape[0]
    if labels is not None and len(labels) != n:
        raise ValueError(f"labels must have one entry per image ({n}), got {len(labels)}")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    vmax = 255 if images.dtype == np.uint8 else 1.0
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size * ncols, size * nrows + (0.4 if title else 0.1)),
        squeeze=False,
    )
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= n:
            continue
        ax.imshow(images[i], cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest")
        if labels is not None:
            label = int(labels[i])
            text = class_names[label] if class_names is not None else str(label)
            ax.set_title(text, fontsize=8, pad=2)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _log_prob_fn(density: Any) -> Callable[[np.ndarray], np.ndarray]:
    """Accept a TFP distribution (anything with ``log_prob``) or a callable returning log
    densities, and return a NumPy-in, NumPy-out log-density function."""
    if hasattr(density, "log_prob"):
        def fn(x: np.ndarray) -> np.ndarray:
            return np.asarray(density.log_prob(x.astype(np.float32)))

        return fn
    if callable(density):
        return lambda x: np.asarray(density(x.astype(np.float32)))
    raise TypeError(
        "density must be a distribution (with .log_prob) or a callable returning log densities, "
        f"got {type(density).__name__}"
    )


def density_1d(
    densities: Any,
    x_range: tuple[float, float],
    *,
    samples: np.ndarray | None = None,
    bins: int = 60,
    n_points: int = 400,
    ax: Any = None,
    title: str | None = None,
    xlabel: str = "x",
    ylabel: str = "density",
) -> Figure:
    """Plot one or several 1-D densities over ``x_range``, optionally over a histogram.

    Parameters
    ----------
    densities:
        A distribution with ``log_prob``, a callable returning log densities, or a mapping from
        legend labels to either. A distribution with a batch shape draws one curve per member.
    x_range:
        ``(low, high)`` of the x axis.
    samples:
        Optional 1-D samples drawn as a normalised histogram behind the curves.
    """
    import matplotlib.pyplot as plt

    if not (isinstance(x_range, tuple | list) and len(x_range) == 2 and x_range[0] < x_range[1]):
        raise ValueError(f"x_range must be (low, high) with low < high, got {x_range!r}")
    n_points = check_int("n_points", n_points, minimum=2)
    if not isinstance(densities, Mapping):
        densities = {None: densities}
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 3.5))
    else:
        fig = ax.figure
    if samples is not None:
        samples = np.asarray(samples).ravel()
        ax.hist(samples, bins=bins, range=x_range, density=True, color="0.85",
                edgecolor="0.6", lw=0.5, label="samples")
    x = np.linspace(x_range[0], x_range[1], n_points, dtype=np.float32)
    for label, density in densities.items():
        fn = _log_prob_fn(density)
        batch = getattr(density, "batch_shape", None)
        if batch is not None and len(batch) > 0:
            # Evaluate every member of the batch at each x: shape (n_points, *batch).
            lp = fn(x.reshape((-1,) + (1,) * len(batch)))
            curves = np.exp(lp).reshape(n_points, -1)
            for j in range(curves.shape[1]):
                ax.plot(x, curves[:, j], label=f"{label} [{j}]" if label else f"[{j}]")
        else:
            ax.plot(x, np.exp(fn(x)), label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlim(*x_range)
    if title:
        ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def density_2d(
    density: Any,
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    *,
    samples: np.ndarray | None = None,
    grid: int = 150,
    ax: Any = None,
    title: str | None = None,
    xlabel: str = "$x_1$",
    ylabel: str = "$x_2$",
    cmap: str = "viridis",
    colorbar: bool = True,
) -> Figure:
    """Draw a 2-D density (event shape ``[2]``) as a heat map, optionally with samples on top.

    Parameters
    ----------
    density:
        A distribution with ``log_prob`` over points of shape ``[..., 2]``, or a callable.
    xlim, ylim:
        The plotted square: ``(low, high)`` for each coordinate.
    samples:
        Optional ``(n, 2)`` points drawn as small white dots.
    grid:
        Grid points per axis.
    """
    import matplotlib.pyplot as plt

    for name, lim in (("xlim", xlim), ("ylim", ylim)):
        if not (isinstance(lim, tuple | list) and len(lim) == 2 and lim[0] < lim[1]):
            raise ValueError(f"{name} must be (low, high) with low < high, got {lim!r}")
    grid = check_int("grid", grid, minimum=2)
    fn = _log_prob_fn(density)
    xs = np.linspace(xlim[0], xlim[1], grid, dtype=np.float32)
    ys = np.linspace(ylim[0], ylim[1], grid, dtype=np.float32)
    xx, yy = np.meshgrid(xs, ys)
    points = np.stack([xx.ravel(), yy.ravel()], axis=-1)
    values = np.exp(fn(points)).reshape(grid, grid)
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.6, 4.0))
    else:
        fig = ax.figure
    mesh = ax.pcolormesh(xx, yy, values, shading="auto", cmap=cmap)
    if colorbar:
        fig.colorbar(mesh, ax=ax, label="density")
    if samples is not None:
        samples = np.asarray(samples)
        if samples.ndim != 2 or samples.shape[1] != 2:
            raise ValueError(f"samples must have shape (n, 2), got {samples.shape}")
        ax.scatter(samples[:, 0], samples[:, 1], s=2, c="white", alpha=0.5, linewidths=0)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def scatter_stages(
    stages: Sequence[np.ndarray],
    *,
    titles: Sequence[str] | None = None,
    color: np.ndarray | None = None,
    lim: float | None = 4.0,
    size: float = 2.6,
    suptitle: str | None = None,
) -> Figure:
    """Scatter the same 2-D points at successive stages of a transformation, side by side.

    Parameters
    ----------
    stages:
        A sequence of ``(n, 2)`` arrays with the same ``n`` (e.g. ``Flow.stages_inverse(x)``).
    titles:
        One title per stage.
    color:
        Optional value per point, so each point can be followed from panel to panel.
    lim:
        Axis limits ``(-lim, lim)`` in every panel; ``None`` lets each panel choose.
    """
    import matplotlib.pyplot as plt

    stages = [np.asarray(s) for s in stages]
    if not stages:
        raise ValueError("stages must hold at least one (n, 2) array")
    n = stages[0].shape[0]
    for i, s in enumerate(stages):
        if s.ndim != 2 or s.shape != (n, 2):
            raise ValueError(f"stages[{i}] must have shape ({n}, 2), got {s.shape}")
    if titles is not None and len(titles) != len(stages):
        raise ValueError(f"titles must have one entry per stage ({len(stages)}), got {len(titles)}")
    fig, axes = plt.subplots(1, len(stages), figsize=(size * len(stages), size + 0.4),
                             squeeze=False)
    for i, (ax, pts) in enumerate(zip(axes[0], stages)):
        ax.scatter(pts[:, 0], pts[:, 1], s=2, c=color, cmap="viridis", linewidths=0)
        if lim is not None:
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_xlabel("$x_1$")
        if i == 0:
            ax.set_ylabel("$x_2$")
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def latent_scatter(
    codes: np.ndarray,
    labels: Sequence[int] | np.ndarray | None = None,
    *,
    class_names: Sequence[str] | None = None,
    ax: Any = None,
    title: str | None = None,
    size: float = 2.0,
    limits: tuple[float, float] | None = None,
    prior_circles: Sequence[float] = (),
) -> Figure:
    """Scatter 2-D latent codes, coloured by class label (one colour and legend entry each).

    ``codes`` has shape ``(n, 2)`` (e.g. posterior means of a test set). ``limits`` sets the
    same range on both axes (e.g. to compare two models); the default fits the codes.
    ``prior_circles`` draws dashed circles of these radii around the origin: for a standard
    normal prior, radii 1 and 2 hold 39% and 86% of its mass.
    """
    import matplotlib.pyplot as plt

    radii = [check_number("prior_circles", r, minimum=0.0, strict_minimum=True)
             for r in prior_circles]
    codes = np.asarray(codes, dtype=float)
    if codes.ndim != 2 or codes.shape[1] != 2 or codes.shape[0] == 0:
        raise ValueError(f"codes must have shape (n, 2) with n >= 1, got {codes.shape}")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (codes.shape[0],):
            raise ValueError(
                f"labels must have shape ({codes.shape[0]},) to match codes, got {labels.shape}"
            )
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.2, 4.4))
    else:
        fig = ax.figure
    if labels is None:
        ax.scatter(codes[:, 0], codes[:, 1], s=size, alpha=0.6, linewidths=0)
    else:
        cmap = plt.get_cmap("tab10")
        for i, label in enumerate(np.unique(labels)):
            pick = labels == label
            name = class_names[int(label)] if class_names is not None else str(label)
            ax.scatter(codes[pick, 0], codes[pick, 1], s=size, alpha=0.6, linewidths=0,
                       color=cmap(i % 10), label=name)
        ax.legend(markerscale=4 / max(size, 0.5), fontsize=7, loc="center left",
                  bbox_to_anchor=(1.0, 0.5), frameon=False)
    for radius in radii:
        ax.add_patch(plt.Circle((0.0, 0.0), radius, fill=False, ls="--", lw=0.9, color="k"))
    if limits is not None:
        ax.set_xlim(*limits)
        ax.set_ylim(*limits)
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_aspect("equal", adjustable="datalim" if limits is None else "box")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def latent_grid(
    decode: Callable[[np.ndarray], Any],
    *,
    limits: tuple[float, float] = (-2.0, 2.0),
    n: int = 15,
    ax: Any = None,
    title: str | None = None,
    cmap: str = "gray_r",
) -> Figure:
    """Decode an ``n x n`` grid of points of a 2-D latent space and tile the images.

    ``decode`` maps an array ``(m, 2)`` of latent points to images ``(m, h, w)`` or
    ``(m, h, w, 1)`` in [0, 1]. The axes are labelled with the latent coordinates, ``z_1`` to
    the right and ``z_2`` upwards, so the tiles line up with a :func:`latent_scatter`.
    """
    import matplotlib.pyplot as plt

    n = check_int("n", n, minimum=2)
    lo, hi = (float(v) for v in limits)
    if not hi > lo:
        raise ValueError(f"limits must be (low, high) with low < high, got {limits}")
    values = np.linspace(lo, hi, n)
    z1, z2 = np.meshgrid(values, values[::-1])  # top row = largest z_2
    points = np.stack([z1.ravel(), z2.ravel()], axis=1).astype(np.float32)
    images = np.asarray(decode(points))
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or images.shape[0] != n * n:
        raise ValueError(
            f"decode must return {n * n} images of shape (h, w) or (h, w, 1), got "
            f"{images.shape}"
        )
    h, w = images.shape[1:]
    canvas = images.reshape(n, n, h, w).transpose(0, 2, 1, 3).reshape(n * h, n * w)
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.0, 5.0))
    else:
        fig = ax.figure
    step = (hi - lo) / (n - 1)
    ax.imshow(canvas, cmap=cmap, vmin=0, vmax=1, interpolation="nearest",
              extent=(lo - step / 2, hi + step / 2, lo - step / 2, hi + step / 2))
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def interpolation(
    rows: Mapping[str, np.ndarray] | np.ndarray,
    *,
    title: str | None = None,
    size: float = 0.9,
    cmap: str = "gray_r",
) -> Figure:
    """Show one or more morphs as rows of images, each row labelled by its name.

    ``rows`` maps a row label to images ``(steps, h, w)`` or ``(steps, h, w, 1)``; a bare array
    is one unlabelled row. All rows must have the same number of steps.
    """
    import matplotlib.pyplot as plt

    if not isinstance(rows, Mapping):
        rows = {"": rows}
    if not rows:
        raise ValueError("rows must hold at least one row of images")
    arrays = {}
    for name, images in rows.items():
        images = np.asarray(images)
        if images.ndim == 4 and images.shape[-1] == 1:
            images = images[..., 0]
        if images.ndim != 3 or images.shape[0] < 2:
            raise ValueError(
                f"row {name!r} must have shape (steps, h, w) with steps >= 2, got {images.shape}"
            )
        arrays[name] = images
    steps = {a.shape[0] for a in arrays.values()}
    if len(steps) != 1:
        raise ValueError(f"all rows must have the same number of steps, got {sorted(steps)}")
    n = steps.pop()
    fig, axes = plt.subplots(len(arrays), n, figsize=(size * n + 1.2, size * len(arrays) + 0.5),
                             squeeze=False)
    for r, (name, images) in enumerate(arrays.items()):
        vmax = 255 if images.dtype == np.uint8 else 1.0
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(images[c], cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0 and name:
                ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
            if r == len(arrays) - 1:
                ax.set_xlabel(f"t={c / (n - 1):.2g}", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def training_curves(
    curves: Mapping[str, Sequence[float]],
    *,
    xlabel: str = "epoch",
    ylabel: str = "loss (nats per image)",
    ax: Any = None,
    title: str | None = None,
    start: int = 1,
) -> Figure:
    """Plot named curves over epochs (e.g. train and test negative ELBO), labelled."""
    import matplotlib.pyplot as plt

    if not curves:
        raise ValueError("curves must hold at least one named curve")
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.0, 3.6))
    else:
        fig = ax.figure
    for name, values in curves.items():
        values = np.asarray(values, dtype=float)
        if values.ndim != 1 or values.size == 0:
            raise ValueError(f"curve {name!r} must be a non-empty sequence, got {values.shape}")
        x = np.arange(start, start + values.size)
        ax.plot(x, values, marker="o" if values.size < 30 else None, markersize=3, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
