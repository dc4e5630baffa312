"""The independent checker (optimizer/check.py) and ``curtail check``.

1. Its own derivations agree with site.py (and the model's on-floor rule) on every shipped site and on random sites.
2. Hand-made schedules whose right answer is worked out in the test pass, and fail when a number is off.
3. Each kind of broken row of a real solved schedule is caught (a mutation table), including the reviewer's
   exploit: a lowered ``max_load_mw`` no longer excuses a ramp or minimum-on breach.
4. A real solved schedule of the default site passes; ``curtail check`` exits 0 / 1 / 2 as documented.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import optimizer
from optimizer import check, data
from optimizer.check import CheckInputs, check_schedule
from optimizer.cli.check import check as check_command
from optimizer.events import Event
from optimizer.model import commitment
from optimizer.state import state_from_dict

DAY = "2022-07-20"
TZ = "America/Chicago"


@pytest.fixture(autouse=True)
def _check_every_schedule():
    """Replaces the conftest wrapper in this module: every schedule solved here is checked explicitly below, with
    inputs the test builds itself."""
    yield


def _site(**over) -> optimizer.Site:
    raw = {"name": "t", "timezone": TZ, "settlement_point": "HB_WEST", "grid": {"import_limit_mw": 11.0},
           "contract": {"block_mw": 8.0, "price_usd_per_mwh": 30.0},
           "mining": [{"name": "f", "capacity_mw": 10.0, "efficiency_j_per_th": 24.0, "ramp_mw_per_hour": 4.0,
                       "min_load_fraction": 0.3, "min_on_hours": 2, "min_off_hours": 2, "restart_cost_usd": 20.0}],
           "gpu": [{"name": "g", "gpus": 1000, "kw_per_gpu": 1.0, "committed_gpus": 600,
                    "committed_price_usd_per_gpu_hour": 2.0, "spot_price_usd_per_gpu_hour": 2.0,
                    "spot_utilization": 0.5}],
           "reserve": [{"name": "ecrs", "price_usd_per_mw_hour": 5.0, "response_minutes": 10.0}]}
    return optimizer.site_from_dict(raw | over)


def _times(n: int, minutes: int = 60) -> pd.DatetimeIndex:
    return pd.date_range("2022-07-20T05:00:00Z", periods=n, freq=f"{minutes}min")


def _rules(site, frame, inputs) -> set[str]:
    return {v.rule for v in check_schedule(site, frame, inputs)}


# ---------------------------------------------------------------------------------------------------------
# 1. The checker's derivations against site.py's, on shipped and random sites


def _agree(site: optimizer.Site) -> None:
    for u in (*site.mining, *site.gpu):
        cap = u.capacity_mw if isinstance(u, optimizer.MiningFleet) else u.flexible_mw
        assert check.capacity_mw(u) == pytest.approx(cap, rel=1e-12)
        assert check.on_floor_mw(u) == pytest.approx(commitment.on_floor_mw(cap, u.commitment), rel=1e-12)
        for dt in (1.0, 0.25):
            assert check.switched(u, dt) == commitment.is_switched(u.commitment, dt)
        for minutes in (0.5, 10.0, 30.0, *(r.response_minutes for r in site.reserves)):
            assert check.reserve_limit_mw(u, minutes) == pytest.approx(u.reserve_limit_mw(minutes), rel=1e-12)
    for f in site.mining:
        for hashprice in (0.01, 45.0, 103.648364):
            assert check.mining_value_usd_per_mwh(f, hashprice) == pytest.approx(f.value_usd_per_mwh(hashprice),
                                                                                rel=1e-12)
    for g in site.gpu:
        assert check.mw_per_gpu(g) == pytest.approx(g.mw_per_gpu, rel=1e-12)
        assert check.committed_mw(g) == pytest.approx(g.committed_mw, rel=1e-12)
        assert check.flexible_mw(g) == pytest.approx(g.flexible_mw, rel=1e-12)
        assert check.spot_value_usd_per_mwh(g) == pytest.approx(g.spot_value_usd_per_mwh, rel=1e-12)
        month_mwh = g.committed_mw * g.sla_month_hours
        edges = [(1 - level) * month_mwh for level, _ in g.sla_credit_tiers]
        for mwh in (0.0, 1e-6, month_mwh, *edges, *(e * (1 + 1e-9) for e in edges), *(e * 0.999 for e in edges)):
            assert check.sla_credit_usd(g, mwh) == pytest.approx(g.sla_credit_usd(mwh), rel=1e-12, abs=1e-9)


SHIPPED = sorted(Path(data.resource_dir("models")).glob("*.toml"))


def test_shipped_sites_are_all_found():
    assert {p.stem for p in SHIPPED} >= {"west-texas-200", "west-texas-200-strict", "north-texas-mining",
                                          "quebec-hydro-ai"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_derivations_agree_with_site_py_on_shipped_sites(path):
    _agree(optimizer.load_site(path))


_pos = st.floats(0.01, 500.0, allow_nan=False)
_limits = st.fixed_dictionaries(
    {"min_load_fraction": st.sampled_from([0.0, 0.3]) | st.floats(0.0, 1.0), "ramp_mw_per_hour": _pos,
     "min_on_hours": st.integers(0, 8),
     "min_off_hours": st.integers(0, 8), "restart_cost_usd": st.sampled_from([0.0, 150.0])},
    optional={"reserve_drop_mw_per_minute": st.floats(0.0, 50.0)})


@st.composite
def _random_sites(draw) -> optimizer.Site:
    fleets = [{"name": f"f{i}", "capacity_mw": draw(_pos), "efficiency_j_per_th": draw(st.floats(5.0, 120.0)),
               "cooling_overhead_fraction": draw(st.floats(0.0, 1.0)), "pool_fee_fraction": draw(st.floats(0.0, 0.5)),
               **draw(_limits)} for i in range(draw(st.integers(0, 2)))]
    clusters = []
    for i in range(draw(st.integers(0 if fleets else 1, 2))):
        gpus = draw(st.integers(1, 50_000))
        levels = sorted(draw(st.lists(st.floats(0.5, 1.0), min_size=1, max_size=3, unique=True)), reverse=True)
        credits = sorted(draw(st.lists(st.floats(0.0, 1.0), min_size=len(levels), max_size=len(levels))))
        clusters.append({"name": f"g{i}", "gpus": gpus, "kw_per_gpu": draw(st.floats(0.05, 200.0)),
                         "pue": draw(st.floats(1.0, 3.0)), "committed_gpus": draw(st.integers(0, gpus)),
                         "committed_price_usd_per_gpu_hour": draw(st.floats(0.0, 20.0)),
                         "spot_price_usd_per_gpu_hour": draw(st.floats(0.0, 20.0)),
                         "spot_utilization": draw(st.floats(0.0, 1.0)),
                         "sla_credit_tiers": [[a, c] for a, c in zip(levels, credits, strict=True)],
                         "sla_month_hours": draw(st.floats(672.0, 744.0)), **draw(_limits)})
    reserves = [{"name": f"r{i}", "response_minutes": draw(st.floats(0.5, 240.0))}
                for i in range(draw(st.integers(0, 2)))]
    return optimizer.site_from_dict({"name": "r", "timezone": TZ, "settlement_point": "HB_WEST",
                                     "grid": {"import_limit_mw": 1e7}, "mining": fleets, "gpu": clusters,
                                     "reserve": reserves})


def test_derivations_agree_on_edge_cases():
    """A minimum on time of exactly one interval binds nothing (not switched at 1 h, switched at 15 min); a cluster
    without a drop rate offers nothing; a fleet without one offers all its capacity."""
    site = _site(mining=[{"name": "one", "capacity_mw": 2.0, "efficiency_j_per_th": 20.0, "min_on_hours": 1},
                         {"name": "fast", "capacity_mw": 2.0, "efficiency_j_per_th": 20.0,
                          "reserve_drop_mw_per_minute": 0.1}],
                 gpu=[{"name": "g", "gpus": 10, "kw_per_gpu": 1.0, "committed_gpus": 0, "min_off_hours": 1}])
    one, fast, g = (*site.mining, site.gpu[0])
    assert (check.switched(one, 1.0), check.switched(one, 0.25), check.switched(g, 1.0)) == (False, True, False)
    assert (check.reserve_limit_mw(one, 10.0), check.reserve_limit_mw(fast, 10.0), check.reserve_limit_mw(g, 10.0)) \
        == (2.0, 1.0, 0.0)
    assert check.sla_credit_usd(g, 5.0) == 0.0          # nothing committed, nothing owed
    _agree(site)


@settings(max_examples=150, deadline=None)
@given(_random_sites())
def test_derivations_agree_with_site_py_on_random_sites(site):
    _agree(site)


# ---------------------------------------------------------------------------------------------------------
# 2. Hand-made schedules: every number worked out here from first principles

V = 100 / 24 * 1000 / 24         # USD/MWh of fleet f at hashprice 100: USD/PH/day / 24 h x 1000/24 PH/s per MW


def _hand_table() -> pd.DataFrame:
    """Three hours at 100, 120 and -10 USD/MWh. Fleet f 8 -> 10 -> 6 MW (steps within 4 MW/h); cluster g
    (1000 GPUs x 1 kW, 600 committed: 0.6 MW, flexible 0.4 MW at 2 x 0.5 / 0.001 = 1000 USD/MWh, committed
    600 x 2 = 1200 USD/h) full, full, committed only; f offers 3 MW of ecrs at 5 USD/MW/h in hour 0; block
    8 MW at 30 USD/MWh (240 USD/h), sell-back on; import limit 11 MW."""
    load = [9.0, 11.0, 6.6]
    return pd.DataFrame({
        "timestamp": ["2022-07-20T05:00:00Z", "2022-07-20T06:00:00Z", "2022-07-20T07:00:00Z"],
        "price_usd_per_mwh": [100.0, 120.0, -10.0],
        "mining_mw": [8.0, 10.0, 6.0], "ai_mw": [1.0, 1.0, 0.6], "load_mw": load,
        "grid_mw": [1.0, 3.0, -1.4], "sellback_mw": [0.0, 0.0, 1.4], "max_load_mw": [11.0] * 3,
        "peak_weight": [0.0] * 3,
        "mining_revenue_usd": [8 * V, 10 * V, 6 * V], "ai_revenue_usd": [1600.0, 1600.0, 1200.0],
        "energy_cost_usd": [100.0, 360.0, 0.0], "sellback_credit_usd": [0.0, 0.0, -14.0],
        "contract_cost_usd": [240.0] * 3, "restart_cost_usd": [0.0] * 3, "sla_credit_usd": [0.0] * 3,
        "fourcp_charge_usd": [0.0] * 3, "reserve_revenue_usd": [15.0, 0.0, 0.0],
        "profit_usd": [8 * V + 1600 - 100 - 240 + 15, 10 * V + 1600 - 360 - 240, 6 * V + 1200 - 14 - 240],
        "mining_mw__f": [8.0, 10.0, 6.0], "ai_mw__g": [1.0, 1.0, 0.6], "sla_shortfall_mw__g": [0.0] * 3,
        "reserve_deployed_mw": [0.0] * 3, "reserve_price__ecrs": [5.0] * 3, "reserve_mw__ecrs__f": [3.0, 0.0, 0.0],
    })


def _hand_inputs(**over) -> CheckInputs:
    kw = {"timestamps": _times(3), "prices_usd_per_mwh": [100.0, 120.0, -10.0], "hashprice_usd_per_ph_day": 100.0,
          "initial_state": {"f": optimizer.UnitState(on=True, power_mw=8.0, hours_in_state=5)}}
    return CheckInputs(**(kw | over))


def test_hand_schedule_passes():
    assert check_schedule(_site(), _hand_table(), _hand_inputs()) == []


def test_hand_schedule_with_a_start_and_its_restart_cost():
    """f off for 3 h before; it starts at its 3 MW floor (a start may jump up to max(ramp 4, floor 3) = 4 MW) and
    pays 20 USD once; the mining revenue is 3 x V."""
    t = _hand_table()
    t.loc[0, ["mining_mw__f", "mining_mw"]] = 3.0
    t.loc[0, ["load_mw", "grid_mw", "mining_revenue_usd", "energy_cost_usd", "restart_cost_usd"]] = \
        [4.0, -4.0, 3 * V, 0.0, 20.0]
    t.loc[0, ["sellback_mw", "sellback_credit_usd", "profit_usd"]] = [4.0, 400.0, 3 * V + 1600 + 400 - 240 - 20 + 15]
    for r, p in ((1, 7.0), (2, 6.0)):
        t.loc[r, ["mining_mw__f", "mining_mw"]] = p
    t.loc[1, ["load_mw", "grid_mw", "mining_revenue_usd", "energy_cost_usd", "profit_usd"]] = \
        [8.0, 0.0, 7 * V, 0.0, 7 * V + 1600 - 240]
    off = {"f": optimizer.UnitState(on=False, power_mw=None, hours_in_state=3)}      # off: no power, whatever given
    assert check_schedule(_site(), t, _hand_inputs(initial_state=off)) == []
    # the same start 1 h after the unit stopped breaks its 2 h minimum off time
    short_off = {"f": optimizer.UnitState(on=False, power_mw=0.0, hours_in_state=1)}
    assert [(v.rule, v.row, v.amount) for v in check_schedule(_site(), t, _hand_inputs(initial_state=short_off))] \
        == [("min_off", 0, 1.0)]


def test_hand_sla_credit_counts_the_shortfall_already_used_this_month():
    """Cluster g delivers 0.3 of its 0.6 committed MW in hour 2 (breach allowed): 0.3 MWh short. Monthly bill
    600 GPUs x 2 USD x 730 h = 876,000 USD. From 100% so far: availability 1 - 0.3/(0.6 x 730) = 0.99932 < 0.9999:
    10% = 87,600 USD. With 4.161 MWh used before (availability 0.9905, already 10%): 1 - 4.461/438 = 0.98982
    < 0.99: 30%, so this schedule owes the 20% step, 175,200 USD. Committed revenue falls by half in hour 2."""
    t = _hand_table()
    t.loc[2, ["ai_mw__g", "ai_mw", "sla_shortfall_mw__g"]] = [0.3, 0.3, 0.3]
    t.loc[2, ["load_mw", "grid_mw", "sellback_mw", "ai_revenue_usd"]] = [6.3, -1.7, 1.7, 600.0]
    t.loc[2, "sellback_credit_usd"] = -17.0
    for before, credit in ((0.0, 87_600.0), (4.161, 175_200.0)):
        t.loc[0, "sla_credit_usd"] = credit
        t["profit_usd"] = [8 * V + 1600 - 100 - 240 + 15 - credit, 10 * V + 1600 - 360 - 240, 6 * V + 600 - 17 - 240]
        inputs = _hand_inputs(allow_sla_breach=True, sla_shortfall_before_mwh={"g": before})
        assert check_schedule(_site(), t, inputs) == []
    assert _rules(_site(), t, _hand_inputs(allow_sla_breach=True)) == {"accounting"}     # 175,200 is not owed
    assert "sla_floor" in _rules(_site(), t, _hand_inputs(sla_shortfall_before_mwh={"g": 4.161}))


def test_hand_fourcp_charge_and_curtailment_rule():
    """With 100 USD/kW-year, one MW in one monthly peak costs 100 x 1000 / 4 = 25,000 USD: weight 1 on the 9 MW
    of hour 0 is 225,000 USD. With curtail_above_probability 0.5 the same weight caps hour 0 at the committed
    0.6 MW, so 9 MW there breaks the limit in force."""
    t = _hand_table()
    t.loc[0, ["peak_weight", "fourcp_charge_usd"]] = [1.0, 225_000.0]
    t.loc[0, "profit_usd"] -= 225_000.0
    weight = [1.0, 0.0, 0.0]
    assert check_schedule(_site(fourcp={"charge_usd_per_kw_year": 100.0}), t, _hand_inputs(peak_weight=weight)) == []
    capped = _site(fourcp={"charge_usd_per_kw_year": 100.0, "curtail_above_probability": 0.5})
    bad = check_schedule(capped, t, _hand_inputs(peak_weight=weight))
    assert ("import_limit", 0, pytest.approx(8.4)) in [(v.rule, v.row, v.amount) for v in bad]
    # a backtest curtails on the plan's probability (0.3 < 0.5: no cap) and charges the settled weight (1)
    assert check_schedule(capped, t, _hand_inputs(peak_weight=weight, peak_probability=[0.3, 0, 0])) == []


@pytest.mark.parametrize(("block_mw", "energy_cost", "credit"), [
    (11.0, [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]),              # take-or-pay block at the import limit: no market at all
    (0.0, [900.0, 1320.0, -66.0], [0.0, 0.0, 0.0]),        # no block: every MWh bought at the price (9 x 100 ...)
])
def test_hand_schedule_without_sellback(block_mw, energy_cost, credit):
    """sellback = false: unused block power is forfeited, nothing is ever sold back."""
    t = _hand_table()
    contract = {"block_mw": block_mw, "price_usd_per_mwh": 30.0, "sellback": False}
    block = block_mw * 30.0
    t["grid_mw"] = t["load_mw"] - block_mw
    t["sellback_mw"] = 0.0
    t["energy_cost_usd"], t["sellback_credit_usd"], t["contract_cost_usd"] = energy_cost, credit, block
    t["profit_usd"] = (t["mining_revenue_usd"] + t["ai_revenue_usd"] - t["energy_cost_usd"] - block
                       + t["reserve_revenue_usd"])
    assert check_schedule(_site(contract=contract), t, _hand_inputs()) == []


def test_hand_quarter_hour_schedule_scales_every_amount_by_the_interval():
    """Two 15-minute intervals at 100 USD/MWh, f 8 -> 9 MW (1 MW per interval at 4 MW/h), g full (1 MW), f offers
    2 MW of ecrs in the first; weight 1 there with 100 USD/kW-year: 9 MW x 25,000 USD x 0.25 h = 56,250 USD."""
    dt = 0.25
    t = pd.DataFrame({
        "timestamp": _times(2, 15).strftime("%Y-%m-%dT%H:%M:%SZ"), "price_usd_per_mwh": [100.0, 100.0],
        "mining_mw": [8.0, 9.0], "ai_mw": [1.0, 1.0], "load_mw": [9.0, 10.0], "grid_mw": [1.0, 2.0],
        "sellback_mw": [0.0, 0.0], "max_load_mw": [11.0, 11.0], "peak_weight": [1.0, 0.0],
        "mining_revenue_usd": [8 * V * dt, 9 * V * dt], "ai_revenue_usd": [1600 * dt] * 2,
        "energy_cost_usd": [100 * 1 * dt, 100 * 2 * dt], "sellback_credit_usd": [0.0, 0.0],
        "contract_cost_usd": [240 * dt] * 2, "restart_cost_usd": [0.0, 0.0], "sla_credit_usd": [0.0, 0.0],
        "fourcp_charge_usd": [56_250.0, 0.0], "reserve_revenue_usd": [5 * 2 * dt, 0.0],
        "profit_usd": [2 * V + 400 - 25 - 60 - 56_250 + 2.5, 2.25 * V + 400 - 50 - 60],
        "mining_mw__f": [8.0, 9.0], "ai_mw__g": [1.0, 1.0], "sla_shortfall_mw__g": [0.0, 0.0],
        "reserve_deployed_mw": [0.0, 0.0], "reserve_price__ecrs": [5.0, 5.0], "reserve_mw__ecrs__f": [2.0, 0.0]})
    inputs = CheckInputs(_times(2, 15), 100.0, 100.0, {"f": optimizer.UnitState(True, 7.0, 5)}, peak_weight=[1, 0])
    assert check_schedule(_site(fourcp={"charge_usd_per_kw_year": 100.0}), t, inputs) == []


def test_quarter_hour_ramps_come_from_the_inputs_resolution():
    """At 15 minutes a 4 MW/h ramp allows 1 MW per interval: 8, 9, 10 passes, 8, 9.5 breaks it by 0.5 MW."""
    site = _site()
    frame = pd.DataFrame({"timestamp": _times(3, 15).strftime("%Y-%m-%dT%H:%M:%SZ"), "mining_mw__f": [8.0, 9.0, 10.0],
                          "ai_mw__g": [1.0] * 3, "sla_shortfall_mw__g": [0.0] * 3})
    inputs = CheckInputs(_times(3, 15), 50.0, 100.0, {"f": optimizer.UnitState(True, 8.0, 5)})
    assert inputs.interval_hours == 0.25
    assert "ramp" not in _rules(site, frame, inputs)
    frame.loc[1, "mining_mw__f"] = 9.5
    assert [(v.row, v.amount) for v in check_schedule(site, frame, inputs) if v.rule == "ramp"] == \
        [(1, pytest.approx(0.5))]


# ---------------------------------------------------------------------------------------------------------
# Trips: excused only where an emergency cap from the inputs binds


def _trip_table(max_load_mw: float = 11.0) -> pd.DataFrame:
    """f drops from 8 MW to 0 in one hour (a stop may start from at most max(ramp 4, floor 3) = 4 MW) after being on
    for only 1 h (minimum on 2 h)."""
    return pd.DataFrame({"timestamp": _times(2).strftime("%Y-%m-%dT%H:%M:%SZ"), "mining_mw__f": [0.0, 0.0],
                         "ai_mw__g": [0.6, 0.6], "sla_shortfall_mw__g": [0.0, 0.0],
                         "max_load_mw": [max_load_mw, 11.0]})


def _trip_inputs(cap: list[float] | None = None) -> CheckInputs:
    return CheckInputs(_times(2), 50.0, 100.0, {"f": optimizer.UnitState(True, 8.0, 1)}, emergency_cap_mw=cap)


def test_a_trip_to_zero_breaks_ramp_and_minimum_on():
    bad = {(v.rule, v.row, round(v.amount, 6)) for v in check_schedule(_site(), _trip_table(), _trip_inputs())}
    assert {("ramp", 0, 4.0), ("min_on", 0, 1.0)} <= bad


def test_reviewers_exploit_a_lowered_max_load_column_excuses_nothing():
    rules = _rules(_site(), _trip_table(max_load_mw=10.0), _trip_inputs())
    assert {"ramp", "min_on", "inputs"} <= rules


@pytest.mark.parametrize("cap", [5.0, 8.7])
def test_a_binding_emergency_cap_excuses_the_trip(cap):
    """The site drew 8 (f) + 0.6 (committed) + 0.4 (flexible) = 9 MW before; an emergency cap below that binds:
    firmware may trip f to zero."""
    rules = _rules(_site(), _trip_table(max_load_mw=cap), _trip_inputs([cap, math.inf]))
    assert not rules & {"ramp", "min_on", "import_limit", "inputs"}


@pytest.mark.parametrize(("over", "site_over"), [
    ({"peak_probability": [0.6, 0.0]}, {"fourcp": {"curtail_above_probability": 0.5}}),   # 4CP rule: cap 0.6 MW
    ({"deployment_cap_mw": [5.0, math.inf]}, {}),
])
def test_caps_other_than_emergencies_excuse_nothing(over, site_over):
    inputs = CheckInputs(_times(2), 50.0, 100.0, {"f": optimizer.UnitState(True, 8.0, 1)}, **over)
    frame = _trip_table(max_load_mw=0.6 if site_over else 5.0)
    rules = _rules(_site(**site_over), frame, inputs)
    assert {"ramp", "min_on"} <= rules and "inputs" not in rules


def test_a_drop_that_does_not_reach_zero_is_no_trip():
    """Under the same binding 5 MW cap, 8 -> 3.5 MW (above the 3 MW floor) is a ramp of 4.5 MW > 4 MW/h."""
    frame = _trip_table(max_load_mw=5.0)
    frame.loc[0, "mining_mw__f"] = 3.5
    bad = [(v.rule, v.row, round(v.amount, 6)) for v in check_schedule(_site(), frame, _trip_inputs([5.0, math.inf]))]
    assert ("ramp", 0, 0.5) in bad


def test_a_continuous_unit_has_no_on_floor():
    """A fleet without minimum load, minimum times or restart cost may run at 2 kW (its 0.1% floor would be 10 kW
    were it switched)."""
    site = _site(mining=[{"name": "f", "capacity_mw": 10.0, "efficiency_j_per_th": 24.0}])
    frame = _trip_table()
    frame["mining_mw__f"] = 0.002
    inputs = CheckInputs(_times(2), 50.0, 100.0, {"f": optimizer.UnitState(True, 0.002, 5)})
    assert not _rules(site, frame, inputs) & {"min_load", "ramp", "min_on", "min_off"}


def test_an_emergency_cap_that_does_not_bind_excuses_nothing():
    """A 10 MW cap is above the 9 MW drawn before: the site could have ramped, so the trip is a violation."""
    rules = _rules(_site(), _trip_table(max_load_mw=10.0), _trip_inputs([10.0, math.inf]))
    assert {"ramp", "min_on"} <= rules


# ---------------------------------------------------------------------------------------------------------
# 3. A real solved schedule with every feature, and each kind of broken row

PRICES = [30, 30, 30, 30, 30, 150, 40, 40, 300, 300, 40, 40, 40, 40, 40, 2000, 40, 40, 40, -20, 40, 40, 40, 40]


def _rich_site() -> optimizer.Site:
    return _site(grid={"import_limit_mw": 15.0},
                 mining=[{"name": "f", "capacity_mw": 10.0, "efficiency_j_per_th": 24.0, "ramp_mw_per_hour": 4.0,
                          "min_load_fraction": 0.3, "min_on_hours": 2, "min_off_hours": 2, "restart_cost_usd": 20.0},
                         {"name": "e", "capacity_mw": 6.0, "efficiency_j_per_th": 40.0}],
                 gpu=[{"name": "g", "gpus": 1000, "kw_per_gpu": 1.0, "committed_gpus": 600,
                       "committed_price_usd_per_gpu_hour": 2.0, "spot_price_usd_per_gpu_hour": 0.2,
                       "spot_utilization": 0.5, "reserve_drop_mw_per_minute": 0.01}],
                 fourcp={"charge_usd_per_kw_year": 100.0, "curtail_above_probability": 0.5},
                 reserve=[{"name": "ecrs", "price_usd_per_mw_hour": 3.0, "response_minutes": 10.0}])


def _rich(prices_seen: list[float]) -> pd.DataFrame:
    """24 hours of 2022-07-20 solved by the library (no lookahead) with an emergency cap of 7 MW in hour 10 and 4CP
    peak probabilities 0.001 in hour 14 and 0.6 (above the 0.5 curtailment threshold) in hour 16."""
    times = optimizer.operating_hours(pd.Timestamp(DAY).date(), TZ)
    ds = optimizer.schedule(_rich_site(), pd.Series(prices_seen, index=times, dtype=float), day=DAY, hashprice=100.0,
                            lookahead_hours=0, events=[Event(times[10], times[11], 7.0)],
                            peak_probability=pd.Series(_RICH_WEIGHT, index=times))
    return optimizer.to_frame(ds)


_RICH_WEIGHT = np.where(np.arange(24) == 14, 0.001, np.where(np.arange(24) == 16, 0.6, 0.0))


def _rich_inputs(**over) -> CheckInputs:
    times = optimizer.operating_hours(pd.Timestamp(DAY).date(), TZ)
    kw = {"timestamps": times, "prices_usd_per_mwh": PRICES, "hashprice_usd_per_ph_day": 100.0,
          "emergency_cap_mw": np.where(np.arange(24) == 10, 7.0, math.inf), "peak_weight": _RICH_WEIGHT}
    return CheckInputs(**(kw | over))


@pytest.fixture(scope="module")
def rich() -> pd.DataFrame:
    frame = _rich(PRICES)
    # what the mutations below rely on (if the model's answer changes, this says so before any mutation runs)
    f = frame["mining_mw__f"].to_numpy()
    assert f[0] == pytest.approx(10.0) and f[9] == pytest.approx(3.0) and (f[15:17] == 0).all() and f[17] > 3
    assert frame.loc[16, "load_mw"] == pytest.approx(0.6) and frame.loc[10, "load_mw"] == pytest.approx(7.0)
    assert frame.loc[15, "mining_mw__e"] == 0 and frame["fourcp_charge_usd"].sum() > 0
    assert frame["reserve_revenue_usd"].sum() > 0 and frame.loc[7, "reserve_mw__ecrs__g"] > 0
    return frame


def test_rich_solved_schedule_passes(rich):
    assert check_schedule(_rich_site(), rich, _rich_inputs()) == []


def _set(**cells):
    """A mutation: set column[row] = value for each ``column=(row, value)`` (value None: NaN)."""
    def apply(frame: pd.DataFrame) -> pd.DataFrame:
        for col, (row, value) in cells.items():
            frame.loc[row, col] = np.nan if value is None else value
        return frame
    return apply


def _bump(col: str, row: int, delta: float):
    def apply(frame):
        frame.loc[row, col] += delta
        return frame
    return apply


def _retime(row: int | None, hours: float):
    def apply(frame):
        ts = pd.to_datetime(frame["timestamp"], utc=True)
        shift = pd.Timedelta(hours=hours)
        moved = ts + shift if row is None else ts.where(ts.index != row, ts + shift)
        frame["timestamp"] = moved.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        return frame
    return apply


MONEY = ["mining_revenue_usd", "ai_revenue_usd", "energy_cost_usd", "sellback_credit_usd", "contract_cost_usd",
         "restart_cost_usd", "sla_credit_usd", "fourcp_charge_usd", "reserve_revenue_usd", "profit_usd"]
NAN_COLUMNS = ["mining_mw__f", "ai_mw__g", "sla_shortfall_mw__g", "reserve_mw__ecrs__f", "load_mw", "grid_mw",
               "price_usd_per_mwh", "max_load_mw", "peak_weight", "reserve_price__ecrs", "reserve_deployed_mw", *MONEY]

MUTATIONS = [
    ("ramp", "f", _set(mining_mw__f=(2, 5.0))),                          # 10 -> 5 -> 10: steps of 5 > 4 MW/h
    ("min_off", "f", _set(mining_mw__f=(16, 3.0))),                      # off for hour 15 only (2 h minimum)
    ("min_on", "f", lambda fr: _set(mining_mw__f=(17, 0.0))(_set(mining_mw__f=(16, 3.0))(fr))),
    ("capacity", "f", _set(mining_mw__f=(0, 10.5))),
    ("min_load", "f", _set(mining_mw__f=(9, 2.0))),                      # floor 0.3 x 10 = 3 MW
    ("import_limit", "site", _set(ai_mw__g=(0, 1.0))),                   # 15.4 MW > 15 MW import limit
    ("import_limit", "site", _set(mining_mw__e=(10, 1.0))),              # 8 MW > emergency cap 7 MW
    ("import_limit", "site", _set(mining_mw__e=(16, 1.0))),              # 1.6 MW > 4CP cap, committed 0.6 MW
    ("sla_floor", "g", _bump("ai_mw__g", 1, -0.5)),
    ("sla_floor", "g", _set(sla_shortfall_mw__g=(3, 0.2))),              # breach not allowed
    ("reserve", "f", _set(reserve_mw__ecrs__f=(15, 1.0))),               # f draws nothing in hour 15
    ("reserve", "g", _set(reserve_mw__ecrs__g=(7, 0.2))),                # 0.01 MW/min x 10 min = 0.1 MW at most
    ("balance", "grid_mw", _bump("grid_mw", 2, 1.0)),
    ("balance", "sellback_mw", _bump("sellback_mw", 8, -1.0)),
    ("inputs", "max_load_mw", _bump("max_load_mw", 2, -1.0)),
    ("inputs", "peak_weight", _set(peak_weight=(3, 0.5))),
    ("inputs", "price_usd_per_mwh", _bump("price_usd_per_mwh", 4, 1.0)),
    ("inputs", "reserve_price__ecrs", _bump("reserve_price__ecrs", 5, 1.0)),
    ("inputs", "reserve_deployed_mw", _set(reserve_deployed_mw=(6, 1.0))),
    ("timestamps", "site", _retime(3, 1.0)),                             # one row shifted by an hour
    ("timestamps", "site", _retime(None, 1.0)),                          # every row an hour late
    ("timestamps", "site", _retime(4, -1.0)),                            # a row an hour early (a duplicate)
    ("timestamps", "site", lambda fr: fr.drop(index=23)),                # a missing row
    ("columns", "mining_mw__e", lambda fr: fr.drop(columns="mining_mw__e")),
    ("columns", "mining_mw__ghost", _set(mining_mw__ghost=(0, 0.0))),
    ("columns", "reserve_mw__rrs__f", _set(reserve_mw__rrs__f=(0, 0.0))),      # a service the site does not have
    ("columns", "profit_usd", lambda fr: fr.drop(columns="profit_usd")),
    *[("accounting", col, _bump(col, 5, 1.0)) for col in MONEY],        # one dollar off (profit ~2,300 USD)
    *[("finite", col, _set(**{col: (6, None)})) for col in NAN_COLUMNS],
    ("finite", "mining_mw__f", _set(mining_mw__f=(6, math.inf))),
]


@pytest.mark.parametrize(("rule", "asset", "mutate"), MUTATIONS,
                         ids=[f"{i}-{r}-{a}" for i, (r, a, _) in enumerate(MUTATIONS)])
def test_each_broken_row_is_caught(rich, rule, asset, mutate):
    bad = check_schedule(_rich_site(), mutate(rich.copy()), _rich_inputs())
    assert (rule, asset) in {(v.rule, v.asset) for v in bad}, "\n".join(map(str, bad))


def test_a_nan_is_reported_once_not_as_a_cascade(rich):
    bad = check_schedule(_rich_site(), _set(profit_usd=(6, None))(rich.copy()), _rich_inputs())
    assert [(v.rule, v.asset, v.row) for v in bad] == [("finite", "profit_usd", 6)]


def test_a_whole_nan_row_is_caught(rich):
    frame = rich.copy()
    frame.loc[6, frame.columns != "timestamp"] = np.nan
    bad = check_schedule(_rich_site(), frame, _rich_inputs())
    assert {v.asset for v in bad if v.rule == "finite" and v.row == 6} == set(frame.columns) - {"timestamp"}


@pytest.mark.parametrize(("rule", "asset", "inputs"), [
    ("accounting", "mining_revenue_usd", {"hashprice_usd_per_ph_day": 101.0}),
    ("accounting", "energy_cost_usd", {"prices_usd_per_mwh": [PRICES[0], *PRICES[:-1]]}),
    ("inputs", "max_load_mw", {"emergency_cap_mw": None}),
    ("inputs", "peak_weight", {"peak_weight": None}),
    ("min_off", "f", {"initial_state": {"f": optimizer.UnitState(False, 0.0, 1)}}),     # off 1 h, then on
])
def test_wrong_inputs_are_caught(rich, rule, asset, inputs):
    bad = check_schedule(_rich_site(), rich, _rich_inputs(**inputs))
    assert (rule, asset) in {(v.rule, v.asset) for v in bad}


def test_offers_beyond_load_plus_deployed_are_caught(rich):
    """While 0.5 MW is deployed a unit's offers may exceed its load, but the site's offers may not exceed its
    switchable load plus what is deployed: f offers 1 MW in hour 15 where nothing runs."""
    frame = _set(reserve_mw__ecrs__f=(15, 1.0), reserve_deployed_mw=(15, 0.5))(rich.copy())
    frame.loc[15, ["reserve_revenue_usd", "profit_usd"]] += 3.0             # 1 MW x 3 USD/MW/h, paid as deployed
    deployed = np.where(np.arange(24) == 15, 0.5, 0.0)
    bad = [(v.rule, v.asset, v.row, round(v.amount, 6)) for v in
           check_schedule(_rich_site(), frame, _rich_inputs(reserve_deployed_mw=deployed))]
    assert bad == [("reserve", "site", 15, 0.5)]


def test_prices_fed_one_hour_late_are_caught():
    late = _rich([PRICES[0], *PRICES[:-1]])
    rules = {(v.rule, v.asset) for v in check_schedule(_rich_site(), late, _rich_inputs())}
    assert {("inputs", "price_usd_per_mwh"), ("accounting", "energy_cost_usd")} <= rules


@pytest.mark.parametrize(("field", "value"), [
    ("initial_state", {"ghost": optimizer.UnitState()}), ("initial_state", {"f": optimizer.UnitState(True, 11.0, 5)}),
    ("reserve_prices_usd_per_mw_hour", {"rrs": 3.0}), ("sla_shortfall_before_mwh", {"f": 1.0})])
def test_names_and_values_the_site_does_not_have_are_bad_input(rich, field, value):
    with pytest.raises(optimizer.InputError, match=field):
        check_schedule(_rich_site(), rich, _rich_inputs(**{field: value}))


@pytest.mark.parametrize(("field", "value"), [("prices_usd_per_mwh", [np.nan] * 24), ("hashprice_usd_per_ph_day", 0.0),
                                              ("peak_weight", [0.1] * 23), ("peak_weight", [1.5] * 24),
                                              ("timestamps", _times(3).tz_localize(None))])
def test_bad_check_inputs_are_named(field, value):
    with pytest.raises(optimizer.InputError, match=field):
        _rich_inputs(**{field: value})


def test_violation_is_one_line_with_interval_unit_rule_and_amount(rich):
    v = check_schedule(_rich_site(), _set(mining_mw__f=(0, 10.5))(rich.copy()), _rich_inputs())
    line = next(str(x) for x in v if x.rule == "capacity")
    assert line.startswith("2022-07-20T05:00:00Z f capacity by 0.5:") and "\n" not in line


# ---------------------------------------------------------------------------------------------------------
# 4. The default site on a real day, and ``curtail check``

KNOWN_HASHPRICE_DAY = "2022-07-18"   # at 10:00 CDT on 07-19 (15:00 UTC) the UTC day 07-19 has not ended


@pytest.fixture(scope="module")
def real_day(tmp_path_factory) -> dict:
    site = optimizer.load_site(optimizer.default_site_path())
    da = data.ercot_prices("HB_WEST", "da")
    start = pd.Timestamp("2022-07-20T05:00:00Z")
    prices = da[(da.index >= start) & (da.index < start + pd.Timedelta(hours=48))]
    assert len(prices) == 48
    hashprice = float(data.hashprice_series().loc[KNOWN_HASHPRICE_DAY])
    folder = tmp_path_factory.mktemp("real")
    price_file = folder / "prices.csv"
    pd.DataFrame({"timestamp": prices.index.strftime("%Y-%m-%dT%H:%M:%SZ"), "price_usd_per_mwh": prices.to_numpy()}
                 ).to_csv(price_file, index=False)
    ds = optimizer.schedule(site, prices, day=DAY, hashprice=hashprice)
    optimizer.write(ds, folder / "schedule.csv")
    return {"site": site, "prices": prices, "hashprice": hashprice, "frame": optimizer.to_frame(ds),
            "price_file": price_file, "schedule": folder / "schedule.csv"}


def test_real_default_site_schedule_passes(real_day):
    frame = real_day["frame"]
    times = pd.DatetimeIndex(real_day["prices"].index[:24])
    inputs = CheckInputs(times, real_day["prices"].iloc[:24], real_day["hashprice"])
    assert check_schedule(real_day["site"], frame, inputs) == []
    assert frame["mining_mw"].min() < 1 < frame["mining_mw"].max()        # a day with curtailment: not trivial


def _cli(*args):
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command("check")(check_command)

    @app.callback()
    def _root() -> None:
        """test app"""

    return CliRunner().invoke(app, ["check", *map(str, args)])


def _base(real_day, **options) -> list:
    """The command line: the default site, the real day's schedule and prices, then ``options`` (``--name value``)."""
    given = {"site": optimizer.default_site_path(), "schedule": real_day["schedule"], "prices": real_day["price_file"]}
    return [x for name, value in (given | options).items() for x in (f"--{name.replace('_', '-')}", value)]


def test_cli_valid_schedule_exits_0_with_the_hashprice_known_the_day_before(real_day):
    r = _cli(*_base(real_day))
    assert r.exit_code == 0, (r.stdout, r.stderr)
    assert "valid" in r.stdout and r.stderr == ""


def test_cli_wrong_hashprice_exits_1_one_line_per_violation(real_day):
    r = _cli(*_base(real_day, hashprice=real_day["hashprice"] * 1.01))
    assert r.exit_code == 1
    lines = r.stdout.splitlines()
    assert lines and all(line.startswith("2022-07-") for line in lines)
    assert any(" mining_revenue_usd accounting by " in line for line in lines)


def test_cli_edited_file_exits_1_naming_interval_unit_and_rule(real_day, tmp_path):
    frame = pd.read_csv(real_day["schedule"], comment="#")
    hour = int(np.flatnonzero(frame["mining_mw__s19j-pro"].to_numpy() > 39)[0])
    frame.loc[hour, "mining_mw__s19j-pro"] = 41.0
    edited = tmp_path / "edited.csv"
    frame.to_csv(edited, index=False)
    r = _cli(*_base(real_day, schedule=edited))
    assert r.exit_code == 1
    assert f"{frame.loc[hour, 'timestamp']} s19j-pro capacity by 1:" in r.stdout


@pytest.mark.parametrize(("option", "content", "needle"), [
    ("prices", None, "prices.csv: price file not found"),
    ("hashprice", "nan", "--hashprice"),
    ("initial_state", '{"ghost": {"on": true, "power_mw": null, "hours_in_state": 3}}', "ghost"),
    ("initial_state", "[1, 2]", "expected a JSON object"),
    ("peaks", "timestamp\n2022-07-20T21:30:00Z\n", "row 1: '2022-07-20T21:30:00Z' is not an hour start"),
    ("peaks", "timestamp\n2022-07-20T21:00:00\n", "with a UTC offset"),
    ("emergency", "start,stop\n", "expected columns start, end"),
])
def test_cli_bad_input_exits_2_with_a_named_message(real_day, tmp_path, option, content, needle):
    path = tmp_path / f"{option}.csv"
    if content is not None and option != "hashprice":
        path.write_text(content)
    r = _cli(*_base(real_day, **{option: content if option == "hashprice" else path}))
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert needle in r.stderr and "Traceback" not in r.stderr + r.stdout and r.stdout == ""


def test_cli_without_shipped_hashprice_asks_for_one(real_day, tmp_path):
    frame = pd.read_csv(real_day["schedule"], comment="#")
    moved = pd.to_datetime(frame["timestamp"], utc=True) + pd.DateOffset(years=10)
    frame["timestamp"] = moved.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    prices = pd.read_csv(real_day["price_file"])
    prices["timestamp"] = (pd.to_datetime(prices["timestamp"], utc=True) + pd.DateOffset(years=10)
                           ).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame.to_csv(tmp_path / "s.csv", index=False)
    prices.to_csv(tmp_path / "p.csv", index=False)
    r = _cli(*_base(real_day, schedule=tmp_path / "s.csv", prices=tmp_path / "p.csv"))
    assert r.exit_code == 2 and "--hashprice" in r.stderr


def _day_file(tmp_path, real_day, name, **kw) -> Path:
    site = kw.pop("site", real_day["site"])
    ds = optimizer.schedule(site, real_day["prices"], day=DAY, hashprice=real_day["hashprice"], **kw)
    path = tmp_path / name
    optimizer.write(ds, path)
    return path


def test_cli_initial_state_and_emergency_change_the_verdict(real_day, tmp_path):
    """s19j-pro off for 5 h before the day; an event caps the site at 100 MW at 20:00 UTC (15:00 local)."""
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"s19j-pro": {"on": False, "power_mw": 0.0, "hours_in_state": 5}}))
    events = tmp_path / "events.csv"
    events.write_text("start,end,max_load_mw\n2022-07-20T20:00:00Z,2022-07-20T21:00:00Z,100\n")
    path = _day_file(tmp_path, real_day, "s.parquet",
                     initial_state=state_from_dict(json.loads(state.read_text())),
                     events=[Event(pd.Timestamp("2022-07-20T20:00:00Z"), pd.Timestamp("2022-07-20T21:00:00Z"), 100.0)])
    base = _base(real_day, schedule=path)
    r = _cli(*base, "--initial-state", state, "--emergency", events)
    assert r.exit_code == 0, r.stdout
    without_state = _cli(*base, "--emergency", events)
    assert without_state.exit_code == 1         # assumed on at 40 MW: the start in hour 0 and its 100 USD are wrong
    assert "2022-07-20T05:00:00Z restart_cost_usd accounting by 100:" in without_state.stdout
    without_events = _cli(*base, "--initial-state", state)
    assert without_events.exit_code == 1
    assert "2022-07-20T20:00:00Z max_load_mw inputs by 100: written 100.000000, recomputed 200.000000" \
        in without_events.stdout


def test_cli_sla_breach_must_be_allowed_to_verify_a_shortfall(real_day, tmp_path):
    """An event below the committed ~30 MW forces a shortfall: only --allow-sla-breach accepts it."""
    events = tmp_path / "events.csv"
    events.write_text("start,end,max_load_mw\n2022-07-20T20:00:00Z,2022-07-20T21:00:00Z,20\n")
    path = _day_file(tmp_path, real_day, "s.csv", allow_sla_breach=True,
                     events=[Event(pd.Timestamp("2022-07-20T20:00:00Z"), pd.Timestamp("2022-07-20T21:00:00Z"), 20.0)])
    base = _base(real_day, schedule=path, emergency=events)
    assert _cli(*base, "--allow-sla-breach").exit_code == 0
    refused = _cli(*base)
    assert refused.exit_code == 1 and " h100 sla_floor by " in refused.stdout


def test_cli_fourcp_charges_need_the_peak_hours(real_day, tmp_path):
    """A site with a 4CP charge, settled with weight 1 in the actual peak hour 2022-07-20 16:00 CDT (21:00 UTC)."""
    site_file = tmp_path / "site.toml"
    site_file.write_text(Path(optimizer.default_site_path()).read_text()
                         + "\n[fourcp]\ncharge_usd_per_kw_year = 50.0\n")
    site = optimizer.load_site(site_file)
    weight = pd.Series(0.0, index=real_day["prices"].index)
    weight.loc[pd.Timestamp("2022-07-20T21:00:00Z")] = 1.0
    path = _day_file(tmp_path, real_day, "s.json", site=site, peak_probability=weight)
    peaks = tmp_path / "peaks.csv"
    peaks.write_text("timestamp\n2022-07-20T16:00:00-05:00\n2022-08-01T20:00:00Z\n")
    base = _base(real_day, site=site_file, schedule=path)
    assert _cli(*base, "--peaks", peaks).exit_code == 0
    refused = _cli(*base)
    assert refused.exit_code == 2 and "--peaks" in refused.stderr
