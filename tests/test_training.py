import numpy as np
import pytest

from tfpcourse.training import fit_max_likelihood, mean_nll


@pytest.fixture
def trainable_normal(tf):
    import tensorflow_probability as tfp

    return tfp.distributions.Normal(
        tf.Variable(0.0), tfp.util.TransformedVariable(1.0, tfp.bijectors.Softplus())
    )


DATA = np.random.default_rng(0).normal(2.0, 0.5, size=2000).astype(np.float32)


def test_fitting_a_normal_reaches_the_closed_form_mle(tf, trainable_normal):
    history = fit_max_likelihood(trainable_normal, DATA, epochs=60, batch_size=200,
                                 learning_rate=0.05)
    assert float(trainable_normal.loc) == pytest.approx(DATA.mean(), abs=0.02)
    assert float(tf.convert_to_tensor(trainable_normal.scale)) == pytest.approx(DATA.std(),
                                                                                abs=0.02)
    # The NLL of a Normal at its MLE is 0.5 * log(2 pi e sigma^2).
    best = 0.5 * np.log(2 * np.pi * np.e * DATA.var())
    assert mean_nll(trainable_normal, DATA) == pytest.approx(best, abs=1e-3)
    assert history.train_nll[-1] < history.train_nll[0]
    assert history.steps == 60 * 10 and history.epochs == 60


def test_training_step_is_traced_once_per_batch_shape_never_per_epoch(tf, trainable_normal):
    history = fit_max_likelihood(trainable_normal, DATA[:1050], epochs=3, batch_size=100)
    assert history.traces == 2  # batches of 100, and the last one of 50: static shapes
    history = fit_max_likelihood(trainable_normal, DATA[:1000], epochs=3, batch_size=100)
    assert history.traces == 1  # every batch has the same shape


def test_fit_traces_once_for_any_batch_size_unless_asked_for_static_shapes(tf):
    from tfpcourse import training

    data, _, _ = _regression_data(tf)  # batches of 32, 32, 32 and 4
    assert training.fit(LinearRegression(tf), data, epochs=2).traces == 1
    assert training.fit(LinearRegression(tf), data, epochs=2, static_shapes=True).traces == 2


def test_validation_is_compiled_once_and_matches_the_eager_nll(tf, trainable_normal):
    history = fit_max_likelihood(trainable_normal, DATA, valid=DATA[:700], epochs=3,
                                 batch_size=500)
    assert history.eval_traces == 1
    assert history.valid_nll[-1] == pytest.approx(mean_nll(trainable_normal, DATA[:700]),
                                                  rel=1e-6)


def test_early_stopping_restores_the_best_variables(tf, trainable_normal):
    history = fit_max_likelihood(trainable_normal, DATA, valid=DATA[:500], epochs=200,
                                 batch_size=2000, learning_rate=0.5, patience=3)
    assert history.stopped_early and history.epochs < 200
    assert history.best_epoch == int(np.argmin(history.valid_nll))
    assert mean_nll(trainable_normal, DATA[:500]) == pytest.approx(min(history.valid_nll),
                                                                   rel=1e-5)


def test_a_distribution_without_variables_is_a_clear_error(tf):
    import tensorflow_probability as tfp

    with pytest.raises(ValueError, match="no trainable variables"):
        fit_max_likelihood(tfp.distributions.Normal(0.0, 1.0), DATA)


def test_data_must_match_the_event_shape(tf, trainable_normal):
    with pytest.raises(ValueError, match=r"train must have shape \(n, \)"):
        fit_max_likelihood(trainable_normal, DATA.reshape(-1, 2))
    with pytest.raises(ValueError, match="NaN or infinite"):
        fit_max_likelihood(trainable_normal, np.array([1.0, np.nan], np.float32))


def test_bad_arguments_are_rejected(tf, trainable_normal):
    with pytest.raises(ValueError, match=r"learning_rate must be > 0\.0"):
        fit_max_likelihood(trainable_normal, DATA, learning_rate=0.0)
    with pytest.raises(ValueError, match="patience needs validation data"):
        fit_max_likelihood(trainable_normal, DATA, patience=2)
    with pytest.raises(TypeError, match="epochs must be an integer"):
        fit_max_likelihood(trainable_normal, DATA, epochs=2.5)
    with pytest.raises(TypeError, match="distribution must be a TFP distribution"):
        fit_max_likelihood(object(), DATA)


# --------------------------------------------------------------------------------------------
# The general loop: training.fit with a learner's own model
# --------------------------------------------------------------------------------------------


class LinearRegression:
    """A learner's own model: two members are all the loop needs."""

    def __init__(self, tf):
        self.tf = tf
        self.w = tf.Variable(tf.zeros((2, 1)))
        self.seeds = []

    @property
    def trainable_variables(self):
        return [self.w]

    def loss(self, batch, seed):
        x, y = batch
        self.seeds.append(seed)  # traced once: records the symbolic seed
        error = self.tf.matmul(x, self.w) - y
        return self.tf.reduce_mean(error**2), {"mae": self.tf.reduce_mean(abs(error))}


def _regression_data(tf, n=100, batch=32):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    y = (x @ np.array([[2.0], [-1.0]]) + 0.05 * rng.normal(size=(n, 1))).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch), x, y


def test_fit_trains_a_learners_model_on_tuple_batches(tf):
    from tfpcourse import training

    data, x, y = _regression_data(tf)
    model = LinearRegression(tf)
    history = training.fit(model, data, epochs=60, learning_rate=0.1, valid=data)
    np.testing.assert_allclose(model.w.numpy().ravel(), [2.0, -1.0], atol=0.05)
    assert set(history.train) == {"loss", "mae"} and history.traces == 1
    assert history.steps == 60 * 4 and history.replicas == 1
    assert history.precision == "float32" and history.loss_scale is None
    # The epoch's training loss is the batch-size-weighted mean (batches of 32, 32, 32, 4).
    assert history.valid["loss"][-1] == pytest.approx(
        float(np.mean((x @ model.w.numpy() - y) ** 2)), rel=1e-5)


def test_fit_early_stopping_restores_the_best_epoch_of_the_monitored_metric(tf):
    from tfpcourse import training

    data, _, _ = _regression_data(tf)
    model = LinearRegression(tf)
    history = training.fit(model, data, epochs=300, learning_rate=1.5, valid=data,
                           patience=2, monitor="mae")
    assert history.stopped_early and history.epochs < 300
    assert history.best_epoch == int(np.argmin(history.valid["mae"]))
    again = training.evaluate(model, data)
    assert again["mae"] == pytest.approx(min(history.valid["mae"]), rel=1e-5)
    assert again["mae"] < history.valid["mae"][-1]  # the last epoch was worse: restored


def test_fit_rejects_a_loss_that_breaks_the_contract(tf):
    from tfpcourse import training

    data, _, _ = _regression_data(tf)

    class PerExample(LinearRegression):
        def loss(self, batch, seed):
            x, y = batch
            return (self.tf.matmul(x, self.w) - y) ** 2, {}

    with pytest.raises(TypeError, match=r"float32 scalar \(the mean over the batch\)"):
        training.fit(PerExample(tf), data, epochs=1)

    class NoDict(LinearRegression):
        def loss(self, batch, seed):
            return self.tf.reduce_sum(self.w), [1.0]

    with pytest.raises(TypeError, match=r"\(loss, dict of metrics\)"):
        training.fit(NoDict(tf), data, epochs=1)


def test_fit_checks_its_arguments(tf):
    from tfpcourse import training

    data, _, _ = _regression_data(tf)
    model = LinearRegression(tf)
    with pytest.raises(ValueError, match="patience and restore_best need validation data"):
        training.fit(model, data, epochs=1, patience=2)
    with pytest.raises(ValueError, match=r"monitor must be one of the metrics \['loss', 'mae'\]"):
        training.fit(model, data, epochs=1, valid=data, monitor="accuracy")
    with pytest.raises(TypeError, match="optimizer must be a Keras 3 optimizer"):
        training.fit(model, data, epochs=1, optimizer="adam")
    with pytest.raises(TypeError, match=r"strategy must be a tf\.distribute\.Strategy"):
        training.fit(model, data, epochs=1, strategy="mirrored")
    with pytest.raises(ValueError, match="train must yield batches"):
        training.fit(model, tf.data.Dataset.from_tensor_slices(np.ones(3, np.float32)),
                     epochs=1)
    with pytest.raises(ValueError, match="train is empty"):
        training.fit(model, data.take(0), epochs=1)


def test_fit_uses_a_given_optimizer_and_one_seed_per_step(tf):
    import keras

    from tfpcourse import training

    data, _, _ = _regression_data(tf)

    class SeedRecorder(LinearRegression):
        def loss(self, batch, seed):
            loss, metrics = super().loss(batch, seed)
            return loss, {**metrics, "seed0": tf.cast(seed[0], tf.float32),
                          "seed1": tf.cast(seed[1], tf.float32)}

    model = SeedRecorder(tf)
    sgd = keras.optimizers.SGD(0.0)  # a zero step: the variables must not move
    history = training.fit(model, data, epochs=2, optimizer=sgd, seed=5)
    assert np.all(model.w.numpy() == 0.0)
    # Two epochs see different seeds (the step is folded into the base seed; TensorFlow's
    # fold_in keeps the first word and puts the step in the second) ...
    assert history.train["seed1"][0] != history.train["seed1"][1]
    again = training.fit(SeedRecorder(tf), data, epochs=2, optimizer=keras.optimizers.SGD(0.0),
                         seed=5)
    # ... and a rerun with the same seed sees the same ones.
    assert again.train["seed0"] == history.train["seed0"]
    assert again.train["seed1"] == history.train["seed1"]


# --------------------------------------------------------------------------------------------
# fit_max_likelihood: optimizer, XLA and timings
# --------------------------------------------------------------------------------------------


def test_fit_max_likelihood_trains_with_the_optimizer_it_is_given(tf, trainable_normal):
    import keras

    sgd = keras.optimizers.SGD(learning_rate=0.0)  # a zero step: nothing may move
    history = fit_max_likelihood(trainable_normal, DATA, epochs=3, batch_size=300,
                                 learning_rate=0.1, optimizer=sgd)
    assert history.steps == 3 * 7  # 2,000 points in batches of 300: 7 per epoch
    assert int(sgd.iterations) == history.steps  # every step went through this optimizer
    assert float(trainable_normal.loc) == 0.0  # ... and not through Adam(learning_rate)
    assert history.train_nll[0] == pytest.approx(history.train_nll[-1], rel=1e-6)


def test_fit_max_likelihood_with_xla_matches_the_plain_compiled_step(tf):
    import tensorflow_probability as tfp

    def make():
        return tfp.distributions.Normal(
            tf.Variable(0.0), tfp.util.TransformedVariable(1.0, tfp.bijectors.Softplus()))

    plain, xla = make(), make()
    h_plain = fit_max_likelihood(plain, DATA, epochs=3, batch_size=200, learning_rate=0.05)
    h_xla = fit_max_likelihood(xla, DATA, epochs=3, batch_size=200, learning_rate=0.05,
                               jit_compile=True)
    assert float(xla.loc) > 0.5  # it trained (from 0 towards the data mean 2)
    assert float(xla.loc) == pytest.approx(float(plain.loc), rel=1e-5)
    np.testing.assert_allclose(h_xla.train_nll, h_plain.train_nll, rtol=1e-5)
    assert h_xla.traces == 1 and h_xla.steps == h_plain.steps == 30


def test_fit_max_likelihood_records_the_seconds_of_every_epoch(tf, trainable_normal):
    history = fit_max_likelihood(trainable_normal, DATA, valid=DATA[:500], epochs=4,
                                 batch_size=500)
    assert len(history.epoch_seconds) == history.epochs == 4
    assert all(s > 0 for s in history.epoch_seconds)
    # Epoch times count training only; the total also counts validation after each epoch.
    assert sum(history.epoch_seconds) <= history.seconds
    assert history.seconds > 0


def test_fit_max_likelihood_rejects_a_bad_optimizer_or_jit_flag(tf, trainable_normal):
    with pytest.raises(TypeError, match="optimizer must be a Keras 3 optimizer"):
        fit_max_likelihood(trainable_normal, DATA, epochs=1, optimizer="adam")
    with pytest.raises(TypeError, match="jit_compile must be True or False"):
        fit_max_likelihood(trainable_normal, DATA, epochs=1, jit_compile=1)
