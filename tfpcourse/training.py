"""Maximum-likelihood fitting of a distribution with trainable variables.

:func:`fit_max_likelihood` minimises the average negative log-likelihood (NLL) of data under a
distribution whose parameters are ``tf.Variable`` objects (for example a
``TransformedDistribution`` with a trainable bijector). The training step is one compiled
``tf.function`` with a fixed input signature, so it is traced once, whatever the batch sizes;
the data flow through a shuffled, prefetched ``tf.data`` pipeline; the validation NLL is
computed after every epoch; and training can stop early, restoring the best variables.

The loss is in *nats per example*: ``-mean(log p(x))``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tfpcourse._validate import check_bool, check_int, check_number

__all__ = ["FitHistory", "fit_max_likelihood", "mean_nll"]


@dataclass
class FitHistory:
    """What happened during :func:`fit_max_likelihood`.

    ``train_nll[i]`` is the mean training NLL over epoch ``i``'s batches (computed while
    training, so it lags a little behind the variables); ``valid_nll[i]`` is the NLL of the
    validation data after epoch ``i`` (empty without validation data).
    """

    train_nll: list[float] = field(default_factory=list)
    valid_nll: list[float] = field(default_factory=list)
    best_epoch: int = -1
    stopped_early: bool = False
    steps: int = 0
    seconds: float = 0.0
    traces: int = 0
    eval_traces: int = 0

    @property
    def epochs(self) -> int:
        return len(self.train_nll)


def _check_data(name: str, value: Any, event_shape: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != 1 + len(event_shape) or tuple(array.shape[1:]) != event_shape:
        raise ValueError(
            f"{name} must have shape (n, {', '.join(map(str, event_shape))}) to match the "
            f"distribution's event shape {list(event_shape)}, got {array.shape}"
        )
    if array.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one example, got 0")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def mean_nll(distribution: Any, data: Any, *, batch_size: int = 4096) -> float:
    """The mean negative log-likelihood (nats per example) of ``data``, computed in batches."""
    import tensorflow as tf

    batch_size = check_int("batch_size", batch_size, minimum=1)
    data = np.asarray(data, dtype=distribution.dtype.as_numpy_dtype)
    total = 0.0
    for start in range(0, len(data), batch_size):
        chunk = tf.constant(data[start : start + batch_size])
        total += float(-tf.reduce_sum(distribution.log_prob(chunk)))
    return total / len(data)


def fit_max_likelihood(
    distribution: Any,
    train: Any,
    *,
    valid: Any = None,
    epochs: int = 100,
    batch_size: int = 256,
    learning_rate: float = 1e-2,
    patience: int | None = None,
    seed: int = 0,
    progress: bool = False,
    variables: Any = None,
) -> FitHistory:
    """Fit ``distribution`` to ``train`` by maximum likelihood with Adam.

    Parameters
    ----------
    distribution:
        A TFP distribution whose parameters include trainable variables.
    train, valid:
        Arrays of shape ``(n, *event_shape)``. With ``valid``, its NLL is recorded after every
        epoch (and used for early stopping).
    epochs, batch_size, learning_rate:
        The optimisation budget.
    patience:
        Stop when the validation NLL has not improved for this many epochs, and restore the
        variables of the best epoch. ``None`` trains for all epochs.
    seed:
        Seeds the shuffling.
    progress:
        Show a progress bar over epochs.
    variables:
        The variables to train; default ``distribution.trainable_variables``.

    Returns
    -------
    FitHistory

    Raises
    ------
    ValueError
        If there is nothing to train (a common Keras/TFP pitfall: layers that were not
        tracked), if the data do not match the event shape, or on bad arguments.
    """
    import keras
    import tensorflow as tf

    epochs = check_int("epochs", epochs, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    learning_rate = check_number("learning_rate", learning_rate, minimum=0.0,
                                 strict_minimum=True)
    patience = check_int("patience", patience, minimum=1, allow_none=True)
    seed = check_int("seed", seed, minimum=0)
    check_bool("progress", progress)
    if not hasattr(distribution, "log_prob"):
        raise TypeError(
            f"distribution must be a TFP distribution, got {type(distribution).__name__}"
        )
    variables = list(distribution.trainable_variables if variables is None else variables)
    if not variables:
        raise ValueError(
            "the distribution has no trainable variables: nothing to fit. Parameters must be "
            "tf.Variable (or tfp.util.TransformedVariable) objects held by the distribution or "
            "its bijectors; layers built outside it are not found automatically."
        )
    event_shape = tuple(int(d) for d in distribution.event_shape)
    dtype = distribution.dtype
    train = _check_data("train", train, event_shape).astype(dtype.as_numpy_dtype)
    if valid is not None:
        valid = _check_data("valid", valid, event_shape).astype(dtype.as_numpy_dtype)
    if patience is not None and valid is None:
        raise ValueError("patience needs validation data: pass valid=...")

    dataset = (
        tf.data.Dataset.from_tensor_slices(train)
        .shuffle(len(train), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    optimizer = keras.optimizers.Adam(learning_rate)
    optimizer.build(variables)  # create Adam's moment variables now, outside the step

    @tf.function(input_signature=[tf.TensorSpec((None, *event_shape), dtype)])
    def train_step(batch):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(distribution.log_prob(batch))
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    @tf.function(input_signature=[tf.TensorSpec((None, *event_shape), dtype)])
    def nll_sum(batch):
        return -tf.reduce_sum(distribution.log_prob(batch))

    def valid_nll() -> float:
        # Compiled, in chunks of fixed maximum size: evaluated after every epoch, so it must be
        # as fast as the training steps (eagerly it can cost more than the epoch itself).
        total = sum(float(nll_sum(valid[i : i + 4096])) for i in range(0, len(valid), 4096))
        return total / len(valid)

    history = FitHistory()
    best = (float("inf"), [v.numpy() for v in variables])
    since_best = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, desc="fitting", unit="epoch")
    start = time.perf_counter()
    for epoch in range(epochs):
        total, count = 0.0, 0
        for batch in dataset:
            loss = train_step(batch)
            n = int(batch.shape[0])
            total += float(loss) * n
            count += n
            history.steps += 1
        history.train_nll.append(total / count)
        if valid is not None:
            history.valid_nll.append(valid_nll())
            if history.valid_nll[-1] < best[0]:
                best = (history.valid_nll[-1], [v.numpy() for v in variables])
                history.best_epoch = epoch
                since_best = 0
            else:
                since_best += 1
        else:
            history.best_epoch = epoch
        if bar is not None:
            postfix = {"train NLL": f"{history.train_nll[-1]:.4f}"}
            if history.valid_nll:
                postfix["valid NLL"] = f"{history.valid_nll[-1]:.4f}"
            bar.set_postfix(postfix)
            bar.update(1)
        if patience is not None and since_best >= patience:
            history.stopped_early = True
            break
    if bar is not None:
        bar.close()
    if valid is not None:
        for v, value in zip(variables, best[1]):
            v.assign(value)
    history.seconds = time.perf_counter() - start
    history.traces = train_step.experimental_get_tracing_count()
    history.eval_traces = nll_sum.experimental_get_tracing_count()
    return history
