"""Hand-solvable cases: the right dispatch is known by hand, and the solver must find exactly it.

Fleet value at hashprice 100 USD/PH/day and 24 J/TH, no overhead or fees: 100/24 * 1000/24 = 173.61 USD/MWh.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from support import fleet, hourly, make_site, power, solve

import optimizer
from optimizer import UnitState

VALUE = 100 / 24 * 1000 / 24          # USD/MWh, fleet() at hashprice 100


def test_fleet_value_matches_hand_formula():
    f = make_site([fleet()]).mining[0]
    assert f.value_usd_per_mwh(100.0) == pytest.approx(VALUE)
    # domain.md: at 40 USD/PH/day, 15 J/TH -> ~111 USD/MWh; 29.5 J/TH -> ~56 USD/MWh
    s = make_site([fleet("a", efficiency_j_per_th=15.0), fleet("b", efficiency_j_per_th=29.5)])
    assert s.mining[0].value_usd_per_mwh(40.0) == pytest.approx(111.11, abs=0.01)
    assert s.mining[1].value_usd_per_mwh(40.0) == pytest.approx(56.50, abs=0.01)


def test_unlimited_fleet_runs_exactly_when_value_exceeds_price():
    prices = [50.0, 200.0, 173.0, 174.0, -10.0, 500.0, 100.0, 180.0]
    ds = solve(make_site([fleet()]), hourly(prices))
    want = [10.0 if p < VALUE else 0.0 for p in prices]
    assert power(ds, "f") == pytest.approx(want, abs=1e-6)
    assert ds.attrs["status"] == "optimal"


def test_each_fleet_has_its_own_strike_price():
    # 15 J/TH -> 277.78 USD/MWh, 30 J/TH -> 138.89 USD/MWh at hashprice 100
    site = make_site([fleet("new", 5.0, 15.0), fleet("old", 8.0, 30.0)])
    prices = [100.0, 150.0, 300.0, 270.0, 130.0, 139.5]
    ds = solve(site, hourly(prices))
    assert power(ds, "new") == pytest.approx([5, 5, 0, 5, 5, 5], abs=1e-6)
    assert power(ds, "old") == pytest.approx([8, 0, 0, 0, 8, 0], abs=1e-6)


def test_sellback_exactly_when_market_pays_more_than_any_use():
    # block = import limit = all capacity: every curtailed MW is sold back at the market price
    site = make_site([fleet("new", 5.0, 15.0), fleet("old", 8.0, 30.0)], import_limit_mw=13.0, block_mw=13.0,
                     contract_price=30.0)
    prices = [100.0, 150.0, 300.0, 270.0, -5.0, 2000.0]
    ds = solve(site, hourly(prices))
    values = {"new": 1e5 / 24 / 15, "old": 1e5 / 24 / 30}
    caps = {"new": 5.0, "old": 8.0}
    want_sold = [sum(caps[k] for k in caps if p > values[k]) for p in prices]
    assert ds["sellback_mw"].to_numpy() == pytest.approx(want_sold, abs=1e-6)
    assert ds["sellback_credit_usd"].to_numpy() == pytest.approx(np.array(want_sold) * prices, abs=1e-4)
    # everything is sold back only when the price beats the best use
    assert (ds["load_mw"].to_numpy() < 1e-6).tolist() == [p > max(values.values()) for p in prices]


def test_ramp_limited_fleet_anticipates_a_spike_exactly():
    # cap 10, ramp 3 MW/h, on at 10. Spike of 1000 for 4 hours: each MW at the spike costs 826 USD, each MW
    # given up before it 73.6 USD, so the fleet ramps down as late as possible to reach 0 at the spike.
    site = make_site([fleet(ramp_mw_per_hour=3.0)])
    prices = [100.0] * 3 + [1000.0] * 4 + [100.0] * 5
    ds = solve(site, hourly(prices))
    assert power(ds, "f") == pytest.approx([9, 6, 3, 0, 0, 0, 0, 3, 6, 9, 10, 10], abs=1e-6)


def test_min_load_with_ramp_starts_with_a_jump_and_stops_from_min_load():
    # min load 4 MW > ramp 2 MW/h: a start jumps to 4 (= max(ramp, min load)), then ramps by 2
    site = make_site([fleet(min_load_fraction=0.4, ramp_mw_per_hour=2.0)])
    off = {"f": UnitState(on=False, power_mw=0.0)}
    ds = solve(site, hourly([100.0] * 6), initial_state=off)
    assert power(ds, "f") == pytest.approx([4, 6, 8, 10, 10, 10], abs=1e-6)
    # from full power at a high price: ramp down by 2 to the minimum load, then a stop (jump of 4)
    ds = solve(site, hourly([1000.0] * 5))
    assert power(ds, "f") == pytest.approx([8, 6, 4, 0, 0], abs=1e-6)


def test_min_load_forbids_partial_power_below_it():
    site = make_site([fleet(min_load_fraction=0.6)], import_limit_mw=5.0)
    ds = solve(site, hourly([100.0] * 4))        # 5 MW allowed but 6 MW minimum: cannot run at all
    assert power(ds, "f") == pytest.approx([0, 0, 0, 0], abs=1e-6)


def test_min_off_time_keeps_a_stopped_fleet_off():
    prices = [50.0, 50.0, 1000.0, 100.0, 100.0, 100.0]
    free = make_site([fleet(min_load_fraction=1.0)])
    assert power(solve(free, hourly(prices)), "f") == pytest.approx([10, 10, 0, 10, 10, 10], abs=1e-6)
    held = make_site([fleet(min_load_fraction=1.0, min_off_hours=3)])
    # running through the spike costs 8264 USD; stopping before it (losing hours 0-1, 2 x 1236 USD) costs more
    # than stopping at it and staying off two more hours (2 x 736 USD)
    assert power(solve(held, hourly(prices)), "f") == pytest.approx([10, 10, 0, 0, 0, 10], abs=1e-6)


def test_min_on_time_prevents_a_short_run():
    prices = [1000.0, 100.0, 1000.0, 1000.0, 100.0, 100.0]
    off = {"f": UnitState(on=False, power_mw=0.0)}
    free = make_site([fleet(min_load_fraction=1.0)])
    assert power(solve(free, hourly(prices), initial_state=off), "f") == pytest.approx([0, 10, 0, 0, 10, 10],
                                                                                          abs=1e-6)
    held = make_site([fleet(min_load_fraction=1.0, min_on_hours=3)])
    # a start at hour 1 would have to run through two 1000 USD hours
    assert power(solve(held, hourly(prices), initial_state=off), "f") == pytest.approx([0, 0, 0, 0, 10, 10],
                                                                                          abs=1e-6)


def test_initial_state_holds_min_on_and_min_off():
    site = make_site([fleet(min_load_fraction=1.0, min_on_hours=4, min_off_hours=3)])
    # on for 1 h so far: must stay on 3 more hours even at 1000 USD/MWh
    ds = solve(site, hourly([1000.0] * 5), initial_state={"f": UnitState(on=True, power_mw=10.0, hours_in_state=1)})
    assert power(ds, "f") == pytest.approx([10, 10, 10, 0, 0], abs=1e-6)
    # off for 1 h so far: must stay off 2 more hours even when mining pays
    ds = solve(site, hourly([10.0] * 5), initial_state={"f": UnitState(on=False, power_mw=0.0, hours_in_state=1)})
    assert power(ds, "f") == pytest.approx([0, 0, 10, 10, 10], abs=1e-6)


def test_initial_state_holds_a_unit_whose_minimum_times_fit_one_interval():
    # min on/off of 1 h at hourly resolution binds nothing inside the day (no binaries), but a unit that has just
    # switched (0 h in its state) must keep that state through the first hour (found by hypothesis)
    site = make_site([fleet(min_on_hours=1, min_off_hours=1)])
    ds = solve(site, hourly([10.0] * 3), initial_state={"f": UnitState(on=False, power_mw=0.0, hours_in_state=0)})
    assert power(ds, "f") == pytest.approx([0, 10, 10], abs=1e-6)
    ds = solve(site, hourly([1000.0] * 3), initial_state={"f": UnitState(on=True, power_mw=10.0, hours_in_state=0)})
    assert power(ds, "f")[0] == pytest.approx(0.01, abs=1e-6)        # on at its floor (0.1% of capacity), then off
    assert power(ds, "f")[1:] == pytest.approx([0, 0], abs=1e-6)
    ds = solve(site, hourly([10.0] * 3), initial_state={"f": UnitState(on=False, power_mw=0.0, hours_in_state=1)})
    assert power(ds, "f") == pytest.approx([10, 10, 10], abs=1e-6)  # served its hour: free to start


@pytest.mark.parametrize(("restart_cost", "want"), [(1000.0, [10, 10, 0, 10, 10]), (2000.0, [10] * 5)])
def test_restart_cost_against_a_short_spike(restart_cost, want):
    # running through the 300 USD hour loses (300 - 173.61) x 10 = 1263.9 USD: stop only if a restart costs less
    site = make_site([fleet(min_load_fraction=1.0, restart_cost_usd=restart_cost)])
    ds = solve(site, hourly([100.0, 100.0, 300.0, 100.0, 100.0]))
    assert power(ds, "f") == pytest.approx(want, abs=1e-6)
    starts = int(ds["start"].sum())
    assert starts == (1 if want[2] == 0 else 0)
    assert float(ds["restart_cost_usd"].sum()) == pytest.approx(restart_cost * starts)
    if starts:
        assert ds["restart_cost_usd"].to_numpy()[3] == pytest.approx(restart_cost)   # charged in the start hour


def _cluster(**kw) -> dict:
    # 1000 GPUs x 1 kW x PUE 1.0 = 1 MW; 600 committed -> 0.6 MW; 400 spot GPUs, of which customers want half
    # (flat demand at utilisation 0.5 = 200 GPUs = 0.2 MW); serving one GPU-hour earns 2.0, so a MW of spot load
    # that serves demand earns 2.0 / 0.001 = 2000 USD/MWh, and a MW beyond demand earns nothing
    return {"name": "g", "gpus": 1000, "kw_per_gpu": 1.0, "committed_gpus": 600,
            "committed_price_usd_per_gpu_hour": 2.5, "spot_price_usd_per_gpu_hour": 2.0, "spot_utilization": 0.5,
            **kw}


@pytest.mark.parametrize("price", [10.0, 1999.0, 2001.0, 5000.0, 9000.0])
def test_sla_floor_holds_at_any_price_and_spot_serves_demand_only(price):
    ds = solve(make_site(gpu=[_cluster()]), hourly([price] * 4))
    ai = power(ds, "g")
    # below 2000 USD/MWh the spot GPUs serve the 200 GPUs of demand (0.2 MW); the other 200 stay off: worth zero
    assert ai == pytest.approx([0.6 if price > 2000 else 0.8] * 4, abs=1e-6)
    assert ds["served_gpus"].sel(cluster="g").to_numpy() == pytest.approx([0.0 if price > 2000 else 200.0] * 4)
    assert ds["ai_revenue_usd"].to_numpy() == pytest.approx(600 * 2.5 + (0.0 if price > 2000 else 200 * 2.0), abs=1e-6)


def test_demand_above_capacity_runs_every_spot_gpu_and_sells_only_capacity():
    ds = solve(make_site(gpu=[_cluster(spot_utilization=1.0)]), hourly([100.0] * 2))
    assert power(ds, "g") == pytest.approx([1.0, 1.0])                         # 400 spot GPUs, demand 400
    assert ds["ai_revenue_usd"].to_numpy() == pytest.approx([600 * 2.5 + 400 * 2.0] * 2)


def test_gpu_restart_cost_is_charged_when_flexible_load_rises_from_zero():
    site = make_site(gpu=[_cluster(restart_cost_usd=50.0, min_on_hours=2, ramp_mw_per_hour=0.2, spot_utilization=1.0)])
    ds = solve(site, hourly([100.0] * 4), initial_state={"g": UnitState(on=False, power_mw=0.0)})
    assert power(ds, "g") == pytest.approx([0.8, 1.0, 1.0, 1.0], abs=1e-6)       # ramp 0.2 MW/h from 0
    assert ds["restart_cost_usd"].to_numpy() == pytest.approx([50.0, 0, 0, 0])


def test_import_limit_curtails_the_least_valuable_use_first():
    site = make_site([fleet("new", 5.0, 15.0), fleet("old", 8.0, 30.0)], gpu=[_cluster()], import_limit_mw=7.0)
    ds = solve(site, hourly([50.0] * 3))
    # GPU (2000 USD/MWh, up to its 0.2 MW of demand) first, then the 15 J/TH fleet, the rest to the 30 J/TH fleet
    assert power(ds, "g") == pytest.approx([0.8] * 3)
    assert power(ds, "new") == pytest.approx([5.0] * 3)
    assert power(ds, "old") == pytest.approx([1.2] * 3, abs=1e-6)


def test_contract_settlement_is_take_or_pay():
    site = make_site([fleet()], block_mw=6.0, contract_price=30.0)
    ds = solve(site, hourly([100.0, 1000.0]))
    # hour 0: runs 10 MW, buys 4 above the block; hour 1: curtailed, sells 6 back
    assert ds["grid_mw"].to_numpy() == pytest.approx([4.0, -6.0], abs=1e-6)
    assert ds["energy_cost_usd"].to_numpy() == pytest.approx([400.0, 0.0], abs=1e-4)
    assert ds["sellback_credit_usd"].to_numpy() == pytest.approx([0.0, 6000.0], abs=1e-4)
    assert ds["contract_cost_usd"].to_numpy() == pytest.approx([180.0, 180.0])


def test_site_without_sellback_never_earns_the_market_price():
    site = make_site([fleet()], import_limit_mw=10.0, block_mw=10.0, contract_price=30.0, sellback=False)
    ds = solve(site, hourly([5000.0, -20.0]))
    assert power(ds, "f") == pytest.approx([10.0, 10.0])     # the market price is irrelevant: mine
    assert float(np.abs(ds["sellback_credit_usd"]).sum()) == 0.0


def test_objective_equals_the_reported_profit_over_the_horizon():
    site = make_site([fleet(ramp_mw_per_hour=3.0, restart_cost_usd=10.0)], gpu=[_cluster(restart_cost_usd=5.0)],
                     block_mw=5.0, contract_price=25.0)
    ds = solve(site, hourly([40.0, 400.0, 2000.0, -10.0, 150.0, 180.0]))
    assert float(ds["profit_usd"].sum()) == pytest.approx(ds.attrs["objective_usd"], rel=1e-9)


def test_schedule_is_deterministic():
    site = make_site([fleet(min_load_fraction=0.5, restart_cost_usd=100.0)], gpu=[_cluster()])
    prices = hourly([100.0, 300.0, 100.0, 1000.0, 50.0, 173.0])
    a, b = solve(site, prices), solve(site, prices)
    assert optimizer.to_frame(a).equals(optimizer.to_frame(b))


def quarter_hourly(values, start: str = "2022-07-20T05:00:00Z"):
    s = hourly(values, start)
    s.index = pd.date_range(start, periods=len(values), freq="15min", name="timestamp")
    return s


def test_fifteen_minute_resolution_runs_exactly_when_value_beats_each_price():
    prices = [50.0, 200.0, 100.0, 300.0, 10.0, 180.0, 170.0, 175.0]
    ds = solve(make_site([fleet()]), quarter_hourly(prices))
    want = np.array([10.0 if p < VALUE else 0.0 for p in prices])
    assert power(ds, "f") == pytest.approx(want, abs=1e-6)
    assert ds["mining_revenue_usd"].to_numpy() == pytest.approx(want * VALUE * 0.25)   # USD per 15 minutes
    assert ds.attrs["interval_hours"] == 0.25


def test_fifteen_minute_min_on_time_counts_hours_not_intervals():
    # min on 1 h = 4 intervals: a start for one cheap quarter-hour would have to run through three dear ones
    prices = [1000.0, 100.0, 1000.0, 1000.0, 1000.0, 100.0, 100.0, 100.0, 100.0]
    off = {"f": UnitState(on=False, power_mw=0.0)}
    held = make_site([fleet(min_load_fraction=1.0, min_on_hours=1)])
    ds = solve(held, quarter_hourly(prices), initial_state=off)
    assert power(ds, "f") == pytest.approx([0, 0, 0, 0, 0, 10, 10, 10, 10], abs=1e-6)


def test_fifteen_minute_ramp_is_a_quarter_of_the_hourly_ramp():
    site = make_site([fleet(ramp_mw_per_hour=4.0)])
    ds = solve(site, quarter_hourly([1000.0] * 6))
    assert power(ds, "f") == pytest.approx([9, 8, 7, 6, 5, 4], abs=1e-6)


def test_emergency_cap_is_a_hard_limit_reached_by_ramping_ahead():
    from optimizer.events import Event, load_caps

    site = make_site([fleet(ramp_mw_per_hour=3.0)])
    prices = hourly([10.0] * 6)
    event = Event(prices.index[4], prices.index[5], 2.0)
    caps = load_caps(site, [event], prices.index, 1.0)
    assert caps.tolist() == [1000.0] * 4 + [2.0, 1000.0]
    ds = solve(site, prices, load_cap_mw=caps)
    # down from 10 to 2 by hour 4 at 3 MW/h, as late as possible; then back up
    assert power(ds, "f") == pytest.approx([10, 10, 8, 5, 2, 5], abs=1e-6)
    assert ds["max_load_mw"].to_numpy()[4] == 2.0


@pytest.mark.parametrize(("charge", "want_hour_2"), [(0.0, 10.0), (100.0, 0.0)])
def test_a_certain_4cp_peak_hour_is_curtailed_when_the_charge_outweighs_mining(charge, want_hour_2):
    site = make_site([fleet()])
    site = dataclasses.replace(site, fourcp=dataclasses.replace(site.fourcp, charge_usd_per_kw_year=charge))
    prob = np.array([0.0, 0.0, 1.0, 0.0])
    ds = solve(site, hourly([50.0] * 4), peak_probability=prob)
    assert power(ds, "f") == pytest.approx([10, 10, want_hour_2, 10], abs=1e-6)
    # expected charge of an hour = probability x MW x charge x 1000 / 4
    assert ds["fourcp_charge_usd"].to_numpy()[2] == pytest.approx(prob[2] * want_hour_2 * charge * 250.0)


def test_4cp_threshold_curtails_to_the_committed_load():
    site = make_site([fleet()], gpu=[_cluster()])
    site = dataclasses.replace(site, fourcp=dataclasses.replace(site.fourcp, curtail_above_probability=0.3))
    ds = solve(site, hourly([50.0] * 4), peak_probability=np.array([0.1, 0.35, 0.2, 0.0]))
    assert ds["load_mw"].to_numpy()[1] == pytest.approx(0.6)          # committed GPUs only
    # fleet 10 MW + committed 0.6 MW + the 0.2 MW of spot load that serves demand
    assert ds["load_mw"].to_numpy()[[0, 2, 3]] == pytest.approx([10.8, 10.8, 10.8])


def _with_reserve(site, price: float, response: float = 10.0):
    from optimizer.site import Reserve

    return dataclasses.replace(site, reserves=(Reserve("ecrs", price, response),))


@pytest.mark.parametrize(("as_price", "runs"), [(20.0, False), (50.0, True)])
def test_reserve_capacity_pays_for_running_when_it_beats_the_energy_loss(as_price, runs):
    # energy at 200 USD/MWh loses 26.39 USD per MWh mined; each MW offered earns as_price per hour
    site = _with_reserve(make_site([fleet()]), as_price)
    ds = solve(site, hourly([200.0] * 3))
    want = 10.0 if runs else 0.0
    assert power(ds, "f") == pytest.approx([want] * 3, abs=1e-6)
    offer = ds["reserve_offer_mw"].sel(asset="f", service="ecrs").to_numpy()
    assert offer == pytest.approx([want] * 3, abs=1e-6)                 # never above the load consumed
    assert ds["reserve_revenue_usd"].to_numpy() == pytest.approx(offer * as_price)


def test_reserve_offer_is_bounded_by_what_drops_within_the_response_time():
    site = _with_reserve(make_site([fleet(reserve_drop_mw_per_minute=0.3)]), 100.0, response=10.0)
    ds = solve(site, hourly([50.0] * 2))
    assert ds["reserve_offer_mw"].sel(asset="f").to_numpy().ravel() == pytest.approx([3.0, 3.0])   # 0.3 x 10


def test_gpu_load_is_not_offered_unless_the_site_says_so():
    site = _with_reserve(make_site(gpu=[_cluster()]), 500.0)
    assert float(solve(site, hourly([50.0] * 2))["reserve_offer_mw"].sum()) == 0.0
