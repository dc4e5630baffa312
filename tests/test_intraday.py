"""Intraday forecast (optimizer.intraday) and the shipped day-ahead energy / ancillary-service prices (issue 14).

Formula on a toy series by hand, decay to DA with the fitted constant, no look-ahead (poisoned unknown data leaves
the forecast unchanged; poisoned known data changes it), a walk-forward fit that reads nothing later, DST days, a
real scarcity day; then the shipped data's known figures.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

import optimizer.intraday as I
from optimizer import data
from optimizer.errors import InputError

TZ = "America/Chicago"


def local(ts: str) -> pd.Timestamp:
    return pd.Timestamp(ts, tz=TZ)


# ---------------------------------------------------------------------------------------------------------------
# toy series: the formula by hand

TOY_START = local("2022-06-01 00:00")          # 4 days of data, June (CDT, UTC-5)


def toy(last_quarter: float = 100.0):
    """RT 30 USD/MWh flat; DA 40 except noon; at noon the spreads RT - DA of the last 3 days are -10, -20, +40
    (median -10); the 15-minute interval 2022-06-04 11:45-12:00 is ``last_quarter``."""
    q_idx = pd.date_range(TOY_START, periods=4 * 96, freq="15min").tz_convert("UTC")
    q = pd.Series(30.0, index=q_idx)
    h_idx = pd.date_range(TOY_START, periods=96, freq="1h").tz_convert("UTC")
    da = pd.Series(40.0, index=h_idx)
    da[local("2022-06-02 12:00")] = 50.0            # spread -20 on day 2
    da[local("2022-06-03 12:00")] = -10.0           # spread +40 on day 3
    da[local("2022-06-04 12:00")] = 60.0            # the target hour
    q[local("2022-06-04 11:45")] = last_quarter
    hourly = q.groupby(q.index.floor("h")).mean()
    return q, hourly, da


def test_lead_zero_is_the_formula_by_hand():
    q, hourly, da = toy()
    fc = I.IntradayForecaster(q, hourly, da, TZ)
    p = I.IntradayParams(tau_hours=2.0, spread_weight=0.5, spread_days=3)
    now = local("2022-06-04 12:00")
    f = fc.predict(now, I.replan_horizon(now, 3), params=p)
    # B = DA + c * median(-10, -20, +40) = 60 - 5 = 55; P = 100 (last quarter); x = 0.5 h (middle of the hour)
    assert f.iloc[0] == pytest.approx(55 + (100 - 55) * math.exp(-0.5 / 2.0), abs=1e-9)
    # next hour (13:00): DA 40, spreads -10 on each day -> B = 35; x = 1.5 h
    assert f.iloc[1] == pytest.approx(35 + (100 - 35) * math.exp(-1.5 / 2.0), abs=1e-9)
    # last = "1h": P is the mean of the hour 11:00-12:00 = (3 x 30 + 100) / 4 = 47.5
    f1h = fc.predict(now, I.replan_horizon(now, 1), params=dataclasses.replace(p, last="1h"))
    assert f1h.iloc[0] == pytest.approx(55 + (47.5 - 55) * math.exp(-0.5 / 2.0), abs=1e-9)
    # the additive-spread form: the last surprise P - B(11:00) = 100 - (40 + 0.5 * -10) = 65, added to B(h)
    fs = fc.predict(now, I.replan_horizon(now, 2), params=dataclasses.replace(p, form="spread"))
    assert fs.iloc[0] == pytest.approx(55 + 65 * math.exp(-0.5 / 2.0), abs=1e-9)
    assert fs.iloc[1] == pytest.approx(35 + 65 * math.exp(-1.5 / 2.0), abs=1e-9)


def test_a_quarter_hour_replan_keeps_the_ended_quarters_of_the_current_hour():
    q, hourly, da = toy()
    q[local("2022-06-04 12:00")] = 80.0
    q[local("2022-06-04 12:15")] = 90.0
    fc = I.IntradayForecaster(q, q.groupby(q.index.floor("h")).mean(), da, TZ)
    p = I.IntradayParams(tau_hours=2.0, spread_weight=0.5, spread_days=3)
    f = fc.predict(local("2022-06-04 12:30"), I.replan_horizon(local("2022-06-04 12:30"), 2), params=p)
    # P = 90 (12:15-12:30), the rest of the hour (12:30-13:00) has its middle 0.25 h after the information
    g = 55 + (90 - 55) * math.exp(-0.25 / 2.0)
    assert f.iloc[0] == pytest.approx((80 + 90 + 2 * g) / 4, abs=1e-9)
    assert f.iloc[1] == pytest.approx(35 + (90 - 35) * math.exp(-1.0 / 2.0), abs=1e-9)


def test_input_errors_name_the_problem():
    q, hourly, da = toy()
    fc = I.IntradayForecaster(q, hourly, da, TZ)
    p = I.IntradayParams()
    now = local("2022-06-04 12:00")
    with pytest.raises(InputError, match="no fallback forecast for 12 horizon hour"):
        fc.predict(now, I.replan_horizon(now, 24), params=p)       # data (and DA) end at 2022-06-04 23:00
    with pytest.raises(InputError, match="has ended"):
        fc.predict(now, I.replan_horizon(local("2022-06-04 10:00"), 3), params=p)
    with pytest.raises(InputError, match="no time zone"):
        fc.predict(pd.Timestamp("2022-06-04 12:00"), I.replan_horizon(now, 3), params=p)
    with pytest.raises(InputError, match="15-minute"):
        I.IntradayForecaster(None, hourly, da, TZ).predict(now, I.replan_horizon(now, 3), params=p)
    with pytest.raises(InputError, match="tau_hours"):
        I.IntradayParams(tau_hours=0.0)


# ---------------------------------------------------------------------------------------------------------------
# real data


@pytest.fixture(scope="module")
def west():
    return (data.ercot_prices("HB_WEST", "rt", "15min"), data.ercot_prices("HB_WEST", "rt"),
            data.ercot_prices("HB_WEST", "da"))


@pytest.fixture(scope="module")
def west_2021_2022(west):
    """HB_WEST through local 2022 (so walk-forward 2022 forecasts fit on 2021 only: quick)."""
    end = local("2023-01-01")
    return tuple(s[s.index < end] for s in west)


@pytest.fixture(scope="module")
def shipped():
    return I.IntradayForecaster.shipped("HB_WEST")


def test_it_decays_to_the_da_price_with_the_fitted_time_constant(shipped, west):
    params = shipped.params_for(2022)
    assert params.through_year == 2021 and params.training_pairs > 100_000
    assert params.tau_hours in I.TAU_GRID_HOURS
    p = dataclasses.replace(params, spread_weight=0.0)           # the baseline is then DA itself
    q, _, da = west
    now = local("2022-07-20 15:00")
    hz = I.replan_horizon(now, 24)                               # 15:00 .. 14:00 next day: all DA published
    f = shipped.predict(now, hz, params=p).to_numpy()
    last = q[local("2022-07-20 14:45")]
    d = da.reindex(hz).to_numpy()
    x = np.arange(24) + 0.5
    np.testing.assert_allclose(f - d, (last - d) * np.exp(-x / p.tau_hours), rtol=1e-9, atol=1e-9)
    share = (f - d) / (last - d)                                 # of the last surprise, left at each lead
    assert (np.diff(share) < 0).all() and share[0] < 1 and share[-1] < 0.05     # a day ahead: (nearly) DA


def _poisoned(series: tuple, now: pd.Timestamp, da_unpublished_from: pd.Timestamp) -> tuple:
    """Every real-time price not ended at ``now`` and every DA price from ``da_unpublished_from`` set absurd."""
    q, h, da = (s.copy() for s in series)
    q[q.index + pd.Timedelta(minutes=15) > now] = 4321.0
    h[h.index + pd.Timedelta(hours=1) > now] = 4321.0
    da[da.index >= da_unpublished_from] = -123.0
    return q, h, da


@pytest.mark.parametrize("clock, first_unpublished_day", [("13:29", "2022-07-20"), ("13:31", "2022-07-21"),
                                                          ("13:45", "2022-07-21")])
def test_no_look_ahead_poisoned_unknown_prices_change_nothing(west_2021_2022, clock, first_unpublished_day):
    now = local(f"2022-07-19 {clock}")
    hz = I.replan_horizon(now, 48)
    fallback = pd.Series(np.linspace(20, 80, 48), index=hz)
    clean = I.IntradayForecaster(*west_2021_2022, TZ)              # walk-forward: fitted on 2021
    dirty = I.IntradayForecaster(*_poisoned(west_2021_2022, now, local(first_unpublished_day)), TZ)
    expected = clean.predict(now, hz, fallback)
    pd.testing.assert_series_equal(dirty.predict(now, hz, fallback), expected, check_exact=True)
    # ... and the test can fail: poisoning the last KNOWN 15-minute interval changes the forecast
    q, h, da = (s.copy() for s in west_2021_2022)
    last = (now.floor("15min") - pd.Timedelta(minutes=15)).tz_convert("UTC")
    q[last] = 4321.0
    assert not np.allclose(I.IntradayForecaster(q, h, da, TZ).predict(now, hz, fallback), expected)


def test_day_ahead_prices_of_day_d_are_used_from_1330_on_d_minus_1(west_2021_2022):
    q, h, da = west_2021_2022
    p = I.IntradayParams(tau_hours=2.0)
    day_d = I.rest_of_day(local("2022-07-20 00:00"), TZ)
    fc = I.IntradayForecaster(q, h, da, TZ, params=p)
    da_moved = da.copy()
    da_moved[day_d] += 50.0
    moved = I.IntradayForecaster(q, h, da_moved, TZ, params=p)
    before, after = local("2022-07-19 13:29"), local("2022-07-19 13:31")
    hz_before, hz_after = I.replan_horizon(before, 35), I.replan_horizon(after, 35)   # to the end of D
    with pytest.raises(InputError, match="no fallback forecast for 24 horizon hour"):
        fc.predict(before, hz_before)                           # D's 24 hours are not published at 13:29
    fb = pd.Series(55.0, index=hz_before)
    pd.testing.assert_series_equal(moved.predict(before, hz_before, fb), fc.predict(before, hz_before, fb))
    a, b = fc.predict(after, hz_after).to_numpy(), moved.predict(after, hz_after).to_numpy()   # no fallback needed
    in_d = hz_after.isin(day_d)
    assert in_d.sum() == 24
    np.testing.assert_allclose(b[in_d] - a[in_d], 50.0 * (1 - np.exp(-np.arange(35) / 2.0))[in_d],
                               rtol=1e-9)


def test_the_fit_reads_only_years_up_to_through_year(west_2021_2022):
    q, h, da = west_2021_2022
    clean = I.IntradayForecaster(q, h, da, TZ).fit(2021)
    assert clean.through_year == 2021 and clean.basis == "fitted on local years 2021-2021"
    rng = np.random.default_rng(0)
    later = [s.index >= local("2022-01-01") for s in (q, h, da)]
    poisoned = [s.copy() for s in (q, h, da)]
    for s, m in zip(poisoned, later, strict=True):
        s[m] = rng.uniform(-250, 5000, int(m.sum()))
    assert I.IntradayForecaster(*poisoned, TZ).fit(2021) == clean
    # ... and the test can fail: the same poison on 2021 changes the constants
    early = [s.copy() for s in (q, h, da)]
    for s in early:
        m = (s.index >= local("2021-06-01")) & (s.index < local("2022-01-01"))
        s[m] = rng.uniform(-250, 5000, int(m.sum()))
    assert I.IntradayForecaster(*early, TZ).fit(2021) != clean


def test_without_an_earlier_year_of_day_ahead_prices_the_documented_default_is_used(shipped):
    p = shipped.params_for(2021)                                   # shipped DA starts in 2021
    assert p == I.IntradayParams.default(p.basis.removeprefix("default (").removesuffix(")"))
    assert p.tau_hours == 3.0 and p.spread_weight == 0.0 and p.through_year is None
    assert "<= 2020" in p.basis


@pytest.mark.parametrize("day, hours", [("2022-03-13", 23), ("2022-11-06", 25), ("2022-07-20", 24)])
def test_dst_days_give_the_right_horizon_and_the_right_day_ahead_hours(shipped, west, day, hours):
    now = local(f"{day} 00:00")
    hz = I.rest_of_day(now, TZ)
    assert len(hz) == hours
    # with a vanishing time constant and no correction the forecast IS the DA price of each (UTC) hour
    f = shipped.predict(now, hz, params=I.IntradayParams(tau_hours=1e-3, spread_weight=0.0))
    assert len(f) == hours and f.index.equals(hz)
    np.testing.assert_array_equal(f.to_numpy(), west[2].reindex(hz).to_numpy())
    assert len(I.rest_of_day(local(f"{day} 12:00"), TZ)) == 12


def test_scarcity_day_2023_08_17(shipped, west):
    """HB_WEST 2023-08-17: real-time 15-minute prices above the 5,000 cap (adders) in the evening."""
    q, hourly, da = west
    day = I.rest_of_day(local("2023-08-17 00:00"), TZ)
    assert q[(q.index >= day[0]) & (q.index < day[-1] + pd.Timedelta(hours=1))].max() > 5000
    fb = pd.Series(40.0, index=pd.date_range(day[0], periods=72, freq="1h"))
    err_45, err_da, peak = [], [], 0.0
    for now in pd.date_range(day[0], periods=96, freq="15min"):
        f = shipped.predict(now, I.replan_horizon(now, 24), fb)
        assert np.isfinite(f).all()
        peak = max(peak, float(f.max()))
        if now.minute == 45:               # three quarters of the current hour are known
            err_45.append(abs(f.iloc[0] - hourly[f.index[0]]))
            err_da.append(abs(da[f.index[0]] - hourly[f.index[0]]))
    assert peak == 5000.0                  # the spike is followed up to the cap, never beyond it
    assert np.mean(err_45) < 0.5 * np.mean(err_da)
    # it follows the news: at 20:00 the last quarter (19:45) was above 5,000 and the forecast of 20:00 is far
    # above that hour's DA price; one hour later, after the 20:45 quarter at ~263, it is back between DA and 263
    at20 = shipped.predict(local("2023-08-17 20:00"), I.replan_horizon(local("2023-08-17 20:00"), 2), fb)
    at21 = shipped.predict(local("2023-08-17 21:00"), I.replan_horizon(local("2023-08-17 21:00"), 1), fb)
    assert at20.iloc[0] > da[local("2023-08-17 20:00")] + 1000
    assert da[local("2023-08-17 21:00")] - 20 < at21.iloc[0] < q[local("2023-08-17 20:45")]
    assert at21.iloc[0] < at20.iloc[1] / 10


# ---------------------------------------------------------------------------------------------------------------
# shipped day-ahead energy and ancillary-service prices (ERCOT annual files)


def test_shipped_day_ahead_prices_cover_2021_2024_with_the_known_means(west):
    da = west[2]
    assert da.index[0] == local("2021-01-01 00:00") and da.index[-1] == local("2024-12-31 23:00")
    assert len(da) == 35_064 and (np.diff(da.index) == pd.Timedelta(hours=1)).all()
    years = da.index.tz_convert(TZ).year
    means = da.groupby(years).mean().round(2).to_dict()
    assert means == {2021: 142.64, 2022: 59.79, 2023: 56.49, 2024: 28.94}      # shared ercot/SOURCE.md
    assert da.max() == pytest.approx(9000.01)                                     # Uri, 2021 cap
    days = pd.Series(1, index=da.index.tz_convert(TZ).date).groupby(level=0).size()
    assert days[pd.Timestamp("2022-03-13").date()] == 23 and days[pd.Timestamp("2022-11-06").date()] == 25
    assert sorted(data.settlement_points("da")) == sorted(
        ["HB_BUSAVG", "HB_HOUSTON", "HB_HUBAVG", "HB_NORTH", "HB_PAN", "HB_SOUTH", "HB_WEST", "LZ_AEN", "LZ_CPS",
         "LZ_HOUSTON", "LZ_LCRA", "LZ_NORTH", "LZ_RAYBN", "LZ_SOUTH", "LZ_WEST"])


@pytest.mark.parametrize("year", [2021, 2022, 2023, 2024])
def test_day_ahead_and_real_time_line_up_in_every_year(west, year):
    rt, da = west[1], west[2]
    da = da[da.index.tz_convert(TZ).year == year]

    def corr(lag):
        shifted = rt.reindex(da.index + pd.Timedelta(hours=lag)).to_numpy()
        return np.corrcoef(np.clip(da.to_numpy(), -100, 500), np.clip(shifted, -100, 500))[0, 1]

    assert corr(0) > max(corr(lag) for lag in (-3, -1, 1, 3))


def test_shipped_ancillary_service_prices_have_the_known_yearly_means():
    expected = {"regup": {2022: 21.67, 2023: 26.79, 2024: 6.01}, "regdn": {2022: 8.46, 2023: 13.63, 2024: 3.44},
                "rrs": {2022: 20.31, 2023: 21.26, 2024: 5.67}, "nspin": {2022: 22.49, 2023: 19.05, 2024: 6.22},
                "ecrs": {2023: 58.15, 2024: 8.23}}                                 # shared ercot/SOURCE.md
    assert set(expected) == set(data.AS_SERVICES)
    for service, means in expected.items():
        s = data.ercot_as_prices(service)
        assert s.name == "price_usd_per_mw_hour" and str(s.index.tz) == "UTC" and s.notna().all()
        assert (np.diff(s.index) == pd.Timedelta(hours=1)).all() and (s >= 0).all()
        assert s.groupby(s.index.tz_convert(TZ).year).mean().round(2).to_dict() == means
        assert s.index[-1] == local("2024-12-31 23:00")
    assert data.ercot_as_prices("regup").index[0] == local("2022-01-01 00:00")
    assert data.ercot_as_prices("ecrs").index[0] == local("2023-06-10 00:00")          # ECRS launch


def test_unknown_ancillary_service_names_the_known_ones():
    with pytest.raises(InputError, match="'spin'.*regup, regdn, rrs, nspin, ecrs"):
        data.ercot_as_prices("spin")
