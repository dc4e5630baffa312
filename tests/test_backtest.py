"""Walk-forward backtest on the shipped real ERCOT data: no look-ahead, exact state carry-over, perfect foresight
as an upper bound, settlement identities, and the plan-based policies against the operators' strike rule."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import optimizer
from optimizer import forecast
from optimizer.backtest import Market, Settings, run
from optimizer.check import CheckInputs
from optimizer.cli import app
from optimizer.errors import InputError
from optimizer.site import FourCP

D = dt.date


@pytest.fixture(scope="module")
def market() -> Market:
    return Market.shipped("HB_WEST")


def _free(site: optimizer.Site) -> optimizer.Site:
    """No commitment limits, no power capping, no 4CP: every interval decides on its own, by its price."""
    free = dict(ramp_mw_per_hour=float("inf"), min_on_hours=0, min_off_hours=0, restart_cost_usd=0.0,
                min_load_fraction=0.0)
    return dataclasses.replace(site, mining=tuple(dataclasses.replace(f, **free) for f in site.mining),
                               gpu=tuple(dataclasses.replace(g, power_cap_curve=None, **free) for g in site.gpu),
                               fourcp=FourCP())


def _heavy(site: optimizer.Site) -> optimizer.Site:
    """The default site with limits that punish a myopic rule: high restart costs, long minimum times, a
    minimum load, slow ramps, a GPU cluster with a 4-hour warm-up commitment."""
    fleets = tuple(dataclasses.replace(f, min_load_fraction=0.5, ramp_mw_per_hour=f.capacity_mw / 4,
                                       min_on_hours=4, min_off_hours=4, restart_cost_usd=50.0 * f.capacity_mw)
                   for f in site.mining)
    gpu = tuple(dataclasses.replace(g, ramp_mw_per_hour=5.0, min_on_hours=4, restart_cost_usd=3000.0)
                for g in site.gpu)
    return dataclasses.replace(site, mining=fleets, gpu=gpu)


def _check_every_policy(site, r, market, start_states=None):
    """Each policy's whole trajectory holds every hard limit and the accounting, checked here from the market data
    (actual prices, the daily hashprice, the actual 4CP hours, the cluster's demand profile), not from the run."""
    times = pd.DatetimeIndex(r.intervals["time"].values).tz_localize("UTC")
    day = times.tz_convert(site.timezone).date
    hp = market.hashprice.reindex(pd.DatetimeIndex(day)).to_numpy()
    weight = times.floor("h").isin(market.peak_hours).astype(float)
    demand = {g.name: g.demand_fraction(times) * (g.gpus - g.committed_gpus) for g in site.gpu}
    for p in r.intervals["policy"].values:
        ds = r.intervals.sel(policy=p)
        cap = ds["max_load_mw"].to_numpy()           # only used below to tell the 4CP curtailment hours
        deployed = ds["reserve_deployed_mw"].to_numpy() > 0      # a deployment instructs a drop, like an emergency
        ins = CheckInputs(timestamps=times, prices_usd_per_mwh=market.actual.reindex(times).to_numpy(),
                          hashprice_usd_per_ph_day=hp, initial_state=(start_states or {}).get(p, {}),
                          emergency_cap_mw=np.where(deployed, cap, np.inf),
                          peak_weight=weight, peak_probability=(cap < site.grid.import_limit_mw - 1e-9) * 1.0,
                          deployment_cap_mw=np.where(ds["reserve_deployed_mw"].to_numpy() > 0, cap, np.inf),
                          reserve_deployed_mw=ds["reserve_deployed_mw"].to_numpy(), demand_gpus=demand,
                          job_penalty="settle")
        violations = optimizer.check_schedule(site, optimizer.to_frame(ds), ins)
        assert violations == [], f"{p}: " + "; ".join(map(str, violations[:5]))


def _profits(r) -> pd.DataFrame:
    d = r.days.filter(like=":profit_usd")
    d.columns = [c.split(":")[0] for c in d.columns]
    return d


def test_week_of_august_2023_settles_every_policy_consistently(default_site, market):
    r = run(default_site, D(2023, 8, 14), D(2023, 8, 17), market)
    s = r.summary
    assert s["days"] == 4 and s["interval_hours"] == 0.25 and s["forecast_method"] == "gbm"
    assert r.intervals.sizes["time"] == 4 * 96
    assert s["policy"] == "mpc" and list(r.intervals["policy"].values)[0] == "mpc"      # the default policy
    _check_every_policy(default_site, r, market)
    # the day's settlement from the actual prices, by hand: the contract block costs 180 MW x 32 USD every hour
    for p, v in s["policies"].items():
        assert v["contract_cost_usd"] == pytest.approx(180 * 32 * 96)
        assert v["profit_usd"] == pytest.approx(_profits(r)[p].sum(), rel=1e-12)
        assert v["sla_delivered_fraction"] == 1.0
    # mpc re-plans every hour: 96 solves over 4 days; the day-ahead policies once a day
    assert s["policies"]["mpc"]["solves"] == 96 and s["policies"]["schedule"]["solves"] == 4
    assert s["policies"]["strike"]["solves"] == 0 and s["policies"]["strike"]["fallbacks"] == 0
    days_cols = {f"{p}:plan_status" for p in s["policies"]} | {f"{p}:fallbacks" for p in s["policies"]}
    assert days_cols <= set(r.days.columns)
    assert 0.3 < s["value_capture"] <= 1.0
    assert s["solver_seconds"] > 0 and s["wall_seconds"] > 0


@pytest.mark.parametrize("make", [lambda s: dataclasses.replace(s, fourcp=FourCP()), _heavy],
                         ids=["default-no-4cp", "heavy-limits"])
def test_perfect_foresight_is_at_least_as_good_as_every_policy_on_every_day(default_site, market, make):
    """Each day starts from each policy's own state, so perfect foresight is compared day by day only where it
    started from the same state: here over the whole run (every policy starts the run from the same state)."""
    site = make(default_site)
    r = run(site, D(2023, 8, 15), D(2023, 8, 17), market, Settings(forecast_method="naive"))
    total = _profits(r).sum()
    for p in total.index:
        assert total["perfect"] >= total[p] - 1e-6, p


def test_without_limits_perfect_equals_the_closed_form_and_strike_equals_it(default_site, market):
    site = _free(default_site)
    # one hashprice all along: mpc re-reads the hashprice known at each re-plan, the others at 10:00 the day before
    r = run(site, D(2022, 7, 19), D(2022, 7, 21), market, Settings(forecast_method="naive",
                                                                   hashprice_usd_per_ph_day=120.0))
    d = _profits(r)
    for p in ("strike", "schedule+strike", "mpc"):   # a strike of value - 0 (no 4CP, no commitment) is exact
        assert d["perfect"].to_numpy() == pytest.approx(d[p].to_numpy(), rel=1e-9), p
    ds = r.intervals.sel(policy="perfect")
    price = ds["price_usd_per_mwh"].to_numpy()
    day = pd.DatetimeIndex(ds["time"].values).tz_localize("UTC").tz_convert(site.timezone).date
    hp = r.days["hashprice_known"].reindex(day).to_numpy()      # what the plan valued mining at
    for f in site.mining:
        want = np.where(price < f.value_usd_per_mwh(hp), f.capacity_mw, 0.0)
        assert ds["power_mw"].sel(asset=f.name).to_numpy() == pytest.approx(want, abs=1e-6), f.name
    g = site.gpu[0]                 # no capping: 1.70 USD per GPU-h / (1.275 x 1.25 / 1000) MW = 1066.67 USD/MWh
    demand = ds["demand_gpus"].sel(cluster=g.name).to_numpy()
    spot = np.where(price < 1.70 / (1.275 * 1.25 / 1000), np.minimum(demand, 32000 - 18800), 0.0)
    spot = np.where(price < 0, 32000 - 18800, spot)             # paid to draw: every GPU on
    want = (18800 + spot) * 1.275 * 1.25 / 1000
    assert ds["power_mw"].sel(asset=g.name).to_numpy() == pytest.approx(want, abs=1e-6)


def test_plan_based_policies_beat_the_strike_rule_where_limits_make_it_costly(default_site, market):
    site = _heavy(dataclasses.replace(default_site, fourcp=FourCP()))
    r = run(site, D(2023, 8, 14), D(2023, 8, 17), market, Settings(forecast_method="perfect"))
    total = _profits(r).sum()
    assert max(total["schedule"], total["schedule+strike"]) > total["strike"] + 1e4
    _check_every_policy(site, r, market)


def test_state_carry_over_is_exact(default_site, market):
    settings = Settings(forecast_method="naive", policies=("mpc", "schedule", "strike", "perfect"))
    both = run(_heavy(default_site), D(2023, 8, 16), D(2023, 8, 17), market, settings)
    first = run(_heavy(default_site), D(2023, 8, 16), D(2023, 8, 16), market, settings)
    second = run(_heavy(default_site), D(2023, 8, 17), D(2023, 8, 17), market, settings,
                 initial_states=first.end_states)
    pd.testing.assert_series_equal(_profits(both).iloc[1], _profits(second).iloc[0], check_names=False, rtol=1e-9)
    day2 = both.intervals.isel(time=slice(96, None))
    np.testing.assert_allclose(day2["power_mw"].to_numpy(), second.intervals["power_mw"].to_numpy(), atol=1e-6)
    assert both.end_states == second.end_states


def test_decisions_never_read_data_after_the_decision_time(default_site, market):
    """Poison every price the forecasts could see after the last decision time: decisions must not change;
    the same poison an hour before that decision time changes them (so the test can fail)."""
    start, end = D(2022, 7, 19), D(2022, 7, 20)
    settings = Settings(forecast_method="gbm", policies=("schedule", "perfect"))
    clean = run(default_site, start, end, market, settings)
    last_decision = forecast.decision_time_for(end, default_site.timezone, 10)

    def poisoned(after: pd.Timestamp) -> Market:
        h = market.history
        bad = lambda s: s.where(s.index + pd.Timedelta(hours=1) <= after, 1e6) if s is not None else None  # noqa: E731
        return Market(dataclasses.replace(h, rt=bad(h.rt), da=bad(h.da)), market.actual, market.hashprice,
                      market.peak_hours)

    future = run(default_site, start, end, poisoned(last_decision), settings)
    pd.testing.assert_series_equal(clean.forecast, future.forecast)
    a = clean.intervals["power_mw"].sel(policy="schedule").to_numpy()
    np.testing.assert_array_equal(a, future.intervals["power_mw"].sel(policy="schedule").to_numpy())
    earlier = run(default_site, start, end, poisoned(last_decision - pd.Timedelta(hours=1)), settings)
    assert not np.allclose(clean.forecast.to_numpy(), earlier.forecast.to_numpy())
    # settlement still uses the actual prices: perfect foresight is untouched by the poisoned history
    np.testing.assert_array_equal(clean.intervals["profit_usd"].sel(policy="perfect").to_numpy(),
                                  earlier.intervals["profit_usd"].sel(policy="perfect").to_numpy())


def test_given_hourly_prices_set_the_simulation_resolution(default_site, market, tmp_path):
    rt = optimizer.ercot_prices("HB_WEST", "rt")
    hourly = Market(market.history, rt, market.hashprice, market.peak_hours)
    r = run(default_site, D(2022, 7, 20), D(2022, 7, 20), hourly, Settings(forecast_method="naive"))
    assert r.summary["interval_hours"] == 1.0 and r.intervals.sizes["time"] == 24


def test_a_market_without_a_hashprice_series_needs_a_constant_hashprice(default_site, market):
    no_series = Market(market.history, market.actual, None, market.peak_hours)
    with pytest.raises(InputError, match="give --hashprice .* or a hashprice file") as err:
        run(default_site, D(2022, 7, 20), D(2022, 7, 20), no_series, Settings(forecast_method="naive"))
    assert err.value.field == "hashprice"
    r = run(default_site, D(2022, 7, 20), D(2022, 7, 20), no_series,
            Settings(forecast_method="naive", hashprice_usd_per_ph_day=50.0))
    assert r.days["hashprice_known"].tolist() == [50.0] and r.days["hashprice_actual"].tolist() == [50.0]


def test_cli_backtest_writes_the_report(tmp_path):
    out = tmp_path / "bt"
    res = CliRunner().invoke(app, ["backtest", "--start", "2022-07-19", "--end", "2022-07-20", "--forecast", "naive",
                                   "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "value capture" in res.output
    for name in ("intervals.nc", "days.csv", "summary.json", "week.png", "cumulative.png", "monthly.png",
                 "report.html"):
        assert (out / name).stat().st_size > 0, name
    s = json.loads((out / "summary.json").read_text())
    for key in ("perfect_foresight_profit_usd", "always_on_profit_usd", "value_capture", "policy", "days",
                "wall_seconds", "solver_seconds"):
        assert key in s
    assert all("profit_usd" in v for v in s["policies"].values())
    html = (out / "report.html").read_text()
    assert html.index("Headline") < html.index("<img") and "data:image/png;base64," in html


@pytest.mark.parametrize("args", [["--start", "2022-07-20", "--end", "2022-07-19"],
                                  ["--start", "2022-07-20", "--end", "2022-07-20", "--policies", "yolo"],
                                  ["--start", "2022-07-20", "--end", "2022-07-20", "--forecast", "psychic"],
                                  ["--start", "20-07-2022", "--end", "2022-07-20"],
                                  ["--start", "2026-01-01", "--end", "2026-01-02"]])
def test_cli_backtest_bad_input_is_exit_2(args):
    res = CliRunner().invoke(app, ["backtest", *args, "--quiet"])
    assert res.exit_code == 2, res.output
    assert "error" in res.output


def test_reserve_capacity_is_offered_backed_by_load_and_deployed(default_site, market):
    from optimizer.backtest import Deployment
    from optimizer.site import Reserve

    site = dataclasses.replace(default_site, reserves=(Reserve("ecrs", 15.0, 10.0),))
    dep = Deployment(pd.Timestamp("2022-07-20T15:00Z"), pd.Timestamp("2022-07-20T16:00Z"), "ecrs")
    r = run(site, D(2022, 7, 19), D(2022, 7, 20), market, Settings(forecast_method="naive", deployments=(dep,)))
    _check_every_policy(site, r, market)
    s = r.summary["policies"]
    assert s["schedule"]["reserve_revenue_usd"] > 0 and s["perfect"]["reserve_revenue_usd"] > 0
    assert s["strike"]["reserve_revenue_usd"] == 0 and s["always-on"]["reserve_revenue_usd"] == 0
    # in the deployed hour, the plan-following policy drew at most its load minus what it offered
    ds = r.intervals.sel(policy="schedule", time=slice("2022-07-20T15:00", "2022-07-20T15:45"))
    offered = float(ds["reserve_offer_mw"].sum(dim=("asset", "service")).max())
    assert offered > 0
    assert (ds["load_mw"] <= ds["max_load_mw"] + 1e-6).all()
    assert float(ds["max_load_mw"].max()) < site.grid.import_limit_mw


def test_stochastic_policy_runs_against_the_deterministic_one(default_site, market):
    site = _heavy(default_site)
    r = run(site, D(2023, 8, 16), D(2023, 8, 17), market,
            Settings(forecast_method="naive", policies=("schedule+strike", "stochastic+strike", "perfect")))
    _check_every_policy(site, r, market)
    d = _profits(r)
    assert (d["perfect"] >= d["stochastic+strike"] - 1e-6).all()
    assert r.summary["policies"]["stochastic+strike"]["profit_usd"] > 0


def test_a_site_that_prepaid_its_power_never_curtails_on_price(market):
    """quebec-hydro-ai buys a 100 MW block at its import limit and cannot sell back: every MWh it can draw is paid
    for whatever the real-time price, so curtailing saves nothing. On 2023-08-17 HB_WEST's real-time price rose above
    every unit's value, yet each policy runs what always-on runs and earns the same (before, the strike rule and mpc
    compared the strikes with the market price and curtailed, losing about 0.8 M USD over 2024)."""
    site = optimizer.load_site(optimizer.data.resource_dir("models") / "quebec-hydro-ai.toml")
    day = dt.date(2023, 8, 17)
    values = optimizer.operate.values_usd_per_mwh(site, 60.0)
    assert market.actual[str(day)].max() > values.max()          # the price said curtail somewhere
    r = run(site, day, day, market, Settings(forecast_method="naive",
                                              policies=("mpc", "schedule+strike", "strike", "always-on")))
    power = r.intervals["power_mw"]
    base = power.sel(policy="always-on").to_numpy()
    profit = r.summary["policies"]
    for p in ("mpc", "schedule+strike", "strike"):
        np.testing.assert_allclose(power.sel(policy=p).to_numpy(), base, atol=1e-9, err_msg=p)
        assert profit[p]["profit_usd"] == pytest.approx(profit["always-on"]["profit_usd"], abs=0.01), p
    # the strike rule with hysteresis has its own comparison: it weighs the same 0
    hyst = run(site, day, day, market, Settings(forecast_method="naive", policies=("strike", "always-on"),
                                                hysteresis_usd_per_mwh=5.0))
    np.testing.assert_allclose(hyst.intervals["power_mw"].sel(policy="strike").to_numpy(), base, atol=1e-9)
