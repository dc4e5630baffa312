"""4CP in the commands: the user's own load, load forecast (with publication times) and 4CP intervals on
``curtail schedule`` and ``curtail backtest``, the shipped cache of walk-forward parameters, and no look-ahead through
the whole backtest path, on the real shipped ERCOT data and the example files in ``examples/``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from typer.testing import CliRunner

import optimizer
from optimizer import data, fourcp
from optimizer.backtest import Market, Settings, run
from optimizer.cli import app
from optimizer.errors import InputError
from optimizer.forecast import MarketHistory, available, horizon_for

TZ = "America/Chicago"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
LOAD, LOAD_FORECAST, PEAKS = (EXAMPLES / f for f in ("ercot_load.csv", "ercot_load_forecast.csv",
                                                      "ercot_4cp_peaks.csv"))
POISON_MW = 9.9e6
POISON_USD = 9_999.0
#: The 2024 August peak day (hourly proxy: 2024-08-20 17:00 CDT) and its decision time, 10:00 CDT the day before.
DAY = dt.date(2024, 8, 20)
T = pd.Timestamp("2024-08-19T15:00Z")
YEAR = pd.Timedelta(days=364)          # 52 weeks: shifts 2024 data onto the same weekdays of 2025


def cli(*args, expect: int | None = 0):
    result = CliRunner().invoke(app, [*map(str, args)])
    if expect is not None:
        assert result.exit_code == expect, (result.exit_code, result.stdout, result.stderr, result.exception)
    return result


@pytest.fixture(scope="module")
def shipped() -> MarketHistory:
    return MarketHistory.shipped("HB_WEST")


def _write_csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def _iso(idx: pd.DatetimeIndex) -> list[str]:
    return [t.isoformat() for t in pd.DatetimeIndex(idx).tz_convert(TZ)]


# ----------------------------------------------------------------------------------------------------------------
# 1. publication times honoured


def test_publication_rule_as_times_matches_available(shipped):
    """Spelling the documented rule out as publication times changes nothing ``available`` keeps, on either side
    of 06:00 local and across both 2024 DST changes."""
    lf = shipped.load_forecast
    rule = fourcp.load_forecast_published_by_rule(lf.index, TZ)
    local = lf.index.tz_convert(TZ)
    assert rule.index.equals(lf.index)
    assert rule.loc[pd.Timestamp("2024-01-01T06:00Z")] == pd.Timestamp("2023-12-31T06:00", tz=TZ)   # 00:00 Jan 1
    assert rule.loc[pd.Timestamp("2024-01-01T05:00Z")] == pd.Timestamp("2023-12-30T06:00", tz=TZ)   # 23:00 Dec 31
    assert (rule.dt.tz_convert(TZ).dt.hour == 6).all()
    assert ((local.normalize().tz_localize(None) - rule.dt.tz_convert(TZ).dt.normalize().dt.tz_localize(None).values)
            == pd.Timedelta(days=1)).all()
    spelled = dataclasses.replace(shipped, load_forecast_published=rule)
    for when in ("2024-03-09T05:59", "2024-03-09T06:00", "2024-03-10T06:00", "2024-08-19T10:00",
                 "2024-11-02T06:00", "2024-11-03T05:00", "2024-11-03T06:30"):
        t = pd.Timestamp(when, tz=TZ)
        a, b = available(shipped, t).load_forecast, available(spelled, t).load_forecast
        pd.testing.assert_series_equal(a, b)
        assert (available(spelled, t).load_forecast_published <= t).all()
    # 05:59 vs 06:00 on 2024-03-09: the forecast of 2024-03-10 appears at 06:00 (23 hours: the spring-forward day)
    gained = (len(available(shipped, pd.Timestamp("2024-03-09T06:00", tz=TZ)).load_forecast)
              - len(available(shipped, pd.Timestamp("2024-03-09T05:59", tz=TZ)).load_forecast))
    assert gained == 23


def test_available_keeps_only_values_published_by_the_decision(shipped):
    lf = shipped.load_forecast
    published = pd.Series(lf.index - pd.Timedelta(hours=20), index=lf.index)     # 20 h ahead of each hour
    h = dataclasses.replace(shipped, load_forecast_published=published)
    a = available(h, T)
    assert a.load_forecast.index[-1] == T + pd.Timedelta(hours=20)               # published exactly at T: known
    assert a.load_forecast_published.index.equals(a.load_forecast.index)
    assert available(shipped, T).load_forecast.index[-1] == pd.Timestamp("2024-08-21T04:00Z")   # the rule: all D


def test_forecast_values_published_after_the_decision_cannot_change_the_peak_risk(shipped):
    """Poison every forecast value published after the decision (here: all of day D, published at 10:30 local on
    D-1, half an hour after the decision): the 4CP probabilities do not move. Published 30 minutes earlier, the same
    poison is known and moves them, and so it does under the documented rule (06:00 on D-1)."""
    horizon = horizon_for(DAY, TZ, 24)
    lf = shipped.load_forecast
    local_day = pd.Series(lf.index.tz_convert(TZ).date, index=lf.index)
    rule = fourcp.load_forecast_published_by_rule(lf.index, TZ)

    def with_published(offset: pd.Timedelta, poison_from: dt.date | None) -> MarketHistory:
        published = rule + offset                                  # 06:00 + offset on D-1
        values = lf.copy()
        if poison_from is not None:
            values[(local_day >= poison_from).to_numpy()] = POISON_MW
        return dataclasses.replace(shipped, load_forecast=values, load_forecast_published=published)

    late = pd.Timedelta(hours=4, minutes=30)                       # 10:30 on D-1: after the decision
    early = pd.Timedelta(hours=4)                                  # 10:00 on D-1: at the decision (known)
    clean_late = fourcp.peak_probability(with_published(late, None), T, horizon)
    poisoned_late = fourcp.peak_probability(with_published(late, DAY), T, horizon)
    pd.testing.assert_series_equal(poisoned_late, clean_late, check_exact=True)
    clean_early = fourcp.peak_probability(with_published(early, None), T, horizon)
    poisoned_early = fourcp.peak_probability(with_published(early, DAY), T, horizon)
    assert not np.allclose(poisoned_early.to_numpy(), clean_early.to_numpy())
    on_day = poisoned_early.index.tz_convert(TZ).date == DAY
    assert poisoned_early[on_day].sum() > 0.99                     # an absurd forecast peak on D: D holds the peak
    # the rule knows D's forecast at 10:00 on D-1, so the forecast with late publication times really differs
    assert not np.allclose(clean_late.to_numpy(), fourcp.peak_probability(shipped, T, horizon).to_numpy())


def test_publication_times_are_validated(shipped):
    lf = shipped.load_forecast
    pub = fourcp.load_forecast_published_by_rule(lf.index, TZ)
    with pytest.raises(InputError, match="load_forecast_published: publication times given without a load"):
        MarketHistory(rt=shipped.rt, load_forecast_published=pub)
    with pytest.raises(InputError, match=r"no publication time for load-forecast hour 2025-01-01T00:00:00\+00:00 "
                                         r"\(6 hours without one\)"):
        MarketHistory(rt=shipped.rt, load_forecast=lf, load_forecast_published=pub.iloc[:-6])
    with pytest.raises(InputError, match="must be tz-aware timestamps"):
        MarketHistory(rt=shipped.rt, load_forecast=lf, load_forecast_published=pub.dt.tz_localize(None))
    extra = pd.concat([pub, pd.Series([pd.Timestamp("2030-01-01", tz="UTC")],
                                      index=pd.DatetimeIndex([pd.Timestamp("2030-01-02", tz="UTC")]))])
    kept = MarketHistory(rt=shipped.rt, load_forecast=lf, load_forecast_published=extra).load_forecast_published
    assert kept.index.equals(lf.index)                              # reindexed on the forecast: extra hours dropped


# ----------------------------------------------------------------------------------------------------------------
# 2. the user's files merged over the shipped data


def test_user_data_wins_on_overlap_and_keeps_the_shipped_summers(shipped, tmp_path):
    user = fourcp.UserData.read(LOAD, LOAD_FORECAST, PEAKS, TZ)
    assert user.sources == tuple(map(str, (LOAD, LOAD_FORECAST, PEAKS)))
    assert "published" not in user.load_forecast.attrs                            # moved out of attrs
    merged = user.history(shipped)
    # the shipped years are all there; the example hours carry the file's values (rounded to 0.01 MW)
    assert merged.load.index.equals(shipped.load.index)
    assert merged.load.reindex(user.load.index).equals(user.load.reindex(user.load.index))
    outside = ~merged.load.index.isin(user.load.index)
    assert merged.load[outside].equals(shipped.load[outside])
    assert (merged.load.reindex(user.load.index) != shipped.load.reindex(user.load.index)).any()    # really replaced
    # publication times: the file's on its hours, the documented rule's on every other forecast hour
    rule = fourcp.load_forecast_published_by_rule(merged.load_forecast.index, TZ)
    assert merged.load_forecast_published.reindex(user.load_forecast.index).equals(user.load_forecast_published)
    pd.testing.assert_series_equal(merged.load_forecast_published, rule, check_names=False)   # the file spells it
    # a file with its own vintage: 10:30 on D-1 for every hour of D
    lf = pd.read_csv(LOAD_FORECAST)
    lf["published"] = (pd.to_datetime(lf["published"], utc=True) + pd.Timedelta(hours=4, minutes=30)).map(
        lambda t: t.isoformat())
    late = fourcp.UserData.read(load_forecast=_write_csv(tmp_path / "lf.csv", lf)).history(shipped)
    moved = late.load_forecast_published.reindex(user.load_forecast.index) - rule.reindex(user.load_forecast.index)
    assert (moved == pd.Timedelta(hours=4, minutes=30)).all()
    assert late.load_forecast_published.drop(user.load_forecast.index).equals(rule.drop(user.load_forecast.index))


def test_settling_peaks_come_from_the_peaks_file_then_the_load_then_shipped(shipped, tmp_path):
    base = data.ercot_4cp_hours()
    merged = fourcp.UserData.read(LOAD).history(shipped)
    # load only: every month the merged load covers, its highest hour (the example load is the shipped one)
    assert fourcp.UserData.read(LOAD).peak_hours(merged.load, base, TZ).equals(base)
    # a peaks file wins for its months, a 15-minute start settles in its hour; other months stay
    peaks = _write_csv(tmp_path / "peaks.csv", pd.DataFrame({"timestamp": ["2024-08-21T16:15:00-05:00"]}))
    hours = fourcp.UserData.read(LOAD, peaks=peaks).peak_hours(merged.load, base, TZ)
    assert len(hours) == len(base)
    assert pd.Timestamp("2024-08-21T21:00Z") in hours and pd.Timestamp("2024-08-20T22:00Z") not in hours
    assert hours.drop(pd.Timestamp("2024-08-21T21:00Z")).equals(base.drop(pd.Timestamp("2024-08-20T22:00Z")))
    # a load that moves a month's highest hour moves its settling peak (no peaks file)
    load = pd.read_csv(LOAD)
    load.loc[load["timestamp"] == "2024-08-14T15:00:00-05:00", "load_mw"] = 90_000.0
    user = fourcp.UserData.read(_write_csv(tmp_path / "load.csv", load))
    hours = user.peak_hours(user.history(shipped).load, base, TZ)
    assert pd.Timestamp("2024-08-14T20:00Z") in hours and pd.Timestamp("2024-08-20T22:00Z") not in hours


def test_a_summer_month_without_a_known_peak_is_refused():
    fourcp.check_peaks_cover(data.ercot_4cp_hours(), dt.date(2020, 1, 1), dt.date(2024, 12, 31), TZ)
    fourcp.check_peaks_cover(None, dt.date(2025, 1, 1), dt.date(2025, 5, 31), TZ)     # no summer month: fine
    with pytest.raises(InputError, match=r"none is known for 2025-06, 2025-07 \(the backtest runs 2025-05-31 .. "
                                         r"2025-07-01"):
        fourcp.check_peaks_cover(data.ercot_4cp_hours(), dt.date(2025, 5, 31), dt.date(2025, 7, 1), TZ)


# ----------------------------------------------------------------------------------------------------------------
# 2. the commands


def test_schedule_with_the_example_files(tmp_path):
    """The example files hold the shipped 2024 data (to 0.01 MW): the same day scheduled with them prices 4CP the
    same way, and ``--peaks`` settles the day's load in its actual peak hour."""
    out0, out1 = tmp_path / "shipped.csv", tmp_path / "user.csv"
    cli("schedule", "--day", DAY, "--out", out0)
    r = cli("schedule", "--day", DAY, "--load", LOAD, "--load-forecast", LOAD_FORECAST, "--peaks", PEAKS,
            "--out", out1, "--json")
    summary = json.loads(r.stdout)
    a, b = (pd.read_csv(p, comment="#") for p in (out0, out1))
    np.testing.assert_allclose(b["peak_weight"], a["peak_weight"], rtol=1e-4, atol=1e-7)
    assert a["peak_weight"].max() > 0.01
    assert str(LOAD) in summary["fourcp_source"] and "shipped and given" in summary["fourcp_source"]
    assert set(summary["inputs"]) >= {"load", "load_forecast", "peaks"}
    settled = summary["fourcp_settled"]
    peak = pd.Timestamp("2024-08-20T22:00Z")                       # 17:00 CDT, the August 2024 peak hour
    assert settled["peak_hours"] == [peak.isoformat()]
    load_at_peak = float(b.loc[pd.to_datetime(b["timestamp"], utc=True) == peak, "load_mw"].iloc[0])
    assert settled["load_mw"] == [pytest.approx(load_at_peak)]
    assert settled["charge_usd"] == pytest.approx(load_at_peak * 100.0 * 1000 / 4)


def test_backtest_with_the_example_files_settles_on_the_given_peaks(tmp_path):
    """A 2024 backtest with the example files runs; a peaks file moving August's peak to a 15-minute interval of
    another day settles the charge in that interval's hour."""
    peaks = pd.read_csv(PEAKS)
    peaks.loc[peaks["timestamp"].str.startswith("2024-08"), "timestamp"] = "2024-08-21T16:15:00-05:00"
    peaks_file = _write_csv(tmp_path / "peaks.csv", peaks)
    out = tmp_path / "bt"
    r = cli("backtest", "--start", "2024-08-20", "--end", "2024-08-21", "--policies", "schedule,always-on",
            "--forecast", "naive", "--quiet", "--load", LOAD, "--load-forecast", LOAD_FORECAST, "--peaks", peaks_file,
            "--out", out)
    assert "value capture" in r.stdout
    ds = xr.open_dataset(out / "intervals.nc")
    times = pd.DatetimeIndex(ds["time"].values).tz_localize("UTC")
    weight = ds["peak_weight"].sel(policy="always-on").values
    settled = times[weight > 0]
    assert settled.equals(pd.date_range("2024-08-21T21:00Z", periods=4, freq="15min"))
    always_on = ds.sel(policy="always-on")
    assert float(always_on["fourcp_charge_usd"].sum()) == pytest.approx(
        float(always_on["load_mw"].values[weight > 0].mean()) * 25_000.0)
    ds.close()


def _shifted_2025(tmp_path: Path) -> dict[str, Path]:
    """Files for August 2025 made of the real 2024 data moved 52 weeks later (same weekdays): what a user in 2025
    would pass. Load and its forecast from 2024-06-01, 15-minute HB_WEST prices, hourly prices for a schedule, the
    August peak as a 15-minute interval."""
    load = data.ercot_load()
    load = load[(load.index >= "2024-06-01T05:00Z") & (load.index < "2024-08-24T05:00Z")]
    lf = data.ercot_load_forecast()
    lf = lf[(lf.index >= "2024-06-01T05:00Z") & (lf.index < "2024-08-24T05:00Z")]
    rt15 = data.ercot_prices("HB_WEST", "rt", "15min")
    rt15 = rt15[(rt15.index >= "2024-08-01T05:00Z") & (rt15.index < "2024-08-24T05:00Z")]
    rt = data.ercot_prices("HB_WEST", "rt")
    rt = rt[(rt.index >= "2024-08-20T05:00Z") & (rt.index < "2024-08-23T05:00Z")]
    out = {
        "load": _write_csv(tmp_path / "load.csv", pd.DataFrame({"timestamp": _iso(load.index + YEAR),
                                                                "load_mw": load.to_numpy()})),
        "lf": _write_csv(tmp_path / "lf.csv", pd.DataFrame({"timestamp": _iso(lf.index + YEAR),
                                                            "load_forecast_mw": lf.to_numpy()})),
        "rt15": _write_csv(tmp_path / "rt15.csv", pd.DataFrame({"timestamp": _iso(rt15.index + YEAR),
                                                                "price_usd_per_mwh": rt15.to_numpy()})),
        "rt": _write_csv(tmp_path / "rt.csv", pd.DataFrame({"timestamp": _iso(rt.index + YEAR),
                                                            "price_usd_per_mwh": rt.to_numpy()})),
        "peaks": _write_csv(tmp_path / "peaks.csv", pd.DataFrame({"timestamp": ["2025-08-19T17:15:00-05:00"]})),
    }
    return out


def test_a_2025_schedule_and_backtest_run_on_the_users_files(tmp_path):
    """Beyond the shipped data (it ends in 2024): with the user's load a 2025 day is scheduled and backtested; the
    walk-forward fit through 2024 still reads the shipped summers (from the shipped cache: same data digest)."""
    f = _shifted_2025(tmp_path)
    r = cli("schedule", "--day", "2025-08-19", "--prices", f["rt"], "--hashprice", 50, "--load", f["load"],
            "--load-forecast", f["lf"], "--json")
    summary = json.loads(r.stdout)
    assert summary["fourcp_charge_usd"] > 0 and str(f["load"]) in summary["fourcp_source"]
    # without the user's load the shipped load ends 2024-12-31: refused, naming --load
    r = cli("schedule", "--day", "2025-08-19", "--prices", f["rt"], "--hashprice", 50, expect=2)
    assert "give the system load (--load)" in r.stderr and "stale beyond 7 days" in r.stderr
    common = ["backtest", "--start", "2025-08-19", "--end", "2025-08-20", "--prices", f["rt15"], "--hashprice", 50,
              "--policies", "schedule,always-on", "--forecast", "naive", "--quiet", "--load", f["load"],
              "--load-forecast", f["lf"]]
    r = cli(*common, expect=2)                      # August 2025 is not complete in the load: its peak is unknown
    assert "none is known for 2025-08" in r.stderr and "--peaks" in r.stderr
    out = tmp_path / "bt"
    cli(*common, "--peaks", f["peaks"], "--out", out)
    ds = xr.open_dataset(out / "intervals.nc")
    times = pd.DatetimeIndex(ds["time"].values).tz_localize("UTC")
    assert times[ds["peak_weight"].sel(policy="schedule").values > 0].equals(
        pd.date_range("2025-08-19T22:00Z", periods=4, freq="15min"))
    ds.close()


@pytest.mark.parametrize("command", ["schedule", "backtest"])
@pytest.mark.parametrize(("option", "name", "row", "edit", "needle"), [
    ("--load", "load.csv", 3, ("load_mw", "58.2"), "load_mw: row 3: load_mw 58.2 is outside the sane range"),
    ("--load", "load.csv", 2, ("timestamp", "2024-08-12 01:00"),
     "timestamp: row 2: timestamp '2024-08-12 01:00' has no UTC offset"),
    ("--load-forecast", "lf.csv", 5, ("published", "2024-08-12T06:00:00-05:00"),
     "published: row 5: published '2024-08-12T06:00:00-05:00' is after the start of the hour"),
    ("--load-forecast", "lf.csv", 4, ("load_forecast_mw", "abc"), "row 4: load_forecast_mw 'abc' is not a finite"),
    ("--peaks", "peaks.csv", 2, ("timestamp", "2024-07-20T16:00:00-05:00"),
     "row 2: timestamp '2024-07-20T16:00:00-05:00' is a second interval in 2024-07 (row 1 is the first)"),
])
def test_a_bad_file_exits_2_naming_file_row_and_value_and_writes_nothing(tmp_path, command, option, name, row, edit,
                                                                         needle):
    source = {"--load": LOAD, "--load-forecast": LOAD_FORECAST, "--peaks": PEAKS}[option]
    frame = pd.read_csv(source, dtype=str)
    if option == "--peaks":
        frame = frame.iloc[[1, 1]].reset_index(drop=True)                        # July twice
    column, value = edit
    frame.loc[row - 1, column] = value
    bad = _write_csv(tmp_path / name, frame)
    out = tmp_path / ("out.csv" if command == "schedule" else "bt")
    args = (["schedule", "--day", DAY] if command == "schedule" else
            ["backtest", "--start", "2024-08-20", "--end", "2024-08-20", "--quiet"])
    r = cli(*args, option, bad, "--out", out, expect=2)
    assert f"{bad}: " in r.stderr and needle in r.stderr
    assert not out.exists()


@pytest.mark.parametrize("command", [["schedule", "--day", "2024-08-20"],
                                     ["backtest", "--start", "2024-08-20", "--end", "2024-08-20", "--quiet"]])
def test_4cp_files_for_a_site_without_4cp_are_refused(command):
    site = Path(optimizer.default_site_path()).parent / "north-texas-mining.toml"
    assert not optimizer.load_site(site).fourcp.active
    r = cli(*command, "--site", site, "--load", LOAD, expect=2)
    assert "--load, --load-forecast and --peaks are 4CP inputs" in r.stderr and "north-texas-mining" in r.stderr


def test_peaks_are_refused_with_scenarios(tmp_path):
    r = cli("schedule", "--scenarios", tmp_path / "s.csv", "--peaks", PEAKS, expect=2)
    assert "--peaks settles one schedule's load" in r.stderr


# ----------------------------------------------------------------------------------------------------------------
# 3. the shipped parameter cache


def test_shipped_parameter_cache_equals_a_fresh_fit(shipped):
    """Every entry of ``data/fourcp_params.json`` is what a fresh fit of the shipped data gives, bit for bit (and
    the file is current: same entries, same digests, same model constants)."""
    fresh = fourcp.params_cache(shipped)
    stored = json.loads((data.resource_dir("data") / fourcp.PARAMS_CACHE_FILE).read_text())
    assert stored == fresh
    assert [e["through_year"] for e in stored["entries"]] == list(fourcp.PARAMS_CACHE_YEARS)
    by_year = {e["through_year"]: e for e in stored["entries"]}
    assert by_year[2023]["day_error_correlation"] == pytest.approx(0.665, abs=5e-4)      # docs/fourcp.md table
    assert by_year[2023]["summers"] == [2020, 2021, 2022, 2023]


def test_a_default_schedule_pays_no_fit(monkeypatch, default_site):
    """The default run (2022-07-20: parameters fitted through 2021) takes them from the shipped cache; a fit would
    raise here. A user's load that changes a past summer has another digest and is fitted afresh."""
    fourcp._FIT_CACHE.clear()

    def no_fit(*args, **kwargs):
        raise AssertionError("fitted")

    monkeypatch.setattr(fourcp, "_fit", no_fit)
    ds = optimizer.schedule(default_site)
    assert float(ds["peak_weight"].max()) > 0
    history = MarketHistory.shipped("HB_HUBAVG")
    for year in fourcp.PARAMS_CACHE_YEARS:
        assert fourcp.fit_params(history, year).summers[-1] == min(year, 2024)
    # the same data with the publication rule spelled out has the same digest
    spelled = dataclasses.replace(history, load_forecast_published=fourcp.load_forecast_published_by_rule(
        history.load_forecast.index))
    assert fourcp.fit_params(spelled, 2025) == fourcp.fit_params(history, 2025)
    # a different 2021 summer: not the shipped data, so a fit (which raises here)
    load = history.load.copy()
    load[pd.Timestamp("2021-07-14T21:00Z")] *= 1.2
    with pytest.raises(AssertionError, match="fitted"):
        fourcp.fit_params(dataclasses.replace(history, load=load), 2021)
    # ... and a change after the summer a fit reads is not part of its digest
    load = history.load.copy()
    load[pd.Timestamp("2021-12-14T21:00Z") <= load.index] *= 1.2
    assert fourcp.fit_params(dataclasses.replace(history, load=load), 2021) == fourcp.fit_params(history, 2021)


def test_cache_entries_of_other_model_constants_are_ignored(monkeypatch):
    key = next(iter(fourcp._shipped_params()))
    monkeypatch.setattr(fourcp, "LEVEL_DAYS", fourcp.LEVEL_DAYS + 1)
    assert key not in fourcp._shipped_params()


# ----------------------------------------------------------------------------------------------------------------
# 4. no look-ahead through the backtest


@pytest.fixture(scope="module")
def market_parts(shipped):
    rt15 = data.ercot_prices("HB_WEST", "rt", "15min")
    rt15 = rt15[(rt15.index >= "2024-08-01T05:00Z") & (rt15.index < "2024-08-23T05:00Z")]
    return shipped, rt15, data.hashprice_series(), data.ercot_4cp_hours()


def _backtest(monkeypatch, history, actual, hashprice, peaks):
    """One backtest of DAY with the schedule policy: (the 4CP probabilities the plan got, the realised power of
    every unit, the D-1 price forecast)."""
    seen: list[pd.Series] = []
    real = fourcp.peak_probability

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        seen.append(out)
        return out

    monkeypatch.setattr(fourcp, "peak_probability", spy)
    site = optimizer.load_site(optimizer.default_site_path())
    result = run(site, DAY, DAY, Market(history, actual, hashprice, peaks),
                 Settings(policies=("schedule",), forecast_method="naive"))
    assert len(seen) == 1 and site.fourcp.charge_usd_per_kw_year == 100.0
    return seen[0], result.intervals["power_mw"].sel(policy="schedule").values, result.forecast


def _poison_future(history: MarketHistory, actual, hashprice, peaks):
    """Absurd values in everything the decision at T (10:00 CDT on 2024-08-19) cannot know, by the stated rules,
    computed here independently of ``available``: prices of hours not ended by T, day-ahead prices of 2024-08-20 on
    (published 13:30 on 08-19), load of hours not ended strictly before T, load forecast not published by T (rule:
    from 2024-08-21 local; with publication times: those after T), 15-minute actual prices from T, hashprice of UTC
    days not ended by T (08-19 on), and the 4CP peaks after T moved to other hours."""
    rt = history.rt.mask(history.rt.index + pd.Timedelta(hours=1) > T, POISON_USD)
    da = history.da.mask(history.da.index >= pd.Timestamp("2024-08-20", tz=TZ), POISON_USD)
    load = history.load.mask(history.load.index + pd.Timedelta(hours=1) >= T, POISON_MW)
    lf = history.load_forecast
    if history.load_forecast_published is None:
        lf = lf.mask(lf.index >= pd.Timestamp("2024-08-21", tz=TZ), POISON_MW)
    else:
        lf = lf.mask((history.load_forecast_published > T).to_numpy(), POISON_MW)
    assert (load.loc[T - pd.Timedelta(hours=1):] == POISON_MW).all() and (lf == POISON_MW).sum() > 24
    poisoned = dataclasses.replace(history, rt=rt, da=da, load=load, load_forecast=lf)
    actual = actual.mask(actual.index >= T, POISON_USD)
    hashprice = hashprice.mask(hashprice.index >= pd.Timestamp("2024-08-19"), 1e4)
    peaks = pd.DatetimeIndex([p if p < T else p + pd.Timedelta(hours=5) for p in peaks], name=peaks.name)
    assert (peaks != data.ercot_4cp_hours()).sum() == 2                   # August and September 2024 moved
    return poisoned, actual, hashprice, peaks


@pytest.mark.parametrize("published", [None, "vintage"])
def test_backtest_4cp_path_reads_nothing_after_the_decision(monkeypatch, market_parts, published):
    """Poisoning every future input of a backtest day leaves the plan's 4CP probabilities, its price forecast and
    the schedule policy's power bit for bit unchanged; the same poison one hour earlier (the last load hour known
    at T, the load forecast published an hour before T, the last price known at T) changes them."""
    history, actual, hashprice, peaks = market_parts
    if published:               # a vintage of its own: day D's forecast out at 09:30 local on D-1
        rule = fourcp.load_forecast_published_by_rule(history.load_forecast.index, TZ)
        history = dataclasses.replace(history, load_forecast_published=rule + pd.Timedelta(hours=3, minutes=30))
    prob, power, forecast = _backtest(monkeypatch, history, actual, hashprice, peaks)
    assert prob.max() > 0.01                                   # a real 4CP risk on the August peak day
    future = _backtest(monkeypatch, *_poison_future(history, actual, hashprice, peaks))
    pd.testing.assert_series_equal(future[0], prob, check_exact=True)
    np.testing.assert_array_equal(future[1], power)
    pd.testing.assert_series_equal(future[2], forecast, check_exact=True)

    last_load = history.load.copy()
    last_load[T - pd.Timedelta(hours=2)] = POISON_MW           # ended at T - 1 h: known
    hit = _backtest(monkeypatch, dataclasses.replace(history, load=last_load), actual, hashprice, peaks)
    assert hit[0].max() < 1e-6 and not np.array_equal(hit[1], power)

    lf = history.load_forecast.copy()
    if published:
        known = (history.load_forecast_published > T - pd.Timedelta(hours=1)) & (
            history.load_forecast_published <= T)              # published in the hour before T
    else:
        known = pd.Series(lf.index.tz_convert(TZ).date == DAY, index=lf.index)   # day D: out at 06:00 on D-1
    assert known.sum() >= 1
    lf[known.to_numpy()] = POISON_MW
    hit = _backtest(monkeypatch, dataclasses.replace(history, load_forecast=lf), actual, hashprice, peaks)
    assert not np.allclose(hit[0].to_numpy(), prob.to_numpy())

    rt = history.rt.copy()
    last = T - pd.Timedelta(hours=1)                           # ended at T: known
    week = rt[[last - pd.Timedelta(days=k) for k in range(7)]]  # what the naive median of that hour reads
    rt[last] = -POISON_USD if rt[last] >= week.median() else POISON_USD     # across the median: it must move
    hit = _backtest(monkeypatch, dataclasses.replace(history, rt=rt), actual, hashprice, peaks)
    assert not hit[2].equals(forecast)
