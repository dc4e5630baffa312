"""4CP peak-hour probabilities and settlement helpers, on the real shipped ERCOT load data."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from optimizer import data, fourcp
from optimizer.errors import InputError
from optimizer.forecast import MarketHistory, decision_time_for, horizon_for

TZ = "America/Chicago"
POISON_MW = 9.9e6


@pytest.fixture(scope="module")
def history() -> MarketHistory:
    return MarketHistory.shipped("HB_WEST")


@pytest.fixture(scope="module")
def skill(history) -> dict[int, dict]:
    """Day-ahead (10:00 on D-1) evaluation of every June-September day of 2021-2024."""
    return {year: fourcp.evaluate(history, year) for year in range(2021, 2025)}


def _poison_after_known(history: MarketHistory, t: pd.Timestamp, horizon: pd.DatetimeIndex) -> MarketHistory:
    """Absurd values for everything NOT known at ``t``, by the rules stated in ``available``'s docstring (computed
    here independently): load hours that have not ended strictly before ``t``; load-forecast hours of local days
    whose forecast (out at 06:00 local the day before) is not published at ``t``. A poisoned forecast is added for
    horizon hours that have none (years without a shipped forecast)."""
    load = history.load.copy()
    load[load.index + pd.Timedelta(hours=1) >= t] = POISON_MW
    local_t = t.tz_convert(TZ)
    last_known_day = local_t.date() + dt.timedelta(days=1 if local_t.time() >= dt.time(6) else 0)
    lf = history.load_forecast.reindex(history.load_forecast.index.union(horizon))
    lf_days = pd.Series(lf.index.tz_convert(TZ).date, index=lf.index)
    lf[(lf_days > last_known_day).to_numpy()] = POISON_MW
    lf = lf.dropna()
    return MarketHistory(rt=history.rt, da=history.da, load_forecast=lf, load=load, timezone=TZ)


@pytest.mark.parametrize(("day", "hour"), [("2024-08-20", 10), ("2024-07-01", 5), ("2022-07-20", 10),
                                           ("2023-09-01", 14)])
def test_poisoned_future_changes_nothing(history, day, hour):
    t = decision_time_for(day, TZ, hour)
    horizon = horizon_for(day, TZ, 24)
    clean = fourcp.peak_probability(history, t, horizon)
    poisoned = _poison_after_known(history, t, horizon)
    # the poison really is there, right after what is known
    assert (poisoned.load[poisoned.load.index >= t - pd.Timedelta(hours=1)] == POISON_MW).all()
    assert (poisoned.load_forecast.reindex(horizon[-24:]) == POISON_MW).all()
    pd.testing.assert_series_equal(fourcp.peak_probability(poisoned, t, horizon), clean, check_exact=True)
    assert clean.sum() > 0.01


@pytest.mark.parametrize(("day", "hour"), [("2024-08-20", 10), ("2022-07-20", 10)])
def test_poison_inside_what_is_known_changes_the_answer(history, day, hour):
    """The same poison one step earlier (the last load hour known at t) must change the answer, so the test above
    can fail."""
    t = decision_time_for(day, TZ, hour)
    horizon = horizon_for(day, TZ, 24)
    clean = fourcp.peak_probability(history, t, horizon)
    load = history.load.copy()
    load[t - pd.Timedelta(hours=2)] = POISON_MW               # ended at t - 1 h < t: known
    hit = MarketHistory(rt=history.rt, load_forecast=history.load_forecast, load=load, timezone=TZ)
    changed = fourcp.peak_probability(hit, t, horizon)
    assert not np.allclose(changed.to_numpy(), clean.to_numpy())
    assert changed.max() < 1e-6                                  # an absurd month-to-date max: the peak "passed"


def test_known_day_ahead_forecast_is_used(history):
    """In 2024 the day-ahead load forecast of day D is known at 10:00 on D-1; poisoning it changes the answer
    (and taking it away too: earlier years work from load history alone)."""
    day = "2024-08-20"
    t = decision_time_for(day, TZ, 10)
    horizon = horizon_for(day, TZ, 24)
    clean = fourcp.peak_probability(history, t, horizon)
    lf = history.load_forecast.copy()
    lf[horizon[:24]] = 1.3 * lf[horizon[:24]]
    hotter = fourcp.peak_probability(MarketHistory(rt=history.rt, load_forecast=lf, load=history.load,
                                                   timezone=TZ), t, horizon)
    assert hotter[horizon[:24]].sum() > clean[horizon[:24]].sum() + 0.1
    no_forecast = fourcp.peak_probability(MarketHistory(rt=history.rt, load=history.load, timezone=TZ), t, horizon)
    assert not np.allclose(no_forecast.to_numpy(), clean.to_numpy())
    assert ((no_forecast >= 0) & (no_forecast <= 1)).all() and no_forecast.sum() > 0


@pytest.mark.parametrize(("day", "hours"), [("2024-03-10", 23), ("2024-11-03", 25), ("2023-07-20", 24),
                                            ("2022-05-31", 24), ("2021-09-30", 24), ("2020-06-15", 24)])
def test_probabilities_are_in_range_on_the_horizon_index(history, day, hours):
    horizon = horizon_for(day, TZ, 24)
    assert len(horizon) - 24 == hours
    p = fourcp.peak_probability(history, decision_time_for(day, TZ), horizon)
    assert p.index.equals(horizon)
    assert p.notna().all() and ((p >= 0) & (p <= 1)).all()
    months = horizon.tz_convert(TZ).month
    outside = ~np.isin(months, fourcp.FOURCP_MONTHS)
    assert (p[outside] == 0).all()
    if (~outside).any():
        assert p[~outside].max() > 0
    assert p.sum() <= 1.0 + 1e-9 * len(set(months))


def test_whole_month_sums_to_one_before_it_starts_and_little_after_the_peak(history):
    tz = ZoneInfo(TZ)
    start = pd.Timestamp(dt.datetime(2023, 6, 1, tzinfo=tz)).tz_convert("UTC")
    end = pd.Timestamp(dt.datetime(2023, 7, 1, tzinfo=tz)).tz_convert("UTC")
    june = pd.date_range(start, end, freq="1h", inclusive="left")
    p = fourcp.peak_probability(history, decision_time_for("2023-06-01", TZ), june)
    assert p.sum() == pytest.approx(1.0, abs=1e-6)
    local_hour = june.tz_convert(TZ).hour
    assert p[(local_hour >= 14) & (local_hour <= 18)].sum() > 0.9        # peaks are summer afternoons
    # 2023-08-10 set a record; on 2023-08-29 the rest of August barely matters and the known peak keeps the rest
    t = decision_time_for("2023-08-29", TZ)
    rest = pd.date_range(t.ceil("h"), pd.Timestamp("2023-09-01T05:00Z"), freq="1h", inclusive="left")
    late = fourcp.peak_probability(history, t, rest)
    assert late.sum() < 0.25
    peak = pd.Timestamp("2023-08-10T22:00Z")
    both = fourcp.peak_probability(history, t, rest.insert(0, peak))
    assert both[peak] > 0.75 and both.sum() == pytest.approx(1.0, abs=1e-6)


def test_deterministic(history):
    t, horizon = decision_time_for("2022-07-20", TZ), horizon_for("2022-07-20", TZ)
    a = fourcp.peak_probability(history, t, horizon)
    b = fourcp.peak_probability(history, t, horizon)
    pd.testing.assert_series_equal(a, b, check_exact=True)


def test_skill_actual_peaks_far_above_the_average_hour(skill):
    peaks = [m["probability_at_peak"] for r in skill.values() for m in r["months"].values()]
    everything = pd.concat([r["probabilities"] for r in skill.values()])
    local = everything.index.tz_convert(TZ)
    afternoons = everything[(local.hour >= 14) & (local.hour <= 18)]
    assert len(peaks) == 16
    assert np.mean(peaks) > 10 * everything.mean()
    assert np.mean(peaks) > 3 * afternoons.mean()
    for year, r in skill.items():
        year_peaks = [m["probability_at_peak"] for m in r["months"].values()]
        assert np.mean(year_peaks) > 5 * r["probabilities"].mean(), year
        # the evaluated peak hours are the shipped proxy's
        assert [m["peak_hour"] for m in r["months"].values()] == fourcp.actual_peak_hours(year)
        for m in r["months"].values():
            assert m["mean_probability_other_hours"] < m["mean_probability_all_hours"] * 1.01
            assert 1 <= m["rank_of_peak"] <= m["hours"]


def test_a_known_peak_is_in_the_top_hours_of_its_week(skill):
    """2023-08-10 17:00 CDT (ERCOT's record at the time) ranks in the top 3 of the 168 hours of its Mon-Sun week."""
    p = skill[2023]["probabilities"]
    local = p.index.tz_convert(TZ)
    week = p[(local.date >= dt.date(2023, 8, 7)) & (local.date <= dt.date(2023, 8, 13))]
    assert len(week) == 168
    peak = pd.Timestamp("2023-08-10T22:00Z")
    assert int((week > week[peak]).sum()) + 1 <= 3
    assert skill[2023]["months"][8]["peak_hour"] == peak


def test_shipped_proxy_matches_the_shipped_load():
    hours = data.ercot_4cp_hours()
    assert len(hours) == 20 and hours.is_monotonic_increasing and str(hours.tz) == "UTC"
    load = data.ercot_load()
    local = load.index.tz_convert(TZ)
    for ts in hours:
        lt = ts.tz_convert(TZ)
        assert lt.month in fourcp.FOURCP_MONTHS
        month = load[(local.year == lt.year) & (local.month == lt.month)]
        assert month.idxmax() == ts
    assert fourcp.actual_peak_hours(2023)[2] == pd.Timestamp("2023-08-10T22:00Z")
    with pytest.raises(InputError, match="2019"):
        fourcp.actual_peak_hours(2019)


def test_settlement_hand_case():
    assert fourcp.site_peak_charge_usd([10.0, 10.0, 10.0, 10.0], 100.0) == pytest.approx(1_000_000.0)
    assert fourcp.site_peak_charge_usd({6: 0.0, 7: 20.0}, 50.0) == pytest.approx(250_000.0)
    hours = fourcp.actual_peak_hours(2022)
    site = pd.Series(100.0, index=pd.date_range("2022-06-01T05:00Z", "2022-10-01T05:00Z", freq="1h"))
    site[hours[1]] = 0.0                                  # curtailed at the July peak
    mw = fourcp.site_load_at_peaks_mw(site, 2022)
    assert mw == [100.0, 0.0, 100.0, 100.0]
    assert fourcp.site_peak_charge_usd(mw, 100.0) == pytest.approx(300 * 1000 * 100 / 4)
    coef = fourcp.expected_charge_usd_per_mw(pd.Series([0.0, 0.5, 1.0]), 100.0)
    assert coef.tolist() == pytest.approx([0.0, 12_500.0, 25_000.0])
    with pytest.raises(InputError):
        fourcp.site_peak_charge_usd([1, 1, 1, 1, 1], 100.0)
    with pytest.raises(InputError):
        fourcp.site_peak_charge_usd([-1.0], 100.0)
    with pytest.raises(InputError):
        fourcp.site_peak_charge_usd([1.0], float("nan"))


def test_bad_inputs(history):
    horizon = horizon_for("2022-07-20", TZ)
    with pytest.raises(InputError, match="time zone"):
        fourcp.peak_probability(history, pd.Timestamp("2022-07-19 10:00"), horizon)
    with pytest.raises(InputError, match="load"):
        fourcp.peak_probability(MarketHistory(rt=history.rt, timezone=TZ), decision_time_for("2022-07-20"), horizon)
    with pytest.raises(InputError, match="load"):            # nothing known yet
        fourcp.peak_probability(history, pd.Timestamp("2020-01-02T12:00Z"), horizon)
