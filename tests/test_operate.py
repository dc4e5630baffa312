"""``curtail operate``: a real day of 96 chained calls equals the backtest's ``mpc`` and passes the checker; the
setpoints promise what the next call resolves; bad input exits 2 and keeps the previous outputs; exit codes.

Real shipped data: HB_WEST on 2023-08-17 (scarcity prices up to 5,236 USD/MWh from 16:00 local: both fleets stop,
the GPU spot load is cut to its floor, restarts in the evening), the default site west-texas-200 (4CP on).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

import optimizer
from optimizer import data, forecast, fourcp, results, workloads
from optimizer import market as mk
from optimizer import operating as op
from optimizer.backtest import Settings, run
from optimizer.backtest.engine import Market
from optimizer.check import CheckInputs
from optimizer.cli.operate import operate
from optimizer.errors import InfeasibleError, InputError, NoSolutionError
from optimizer.planner import Planner
from optimizer.site import Grid

DAY = dt.date(2023, 8, 17)
HISTORY_DAYS = 35          # real-time and day-ahead prices a call is given (the forecaster's spread needs 28)


@pytest.fixture(scope="module")
def market() -> Market:
    """Shipped HB_WEST, with the hourly real-time history the backtest's forecasters read made of the 15-minute
    prices' hourly means: exactly what operate derives from its 15-minute price file (the shipped hourly file differs
    from those means by up to 5e-5 USD/MWh, its float32 storage, enough to flip a tie between two equally valued
    jobs in a re-plan; without jobs the trajectory is identical either way)."""
    m = Market.shipped("HB_WEST")
    q = m.actual
    return dataclasses.replace(m, history=dataclasses.replace(m.history, rt=q.groupby(q.index.floor("h")).mean()))


def _plan(site, market, day: dt.date = DAY) -> op.DayPlan:
    """The plan the backtest's mpc falls back on: the D-1 naive forecast and 4CP probabilities over day + 24 h."""
    decision = mk.decision_time_for(day, site.timezone, mk.DEFAULT_DECISION_HOUR_LOCAL)
    horizon = mk.horizon_for(day, site.timezone, 24)
    fc = forecast.Forecaster("naive", market.history).predict(decision, horizon).rename("price_usd_per_mwh")
    prob = fourcp.peak_probability(market.history, decision, horizon).rename("peak_weight")
    return op.DayPlan(day, fc, prob, None, "D-1 naive")


def _known(series: pd.Series, now: pd.Timestamp, days: int = HISTORY_DAYS) -> pd.Series:
    return series[(series.index >= now - pd.Timedelta(days=days)) & (series.index < now)]


def _da(now: pd.Timestamp) -> pd.Series:
    """Day-ahead prices as a file would hold them at ``now``: only those published (13:30 local on D-1)."""
    da = data.ercot_prices("HB_WEST", "da")
    published = mk.first_unpublished_day_start(now, "America/Chicago", mk.DA_PUBLICATION_LOCAL)
    return da[(da.index >= now - pd.Timedelta(days=HISTORY_DAYS)) & (da.index < published)]


def _chain(site, market, plan, times):
    """96 chained calls through the day, each given only the prices known then, the state through its JSON."""
    state = op.state_from_mapping({"time": times[0].isoformat(), "units": {}}, site)
    states, setpoints = [], []
    for now in times:
        sp, nxt = op.operate_step(site, state, _known(market.actual, now), now, da_prices=_da(now), plan=plan)
        states.append(state)
        setpoints.append(sp)
        state = op.state_from_mapping(json.loads(nxt.to_json(site)), site)
    _, _, last = op.resolve_pending(site, state, float(market.actual[times[-1]]))
    realised = [sp.previous for sp in setpoints[1:]] + [last]
    return states + [state], setpoints, realised


@pytest.fixture(scope="module")
def day_plan(default_site, market) -> op.DayPlan:
    return _plan(default_site, market)


@pytest.fixture(scope="module")
def backtest(default_site, market):
    return run(default_site, DAY, DAY, market, Settings(forecast_method="naive", policies=("mpc",)))


@pytest.fixture(scope="module")
def chain(default_site, market, day_plan, backtest):
    times = pd.DatetimeIndex(backtest.intervals["time"].values).tz_localize("UTC")
    return (times, *_chain(default_site, market, day_plan, times))


def _equal_to_mpc_and_checked(site, market, backtest, times, realised, day: dt.date = DAY) -> np.ndarray:
    """Asserts the realised trajectory is the backtest's mpc one and passes the independent checker (from the
    market data alone); returns the power (interval, asset)."""
    ds = backtest.intervals.sel(policy="mpc")
    power = np.array([r.power_mw for r in realised])
    jobs = np.array([r.job_gpus for r in realised]).reshape(len(times), len(site.jobs))
    assert [r.interval_start for r in realised] == list(times)
    np.testing.assert_array_equal(power, ds["power_mw"].to_numpy())          # identical, interval by interval
    np.testing.assert_array_equal(np.array([r.on for r in realised]), ds["on"].to_numpy().astype(bool))
    np.testing.assert_array_equal(np.array([r.start for r in realised]), ds["start"].to_numpy().astype(bool))
    np.testing.assert_array_equal(jobs, ds["job_gpus"].to_numpy())
    price = market.actual.reindex(times).to_numpy()
    hp = float(market.hashprice.loc[pd.Timestamp(day)])
    weight = times.floor("h").isin(market.peak_hours).astype(float)
    demand = {g.name: g.demand_fraction(times) * g.spot_gpus for g in site.gpu}
    caps = np.array([r.load_cap_mw for r in realised])
    out = results.assemble(site, times, price, power, np.array([r.on for r in realised]).astype(float),
                           np.array([r.start for r in realised]).astype(float), hashprice_usd_per_ph_day=hp,
                           dt_hours=0.25, max_load_mw=caps, peak_weight=weight,
                           committed_mw=np.array([r.committed_mw for r in realised]), job_gpus=jobs,
                           demand_gpus=np.stack(list(demand.values()), axis=1),
                           job_penalty=np.array([r.job_penalty_usd for r in realised]))
    ins = CheckInputs(timestamps=times, prices_usd_per_mwh=price, hashprice_usd_per_ph_day=hp, initial_state={},
                      peak_weight=weight, peak_probability=(caps < site.grid.import_limit_mw - 1e-9) * 1.0,
                      demand_gpus=demand, job_penalty="settle")
    assert optimizer.check_schedule(site, optimizer.to_frame(out), ins) == []
    assert float(out["profit_usd"].sum()) == pytest.approx(float(ds["profit_usd"].sum()), rel=1e-12)
    return power


def test_96_chained_calls_equal_the_backtests_mpc_and_hold_every_limit(default_site, market, backtest, chain):
    times, _, setpoints, realised = chain
    power = _equal_to_mpc_and_checked(default_site, market, backtest, times, realised)
    assert sum(sp.replanned for sp in setpoints) == 24                      # hourly re-plans, from local midnight
    assert [sp.replanned for sp in setpoints[:5]] == [True, False, False, False, True]
    # the day is not trivial: the fleets stop in the scarcity hours and restart in the evening
    assert power[:, 0].min() == 0.0 and power[:, 1].min() == 0.0 and power[-1, 0] == 80.0
    assert sum(r.start.sum() for r in realised) >= 2


def test_under_a_binding_load_cap_too(default_site, market):
    """Import limit 160 MW (below the 171 MW the site can draw): the cap binds in most running intervals and the
    lowest-priority unit gives way; still the backtest's mpc, interval by interval, and every promise kept."""
    site = dataclasses.replace(default_site, grid=Grid(160.0))
    bt = run(site, DAY, DAY, market, Settings(forecast_method="naive", policies=("mpc",)))
    times = pd.DatetimeIndex(bt.intervals["time"].values).tz_localize("UTC")
    states, setpoints, realised = _chain(site, market, _plan(site, market), times)
    power = _equal_to_mpc_and_checked(site, market, bt, times, realised)
    assert (power.sum(axis=1) > 160.0 - 1e-6).sum() >= 40
    _promises_kept(site, states, setpoints, range(0, 96, 6))


def test_jobs_progress_carries_through_the_state_as_in_the_backtest(default_site, market):
    """The example job mix (docs/ai-workloads.md) on 2023-07-26: rigid training runs, a fine-tune released at 09:00,
    divisible batch inference (one already late); each call's state carries every job's progress."""
    site = dataclasses.replace(default_site, jobs=workloads.read_jobs(
        Path(__file__).parent.parent / "examples" / "jobs-west-texas.csv", {g.name: g.gpus for g in default_site.gpu}))
    day = dt.date(2023, 7, 26)
    bt = run(site, day, day, market, Settings(forecast_method="naive", policies=("mpc",)))
    times = pd.DatetimeIndex(bt.intervals["time"].values).tz_localize("UTC")
    states, _, realised = _chain(site, market, _plan(site, market, day), times)
    _equal_to_mpc_and_checked(site, market, bt, times, realised, day)
    work = np.array([r.job_gpus for r in realised])
    assert (work[:, 0] == 2048).sum() >= 40 and work[:, 2].max() == 512       # rigid jobs: all their GPUs or none
    done = {k: v.gpu_hours_done for k, v in states[-1].jobs.items()}          # at 23:45, before its interval
    assert done["pretrain-13b-1t"] == pytest.approx(work[:-1, 0].sum() * 0.25, rel=1e-12)
    assert done["finetune-70b-a"] == pytest.approx(work[:-1, 2].sum() * 0.25, rel=1e-12)


def test_a_planned_rigid_job_holds_its_spot_power_whatever_the_price(default_site):
    """A rigid job (minimum run 2 h) planned on 2048 GPUs keeps the spot power its GPUs need even when the price
    says curtail; a divisible one does not."""
    site = dataclasses.replace(default_site, jobs=workloads.read_jobs(
        Path(__file__).parent.parent / "examples" / "jobs-west-texas.csv", {g.name: g.gpus for g in default_site.gpu}))
    g = site.gpu[0]
    planned = np.zeros((1, len(site.jobs)))
    planned[0, 0] = 2048.0                                   # pretrain-13b-1t: 2048 GPUs, minimum run 2 h
    lo, hi = np.array([0.0, 0.0, 1.0]), np.array([80.0, 40.0, 20.0])
    curtail = op.keep_rigid_jobs(site, lambda t, lo, hi, on: lo, planned)
    assert curtail(0, lo, hi, np.ones(3, bool)).tolist() == [0.0, 0.0, pytest.approx(float(g.spot_mw_for(2048.0)))]
    planned[0, 0], planned[0, 4] = 0.0, 2000.0               # batch inference: divisible
    assert op.keep_rigid_jobs(site, lambda t, lo, hi, on: lo, planned)(0, lo, hi, np.ones(3, bool)).tolist() == \
        [0.0, 0.0, 1.0]


def _promises_kept(site, states, setpoints, which) -> None:
    """For call i, a price inside each price band resolves (as the next call does) to that band's MW, and each unit's
    'below' / 'at or above' setpoints are what a price just below / at its strike gives."""
    for i in which:
        state, sp = states[i + 1], setpoints[i]        # the state handed on by call i holds its pending decision
        for band in sp.bands:
            lo = -1e4 if band.price_from is None else band.price_from
            hi = lo + 2.0 if band.price_below is None else band.price_below
            for price in (lo, (lo + hi) / 2):
                _, _, real = op.resolve_pending(site, state, price)
                assert dict(zip(site.asset_names, real.power_mw, strict=True)) == band.mw, (i, price)
        for k, u in enumerate(sp.units):
            _, _, below = op.resolve_pending(site, state, np.nextafter(u.strike_usd_per_mwh, -np.inf))
            _, _, above = op.resolve_pending(site, state, u.strike_usd_per_mwh)
            assert (below.power_mw[k], below.on[k]) == (u.run_mw, u.run_on)
            assert (above.power_mw[k], above.on[k]) == (u.curtail_mw, u.curtail_on)


def test_the_setpoints_promise_what_the_next_call_resolves(default_site, chain):
    _, states, setpoints, _ = chain
    _promises_kept(default_site, states, setpoints, (0, 52, 54, 56, 72, 84, 85, 86))


def test_strikes_and_reasons_by_hand(default_site, chain):
    site = default_site
    _, _, setpoints, _ = chain
    per_mw_peak = 100.0 * 1000 / 4                  # 100 USD/kW-year over four monthly peaks, per MW
    for sp in setpoints:
        hp = sp.hashprice_usd_per_ph_day             # the re-plan's: the daily value known then
        c4 = sp.peak_probability * per_mw_peak
        assert sp.expected_fourcp_usd_per_mwh == pytest.approx(c4, rel=1e-12)
        for f, u in zip(site.mining, sp.units, strict=False):
            # the interval's own expected charge, or (ramp-ahead) a larger one of a later risky interval the plan
            # ramps the fleet down for, which the reasons then name
            assert u.marginal_strike_usd_per_mwh == pytest.approx(f.value_usd_per_mwh(hp) - u.fourcp_usd_per_mwh,
                                                                  rel=1e-12)
            assert u.fourcp_usd_per_mwh >= c4 - 1e-9
            carried = u.fourcp_usd_per_mwh > c4 + 1e-6
            assert carried == ("of a later risky interval the plan ramps it down for" in u.why[0]), u.why[0]
            assert u.fourcp_usd_per_mwh <= max(s.peak_probability for s in setpoints) * per_mw_peak + 1e-9
    # an August afternoon carries some 4CP risk (the D-1 estimate: at most ~5 USD/MWh that day), the night none
    assert max(sp.expected_fourcp_usd_per_mwh for sp in setpoints) > 1.0
    assert setpoints[0].expected_fourcp_usd_per_mwh < 1e-6
    s21 = setpoints[85].units[0]          # 21:15 local: off since 14:15, free to start (it does, at 115.82)
    assert s21.on_now is False and s21.strike_applies == "start"
    on = setpoints[86].units[0]           # 21:30: on for 0.25 h of its 1 h minimum run time
    assert on.on_now is True and any("minimum run time 1 h, on for 0.25 h" in w for w in on.why)
    h100 = setpoints[60].units[2]
    assert any("committed load 29.96 MW always served (the SLA floor)" in w for w in h100.why)
    assert h100.committed_mw == pytest.approx(29.9625) and h100.curtail_mw >= h100.committed_mw


def test_fallback_forecast_by_hand(default_site):
    """At 10:00 local on D (15:00 UTC) D+1's day-ahead prices are not out (13:30): D's remaining hours stand on the
    day-ahead price, D+1's on the plan where it covers them, else on the real-time price 24 h earlier."""
    site = default_site
    day0 = pd.Timestamp("2023-08-17T05:00:00Z")                    # local midnight of D
    hours = pd.date_range(day0 - pd.Timedelta(days=1), periods=72, freq="1h")
    da = pd.Series(1000.0 + np.arange(72), index=hours)            # D-1, D and D+1 in the file
    hourly = pd.Series(np.arange(72.0), index=hours)[:34]         # real-time known up to the hour ended at 15:00 UTC
    now = pd.Timestamp("2023-08-17T15:00:00Z")
    fb, sources = op.fallback_forecast(site, None, hourly, da, now, 24)
    assert sources == {"day_ahead": 14, "plan": 0, "same_hour_yesterday": 10}      # 15:00..04:00 UTC | 05:00..14:00
    assert fb.index[0] == now and len(fb) == 24
    assert fb.iloc[:14].tolist() == da.iloc[34:48].tolist()
    assert fb.iloc[14:].tolist() == hourly.iloc[24:34].tolist()     # D+1 05:00.. from D 05:00.. (24 h earlier)
    plan = op.DayPlan(dt.date(2023, 8, 17), pd.Series(-5.0, index=hours[24:48]))        # D only
    fb, sources = op.fallback_forecast(site, plan, hourly, da, now, 24)
    assert sources == {"day_ahead": 14, "plan": 0, "same_hour_yesterday": 10}
    assert (fb.loc[:hours[47]] == -5.0).all() and fb.iloc[-10:].tolist() == hourly.iloc[24:34].tolist()
    later = pd.Timestamp("2023-08-17T19:00:00Z")                  # 14:00 local: D+1 published
    fb, sources = op.fallback_forecast(site, None, hourly, da, later, 24)
    assert sources == {"day_ahead": 24, "plan": 0, "same_hour_yesterday": 0} and fb.iloc[-1] == da[fb.index[-1]]
    with pytest.raises(InputError, match="no real-time price 24 h earlier for 10 horizon hour"):
        op.fallback_forecast(site, None, hourly.iloc[:20], da, now, 24)


def test_the_shipped_example_runs_without_a_plan(tmp_path):
    """examples/operate: a measured state, two days of prices and the day's day-ahead prices; no plan (4CP is
    estimated from the shipped ERCOT load known then)."""
    ex = Path(__file__).parent.parent / "examples" / "operate"
    out, nxt = tmp_path / "setpoints.json", tmp_path / "next.json"
    r = CliRunner().invoke(_app(), ["operate", "--state", str(ex / "state.json"), "--prices", str(ex / "prices.csv"),
                                    "--da-prices", str(ex / "da.csv"), "--now", "2023-08-17T05:00:00Z", "--out",
                                    str(out), "--state-out", str(nxt)])
    assert r.exit_code == 0, r.output
    sp = json.loads(out.read_text())
    assert sp["price"]["horizon_hours_by_base"] == {"day_ahead": 24, "plan": 0, "same_hour_yesterday": 0}
    assert sp["price"]["last_known_usd_per_mwh"] == 35.82                    # the file's last row, 04:45 UTC
    assert [u["name"] for u in sp["units"]] == ["s21-pro", "s19j-pro", "h100"]
    assert json.loads(nxt.read_text())["units"]["h100"]["power_mw"] > 0


# ----------------------------------------------------------------------------------------------------------------
# the command


def _app() -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command("operate")(operate)

    @app.callback()
    def _root() -> None:
        """test app"""

    return app


def _write_prices(path: Path, s: pd.Series) -> Path:
    frame = pd.DataFrame({"timestamp": [t.isoformat() for t in s.index], "price_usd_per_mwh": s.to_numpy()})
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def files(tmp_path, default_site, market, day_plan):
    """A first call at 00:00 local written to setpoints.json / state.json, and the files the next call needs."""
    now0 = pd.Timestamp("2023-08-17T05:00:00Z")
    plan = pd.DataFrame({"timestamp": day_plan.prices.index, "price_usd_per_mwh": day_plan.prices.to_numpy(),
                         "peak_weight": day_plan.peak_probability.to_numpy()})
    plan.to_parquet(tmp_path / "plan.parquet")
    (tmp_path / "state.json").write_text(json.dumps({"time": now0.isoformat(), "units": {}}))
    f = {"dir": tmp_path, "plan": tmp_path / "plan.parquet", "state": tmp_path / "state.json",
         "out": tmp_path / "setpoints.json",
         "da": _write_prices(tmp_path / "da.csv", _da(now0 + pd.Timedelta(hours=1))),
         "prices0": _write_prices(tmp_path / "p0.csv", _known(market.actual, now0, 30)),
         "prices1": _write_prices(tmp_path / "p1.csv", _known(market.actual, now0 + op.INTERVAL, 30))}
    r = _invoke(f, "2023-08-17T05:00:00Z", f["prices0"])
    assert r.exit_code == 0, r.output
    return f


def _invoke(f: dict, now: str | None, prices: Path, *extra: str, state: Path | None = None):
    args = ["operate", "--state", str(state or f["state"]), "--prices", str(prices), "--out", str(f["out"]),
            "--da-prices", str(f["da"]), "--plan", str(f["plan"]), *extra]
    if now is not None:
        args += ["--now", now]
    return CliRunner().invoke(_app(), args)


def _outputs(f: dict) -> tuple[bytes, bytes]:
    return f["out"].read_bytes(), f["state"].read_bytes()


def test_command_chains_through_its_files_like_the_backtest(files, backtest):
    f = files
    first = json.loads(f["out"].read_text())
    assert first["interval_start"] == "2023-08-17T05:00:00Z" and first["plan"]["replanned"] is True
    assert first["previous_interval"] is None and set(first["inputs"]) == {"site", "state", "prices", "da_prices",
                                                                           "plan"}
    assert json.loads(f["state"].read_text())["pending"]["interval_start"] == "2023-08-17T05:00:00Z"
    r = _invoke(f, "2023-08-17T05:15:00Z", f["prices1"])
    assert r.exit_code == 0, r.output
    second = json.loads(f["out"].read_text())
    assert second["plan"]["replanned"] is False          # 00:15 local: the 00:00 re-plan from the state file
    mpc = backtest.intervals.sel(policy="mpc")["power_mw"].to_numpy()
    got = [second["previous_interval"]["mw"][a] for a in ("s21-pro", "s19j-pro", "h100")]
    np.testing.assert_allclose(got, mpc[0], rtol=0, atol=1e-9)
    assert json.loads(f["state"].read_text())["time"] == "2023-08-17T05:15:00Z"      # --state replaced in place
    assert "s21-pro" in r.output and "strike" in r.output
    again = _invoke(f, "2023-08-17T05:15:00Z", f["prices1"])          # cron ran twice in the interval
    assert again.exit_code == 0, again.output
    third = json.loads(f["out"].read_text())
    assert third["units"] == second["units"] and third["price_bands"] == second["price_bands"]
    assert third["previous_interval"] is None and "replaced" in third["notes"][0]


def test_ledger_records_each_call_its_realised_interval_and_a_failure(files, backtest):
    from optimizer import ledger

    f, db = files, files["dir"] / "operate.sqlite"
    bad = _invoke(f, "2023-08-17T05:15:00Z", f["prices0"], "--ledger", str(db))      # stale prices: exit 2
    assert bad.exit_code == 2, bad.output
    ok = _invoke(f, "2023-08-17T05:15:00Z", f["prices1"], "--ledger", str(db))
    assert ok.exit_code == 0, ok.output
    runs = ledger.runs(db)
    assert list(runs["kind"]) == ["operate", "operate"] and list(runs["exit_code"]) == [2, 0]
    assert runs["status"].iloc[0] == "failed" and "stale price file" in runs["error"].iloc[0]
    assert runs["interval_start"].tolist() == ["2023-08-17T05:15:00Z", "2023-08-17T05:15:00Z"]
    mpc = backtest.intervals.sel(policy="mpc")["power_mw"].to_numpy()[0]         # what the units drew at 05:00
    with sqlite3.connect(db) as con:
        drawn = dict(con.execute("SELECT asset, mw FROM realised WHERE interval_start = ?",
                                 ("2023-08-17T05:00:00Z",)).fetchall())
        points = con.execute("SELECT COUNT(*) FROM setpoints WHERE run_id = ?", (int(runs["run_id"].iloc[1]),))
        assert points.fetchone()[0] == 3                                          # one row per fleet and cluster
    np.testing.assert_allclose([drawn[a] for a in ("s21-pro", "s19j-pro", "h100")], mpc, rtol=0, atol=1e-9)
    missing = _invoke(f, "2023-08-17T05:30:00Z", f["prices1"], "--ledger", str(f["dir"] / "no" / "l.sqlite"))
    assert missing.exit_code == 2 and "ledger folder does not exist" in missing.output


def test_rows_not_ended_are_ignored_and_said(files, market):
    f = files
    late = _write_prices(f["dir"] / "late.csv", _known(market.actual, pd.Timestamp("2023-08-17T07:00:00Z"), 30))
    r = _invoke(f, "2023-08-17T05:15:00Z", late)
    assert r.exit_code == 0, r.output
    notes = json.loads(f["out"].read_text())["notes"]
    assert any("7 row(s)" in n and "ignored" in n for n in notes), notes      # 05:15 .. 06:45 not ended at 05:15


@pytest.mark.parametrize("case", ["future", "stale", "off-boundary", "missed-call", "unknown-unit", "other-day-plan",
                                  "bad-replan-minutes"])
def test_bad_input_exits_2_names_it_and_keeps_the_previous_outputs(files, market, case):
    f = files
    before = _outputs(f)
    now, prices, extra, state = "2023-08-17T05:15:00Z", f["prices1"], [], None
    if case == "future":
        now = "2023-08-17T04:45:00Z"
        expect = "state is from the future"
    elif case == "stale":
        prices = f["prices0"]                                # lacks the 05:00 interval the state's decision awaits
        expect = "stale price file: no price for the pending interval 2023-08-17T05:00:00Z"
    elif case == "off-boundary":
        now = "2023-08-17T05:20:00Z"
        expect = "not on a 15-minute interval boundary"
    elif case == "missed-call":
        now, prices = "2023-08-17T05:30:00Z", _write_prices(f["dir"] / "p2.csv", _known(
            market.actual, pd.Timestamp("2023-08-17T05:30:00Z"), 30))
        expect = "is 2 intervals before --now (a call was missed)"
    elif case == "unknown-unit":
        state = f["dir"] / "mine.json"
        state.write_text(json.dumps({"time": "2023-08-17T05:15:00Z", "units": {"s9": {"on": True, "power_mw": 1.0,
                                                                                      "hours_in_state": 3}}}))
        expect = "unknown asset(s): s9"
    elif case == "other-day-plan":
        plan = pd.read_parquet(f["plan"])
        plan["timestamp"] = plan["timestamp"] - pd.Timedelta(days=1)
        plan.to_parquet(f["plan"])
        expect = "the plan is for 2023-08-16"
    else:
        extra = ["--replan-minutes", "30"]
        expect = "replan minutes must be 15 or 60"
    r = _invoke(f, now, prices, *extra, state=state)
    assert r.exit_code == 2, r.output
    assert expect in r.output
    assert _outputs(f) == before


def test_a_measured_state_restarts_the_chain_and_a_15_minute_replan_solves_every_call(files, market):
    f = files
    state = f["dir"] / "measured.json"
    state.write_text(json.dumps({"time": "2023-08-17T05:15:00Z", "units": {"s19j-pro": {
        "on": False, "power_mw": 0.0, "hours_in_state": 0.5}}}))
    r = _invoke(f, "2023-08-17T05:15:00Z", f["prices1"], "--replan-minutes", "15", state=state)
    assert r.exit_code == 0, r.output
    sp = json.loads(f["out"].read_text())
    s19 = next(u for u in sp["units"] if u["name"] == "s19j-pro")
    assert sp["plan"]["replanned"] is True and sp["previous_interval"] is None
    assert s19["on_now"] is False and s19["if_price_below_strike"]["mw"] == 0.0       # 0.5 h of its 1 h off time
    assert any("held off: minimum off time 1 h, off for 0.5 h" in w for w in s19["why"])
    nxt = json.loads(state.read_text())
    assert nxt["plan"]["dt_hours"] == 0.25 and nxt["plan"]["replan_minutes"] == 15


def test_locked_outputs_exit_6_and_solver_outcomes_map_to_schedules_codes(files, monkeypatch):
    f = files
    before = _outputs(f)
    with results.output_lock(f["out"]):
        r = _invoke(f, "2023-08-17T05:15:00Z", f["prices1"])
    assert r.exit_code == 6 and _outputs(f) == before
    for error, code in ((InfeasibleError("limits conflict"), 3), (NoSolutionError("no solution"), 4),
                        (InputError("bad"), 2)):
        def fail(*args, error=error, **kwargs):
            raise error
        monkeypatch.setattr(op.Controller, "replan", fail)
        r = _invoke(f, "2023-08-17T05:15:00Z", f["prices1"], state=_fresh(f, "2023-08-17T05:15:00Z"))
        assert r.exit_code == code and _outputs(f) == before


def _fresh(f: dict, when: str) -> Path:
    path = f["dir"] / "fresh.json"
    path.write_text(json.dumps({"time": when, "units": {}}))
    return path


def test_a_solver_failure_writes_the_strike_rule_fallback_and_exits_5(files, monkeypatch, default_site):
    f = files

    def broken(model, options):
        raise RuntimeError("solver crashed")

    monkeypatch.setattr(op, "Planner", lambda site, options: Planner(site, options, solver_factory=broken))
    r = _invoke(f, "2023-08-17T05:15:00Z", f["prices1"], state=_fresh(f, "2023-08-17T05:15:00Z"))
    assert r.exit_code == 5, r.output
    sp = json.loads(f["out"].read_text())
    assert sp["interval_start"] == "2023-08-17T05:15:00Z" and sp["plan"]["fallback"] is True
    assert "solver crashed" in sp["plan"]["fallback_reason"]
    assert "FALLBACK" in r.output


def test_state_file_round_trip_and_validation(default_site, chain):
    site = default_site
    state = chain[1][40]
    again = op.state_from_mapping(json.loads(state.to_json(site)), site)
    assert again.to_json(site) == state.to_json(site)
    raw = json.loads(state.to_json(site))
    raw["pending"]["units"] = ["a", "b", "c"]
    with pytest.raises(InputError, match="pending decision is for units"):
        op.state_from_mapping(raw, site)
    other = dataclasses.replace(site, name="elsewhere")
    with pytest.raises(InputError, match="state is for site 'west-texas-200'"):
        op.operate_step(other, state, pd.Series(dtype=float), pd.Timestamp("2023-08-17T15:00:00Z"))


def test_a_site_paid_clearing_prices_for_reserves_operates_like_one_without(tmp_path):
    # re-plans sell no ancillary capacity (as the backtest's mpc): a site whose [[reserve]] is paid ERCOT's hourly
    # clearing prices needs none in real time, and decides exactly as the same site without the service
    base = Path(optimizer.default_site_path()).read_text()
    plain, with_reserve = tmp_path / "plain.toml", tmp_path / "reserve.toml"
    plain.write_text(base)
    with_reserve.write_text(base + '\n[[reserve]]\nname = "ecrs"\n')
    ex = Path(__file__).parent.parent / "examples" / "operate"
    units = []
    for site in (plain, with_reserve):
        state = tmp_path / f"{site.stem}-state.json"
        state.write_text((ex / "state.json").read_text())
        out = tmp_path / f"{site.stem}-setpoints.json"
        r = CliRunner().invoke(_app(), ["operate", "--site", str(site), "--state", str(state), "--prices",
                                        str(ex / "prices.csv"), "--da-prices", str(ex / "da.csv"), "--now",
                                        "2023-08-17T05:00:00Z", "--out", str(out)])
        assert r.exit_code == 0, r.output
        units.append(json.loads(out.read_text())["units"])
    assert units[0] == units[1]
