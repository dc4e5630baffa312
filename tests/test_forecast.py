"""Price forecasts: what is known when (no look-ahead), DST horizons, day-ahead prices, a learned model that beats
a constant on real data, and the refit cadence. Real shipped ERCOT data throughout."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from optimizer import data
from optimizer import forecast as F
from optimizer.errors import InputError

TZ = "America/Chicago"
POISON = 1e6
HOUR = pd.Timedelta(hours=1)


def local(text: str) -> pd.Timestamp:
    """A local (America/Chicago) wall time as a UTC timestamp."""
    return pd.Timestamp(text).tz_localize(TZ).tz_convert("UTC")


@pytest.fixture(scope="module")
def west() -> F.MarketHistory:
    return F.MarketHistory.shipped("HB_WEST")


@pytest.fixture(scope="module")
def hubavg() -> F.MarketHistory:
    """The one settlement point with 2024 day-ahead prices; the load forecast is 2024 too."""
    return F.MarketHistory.shipped("HB_HUBAVG")


def poisoned(history: F.MarketHistory, t: pd.Timestamp) -> F.MarketHistory:
    """``history`` with every value NOT yet published at ``t`` replaced by an absurd number. Defined here from the
    market rules, independently of :func:`optimizer.forecast.available`."""

    def after(s: pd.Series | None, unknown: np.ndarray) -> pd.Series | None:
        return None if s is None else s.mask(unknown, POISON)

    def unpublished(s: pd.Series | None, hh: int, mm: int) -> np.ndarray | None:
        if s is None:
            return None
        days = s.index.tz_convert(TZ).normalize().tz_localize(None)          # local operating day of each hour
        publication = (days - pd.Timedelta(days=1) + pd.Timedelta(hours=hh, minutes=mm)).tz_localize(TZ)
        return np.asarray(publication > t)

    rt, load, da, lf = history.rt, history.load, history.da, history.load_forecast
    return F.MarketHistory(
        rt=after(rt, np.asarray(rt.index + HOUR > t)),                        # hour not ended by t
        load=after(load, np.asarray(load.index + HOUR >= t)) if load is not None else None,
        da=after(da, unpublished(da, 13, 30)),
        load_forecast=after(lf, unpublished(lf, 6, 0)),
        timezone=history.timezone)


# ---------------------------------------------------------------------------------------------------------------
# available(): the boundaries, exactly


def test_realtime_hour_ending_at_the_decision_time_is_known_the_next_is_not(west):
    t = local("2022-07-19 10:00")
    assert F.available(west, t).rt.index[-1] == t - HOUR                     # 09:00-10:00 ended at t: known
    assert F.available(west, t - pd.Timedelta(seconds=1)).rt.index[-1] == t - 2 * HOUR
    assert F.available(west, t + pd.Timedelta(minutes=59)).rt.index[-1] == t - HOUR   # 10:00-11:00 not ended
    assert F.available(west, t + HOUR).rt.index[-1] == t


def test_actual_load_known_only_for_hours_ended_before_the_decision_time(west):
    t = local("2022-07-19 10:00")
    assert F.available(west, t).load.index[-1] == t - 2 * HOUR
    assert F.available(west, t + pd.Timedelta(seconds=1)).load.index[-1] == t - HOUR


def test_day_ahead_prices_for_day_d_are_published_at_1330_on_d_minus_1(west):
    d_start, d_end = local("2022-07-20 00:00"), local("2022-07-21 00:00")
    before = F.available(west, local("2022-07-19 13:29"))
    assert before.da.index[-1] == d_start - HOUR                             # D-1 known, D not
    assert F.available(west, local("2022-07-19 13:29:59.999")).da.index[-1] == d_start - HOUR
    after = F.available(west, local("2022-07-19 13:30"))
    assert after.da.index[-1] == d_end - HOUR                                # all of D, nothing of D+1
    assert after.da.index.isin(pd.date_range(d_start, d_end, freq="1h", inclusive="left")).sum() == 24


def test_load_forecast_for_day_d_is_assumed_known_from_0600_on_d_minus_1(hubavg):
    d_start = local("2024-07-20 00:00")
    assert F.available(hubavg, local("2024-07-19 05:59")).load_forecast.index[-1] == d_start - HOUR
    assert F.available(hubavg, local("2024-07-19 06:00")).load_forecast.index[-1] == local("2024-07-21 00:00") - HOUR


def test_available_needs_a_tz_aware_decision_time(west):
    with pytest.raises(InputError, match="no time zone"):
        F.available(west, pd.Timestamp("2022-07-19 10:00"))


def test_decision_time_and_horizon_helpers_across_dst():
    assert F.decision_time_for(dt.date(2022, 7, 20), TZ) == pd.Timestamp("2022-07-19T15:00Z")       # CDT
    assert F.decision_time_for("2021-03-14", TZ) == pd.Timestamp("2021-03-13T16:00Z")             # CST
    assert F.decision_time_for("2021-11-08", TZ) == pd.Timestamp("2021-11-07T16:00Z")             # CST again
    assert F.decision_time_for("2022-07-20", TZ, 13, 30) == local("2022-07-19 13:30")
    for day, n in (("2021-03-14", 23), ("2021-11-07", 25), ("2022-07-20", 24)):
        assert len(F.horizon_for(day, TZ, 0)) == n
        hz = F.horizon_for(day, TZ, 24)
        assert len(hz) == n + 24 and hz[0] == local(f"{day} 00:00") and (np.diff(hz.asi8) == 3_600_000_000).all()


# ---------------------------------------------------------------------------------------------------------------
# no look-ahead: a poisoned future changes nothing


CASES = {   # method -> (decision hour local on D-1, lookahead hours)
    "naive": (10, 24),
    "gbm": (10, 24),
    "da+gbm": (14, 24),
    "da": (14, 0),
}


@pytest.mark.parametrize("method", list(CASES))
def test_poisoned_future_gives_the_identical_forecast(west, method):
    hour, lookahead = CASES[method]
    day = dt.date(2022, 7, 20)
    t = F.decision_time_for(day, TZ, hour)
    hz = F.horizon_for(day, TZ, lookahead)
    dirty = poisoned(west, t)
    assert (dirty.rt.reindex(hz) == POISON).all()                            # the whole horizon is poisoned
    clean_fc = F.forecast(method, west, t, hz)
    pd.testing.assert_series_equal(F.forecast(method, dirty, t, hz), clean_fc, check_exact=True)
    assert clean_fc.index.equals(hz) and clean_fc.notna().all() and (clean_fc.abs() < 10_000).all()
    # ... and the poison is there to be read: the future-reading upper bound sees it
    assert (F.forecast("perfect", dirty, t, hz) == POISON).all()
    assert not np.allclose(F.forecast("perfect", west, t, hz), POISON)


@pytest.mark.parametrize("method", ["naive", "gbm"])
def test_the_truncation_boundary_is_where_it_matters(west, method):
    """The hours just before the decision time ARE read (so the poison test above would catch a leak at the
    boundary): one more known hour, or poisoning the last known day, changes the forecast."""
    day = dt.date(2022, 7, 20)
    t = F.decision_time_for(day, TZ)
    hz = F.horizon_for(day, TZ, 24)
    base = F.forecast(method, west, t, hz)
    assert not base.equals(F.forecast(method, west, t + HOUR, hz))
    last_day = west.rt.index.to_series().between(t - 24 * HOUR, t - HOUR).to_numpy()
    hurt = F.MarketHistory(rt=west.rt.mask(last_day, POISON), da=west.da, load_forecast=west.load_forecast,
                           load=west.load, timezone=TZ)
    assert not base.equals(F.forecast(method, hurt, t, hz))


def test_reused_model_sees_no_future_either(west):
    """A model fitted at t1 and reused at t2 (no refit) gives the same forecast at t2 whatever comes after t2."""
    t1 = F.decision_time_for("2022-08-10", TZ)
    t2 = F.decision_time_for("2022-08-12", TZ)
    hz = F.horizon_for("2022-08-12", TZ, 24)
    out = []
    for hist in (west, poisoned(west, t2)):
        fc = F.Forecaster("gbm", hist, refit_days=7)
        fc.predict(t1, F.horizon_for("2022-08-10", TZ, 24))
        out.append(fc.predict(t2, hz))
        assert fc.fit_count == 1
    pd.testing.assert_series_equal(out[0], out[1], check_exact=True)


# ---------------------------------------------------------------------------------------------------------------
# DST days


@pytest.mark.parametrize("day,hours", [("2021-03-14", 23), ("2021-11-07", 25)])
@pytest.mark.parametrize("method", ["perfect", "naive", "gbm"])
def test_dst_horizons_forecast_every_hour(west, day, hours, method):
    hz = F.horizon_for(day, TZ, 24)
    assert len(hz) == hours + 24
    fc = F.forecast(method, west, F.decision_time_for(day, TZ), hz)
    assert fc.index.equals(hz)
    assert fc.notna().all() and np.isfinite(fc.to_numpy()).all()


# ---------------------------------------------------------------------------------------------------------------
# day-ahead prices


def test_da_after_publication_is_the_shipped_day_ahead_price(west):
    day = dt.date(2022, 7, 20)
    hz = F.horizon_for(day, TZ, 0)
    fc = F.forecast("da", west, F.decision_time_for(day, TZ, F.DA_DECISION_HOUR_LOCAL), hz)
    shipped = data.ercot_prices("HB_WEST", "da").reindex(hz)
    np.testing.assert_array_equal(fc.to_numpy(), shipped.to_numpy())
    assert fc.index.equals(hz)


def test_da_before_publication_or_without_data_is_an_input_error(west):
    day = dt.date(2022, 7, 20)
    hz = F.horizon_for(day, TZ, 0)
    with pytest.raises(InputError, match=r"24 of 24 horizon hours: 2022-07-20T05:00:00\+00:00\.\."):
        F.forecast("da", west, F.decision_time_for(day, TZ), hz)              # 10:00: not published yet
    with pytest.raises(InputError, match=r"24 of 48 horizon hours: 2022-07-21T05:00:00\+00:00\.\."):
        F.forecast("da", west, F.decision_time_for(day, TZ, 14), F.horizon_for(day, TZ, 24))   # D+1 unknown
    with pytest.raises(InputError, match="day-ahead prices not known"):
        F.forecast("da", west, F.decision_time_for("2020-07-20", TZ, 14), F.horizon_for("2020-07-20", TZ, 0))
    no_da = F.MarketHistory(rt=west.rt)
    with pytest.raises(InputError, match="no day-ahead prices"):
        F.forecast("da", no_da, F.decision_time_for(day, TZ, 14), hz)


def test_best_method_is_da_only_when_it_covers_the_horizon(west):
    day = dt.date(2022, 7, 20)
    assert F.best_method(west, F.decision_time_for(day, TZ, 14), F.horizon_for(day, TZ, 0)) == "da"
    assert F.best_method(west, F.decision_time_for(day, TZ, 10), F.horizon_for(day, TZ, 0)) == "gbm"
    assert F.best_method(west, F.decision_time_for(day, TZ, 14), F.horizon_for(day, TZ, 24)) == "gbm"
    assert F.best_method(west, F.decision_time_for("2023-07-20", TZ, 14), F.horizon_for("2023-07-20", TZ, 0)) == "da"
    assert F.best_method(west, F.decision_time_for("2020-07-20", TZ, 14), F.horizon_for("2020-07-20", TZ, 0)) == "gbm"


def test_da_plus_gbm_uses_the_published_day_ahead_hours(west):
    day = dt.date(2022, 7, 20)
    hz = F.horizon_for(day, TZ, 24)
    fc = F.forecast("da+gbm", west, F.decision_time_for(day, TZ, 14), hz)
    np.testing.assert_array_equal(fc.iloc[:24].to_numpy(), data.ercot_prices("HB_WEST", "da").reindex(hz[:24]))
    assert fc.notna().all()


# ---------------------------------------------------------------------------------------------------------------
# the learned model on real data


def test_gbm_beats_a_constant_forecast_on_20_real_days(west):
    """Walk forward over 20 days of 2022 at HB_WEST (decision 10:00 on D-1, horizon D + 24 h, scored on D):
    the gbm's mean absolute error is below that of the trailing 7-day mean used as a flat forecast."""
    fc = F.Forecaster("gbm", west, refit_days=7)
    err_gbm, err_const = [], []
    for day in pd.date_range("2022-05-02", periods=20, freq="1D").date:
        t = F.decision_time_for(day, TZ)
        hz = F.horizon_for(day, TZ, 24)
        n = len(F.horizon_for(day, TZ, 0))
        actual = west.rt.reindex(hz[:n]).to_numpy()
        err_gbm.append(np.abs(fc.predict(t, hz).to_numpy()[:n] - actual).mean())
        err_const.append(np.abs(F.available(west, t).rt.iloc[-168:].mean() - actual).mean())
    assert fc.fit_count == 3
    assert np.mean(err_gbm) < np.mean(err_const)


def test_gbm_follows_a_regime_never_seen_in_its_window(west):
    """Winter Storm Uri: prices at the 9,000 cap for days, far above anything in the 120-day training window.
    Trees alone would forecast the window's levels; the guard shifts the forecast to the new level."""
    day = dt.date(2021, 2, 17)
    t, hz = F.decision_time_for(day, TZ), F.horizon_for(day, TZ, 24)
    fc = F.forecast("gbm", west, t, hz)
    assert F.available(west, t).rt.iloc[-24:].median() > 8000
    assert fc.iloc[:24].median() > 5000


def test_refits_only_every_refit_days(west):
    fc = F.Forecaster("gbm", west, refit_days=3, window_days=30)
    models = []
    for day in pd.date_range("2022-03-01", periods=7, freq="1D").date:
        fc.predict(F.decision_time_for(day, TZ), F.horizon_for(day, TZ, 24))
        models.append(fc._models[0.5])
    assert fc.fit_count == 3                                                  # days 0, 3 and 6
    assert [m is models[0] for m in models] == [True, True, True, False, False, False, False]
    assert models[3] is models[5] and models[5] is not models[6]
    fc.predict(F.decision_time_for("2022-03-02", TZ), F.horizon_for("2022-03-02", TZ, 24))
    assert fc.fit_count == 4                                                  # going back in time refits


def test_quantiles_are_ordered_and_clipped_to_the_cap(west):
    day = dt.date(2021, 2, 18)                                                # Winter Storm Uri
    t, hz = F.decision_time_for(day, TZ), F.horizon_for(day, TZ, 24)
    assert F.available(west, t).rt.iloc[-48:].max() > 9000                    # real prices above the cap
    for method in ("naive", "gbm"):
        q = F.Forecaster(method, west, quantiles=(0.1, 0.5, 0.9)).predict_quantiles(t, hz)
        assert list(q.columns) == [0.1, 0.5, 0.9] and q.index.equals(hz)
        v = q.to_numpy()
        assert (np.diff(v, axis=1) >= 0).all()
        assert v.max() <= 9000 and v.min() >= F.PRICE_FLOOR
    with pytest.raises(InputError, match="include 0.5"):
        F.Forecaster("naive", west, quantiles=(0.1, 0.9)).predict(t, hz)


def test_bad_arguments_are_input_errors(west):
    hz = F.horizon_for("2022-07-20", TZ, 24)
    t = F.decision_time_for("2022-07-20", TZ)
    with pytest.raises(InputError, match="unknown forecast method"):
        F.forecast("oracle", west, t, hz)
    with pytest.raises(InputError, match="tz-aware"):
        F.forecast("naive", west, t, hz.tz_localize(None))
    with pytest.raises(InputError, match="at least 14 days"):
        F.forecast("gbm", west, F.decision_time_for("2020-01-05", TZ), F.horizon_for("2020-01-05", TZ, 24))


# ---------------------------------------------------------------------------------------------------------------
# the shipped load data


def test_shipped_load_series():
    load, lf = data.ercot_load(), data.ercot_load_forecast()
    for s in (load, lf):
        assert str(s.index.tz) == "UTC" and s.dtype == np.float64 and s.index.is_monotonic_increasing
        assert s.notna().all() and (s.diff().dropna() != 0).any()
    gap = load.index.to_series().diff()
    assert gap.max() > pd.Timedelta(days=90)                                   # Oct-Dec 2021 missing
    assert load[local("2021-10-01 00:00"):local("2022-01-01 00:00") - HOUR].empty
    assert 30_000 < load.median() < 60_000 and load.max() > 80_000            # MW; 2023/2024 peaks above 85 GW
    assert lf.index[0] == pd.Timestamp("2024-01-01T00:00Z") and lf.index[-1] == pd.Timestamp("2025-01-01T05:00Z")
    both = pd.concat([load, lf], axis=1, join="inner")
    assert len(both) > 8000 and (both.iloc[:, 0] - both.iloc[:, 1]).abs().median() < 0.05 * both.iloc[:, 0].median()


# ---------------------------------------------------------------------------------------------------------------
# refits reuse the training windows of earlier fits


def _training_set_from_scratch(fc: F.Forecaster, t: pd.Timestamp) -> tuple[pd.DataFrame, pd.Series]:
    """The training set as it was computed before windows were reused (every window from scratch, from what is
    known at t cut 131 days back): the reference the cached one must equal."""
    avail = F.available(fc.history, t)
    first = t - pd.Timedelta(days=fc.window_days + F.LAG_DAYS + 4)
    recent = F.MarketHistory(*(None if s is None else s.iloc[s.index.searchsorted(first):]
                               for s in (avail.rt, avail.da, avail.load_forecast, avail.load)),
                             timezone=avail.timezone)
    t_local = t.tz_convert(TZ)
    xs, ys = [], []
    for k in range(1, fc.window_days + 1):
        tk = pd.Timestamp(dt.datetime.combine(t_local.date() - dt.timedelta(days=k), t_local.time(),
                                              ZoneInfo(TZ))).tz_convert("UTC")
        past = F.available(recent, tk)
        if len(past.rt) < 24:
            continue
        targets = pd.date_range(tk.ceil("h"), tk + fc.max_lead_hours * HOUR, freq="1h", inclusive="left",
                                name="timestamp")
        y = recent.rt.reindex(targets).dropna()
        if y.empty:
            continue
        xs.append(F._features(past, tk, pd.DatetimeIndex(y.index)))
        ys.append(y)
    return pd.concat(xs), pd.concat(ys)


@pytest.mark.parametrize("dates", [("2021-03-01", "2021-03-08", "2021-03-15", "2021-03-04"),   # Uri in the window
                                   ("2022-11-10", "2022-11-17")])                              # DST end inside
def test_refits_reuse_windows_and_equal_a_training_set_made_from_scratch(west, dates):
    fc = F.Forecaster("gbm", west, refit_days=7)
    before: set = set()
    for i, day in enumerate(dates):
        t = F.decision_time_for(day, TZ)
        X, y = fc.training_set(F.available(west, t), t)
        X0, y0 = _training_set_from_scratch(fc, t)
        pd.testing.assert_frame_equal(X, X0, check_exact=True, check_names=False)
        pd.testing.assert_series_equal(y, y0, check_exact=True, check_names=False)
        assert len(X) > 100 * 24 and X.index.max() < t                          # labels known at t only
        new = set(fc._windows) - before
        if i == 1:
            assert len(new) == 7                                                # a week later: 7 new windows
        before = set(fc._windows)
