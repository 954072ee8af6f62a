"""Platt scaling of a finding's confidence: fitted from data, saved beside the reward model."""

from __future__ import annotations

import random

import pytest

from critic.inference.calibration import FILE, Calibration, fit


def test_fit_recovers_a_known_calibration():
    rng = random.Random(0)
    truth = Calibration(scale=0.5, bias=-1.0)
    margins = [rng.uniform(-8, 8) for _ in range(4000)]
    hits = [rng.random() < truth.probability(m) for m in margins]
    fitted = fit(margins, hits)
    assert fitted.scale == pytest.approx(0.5, abs=0.08)
    assert fitted.bias == pytest.approx(-1.0, abs=0.15)
    # calibrated: among findings given about 0.7, about 70% are hits
    near = [h for m, h in zip(margins, hits, strict=True) if 0.65 <= fitted.probability(m) <= 0.75]
    assert sum(near) / len(near) == pytest.approx(0.7, abs=0.08)


def test_separable_data_stays_finite():
    fitted = fit([-2.0, -1.0, 1.0, 2.0], [False, False, True, True])
    assert fitted.scale > 0 and abs(fitted.scale) < 1e3 and abs(fitted.bias) < 1e3


def test_saved_beside_the_reward_model(tmp_path):
    assert Calibration.load(tmp_path) == Calibration()  # no file: sigmoid(margin)
    Calibration(2.0, -0.5).save(tmp_path, fitted_on="validation", findings=12)
    assert Calibration.load(tmp_path) == Calibration(2.0, -0.5)
    (tmp_path / FILE).write_text("{}")
    with pytest.raises(ValueError, match="not a calibration file"):
        Calibration.load(tmp_path)


def test_fit_rejects_mismatched_input():
    with pytest.raises(ValueError):
        fit([1.0], [True, False])
    with pytest.raises(ValueError):
        fit([], [])
