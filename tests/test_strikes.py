"""The strike table by hand (optimizer.operate.strike_table): value less the expected 4CP charge, the 4CP charge
carried back over the hours in which the plan ramps a ramp-limited unit down for a risky hour, and a 15-minute
walk that then holds the plan's curtailment in that hour."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from support import fleet, make_site

from optimizer import operate

CHARGE = 25_000.0        # USD per MW in a monthly peak (100 USD/kW-year / 4)


def _site(ramp: float | None):
    # one 80 MW fleet; 15 J/TH at hashprice 100 USD/PH/day: 100 / 15 x 1000 / 24 = 277.78 USD/MWh; None: no ramp limit
    return make_site([fleet("f", capacity_mw=80.0, efficiency_j_per_th=15.0,
                            **({} if ramp is None else {"ramp_mw_per_hour": ramp}))])


def _table(site, plan_mw, fourcp):
    n = len(plan_mw)
    plan = np.asarray(plan_mw, dtype=float)[:, None]
    values = operate.values_usd_per_mwh(site, 100.0)
    return operate.strike_table(site, plan, (plan > 1e-6).astype(float), np.full(n, 30.0),
                                np.asarray(fourcp, dtype=float), values, np.full((n, 1), 80.0), 1.0, 0.25)


def test_a_strike_is_the_value_less_the_expected_4cp_charge():
    site = _site(ramp=None)
    value = 100.0 / 15.0 * 1000.0 / 24.0
    fourcp = [0.0, 0.01 * CHARGE, 0.0]                               # a 1% chance of the month's peak in hour 1
    s = _table(site, [80.0, 0.0, 80.0], fourcp)
    assert s.marginal[:, 0] == pytest.approx([value, value - 250.0, value])
    assert s.stop[:, 0] == pytest.approx(s.marginal[:, 0]) and s.start[:, 0] == pytest.approx(s.marginal[:, 0])


def test_the_4cp_charge_reaches_back_over_the_plans_ramp_down():
    # the plan curtails the fleet to 0 in the risky hour 5 and ramps it down ahead at 20 MW/h (60, 40, 20, 0 in
    # hours 1-4): hours 1-4 carry hour 5's charge, hour 0 (full power) does not. At 40 MW/h the ramp needs 2 h:
    # hours 3-4 only, though the plan is lower earlier. A plan at full power until the risky hour (its hourly
    # ramp allows the drop in one step) carries nothing; an unlimited ramp neither.
    fourcp = np.zeros(7)
    fourcp[5] = 0.05 * CHARGE
    value = 100.0 / 15.0 * 1000.0 / 24.0
    ramp_down = [80.0, 60.0, 40.0, 20.0, 0.0, 0.0, 80.0]
    for ramp, plan, carried in ((20.0, ramp_down, [1, 2, 3, 4]), (40.0, ramp_down, [3, 4]),
                                (20.0, [80.0] * 5 + [0.0, 80.0], []), (None, ramp_down, [])):
        s = _table(_site(ramp), plan, fourcp)
        want = np.full(7, value)
        want[5] -= 1250.0
        want[carried] -= 1250.0
        assert s.marginal[:, 0] == pytest.approx(want), (ramp, plan)
    # the plan runs the unit at full power in the risky hour: nothing to reach, nothing carried back
    s = _table(_site(20.0), [80.0] * 7, fourcp)
    assert s.marginal[[0, 1, 2, 3, 4, 6], 0] == pytest.approx(np.full(6, value))


def test_a_price_led_walk_reaches_the_plans_4cp_curtailment_in_time():
    # cheap power (30 USD/MWh) all day; the plan curtails the 20 MW/h fleet to 0 in hour 5 (5% chance of the
    # peak). Run hour by hour at 15 minutes on the strikes: the fleet is at 0 MW through hour 5.
    site = _site(20.0)
    fourcp = np.zeros(7)
    fourcp[5] = 0.05 * CHARGE
    s = _table(site, [80.0, 60.0, 40.0, 20.0, 0.0, 0.0, 20.0], fourcp)
    quarters = np.repeat(np.arange(7), 4)
    units = operate.Units(site, None, 0.25)
    w = operate.walk(site, units, 28, operate.strike_policy(np.full(28, 30.0), s[quarters], np.full((28, 1), 80.0)),
                     times=pd.date_range("2024-08-20T15:00Z", periods=28, freq="15min"))
    assert w.power[20:24, 0] == pytest.approx([0.0] * 4)              # hour 5: no load in the peak
    assert w.power[3, 0] == pytest.approx(80.0) and w.power[4, 0] == pytest.approx(75.0)   # ramps from hour 1
    # without the carried charge (strikes of the risky hour only) the walk is still at 80 MW when hour 5 begins
    plain = operate.Strikes(*(np.where(np.arange(7)[:, None] == 5, a, a[0:1]) for a in (s.stop, s.start, s.marginal)))
    units = operate.Units(site, None, 0.25)
    w = operate.walk(site, units, 28, operate.strike_policy(np.full(28, 30.0), plain[quarters],
                                                            np.full((28, 1), 80.0)),
                     times=pd.date_range("2024-08-20T15:00Z", periods=28, freq="15min"))
    assert w.power[20:24, 0].mean() == pytest.approx(67.5)            # 75, 70, 65, 60: the peak hour's mean
