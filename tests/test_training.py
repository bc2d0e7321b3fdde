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


def test_training_step_is_traced_once_whatever_the_batch_sizes(tf, trainable_normal):
    history = fit_max_likelihood(trainable_normal, DATA[:1050], epochs=3, batch_size=100)
    assert history.traces == 1  # the last batch of 50 reuses the same graph


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
