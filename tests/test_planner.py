"""Update, don't rebuild: a Planner reuses one model per structure and gives the same schedules as fresh builds."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

import optimizer
from optimizer.inputs import Inputs
from optimizer.market import decision_time_for
from optimizer.planner import Planner
from optimizer.scheduling import horizon_prices, optimize
from optimizer.state import state_from_schedule


def test_reused_model_equals_fresh_builds_across_real_days(default_site):
    planner = Planner(default_site)
    state = None
    days = [dt.date(2023, 8, d) for d in (15, 16, 17, 18)] + [dt.date(2021, 2, 15), dt.date(2022, 2, 15)]
    for day in days:
        prices = horizon_prices(default_site, day, None, 24).prices
        hp, _ = optimizer.data.hashprice_known_at(decision_time_for(day))
        reused = planner.solve(Inputs(prices, hp, state))
        fresh = optimize(default_site, Inputs(prices, hp, state))
        a, b = optimizer.to_frame(reused), optimizer.to_frame(fresh)
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9, atol=1e-7)
        assert reused.attrs["objective_usd"] == pytest.approx(fresh.attrs["objective_usd"], rel=1e-12)
        state = state_from_schedule(default_site, a.iloc[:24])      # the state changes from day to day
    assert planner.builds == 1                                       # all 48-hour horizons: one structure


def test_a_new_structure_builds_a_new_model(default_site):
    planner = Planner(default_site)
    for day in (dt.date(2022, 3, 12), dt.date(2022, 3, 13), dt.date(2022, 3, 14)):   # 48, 47 and 48 hours
        hp, _ = optimizer.data.hashprice_known_at(decision_time_for(day))
        planner.solve(Inputs(horizon_prices(default_site, day, None, 24).prices, hp))
    assert planner.builds == 2
