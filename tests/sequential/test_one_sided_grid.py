"""The one-sided grid e-value (`alternatives`): Wald's likelihood ratio for a single ratio, an average of
ratios, false alarms at most alpha under H0 (seeded simulation), fewer canary requests than the Beta
mixture for 0.5 % -> 2 %, and its config errors."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from rollouts.analysis.providers.sequential import ConfigError, parse_config
from rollouts.analysis.sequential import ArmCounts, SequentialSettings, assess_sequential, log_e_value_ratios
from rollouts.simulate.traffic import binomial

GRID = (1.5, 2.0, 3.0, 4.0, 6.0, 8.0)


def test_grid_e_value_of_one_ratio_is_walds_likelihood_ratio() -> None:
    # 10 events, 4 on the canary, canary share 0.1, ratio 4: theta = 0.4 / 1.3.
    theta = 0.4 / 1.3
    expected = 4 * math.log(theta / 0.1) + 6 * math.log((1 - theta) / 0.9)
    assert log_e_value_ratios(4, 6, 0.1, (4.0,)) == pytest.approx(expected)
    both = math.log((math.exp(log_e_value_ratios(4, 6, 0.1, (2.0,))) + math.exp(expected)) / 2)
    assert log_e_value_ratios(4, 6, 0.1, (2.0, 4.0)) == pytest.approx(both)
    assert log_e_value_ratios(0, 0, 0.1, GRID) == 0.0


def _first_alarm(rng: random.Random, p_canary: float, settings: SequentialSettings, ticks: int) -> int | None:
    cr = ce = sr = se = 0
    for _ in range(ticks):
        cr, sr = cr + 200, sr + 1800
        ce += binomial(rng, 200, p_canary)
        se += binomial(rng, 1800, 0.005)
        if assess_sequential(ArmCounts(cr, ce), ArmCounts(sr, se), settings).regression:
            return cr
    return None


def test_grid_false_alarm_rate_under_h0_is_at_most_alpha() -> None:
    rng = random.Random(2024)
    runs, settings = 400, SequentialSettings(alpha=0.01, alternatives=GRID)
    alarms = sum(_first_alarm(rng, 0.005, settings, 60) is not None for _ in range(runs))
    assert alarms / runs <= 0.01 + 3 * math.sqrt(0.01 * 0.99 / runs)


def test_grid_needs_fewer_canary_requests_than_the_beta_mixture_for_a_4x_regression() -> None:
    means = {}
    for name, settings in (("beta", SequentialSettings(alpha=0.005)),
                           ("grid", SequentialSettings(alpha=0.005, alternatives=GRID))):
        rng = random.Random(11)
        found = [_first_alarm(rng, 0.02, settings, 60) for _ in range(80)]
        assert all(n is not None for n in found)
        means[name] = statistics.mean(n for n in found if n is not None)
    assert means["grid"] < 0.95 * means["beta"], means


@pytest.mark.parametrize(
    ("alternatives", "message"),
    [([], "alternatives: [] is not a non-empty list"), ([2, 1], "alternatives[1]: 1 is not a rate ratio above 1"),
     ("2", "alternatives: '2' is not"), ([True], "alternatives[0]: True")],
    ids=["empty", "ratio-one", "not-a-list", "bool"],
)
def test_grid_config_errors_name_the_field(alternatives: object, message: str) -> None:
    with pytest.raises(ConfigError, match="provider.plugin.rollouts/sequential") as info:
        parse_config({"alternatives": alternatives})
    assert message in str(info.value)


def test_grid_config_reaches_the_settings() -> None:
    assert parse_config({"alternatives": [1.5, 2, 4]}).settings.alternatives == (1.5, 2.0, 4.0)
    assert parse_config({}).settings.alternatives == ()
