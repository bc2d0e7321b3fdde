"""One training loop for every model in the course: :func:`fit`.

The contract is small. A *model* is any object with

* ``trainable_variables``: the variables to train (``tf.Variable`` or Keras variables), and
* ``loss(batch, seed) -> (loss, metrics)``: ``loss`` is a float32 scalar, **the mean over the
  batch's examples**; ``metrics`` a dict of float32 scalars (batch means too) to record; ``seed``
  a stateless ``[2]`` int32 seed for whatever the loss draws at random.

:class:`tfpcourse.vae.VAE` is such a model, and so is a learner's own ``tf.Module`` with those
two members. :func:`fit_max_likelihood` wraps a TFP distribution in this contract (the loss is
the mean negative log-likelihood) and calls :func:`fit`.

What :func:`fit` does:

* one compiled step (``tf.function``, traced once whatever the batch sizes), with a stateless
  seed ``fold_in(seed, step)`` per step, so a run is repeatable;
* per-epoch means of the metrics over the training batches, and over ``valid`` after every
  epoch (:func:`evaluate`);
* checkpoints (model, optimizer state, counters and history) after every epoch, and a resume
  from the latest one;
* early stopping on a validation metric (``patience``), restoring the best epoch's variables;
* a progress bar;
* **several devices**: under a ``tf.distribute.MirroredStrategy`` (what :func:`tfpcourse.device.
  setup` returns on a machine with several GPUs, or with ``logical_cpus=``) the optimizer is
  built in the strategy's scope, each global batch is split between the replicas (a last batch
  with fewer examples than replicas is skipped), every
  replica's loss is weighted by its share of the global batch (so the summed gradients are the
  gradient of the global mean), and the metrics are reduced across replicas. The model must be
  built inside ``strategy.scope()``; a model built outside gets an error, not a silent
  single-device run;
* **mixed precision**: under the Keras ``mixed_float16`` policy the optimizer is wrapped in a
  ``LossScaleOptimizer`` (float16 gradients underflow without it); under ``mixed_bfloat16``
  nothing is needed (bfloat16 has float32's exponent range). Either way the loss must be
  float32: a 16-bit loss raises, because log-densities and the ELBO lose digits in 16 bits.

Losses are in the model's own units (nats per example for every model in the course).
"""

from __future__ import annotations

import json
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tfpcourse._validate import check_bool, check_int, check_number
from tfpcourse.seeding import fold_in

__all__ = [
    "FitHistory",
    "History",
    "MaxLikelihood",
    "Trainable",
    "evaluate",
    "fit",
    "fit_max_likelihood",
    "mean_nll",
]


@runtime_checkable
class Trainable(Protocol):
    """What :func:`fit` trains: variables and a loss (see the module notes)."""

    @property
    def trainable_variables(self) -> Any: ...  # pragma: no cover

    def loss(self, batch: Any, seed: Any) -> tuple[Any, Mapping[str, Any]]: ...  # pragma: no cover


@dataclass
class History:
    """What :func:`fit` did.

    ``train[name][i]`` is the mean of metric ``name`` over epoch ``i``'s batches (measured while
    training, so it lags a little behind the variables); ``valid[name][i]`` the mean over the
    validation data after epoch ``i``. ``train["loss"]`` is always there. After a resumed run,
    the lists also hold the earlier epochs. ``replicas`` is the number of devices that trained,
    ``precision`` the Keras dtype policy, and ``loss_scale`` the final loss scale under
    ``mixed_float16`` (``None`` otherwise).
    """

    train: dict[str, list[float]] = field(default_factory=dict)
    valid: dict[str, list[float]] = field(default_factory=dict)
    epoch_seconds: list[float] = field(default_factory=list)
    resumed_from_epoch: int = 0
    steps: int = 0
    seconds: float = 0.0
    traces: int = 0
    eval_traces: int = 0
    best_epoch: int = -1
    stopped_early: bool = False
    replicas: int = 1
    precision: str = "float32"
    loss_scale: float | None = None

    @property
    def epochs(self) -> int:
        return len(self.epoch_seconds)

    def to_dict(self) -> dict[str, Any]:
        return {
            "train": self.train,
            "valid": self.valid,
            "epoch_seconds": self.epoch_seconds,
            "steps": self.steps,
            "best_epoch": self.best_epoch,
        }


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


def _check_model(model: Any, variables: Any = None) -> list[Any]:
    if not callable(getattr(model, "loss", None)):
        raise TypeError(
            f"model must have a loss(batch, seed) method returning (loss, metrics), "
            f"got {type(model).__name__}"
        )
    if variables is None:
        variables = getattr(model, "trainable_variables", ())
    variables = list(variables)
    if not variables:
        raise ValueError(
            f"model {type(model).__name__} has no trainable variables: nothing to train. "
            "Keras 3 layers inside a tf.Module are not found by tf.Module itself; the module "
            "must list them in a trainable_variables property (as vae.Encoder and vae.Decoder "
            "do). TFP's tf_keras layers inside a Keras 3 Model are not tracked either."
        )
    return variables


def _check_dataset(name: str, dataset: Any) -> Any:
    """The element spec of a dataset of batches, with the batch dimension unknown (so one
    trace of a step fits every batch, the last smaller one included)."""
    import tensorflow as tf

    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(
            f"{name} must be a tf.data.Dataset of batches (see "
            f"tfpcourse.pipelines.image_dataset), got {type(dataset).__name__}"
        )

    def relax(spec: Any) -> Any:
        if not isinstance(spec, tf.TensorSpec) or spec.shape.rank is None or spec.shape.rank < 1:
            raise ValueError(
                f"{name} must yield batches: tensors (or tuples/dicts of tensors) whose first "
                f"dimension is the batch; got elements {dataset.element_spec}. Call .batch(n)."
            )
        return tf.TensorSpec((None, *spec.shape[1:]), spec.dtype)

    return tf.nest.map_structure(relax, dataset.element_spec)


def _batch_size(batch: Any) -> Any:
    import tensorflow as tf

    return tf.shape(tf.nest.flatten(batch)[0])[0]


def _check_loss(loss: Any, metrics: Any) -> tuple[Any, dict[str, Any]]:
    import tensorflow as tf

    loss = tf.convert_to_tensor(loss)
    if loss.shape.rank not in (0, None) or loss.dtype != tf.float32:
        raise TypeError(
            "model.loss must return a float32 scalar (the mean over the batch) first, got a "
            f"{loss.dtype.name} tensor of shape {loss.shape}. Under mixed precision, cast the "
            "networks' outputs to float32 before building distributions (as vae.Encoder and "
            "vae.Decoder do), so that log-probabilities and the loss stay float32."
        )
    if not isinstance(metrics, Mapping):
        raise TypeError(f"model.loss must return (loss, dict of metrics), got {type(metrics)}")
    metrics = {"loss": loss, **{k: v for k, v in metrics.items() if k != "loss"}}
    return loss, {k: tf.cast(v, tf.float32) for k, v in metrics.items()}


# --------------------------------------------------------------------------------------------
# Devices
# --------------------------------------------------------------------------------------------


def _strategy_of(variable: Any) -> Any:
    """The ``tf.distribute`` strategy that owns ``variable``, or ``None`` for a plain one."""
    import tensorflow as tf

    inner = variable
    value = getattr(variable, "value", None)
    if not isinstance(variable, tf.Variable) and value is not None and not callable(value):
        inner = value  # a Keras 3 variable wraps a tf.Variable
    if isinstance(inner, tf.distribute.DistributedValues):
        return inner.distribute_strategy
    return None


def _resolve_strategy(strategy: Any, variables: list[Any]) -> Any:
    import tensorflow as tf

    owners = [_strategy_of(v) for v in variables]
    distinct = {id(s): s for s in owners if s is not None}
    if strategy is None:
        if tf.distribute.has_strategy():
            strategy = tf.distribute.get_strategy()
        elif distinct:
            strategy = next(iter(distinct.values()))
        else:
            strategy = tf.distribute.get_strategy()
    elif not isinstance(strategy, tf.distribute.Strategy):
        raise TypeError(
            f"strategy must be a tf.distribute.Strategy or None, got {type(strategy).__name__}"
        )
    replicas = strategy.num_replicas_in_sync
    outside = [getattr(v, "path", None) or v.name for v, s in zip(variables, owners)
               if s is not strategy]
    default = type(strategy).__name__ == "_DefaultDistributionStrategy"
    if outside and not default:
        raise ValueError(
            f"{len(outside)} of the model's {len(variables)} variables were created outside "
            f"the scope of the {type(strategy).__name__} over {replicas} replicas (the first "
            f"is {outside[0]!r}). Build the model inside `with strategy.scope():`; otherwise "
            "it would train on one device only."
        )
    if default and distinct:
        raise ValueError(
            "the model's variables belong to a tf.distribute strategy, but fit was given the "
            "default strategy: pass strategy=the strategy the model was built with"
        )
    return strategy


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------

# Compiled evaluators, one per (model, input spec), so repeated evaluation never retraces.
_EVALUATORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _evaluator(model: Any, spec: Any) -> Any:
    import tensorflow as tf

    per_model = _EVALUATORS.setdefault(model, {})
    key = repr(spec)
    if key not in per_model:
        # A weak reference: a closure over the model itself would keep every evaluated model
        # alive through the WeakKeyDictionary's value (a leak).
        model_ref = weakref.ref(model)

        @tf.function(input_signature=[spec, tf.TensorSpec([2], tf.int32)])
        def evaluate_batch(batch, seed):
            return _check_loss(*model_ref().loss(batch, seed))[1]

        per_model[key] = evaluate_batch
    return per_model[key]


def evaluate(model: Any, dataset: Any, *, seed: int = 0) -> dict[str, float]:
    """Mean metrics of ``model.loss`` over a dataset (weighted by batch size), compiled.

    The random draws use stateless seeds derived from ``seed`` and the batch index, so the same
    call gives the same numbers. Runs on one device (a distributed model's variables are read
    from their first copy).
    """
    import tensorflow as tf

    _check_model(model)
    spec = _check_dataset("dataset", dataset)
    seed = check_int("seed", seed, minimum=0, maximum=2**31 - 1)
    step = _evaluator(model, spec)
    base = tf.constant([seed, 1], tf.int32)
    sums: dict[str, float] = {}
    count = 0
    for i, batch in enumerate(dataset):
        metrics = step(batch, fold_in(base, i))
        n = int(tf.nest.flatten(batch)[0].shape[0])
        for name, value in metrics.items():
            sums[name] = sums.get(name, 0.0) + float(value) * n
        count += n
    if count == 0:
        raise ValueError("dataset is empty")
    return {name: total / count for name, total in sums.items()}


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


def fit(
    model: Any,
    train: Any,
    *,
    epochs: int,
    valid: Any = None,
    learning_rate: float = 1e-3,
    optimizer: Any = None,
    seed: int = 0,
    patience: int | None = None,
    monitor: str = "loss",
    restore_best: bool | None = None,
    checkpoint_dir: str | Path | None = None,
    keep_checkpoints: int = 2,
    progress: bool = False,
    jit_compile: bool = False,
    static_shapes: bool = False,
    strategy: Any = None,
    variables: Any = None,
) -> History:
    """Train ``model`` for ``epochs`` epochs, one compiled step per batch.

    Parameters
    ----------
    model:
        Anything with ``trainable_variables`` and ``loss(batch, seed) -> (loss, metrics)`` (see
        the module notes), e.g. :class:`tfpcourse.vae.VAE`.
    train, valid:
        ``tf.data.Dataset`` of batches (see :func:`tfpcourse.pipelines.image_dataset`): each
        element is what ``model.loss`` takes as ``batch``. ``valid`` is evaluated after every
        epoch.
    epochs:
        The total number of epochs. With a checkpoint from an earlier run, training continues
        from the saved epoch up to this number.
    learning_rate:
        The step size of the default optimizer, Adam.
    optimizer:
        A Keras 3 optimizer to use instead (not yet built: :func:`fit` builds it, inside the
        strategy's scope).
    seed:
        Base of the stateless seeds of each step (``fold_in(seed, step)``). On several replicas
        each folds in its replica number too, so the draws differ from a one-device run (and
        the results agree in distribution, not bit for bit); a deterministic loss gives the
        same results on any number of devices. The step counter is checkpointed, so a resumed
        run continues the same stream of noise (the data pipeline restarts its own shuffling).
    patience:
        Stop when ``valid[monitor]`` has not improved (decreased) for this many epochs.
        ``None`` trains for all epochs.
    monitor:
        The validation metric that early stopping and ``restore_best`` watch (lower is better).
    restore_best:
        At the end, set the variables to those of the epoch with the best ``valid[monitor]``.
        Default: ``True`` with ``patience``, else ``False``. Needs ``valid``. (After a resume,
        the best is tracked from the resumed epoch on.)
    checkpoint_dir:
        Save the model, the optimizer state, the counters and the history here after every
        epoch, and resume from the latest save if one exists. A checkpoint written on N devices
        resumes on any number of devices.
    keep_checkpoints:
        How many recent checkpoints to keep.
    progress:
        Show a progress bar over epochs with the latest losses.
    jit_compile:
        Compile the step with XLA (measure first: on small CPUs it is often no faster).
    static_shapes:
        Trace the step once per distinct batch shape (twice for a batched dataset: the full
        batches and a smaller last one) instead of once for every batch size. With a known
        batch size, TFP's distributions and bijectors do their shape arithmetic once, at trace
        time, instead of as graph ops in every step: measured here, a small flow's step (chapter
        04's RealNVP, batch 256) runs 1.7-2x faster, a convolutional VAE's no faster. The
        default, ``False``, gives one trace for any batch size.
    strategy:
        The ``tf.distribute.Strategy`` to train with. Default: the one whose scope is active,
        else the one that owns the model's variables, else none (one device).
    variables:
        Train these instead of ``model.trainable_variables``.

    Returns
    -------
    History
        Per-epoch metrics, timings, and how many times the step was traced (1 is expected).

    Raises
    ------
    ValueError
        If there is nothing to train, if the model was built outside the strategy's scope, on
        bad arguments, or if ``train`` is empty.
    TypeError
        If the model does not follow the contract (e.g. a float16 loss).
    """
    import keras
    import tensorflow as tf

    variables = _check_model(model, variables)
    spec = _check_dataset("train", train)
    if valid is not None:
        _check_dataset("valid", valid)
    epochs = check_int("epochs", epochs, minimum=1)
    learning_rate = check_number("learning_rate", learning_rate, minimum=0.0,
                                 strict_minimum=True)
    seed = check_int("seed", seed, minimum=0, maximum=2**31 - 1)
    patience = check_int("patience", patience, minimum=1, allow_none=True)
    if not isinstance(monitor, str):
        raise TypeError(f"monitor must be a metric name, got {monitor!r}")
    restore_best = patience is not None if restore_best is None else restore_best
    check_bool("restore_best", restore_best)
    if (patience is not None or restore_best) and valid is None:
        raise ValueError("patience and restore_best need validation data: pass valid=...")
    keep_checkpoints = check_int("keep_checkpoints", keep_checkpoints, minimum=1)
    check_bool("progress", progress)
    check_bool("jit_compile", jit_compile)
    check_bool("static_shapes", static_shapes)
    if optimizer is not None and not isinstance(optimizer, keras.optimizers.Optimizer):
        raise TypeError(
            f"optimizer must be a Keras 3 optimizer (keras.optimizers.*), "
            f"got {type(optimizer).__name__}"
        )
    strategy = _resolve_strategy(strategy, variables)
    replicas = strategy.num_replicas_in_sync
    policy = keras.mixed_precision.global_policy().name

    with strategy.scope():
        if optimizer is None:
            optimizer = keras.optimizers.Adam(learning_rate)
        if policy == "mixed_float16" and not isinstance(
            optimizer, keras.optimizers.LossScaleOptimizer
        ):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(variables)  # slot variables exist before any restore or trace
        counter = {"dtype": tf.int64, "trainable": False,
                   "aggregation": tf.VariableAggregation.ONLY_FIRST_REPLICA}
        step_counter = tf.Variable(0, name="step", **counter)
        epoch_counter = tf.Variable(0, name="epoch", **counter)
    scale_loss = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    base_seed = tf.constant([seed, 0], tf.int32)

    history = History(replicas=replicas, precision=policy)
    manager = None
    if checkpoint_dir is not None:
        checkpoint_dir = Path(checkpoint_dir)
        checkpoint = tf.train.Checkpoint(
            model=model, optimizer=optimizer, step=step_counter, epoch=epoch_counter
        )
        manager = tf.train.CheckpointManager(
            checkpoint, str(checkpoint_dir), max_to_keep=keep_checkpoints
        )
        if manager.latest_checkpoint:
            checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
            saved = checkpoint_dir / "history.json"
            if saved.exists():
                data = json.loads(saved.read_text())
                history.train = {k: list(v) for k, v in data["train"].items()}
                history.valid = {k: list(v) for k, v in data["valid"].items()}
                history.epoch_seconds = list(data["epoch_seconds"])
                history.steps = int(data["steps"])
                history.best_epoch = int(data.get("best_epoch", -1))
            history.resumed_from_epoch = int(epoch_counter.numpy())

    def replica_step(batch, step_seed):
        if replicas == 1:
            seed_here, share = step_seed, None
        else:
            context = tf.distribute.get_replica_context()
            seed_here = fold_in(step_seed, context.replica_id_in_sync_group)
            local = tf.cast(_batch_size(batch), tf.float32)
            share = local / context.all_reduce(tf.distribute.ReduceOp.SUM, local)
        with tf.GradientTape() as tape:
            loss, metrics = _check_loss(*model.loss(batch, seed_here))
            if share is not None:
                # This replica's part of the global mean: the replicas' gradients are summed.
                loss = loss * share
                metrics = {k: v * share for k, v in metrics.items()}
            objective = optimizer.scale_loss(loss) if scale_loss else loss
        grads = tape.gradient(objective, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return metrics

    if replicas == 1:
        train_data, signature = train, [spec]
    else:
        # A global batch smaller than the number of replicas would leave a replica with no
        # examples (and many losses, a mean over none, undefined): such a batch is skipped.
        train_data = strategy.experimental_distribute_dataset(train.filter(
            lambda *element: _batch_size(element) >= replicas))
        signature = [train_data.element_spec]

    @tf.function(input_signature=None if static_shapes else signature,
                 jit_compile=jit_compile, reduce_retracing=False)
    def train_step(batch):
        step_seed = fold_in(base_seed, step_counter)
        if replicas == 1:
            metrics, size = replica_step(batch, step_seed), _batch_size(batch)
        else:
            per_replica = strategy.run(replica_step, args=(batch, step_seed))
            metrics = {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                       for k, v in per_replica.items()}
            size = strategy.reduce(
                tf.distribute.ReduceOp.SUM,
                strategy.run(lambda b: _batch_size(b), args=(batch,)), axis=None,
            )
        step_counter.assign_add(1)
        return metrics, size

    best_value = float("inf")
    best_variables = None
    since_best = 0
    bar = None
    start_epoch = int(epoch_counter.numpy())
    if progress and start_epoch < epochs:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, initial=start_epoch, desc="training", unit="epoch")
    start = time.perf_counter()
    for epoch in range(start_epoch, epochs):
        t0 = time.perf_counter()
        batch_metrics, sizes = [], []
        for batch in train_data:
            metrics, size = train_step(batch)
            batch_metrics.append(metrics)
            sizes.append(size)  # tensors: read once per epoch, not once per step
        if not sizes:
            raise ValueError("train is empty")
        sizes = [int(n) for n in sizes]
        weights = np.asarray(sizes, dtype=np.float64) / sum(sizes)
        for name in batch_metrics[0]:
            value = float(np.dot(weights, [float(m[name]) for m in batch_metrics]))
            history.train.setdefault(name, []).append(value)
        history.steps += len(sizes)
        history.epoch_seconds.append(time.perf_counter() - t0)
        if valid is not None:
            for name, value in evaluate(model, valid, seed=seed).items():
                history.valid.setdefault(name, []).append(value)
            if monitor not in history.valid:
                raise ValueError(
                    f"monitor must be one of the metrics {sorted(history.valid)}, got {monitor!r}"
                )
            current = history.valid[monitor][-1]
            if current < best_value:
                best_value, history.best_epoch, since_best = current, epoch, 0
                if restore_best:
                    best_variables = [np.array(v.numpy()) for v in variables]
            else:
                since_best += 1
        else:
            history.best_epoch = epoch
        epoch_counter.assign(epoch + 1)
        if manager is not None:
            manager.save(checkpoint_number=epoch + 1)
            (checkpoint_dir / "history.json").write_text(json.dumps(history.to_dict()))
        if bar is not None:
            shown = {"loss": history.train["loss"][-1]}
            if valid is not None:
                shown[f"valid {monitor}"] = history.valid[monitor][-1]
            bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()})
            bar.update(1)
        if patience is not None and since_best >= patience:
            history.stopped_early = True
            break
    if bar is not None:
        bar.close()
    if restore_best and best_variables is not None:
        for v, value in zip(variables, best_variables):
            v.assign(value)
    history.seconds = time.perf_counter() - start
    history.traces = train_step.experimental_get_tracing_count()
    if scale_loss:
        history.loss_scale = float(optimizer.dynamic_scale.numpy())
    if valid is not None:
        history.eval_traces = _evaluator(model, _check_dataset("valid", valid)) \
            .experimental_get_tracing_count()
    return history


# --------------------------------------------------------------------------------------------
# Maximum likelihood
# --------------------------------------------------------------------------------------------


@dataclass
class FitHistory:
    """What :func:`fit_max_likelihood` did.

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
    epoch_seconds: list[float] = field(default_factory=list)
    traces: int = 0
    eval_traces: int = 0

    @property
    def epochs(self) -> int:
        return len(self.train_nll)


class MaxLikelihood:
    """A TFP distribution in :func:`fit`'s contract: ``loss(x, seed)`` is the mean negative
    log-likelihood of the batch ``x`` (nats per example); the seed is not used."""

    def __init__(self, distribution: Any, variables: Any = None) -> None:
        if not hasattr(distribution, "log_prob"):
            raise TypeError(
                f"distribution must be a TFP distribution, got {type(distribution).__name__}"
            )
        self.distribution = distribution
        self._variables = list(
            distribution.trainable_variables if variables is None else variables
        )
        if not self._variables:
            raise ValueError(
                "the distribution has no trainable variables: nothing to fit. Parameters must "
                "be tf.Variable (or tfp.util.TransformedVariable) objects held by the "
                "distribution or its bijectors; layers built outside it are not found "
                "automatically."
            )

    @property
    def trainable_variables(self) -> list[Any]:
        return self._variables

    def loss(self, x: Any, seed: Any) -> tuple[Any, dict[str, Any]]:
        import tensorflow as tf

        return -tf.reduce_mean(self.distribution.log_prob(x)), {}


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
    optimizer: Any = None,
    patience: int | None = None,
    seed: int = 0,
    progress: bool = False,
    jit_compile: bool = False,
    variables: Any = None,
    strategy: Any = None,
) -> FitHistory:
    """Fit ``distribution`` to the arrays ``train`` by maximum likelihood with Adam, using
    :func:`fit`.

    The step is traced for the full batch size and, if ``len(train)`` is not a multiple of
    ``batch_size``, once more for the last batch (``static_shapes=True`` in :func:`fit`): a
    flow's step runs up to twice as fast with its shapes known at trace time.

    Parameters
    ----------
    distribution:
        A TFP distribution whose parameters include trainable variables.
    train, valid:
        Arrays of shape ``(n, *event_shape)``. With ``valid``, its NLL is recorded after every
        epoch, and at the end the variables of the best epoch are restored.
    epochs, batch_size, learning_rate:
        The optimisation budget.
    optimizer:
        A Keras 3 optimizer to use instead of Adam with ``learning_rate`` (e.g. Adam with a
        learning-rate schedule), as in :func:`fit`.
    jit_compile:
        Compile the step with XLA, as in :func:`fit` (pays for layers made of many small
        operations, such as splines; measure before you choose).
    patience:
        Stop when the validation NLL has not improved for this many epochs. ``None`` trains
        for all epochs.
    seed:
        Seeds the shuffling.
    progress:
        Show a progress bar over epochs.
    variables:
        The variables to train; default ``distribution.trainable_variables``.
    strategy:
        As in :func:`fit` (build the distribution inside ``strategy.scope()``).

    Returns
    -------
    FitHistory

    Raises
    ------
    ValueError
        If there is nothing to train (a common Keras/TFP pitfall: layers that were not
        tracked), if the data do not match the event shape, or on bad arguments.
    """
    import tensorflow as tf

    epochs = check_int("epochs", epochs, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    patience = check_int("patience", patience, minimum=1, allow_none=True)
    seed = check_int("seed", seed, minimum=0)
    model = MaxLikelihood(distribution, variables)
    event_shape = tuple(int(d) for d in distribution.event_shape)
    dtype = distribution.dtype.as_numpy_dtype
    train = _check_data("train", train, event_shape).astype(dtype)
    if valid is not None:
        valid = _check_data("valid", valid, event_shape).astype(dtype)
    if patience is not None and valid is None:
        raise ValueError("patience needs validation data: pass valid=...")

    dataset = (
        tf.data.Dataset.from_tensor_slices(train)
        .shuffle(len(train), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    # Validation in chunks of fixed maximum size: evaluated after every epoch, so it must be
    # as fast as the training steps.
    valid_ds = None if valid is None else tf.data.Dataset.from_tensor_slices(valid).batch(4096)
    history = fit(
        model, dataset, epochs=epochs, valid=valid_ds, learning_rate=learning_rate,
        optimizer=optimizer, seed=seed, patience=patience, restore_best=valid is not None,
        progress=progress,
        strategy=strategy, static_shapes=True, jit_compile=jit_compile,
    )
    return FitHistory(
        train_nll=history.train["loss"],
        valid_nll=history.valid.get("loss", []),
        best_epoch=history.best_epoch,
        stopped_early=history.stopped_early,
        steps=history.steps,
        seconds=history.seconds,
        epoch_seconds=history.epoch_seconds,
        traces=history.traces,
        eval_traces=history.eval_traces,
    )
