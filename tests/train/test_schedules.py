"""Learning-rate schedules at hand-computed steps, and the lr the Trainer actually used."""

from __future__ import annotations

import math

import pytest

from lmlab.errors import ConfigError
from lmlab.train import Schedule, TrainConfig


def test_constant_with_and_without_warmup():
    assert [Schedule("constant", 0.1).lr_at(s) for s in (1, 5, 1000)] == [0.1, 0.1, 0.1]
    warm = Schedule("constant", 0.1, warmup_steps=4)
    assert [warm.lr_at(s) for s in (1, 2, 4, 5, 99)] == pytest.approx([0.025, 0.05, 0.1, 0.1, 0.1])


def test_linear_warmup_then_decay():
    s = Schedule("linear", 1e-3, warmup_steps=10, total_steps=110)
    # 5/10 of the way up; the top; half way down (50 of 100 decay steps); the end; past the end
    assert s.lr_at(5) == pytest.approx(5e-4)
    assert s.lr_at(10) == pytest.approx(1e-3)
    assert s.lr_at(60) == pytest.approx(5e-4)
    assert s.lr_at(110) == pytest.approx(0.0)
    assert s.lr_at(200) == pytest.approx(0.0)
    floor = Schedule("linear", 1.0, warmup_steps=0, total_steps=4, min_lr=0.2)
    assert [floor.lr_at(k) for k in (1, 2, 3, 4)] == pytest.approx([0.8, 0.6, 0.4, 0.2])


def test_cosine():
    s = Schedule("cosine", 1.0, warmup_steps=0, total_steps=100, min_lr=0.1)
    assert s.lr_at(50) == pytest.approx(0.55)  # 0.1 + 0.45 (1 + cos(pi/2))
    assert s.lr_at(100) == pytest.approx(0.1)
    assert s.lr_at(1) == pytest.approx(0.99977795, abs=1e-8)  # 0.1 + 0.45 (1 + cos(0.01 pi))
    warm = Schedule("cosine", 2.0, warmup_steps=10, total_steps=20)
    assert warm.lr_at(5) == pytest.approx(1.0)
    assert warm.lr_at(15) == pytest.approx(1.0)  # half way through the cosine: (0 + 2) / 2


def test_noam_matches_the_transformer_paper():
    # d_model = 512, warmup = 4000 (Vaswani et al. 2017, section 5.3)
    s = Schedule("noam", 1.0, warmup_steps=4000, d_model=512)
    assert s.lr_at(4000) == pytest.approx(6.98771242e-4, rel=1e-8)  # 512^-0.5 * 4000^-0.5, the peak
    assert s.lr_at(1) == pytest.approx(1.74692811e-7, rel=1e-8)  # 512^-0.5 * 4000^-1.5
    assert s.lr_at(2000) == pytest.approx(3.49385621e-4, rel=1e-8)  # linear rise: half the peak
    assert s.lr_at(16000) == pytest.approx(3.49385621e-4, rel=1e-8)  # 1/sqrt decay: 4x steps, half
    assert max(s.lr_at(k) for k in range(1, 10000)) == s.lr_at(4000)
    scaled = Schedule("noam", 2.0, warmup_steps=4000, d_model=512)
    assert scaled.lr_at(4000) == pytest.approx(2 * 6.98771242e-4)


@pytest.mark.parametrize("kwargs,message", [
    ({"name": "noam", "lr": 1.0, "warmup_steps": 10}, "d_model"),
    ({"name": "noam", "lr": 1.0, "d_model": 8}, "warmup_steps"),
    ({"name": "linear", "lr": 1.0, "warmup_steps": 10, "total_steps": 10}, "must exceed"),
    ({"name": "step", "lr": 1.0}, "unknown schedule"),
])
def test_bad_schedules(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Schedule(**kwargs)


def test_config_validates_its_schedule():
    with pytest.raises(ConfigError, match="d_model"):
        TrainConfig(schedule="noam", warmup_steps=4).validate()
    TrainConfig(schedule="noam", warmup_steps=4, d_model=16).validate()
    assert math.isclose(TrainConfig(schedule="noam", warmup_steps=4, d_model=16, lr=1.0).make_schedule().lr_at(4),
                        16 ** -0.5 * 4 ** -0.5)
