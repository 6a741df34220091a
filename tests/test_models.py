"""Model specs -> Keras models: architecture, parameter counts, heads, optimizers."""

import keras
import numpy as np
import pytest

from tbreg import families, models

HIGGS_FEATURES = 28


@pytest.mark.parametrize("name, params", [("tiny", 481), ("small", 753), ("medium", 10_241), ("large", 803_329)])
def test_sizes_parameter_counts_on_higgs(name, params):
    (spec,) = families.SIZES.select([name])
    assert models.build_model(spec, HIGGS_FEATURES, 2).count_params() == params


def test_regularizers_are_the_large_model_with_the_same_parameter_count():
    for spec in families.REGULARIZERS.models:
        model = models.build_model(spec, HIGGS_FEATURES, 2)
        assert model.count_params() == 803_329
        hidden = [layer for layer in model.layers if layer.name.startswith("hidden_")]
        assert [layer.units for layer in hidden] == [512] * 4
    l2, dropout, combined = (models.build_model(s, HIGGS_FEATURES, 2) for s in families.REGULARIZERS.models)
    assert all(
        float(layer.kernel_regularizer.l2) == pytest.approx(1e-3)
        for layer in l2.layers
        if layer.name.startswith("hidden_")
    )
    assert [layer.rate for layer in dropout.layers if isinstance(layer, keras.layers.Dropout)] == [0.5] * 4
    assert all(
        float(layer.kernel_regularizer.l2) == pytest.approx(1e-4)
        for layer in combined.layers
        if layer.name.startswith("hidden_")
    )
    assert len([layer for layer in combined.layers if isinstance(layer, keras.layers.Dropout)]) == 4


def test_paper_model_follows_baldi_et_al():
    model = models.build_model(families.PAPER, HIGGS_FEATURES, 2, seed=1)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [d.units for d in dense] == [300, 300, 300, 300, 1]
    assert all(d.activation.__name__ == "tanh" for d in dense[:4])
    assert dense[0].kernel_regularizer is None
    assert all(float(d.kernel_regularizer.l2) == pytest.approx(1e-5) for d in dense[1:4])
    assert isinstance(model.layers[-2], keras.layers.Dropout) and model.layers[-2].rate == 0.5
    stds = [float(np.std(d.kernel.numpy())) for d in dense]
    assert stds[0] == pytest.approx(0.1, rel=0.05)
    assert stds[1] == pytest.approx(0.05, rel=0.05)
    assert stds[4] == pytest.approx(0.001, rel=0.2)
    optimizer = models.make_optimizer(families.PAPER, 1e-3, 20_000)
    assert isinstance(optimizer, keras.optimizers.SGD) and float(optimizer.momentum) == pytest.approx(0.9)
    schedule = optimizer.learning_rate if not hasattr(optimizer, "_learning_rate") else optimizer._learning_rate
    assert float(schedule(0)) == pytest.approx(0.05)
    assert float(schedule(1_000_000)) == pytest.approx(0.05 / 1.0000002**1_000_000, rel=1e-4)
    assert float(schedule(1e9)) == pytest.approx(1e-6)


def test_heads_follow_the_task():
    (tiny,) = families.SIZES.select(["tiny"])
    assert models.build_model(tiny, 40, 10).output_shape == (None, 10)
    assert models.build_model(tiny, 28, 2).output_shape == (None, 1)
    assert models.data_loss_for_classes(2) == "binary_crossentropy"
    assert models.data_loss_for_classes(10) == "sparse_categorical_crossentropy"


def test_adam_uses_the_tutorials_inverse_time_decay():
    (tiny,) = families.SIZES.select(["tiny"])
    optimizer = models.make_optimizer(tiny, 1e-3, 20 * 1000)
    assert isinstance(optimizer, keras.optimizers.Adam)
    schedule = optimizer._learning_rate
    assert float(schedule(0)) == pytest.approx(1e-3)
    assert float(schedule(20_000)) == pytest.approx(5e-4)  # halves after 1,000 epochs of 20 steps


def test_same_seed_same_initial_weights():
    (small,) = families.SIZES.select(["small"])
    a, b = (models.build_model(small, 28, 2, seed=3) for _ in range(2))
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_unknown_model_names_the_choices():
    from tbreg.errors import UserError

    with pytest.raises(UserError, match="choose from tiny, small, medium, large, paper"):
        families.SIZES.select(["huge"])
