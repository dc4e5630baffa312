"""The independent checker must catch each kind of broken schedule (so that a clean pass means something)."""

from __future__ import annotations

import pytest
from support import fleet, hourly, make_site, solve

import optimizer
from optimizer import UnitState, check_schedule


@pytest.fixture(scope="module")
def solved():
    site = make_site([fleet("f", ramp_mw_per_hour=4.0, min_load_fraction=0.3, min_on_hours=2, min_off_hours=2,
                            restart_cost_usd=20.0)],
                     gpu=[{"name": "g", "gpus": 1000, "kw_per_gpu": 1.0, "committed_gpus": 600,
                           "spot_price_usd_per_gpu_hour": 2.0, "spot_utilization": 0.5}],
                     import_limit_mw=11.0, block_mw=8.0, contract_price=30.0)
    state = {"f": UnitState(on=True, power_mw=8.0, hours_in_state=5)}
    ds = solve(site, hourly([100.0, 120.0, 2000.0, 2000.0, 100.0, 90.0, 80.0, 3000.0]), initial_state=state)
    return site, optimizer.to_frame(ds), state


def _rules(site, frame, state):
    return {v.rule for v in check_schedule(site, frame, hashprice_usd_per_ph_day=100.0, initial_state=state)}


def test_a_solved_schedule_is_clean(solved):
    site, frame, state = solved
    assert _rules(site, frame, state) == set()


@pytest.mark.parametrize(("column", "row", "delta", "rules"), [
    ("mining_mw__f", 0, 3.0, {"ramp", "capacity"}),            # 8 -> 11 > ramp 4 and > capacity 10
    ("ai_mw__g", 1, -0.5, {"sla_floor"}),
    ("grid_mw", 2, 1.0, {"balance"}),
    ("profit_usd", 3, 5.0, {"accounting"}),
    ("sellback_mw", 4, -1.0, {"balance"}),
])
def test_each_broken_value_is_caught(solved, column, row, delta, rules):
    site, frame, state = solved
    bad = frame.copy()
    bad.loc[row, column] += delta
    assert rules <= _rules(site, bad, state)


def test_load_above_import_limit_is_caught(solved):
    site, frame, state = solved
    tight = make_site([fleet("f", ramp_mw_per_hour=4.0, min_load_fraction=0.3, min_on_hours=2, min_off_hours=2,
                             restart_cost_usd=20.0)], gpu=[{"name": "g", "gpus": 1000, "kw_per_gpu": 1.0,
                                                            "committed_gpus": 600, "spot_price_usd_per_gpu_hour": 2.0,
                                                            "spot_utilization": 0.5}],
                      import_limit_mw=5.0, block_mw=8.0, contract_price=30.0)
    assert "import_limit" in _rules(tight, frame, state)


def test_short_runs_and_min_load_are_caught():
    site = make_site([fleet("f", min_load_fraction=0.3, min_on_hours=3, min_off_hours=2)])
    frame = optimizer.to_frame(solve(make_site([fleet("f")]), hourly([100.0, 1000.0, 100.0, 1000.0, 1000.0, 100.0])))
    # the unconstrained solution switches every hour: too short for min on 3 h / min off 2 h
    assert {"min_on", "min_off"} <= _rules(site, frame, {})
    frame.loc[0, "mining_mw__f"] = 1.0
    assert "min_load" in _rules(site, frame, {})


def test_missing_column_is_caught(solved):
    site, frame, state = solved
    assert "columns" in _rules(site, frame.drop(columns=["ai_mw__g"]), state)
