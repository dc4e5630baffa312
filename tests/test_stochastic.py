"""Two-stage scheduling: one scenario is the deterministic model exactly; commitments are shared; CVaR trades
expected profit for a better worst case."""

from __future__ import annotations

import pandas as pd
import pytest
from support import fleet, hourly, make_site, solve

import optimizer
from optimizer.inputs import Inputs
from optimizer.scheduling import check_inputs
from optimizer.stochastic import ScenarioPlanner, quantile_scenarios


def _check(site, ds, frame, inputs):
    for s in ds["scenario"].values:
        one = ds.sel(scenario=s)
        ins = check_inputs(site, inputs.replace(prices=frame[s]))
        assert optimizer.check_schedule(site, optimizer.to_frame(one), ins) == []


def test_one_scenario_is_the_deterministic_model_exactly(default_site):
    prices = optimizer.scheduling.horizon_prices(default_site, pd.Timestamp("2023-08-17").date(), None, 24).prices
    det = solve(default_site, prices, 65.0)
    two = ScenarioPlanner(default_site).solve(Inputs(prices, 65.0), prices.to_frame("only"), [1.0])
    a, b = optimizer.to_frame(det), optimizer.to_frame(two.sel(scenario="only"))
    a = a.drop(columns=[c for c in a.columns if c.startswith("strike_usd_per_mwh__")])    # a deterministic plan's
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9, atol=1e-7)           # strikes, not in b
    assert two.attrs["objective_usd"] == pytest.approx(det.attrs["objective_usd"], rel=1e-9)


def test_commitments_are_shared_and_power_adapts_per_scenario():
    # min load 50%, restart cost: on/off is a first-stage decision; a spike in one scenario only
    site = make_site([fleet(min_load_fraction=0.5, restart_cost_usd=1000.0)])
    low, high = hourly([100.0] * 4), hourly([100.0, 400.0, 100.0, 100.0])
    frame = pd.DataFrame({"calm": low.to_numpy(), "spike": high.to_numpy()}, index=low.index)
    inputs = Inputs(low, 100.0)
    ds = ScenarioPlanner(site).solve(inputs, frame, [0.5, 0.5])
    _check(site, ds, frame, inputs)
    on = ds["on"].sel(asset="f").to_numpy()
    assert (on[0] == on[1]).all()                                     # shared commitment
    p = ds["power_mw"].sel(asset="f").to_numpy()
    # hour 1, expected: staying on (calm 10 MW earns 736, spike at the 5 MW minimum loses 1132) is -198 USD;
    # stopping in both scenarios costs the 1000 USD restart: it stays on, and only the spike scenario drops to
    # its minimum load
    assert p[0] == pytest.approx([10, 10, 10, 10]) and p[1] == pytest.approx([10, 5, 10, 10])


def test_cvar_weight_buys_a_better_worst_case():
    # a fleet must commit for 3 hours (min on): a risky scenario makes running costly
    site = make_site([fleet(min_load_fraction=1.0, min_on_hours=3, restart_cost_usd=50.0)])
    off = {"f": optimizer.UnitState(on=False, power_mw=0.0)}
    idx = hourly([0.0] * 3).index
    frame = pd.DataFrame({"good": [50.0, 50.0, 50.0], "bad": [50.0, 50.0, 2000.0]}, index=idx)
    planner = ScenarioPlanner(site)
    inputs = Inputs(frame["good"], 100.0, off)
    neutral = planner.solve(inputs, frame, [0.95, 0.05], cvar_weight=0.0)
    averse = planner.solve(inputs, frame, [0.95, 0.05], cvar_weight=1.0, alpha=0.9)
    _check(site, neutral, frame, inputs)
    _check(site, averse, frame, inputs)
    assert neutral["power_mw"].sel(asset="f", scenario="good").to_numpy() == pytest.approx([10, 10, 10])
    assert averse["power_mw"].sel(asset="f", scenario="good").to_numpy() == pytest.approx([0, 0, 0])
    assert averse.attrs["cvar_usd"] > neutral.attrs["cvar_usd"]
    assert averse.attrs["expected_profit_usd"] < neutral.attrs["expected_profit_usd"]


def test_quantile_scenarios_weights_sum_to_one():
    q = pd.DataFrame({0.1: [1.0], 0.5: [2.0], 0.9: [3.0]})
    frame, w = quantile_scenarios(q)
    assert list(frame.columns) == ["q0.1", "q0.5", "q0.9"] and w == pytest.approx([0.3, 0.4, 0.3])


def test_cli_two_stage_schedule_from_a_scenario_file(tmp_path):
    from typer.testing import CliRunner

    from optimizer.cli import app

    rt = optimizer.ercot_prices("HB_WEST", "rt")
    idx = pd.date_range("2023-08-17T05:00Z", periods=48, freq="h")
    base = rt.reindex(idx).to_numpy()
    path = tmp_path / "scen.csv"
    pd.DataFrame({"timestamp": idx.strftime("%Y-%m-%dT%H:%M:%SZ"), "low": base * 0.5, "mid": base,
                  "high": base * 1.5}).to_csv(path, index=False)
    out = tmp_path / "s.csv"
    res = CliRunner().invoke(app, ["schedule", "--day", "2023-08-17", "--scenarios", str(path), "--weights",
                                   "0.25,0.5,0.25", "--out", str(out)])
    assert res.exit_code == 0, res.output
    long = pd.read_csv(out)
    assert sorted(long["scenario"].unique()) == ["high", "low", "mid"] and len(long) == 72
    on = long.pivot(index="timestamp", columns="scenario", values="mining_mw__s21-pro") > 1e-4
    assert (on["low"] == on["high"]).all() and (on["mid"] == on["high"]).all()     # shared commitments
    bad = CliRunner().invoke(app, ["schedule", "--day", "2023-08-17", "--scenarios", str(path), "--weights", "0.5,0.5"])
    assert bad.exit_code == 2
