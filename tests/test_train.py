"""Analog training: Analog SGD's bias toward the symmetric point and its removal."""
import numpy as np
import pytest

from simulator.errors import UserError
from simulator.hw.schema import PulsedDeviceConfig
from simulator.train.algorithms import TrainSettings
from simulator.train.lsq import run_lsq
from simulator.train.tile import PulseSettings

ASYMMETRIC = PulsedDeviceConfig(model="soft_bounds", dw_min=0.001)


@pytest.fixture(scope="module")
def lsq_runs():
    settings = TrainSettings(lr=0.01, transfer_lr=0.05)
    return {alg: run_lsq(alg, ASYMMETRIC, PulseSettings(), settings, seed=1, epochs=8)
            for alg in ("fp", "sgd", "tiki-taka", "residual")}


def test_tiki_taka_and_residual_beat_analog_sgd_on_least_squares(lsq_runs):
    sgd = lsq_runs["sgd"].averaged_error
    assert sgd > 0.15  # biased toward the symmetric point
    assert lsq_runs["tiki-taka"].averaged_error < sgd / 3
    assert lsq_runs["residual"].averaged_error < sgd / 3
    assert lsq_runs["fp"].averaged_error < 0.05


def test_analog_sgd_bias_matches_the_mean_field_prediction(lsq_runs):
    run = lsq_runs["sgd"]
    assert run.predicted_error == pytest.approx(run.averaged_error, rel=0.3)
    # the bias points toward the symmetric point: tracked weights end between it and the optimum
    final, optimum, symmetric = run.trajectory[-1], run.tracked_optimum, run.tracked_symmetric
    assert np.all(np.abs(final - symmetric) < np.abs(optimum - symmetric))


def test_training_is_reproducible_per_seed():
    settings = TrainSettings(lr=0.01)
    a = run_lsq("sgd", ASYMMETRIC, PulseSettings(), settings, seed=3, epochs=1)
    b = run_lsq("sgd", ASYMMETRIC, PulseSettings(), settings, seed=3, epochs=1)
    assert a.losses == b.losses and a.pulses == b.pulses


def test_bad_training_settings_are_user_errors():
    with pytest.raises(UserError, match="--gamma"):
        TrainSettings(gamma=0.0)
    with pytest.raises(UserError, match="--algorithm"):
        run_lsq("adam", ASYMMETRIC, PulseSettings(), TrainSettings(), seed=0, epochs=1)
