"""Plotting helpers shared by the chapters (matplotlib only).

Every helper returns the ``Figure`` so a notebook can add to it, and labels what it draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from tfpcourse._validate import check_int

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["image_grid"]


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
