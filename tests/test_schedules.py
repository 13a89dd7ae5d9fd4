"""Learning-rate schedules as pure functions of the step: shapes, endpoints, and never past the peak."""

from __future__ import annotations


import pytest

from fmnist.config import ScheduleConfig
from fmnist.errors import UsageError
from fmnist.train.schedules import learning_rate


def lrs(cfg: ScheduleConfig, total: int, base: float = 0.2) -> list[float]:
    return [learning_rate(cfg, base, step, total) for step in range(total)]


def test_constant():
    assert lrs(ScheduleConfig(), 5, 0.1) == [0.1] * 5


def test_keras_decay_is_lr_over_one_plus_decay_times_step():
    cfg = ScheduleConfig(name="keras_decay", decay=0.01 / 25)
    assert learning_rate(cfg, 0.01, 0, 100) == 0.01
    assert learning_rate(cfg, 0.01, 1000, 2000) == pytest.approx(0.01 / (1 + 0.0004 * 1000))


def test_onecycle_warms_up_linearly_to_the_peak_then_decays_to_final():
    cfg = ScheduleConfig(name="onecycle", warmup=0.2, final=0.1)
    out = lrs(cfg, 100)
    assert out[0] == pytest.approx(0.2 / 20) and out[19] == pytest.approx(0.2)  # 20 warmup steps
    assert all(a < b for a, b in zip(out[:20], out[1:20]))
    assert all(a >= b for a, b in zip(out[20:], out[21:]))
    assert out[-1] == pytest.approx(0.02 + (0.2 - 0.02) / 80, rel=1e-6)  # one step short of final
    assert learning_rate(cfg, 0.2, 100, 100) == pytest.approx(0.02)


def test_cosine_ends_at_final_and_passes_the_midpoint_halfway():
    cfg = ScheduleConfig(name="cosine", warmup=0.0, final=0.0)
    assert learning_rate(cfg, 1.0, 0, 100) == pytest.approx(1.0)
    assert learning_rate(cfg, 1.0, 50, 100) == pytest.approx(0.5)
    assert learning_rate(cfg, 1.0, 100, 100) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("name", ["onecycle", "cosine"])
@pytest.mark.parametrize("total", [1, 2, 3, 5, 7, 11])
def test_warmup_never_exceeds_the_peak_on_short_runs(name, total):
    out = lrs(ScheduleConfig(name=name, warmup=0.2, final=0.0), total, base=0.2)
    assert max(out) <= 0.2 and all(x >= 0 for x in out)


def test_schedule_config_is_validated():
    with pytest.raises(UsageError, match="name 'linear' is not one of"):
        ScheduleConfig(name="linear")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="warmup must be a fraction"):
        ScheduleConfig(name="onecycle", warmup=1.5)
