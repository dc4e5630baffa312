"""Hourly real-time price forecasts made with only what is known at a decision time.

A walk-forward backtest schedules each operating day D (the site's local calendar day, 23, 24 or 25 hours) at a
decision time the day before (default 10:00 local on D-1, see :func:`decision_time_for`), against a forecast of the
horizon (day D plus a lookahead, see :func:`horizon_for`). This module makes that forecast.

The rules of the game:

* :func:`available` is the ONE place that decides what is known at a decision time. Every method calls it first
  and sees nothing else, except ``"perfect"``, the upper bound, which reads the realised prices of the horizon on
  purpose (and says so in its name).
* Methods (:data:`METHODS`):

  ``"perfect"``  the realised real-time prices of the horizon (looks into the future: an upper bound only);
  ``"da"``       the day-ahead prices of the horizon; needs a decision time after the DAM results are published
                 (13:30 local on D-1; use :data:`DA_DECISION_HOUR_LOCAL`), and DA prices for every horizon hour,
                 else :class:`~optimizer.errors.InputError` naming the missing hours;
  ``"naive"``    seasonal naive: per horizon hour, the median of the real-time prices at the same local hour on
                 the last 7 days on which that hour is known (see :func:`_naive`);
  ``"gbm"``      a quantile gradient-boosting model (scikit-learn ``HistGradientBoostingRegressor``) fitted on a
                 trailing window of what is known (see :class:`Forecaster`);
  ``"da+gbm"``   day-ahead prices where they are known at the decision time, ``"gbm"`` for the other hours
                 (useful when the horizon has a lookahead past the published day-ahead day).

* Forecasts (not the realised ``perfect`` / ``da`` prices) are clipped to the market's price limits of the target
  hour's year: floor -250 USD/MWh; cap 9,000 USD/MWh through 2021 and 5,000 from 2022 (ERCOT's HCAP/SWCAP).
  Realised settlement prices can sit slightly above the cap (adders); a forecast never does.

scikit-learn is needed only by ``"gbm"`` / ``"da+gbm"`` and is imported when a model is first fitted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from optimizer.errors import InputError, InternalError
from optimizer.market import (  # noqa: F401 - re-exported: the calendar rules live in optimizer.market
    DA_DECISION_HOUR_LOCAL,
    DA_PUBLICATION_LOCAL,
    DEFAULT_DECISION_HOUR_LOCAL,
    HOUR,
    LOAD_FORECAST_PUBLICATION_LOCAL,
    PRICE_FLOOR_USD_PER_MWH,
    decision_time_for,
    first_unpublished_day_start,
    horizon_for,
    price_cap_usd_per_mwh,
    price_caps_at,
)

#: Forecast methods accepted by :func:`forecast` and :class:`Forecaster`.
METHODS = ("perfect", "da", "naive", "gbm", "da+gbm")

#: Price floor of the forecasts (ERCOT offer floor), USD/MWh.
PRICE_FLOOR = PRICE_FLOOR_USD_PER_MWH
price_cap = price_cap_usd_per_mwh


# ----------------------------------------------------------------------------------------------------------------
# history and what is known when


@dataclass(frozen=True, eq=False)
class MarketHistory:
    """Hourly market series, each a float Series on a tz-aware UTC hour-start index (normalised on creation).

    ``rt`` real-time prices (USD/MWh), ``da`` day-ahead prices, ``load_forecast`` the system day-ahead load
    forecast (MW), ``load`` the actual system load (MW); ``timezone`` is the market's local time (publication
    times and calendar features are local). ``load_forecast_published``: when each load-forecast value was
    published (tz-aware times on the forecast's hours; a user file's ``published`` column); ``None``: the
    documented rule applies (see :func:`available`). Given, it needs a ``load_forecast`` and a time for every one
    of its hours (it is reindexed on the forecast's index: extra hours are dropped).
    """

    rt: pd.Series
    da: pd.Series | None = None
    load_forecast: pd.Series | None = None
    load: pd.Series | None = None
    timezone: str = "America/Chicago"
    load_forecast_published: pd.Series | None = None

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except Exception:  # noqa: BLE001 - any failure is an unknown zone
            raise InputError(f"unknown time zone {self.timezone!r}", field="timezone") from None
        for name in ("rt", "da", "load_forecast", "load"):
            s = getattr(self, name)
            if s is None:
                if name == "rt":
                    raise InputError("real-time prices are required", field="rt")
                continue
            object.__setattr__(self, name, _normalise(s, name))
        if self.load_forecast_published is not None:
            object.__setattr__(self, "load_forecast_published",
                               _published_on(self.load_forecast_published, self.load_forecast))

    @classmethod
    def shipped(cls, settlement_point: str) -> MarketHistory:
        """The shipped ERCOT data for ``settlement_point``: real-time prices 2020-2024, day-ahead prices where
        shipped (2022 all hubs, 2024 HB_HUBAVG), the 2024 day-ahead system load forecast and the system load."""
        from optimizer import data

        try:
            da = data.ercot_prices(settlement_point, "da")
        except InputError:
            da = None
        return cls(rt=data.ercot_prices(settlement_point, "rt"), da=da, load_forecast=data.ercot_load_forecast(),
                   load=data.ercot_load(), timezone="America/Chicago")


def _normalise(s: Any, name: str) -> pd.Series:
    if not isinstance(s, pd.Series):
        raise InputError(f"expected a pandas Series, got {type(s).__name__}", field=name)
    idx = s.index
    if not isinstance(idx, pd.DatetimeIndex) or idx.tz is None:
        raise InputError("index must be a tz-aware DatetimeIndex (UTC hour starts)", field=name)
    if str(idx.tz) != "UTC":
        s = s.set_axis(idx.tz_convert("UTC"))
    if not s.index.is_monotonic_increasing:
        s = s.sort_index()
    if not s.index.is_unique:
        raise InputError(f"timestamp {s.index[s.index.duplicated()][0].isoformat()} appears twice", field=name)
    if s.dtype != np.float64:
        s = s.astype("float64")
    return s


def _published_on(published: Any, forecast: pd.Series | None) -> pd.Series:
    """Publication times (UTC) on exactly the hours of ``forecast``; every hour needs one."""
    field = "load_forecast_published"
    if forecast is None:
        raise InputError("publication times given without a load forecast", field=field)
    if not isinstance(published, pd.Series):
        raise InputError(f"expected a pandas Series, got {type(published).__name__}", field=field)
    idx = published.index
    if not isinstance(idx, pd.DatetimeIndex) or idx.tz is None:
        raise InputError("index must be a tz-aware DatetimeIndex (UTC hour starts)", field=field)
    if not isinstance(published.dtype, pd.DatetimeTZDtype):
        raise InputError(f"publication times must be tz-aware timestamps, got dtype {published.dtype}", field=field)
    values = published.dt.tz_convert("UTC")
    values.index = idx.tz_convert("UTC")
    if not values.index.is_unique:
        raise InputError(f"hour {values.index[values.index.duplicated()][0].isoformat()} appears twice", field=field)
    if not values.index.equals(forecast.index):
        values = values.reindex(forecast.index)
    missing = values.isna().to_numpy()
    if missing.any():
        raise InputError(f"no publication time for load-forecast hour {forecast.index[missing][0].isoformat()} "
                         f"({int(missing.sum())} hours without one)", field=field)
    return values.rename("published")


def _utc(decision_time: Any) -> pd.Timestamp:
    t = pd.Timestamp(decision_time)
    if t.tz is None:
        raise InputError(f"decision time {t} has no time zone (give a tz-aware timestamp)", field="decision_time")
    return t.tz_convert("UTC")


def available(history: MarketHistory, decision_time: Any) -> MarketHistory:
    """What of ``history`` is known at ``decision_time`` (a tz-aware timestamp): the only place that decides.

    * real-time prices: hours that ENDED at or before the decision time (start + 1 h <= t);
    * day-ahead prices: all hours of operating day D (local calendar day) once D's DAM results are published,
      at 13:30 local on D-1 (:data:`DA_PUBLICATION_LOCAL`), i.e. known iff that time <= t;
    * day-ahead load forecast: with ``load_forecast_published``, the values published at or before the decision
      time (``published <= t``); without, all hours of day D from 06:00 local on D-1
      (:data:`LOAD_FORECAST_PUBLICATION_LOCAL`; an ASSUMPTION: the shipped data has no vintage);
    * actual load: hours that ended strictly before the decision time (start + 1 h < t).
    """
    t = _utc(decision_time)
    def upto(s: pd.Series | None, bound: pd.Timestamp, side: str) -> pd.Series | None:
        if s is None:
            return None
        return s.iloc[: s.index.searchsorted(bound, side=side)]

    da_end = first_unpublished_day_start(t, history.timezone, DA_PUBLICATION_LOCAL)
    published = history.load_forecast_published
    if published is None:
        lf_end = first_unpublished_day_start(t, history.timezone, LOAD_FORECAST_PUBLICATION_LOCAL)
        lf = upto(history.load_forecast, lf_end, "left")
    else:
        if history.load_forecast is None:          # MarketHistory refuses publication times without a forecast
            raise InternalError("load-forecast publication times without a load forecast")
        known = (published <= t).to_numpy()
        lf, published = history.load_forecast[known], published[known]
    return MarketHistory(rt=upto(history.rt, t - HOUR, "right"), da=upto(history.da, da_end, "left"),
                         load_forecast=lf, load=upto(history.load, t - HOUR, "left"), timezone=history.timezone,
                         load_forecast_published=published)


def _check_horizon(horizon: Any) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(horizon)
    if idx.tz is None:
        raise InputError("horizon must be tz-aware (UTC hour starts)", field="horizon")
    idx = idx.tz_convert("UTC")
    if len(idx) == 0:
        raise InputError("horizon is empty", field="horizon")
    if not (idx.is_unique and idx.is_monotonic_increasing):
        raise InputError("horizon must be increasing without repeats", field="horizon")
    if (idx != idx.floor("h")).any():
        raise InputError("horizon hours must start on the hour", field="horizon")
    return pd.DatetimeIndex(idx, name="timestamp")


def _hour_ranges(idx: pd.DatetimeIndex) -> str:
    """'a..b, c' for the contiguous runs of an hourly index, for error messages."""
    runs: list[str] = []
    start = prev = idx[0]
    for ts in [*idx[1:], None]:
        if ts is not None and ts - prev == HOUR:
            prev = ts
            continue
        runs.append(start.isoformat() if start == prev else f"{start.isoformat()}..{prev.isoformat()}")
        if ts is not None:
            start = prev = ts
    return ", ".join(runs)


def _clip(values: np.ndarray, targets: pd.DatetimeIndex, timezone: str) -> np.ndarray:
    caps = price_caps_at(targets)
    v = np.asarray(values, dtype=float)
    return np.clip(v, PRICE_FLOOR, caps[:, None] if v.ndim == 2 else caps)


# ----------------------------------------------------------------------------------------------------------------
# features (computed from an ``available`` history only)

#: How many known days of the same local hour the lag features (and ``naive``) look back over.
LAG_DAYS = 7
#: Extrapolation guard of the gbm model: trees cannot extrapolate, so a regime never seen in the training window
#: (Winter Storm Uri, at the 9,000 USD/MWh cap for days) would be forecast at the window's levels. When this
#: feature (the MEDIAN of the last 24 known hours) lies outside its 1-99% range in the training window, the
#: forecast is shifted by how far outside it lies; inside the range the model is used as fitted. The median, not
#: the mean: one spike hour (HB_WEST 2022-05-13, 4,444 USD/MWh) lifts the 24-h mean to ~520 and would shift the
#: whole next day by ~400 USD/MWh (20-day MAE from 2022-05-02: 70.6 with the mean, 51.7 with the median; 2023
#: weekly sample 75.0 vs 58.3), while a sustained regime like Uri moves the median as much as the mean (HB_WEST
#: 2021-02-01..03-10, daily: MAE 718 with the median guard, 721 with the mean, 1,060 without a guard).
GUARD = "median_24h"
_TAIL_HOURS = (LAG_DAYS + 3) * 24

FEATURES = (["hour", "weekday", "month", "day_of_year", "lead_hours"]
            + [f"lag{d}" for d in range(1, LAG_DAYS + 1)]
            + ["last_price", "mean_24h", "mean_168h", "median_24h", "median_168h", "lag_median",
               "load_forecast", "load_same_hour", "da_price"])


def _same_hour_lags(s: pd.Series, targets_local_hour: np.ndarray, timezone: str, n: int) -> np.ndarray:
    """(len(targets), n): for each target, the values of ``s`` at the same local hour on its last ``n`` known
    days, most recent first (NaN where fewer are known). ``s`` holds known values only."""
    tail = s.iloc[-_TAIL_HOURS:]
    hours = tail.index.tz_convert(timezone).hour.to_numpy()
    vals = tail.to_numpy()
    table = np.full((24, n), np.nan)
    for h in range(24):
        v = vals[hours == h][-n:][::-1]
        table[h, : len(v)] = v
    return table[targets_local_hour]


def _features(avail: MarketHistory, decision_time: pd.Timestamp, targets: pd.DatetimeIndex) -> pd.DataFrame:
    """One row per target hour, from ``avail`` (the output of :func:`available` at ``decision_time``) only."""
    if len(avail.rt) < 24:
        raise InputError(f"fewer than 24 real-time prices known at {decision_time.isoformat()}",
                         field="decision_time")
    local = targets.tz_convert(avail.timezone)
    lh = local.hour.to_numpy()
    rt = avail.rt.to_numpy()
    cols: dict[str, Any] = {
        "hour": lh.astype(float),
        "weekday": local.day_of_week.to_numpy().astype(float),
        "month": local.month.to_numpy().astype(float),
        "day_of_year": local.day_of_year.to_numpy().astype(float),
        "lead_hours": ((targets - decision_time) / HOUR).to_numpy().astype(float),
    }
    lags = _same_hour_lags(avail.rt, lh, avail.timezone, LAG_DAYS)
    for d in range(LAG_DAYS):
        cols[f"lag{d + 1}"] = lags[:, d]
    cols["last_price"] = np.full(len(targets), rt[-1])
    cols["mean_24h"] = np.full(len(targets), rt[-24:].mean())
    cols["mean_168h"] = np.full(len(targets), rt[-168:].mean())
    cols["median_24h"] = np.full(len(targets), np.median(rt[-24:]))
    cols["median_168h"] = np.full(len(targets), np.median(rt[-168:]))
    cols["lag_median"] = np.nanmedian(lags, axis=1)
    lf = avail.load_forecast
    cols["load_forecast"] = (lf.reindex(targets).to_numpy() if lf is not None and len(lf) else np.nan)
    load = avail.load
    if load is not None:                  # only recent load: the shipped series has no Oct-Dec 2021
        load = load.iloc[load.index.searchsorted(decision_time - 48 * HOUR):]
    cols["load_same_hour"] = (_same_hour_lags(load, lh, avail.timezone, 1)[:, 0] if load is not None and len(load)
                              else np.nan)
    da = avail.da
    cols["da_price"] = da.reindex(targets).to_numpy() if da is not None and len(da) else np.nan
    return pd.DataFrame({k: np.broadcast_to(np.asarray(v, dtype=float), (len(targets),)) for k, v in cols.items()},
                        index=targets)[FEATURES]


# ----------------------------------------------------------------------------------------------------------------
# methods


def _perfect(history: MarketHistory, horizon: pd.DatetimeIndex) -> np.ndarray:
    """LOOKS INTO THE FUTURE on purpose: the realised real-time prices of the horizon (the upper bound)."""
    v = history.rt.reindex(horizon)
    if v.isna().any():
        raise InputError(f"no real-time prices for horizon hours {_hour_ranges(horizon[v.isna().to_numpy()])}",
                         field="horizon")
    return v.to_numpy()


def _da(avail: MarketHistory, decision_time: pd.Timestamp, horizon: pd.DatetimeIndex) -> np.ndarray:
    if avail.da is None:
        raise InputError("no day-ahead prices in the history", field="da")
    v = avail.da.reindex(horizon)
    missing = v.isna().to_numpy()
    if missing.any():
        tz = avail.timezone
        raise InputError(
            f"day-ahead prices not known at {decision_time.tz_convert(tz).isoformat()} for {int(missing.sum())} of "
            f"{len(horizon)} horizon hours: {_hour_ranges(horizon[missing])} (DAM results for day D are published "
            f"at {DA_PUBLICATION_LOCAL:%H:%M} local on D-1: decide at {DA_DECISION_HOUR_LOCAL}:00 or later, use a "
            "horizon without lookahead past D, or method 'da+gbm')", field="da")
    return v.to_numpy()


def _naive(avail: MarketHistory, decision_time: pd.Timestamp, horizon: pd.DatetimeIndex,
           quantiles: Sequence[float] = (0.5,)) -> np.ndarray:
    """Seasonal naive: per horizon hour, the ``q`` quantile (median for the point forecast) of the real-time
    prices at the same local hour on the last :data:`LAG_DAYS` (7) days on which that hour is known. The week of
    values covers every weekday once; the median keeps single spikes out. Shape (len(horizon), len(quantiles))."""
    if len(avail.rt) < 24:
        raise InputError(f"fewer than 24 real-time prices known at {decision_time.isoformat()}",
                         field="decision_time")
    lh = horizon.tz_convert(avail.timezone).hour.to_numpy()
    lags = _same_hour_lags(avail.rt, lh, avail.timezone, LAG_DAYS)
    return np.nanquantile(lags, list(quantiles), axis=1).T


class Forecaster:
    """A forecaster for one method and history, reusable across a walk-forward backtest.

    ``gbm`` (and the ``gbm`` part of ``da+gbm``) fits one ``HistGradientBoostingRegressor(loss="quantile")`` per
    quantile on the trailing ``window_days`` of what is known at the decision time: one training example per
    (past decision time, target hour) pair, the past decision times being the same local clock time on each of the
    ``window_days`` previous days and the targets the hours with a lead of 0..``max_lead_hours`` h whose price is
    known, with features computed by the same function, from ``available(history, past decision time)``, as at
    prediction time. Features per target hour: local hour, weekday, month, day of year, lead (hours after the
    decision time), the price at the same local hour on the last 1..7 known days and their median (the ``naive``
    forecast), the last known price, the mean and the median of the last 24 and 168 known hours, the day-ahead
    load forecast of the target hour and the day-ahead price of the target hour where known (NaN otherwise; the
    model handles missing values), the actual load at the same local hour on the last known day. Features never
    known in the training window are dropped. Trees do not extrapolate: when the median of the last 24 known
    hours lies outside its 1-99% range in the training window, the forecast is shifted by the excess (see
    :data:`GUARD`), so a sustained new price regime (Uri) is followed.

    The model is refitted when ``refit_days`` days have passed since the last fit, or when a decision time
    earlier than the last fit is asked (a model fitted later could have seen that decision's future); in between
    it is reused (features are always recomputed at the new decision time). ``fit_count`` counts fits.
    Deterministic: fixed ``random_state``, no early stopping.

    Refits reuse the training windows of earlier fits: a past decision time's features depend on what was known
    at that time only, so each is computed once for every target hour of its window (:meth:`_window`) and a
    refit 7 days later computes 7 new windows of 120; the labels (the prices known at the refit) are read again
    at every fit. On hourly series without gaps (the shipped data) the training set is the one the earlier
    implementation computed from scratch at every fit, row for row (tested); with gaps, each window now reads the
    same 11 days before its own decision time whatever the fit (it used to depend on how far back the fit was).
    """

    def __init__(self, method: str, history: MarketHistory, *, quantiles: Sequence[float] = (0.5,),
                 refit_days: int = 7, window_days: int = 120, max_lead_hours: int = 72, random_state: int = 0):
        if method not in METHODS:
            raise InputError(f"unknown forecast method {method!r}; one of {', '.join(METHODS)}", field="method")
        qs = tuple(float(q) for q in quantiles)
        if not qs or any(not 0.0 < q < 1.0 for q in qs) or len(set(qs)) != len(qs):
            raise InputError(f"quantiles must be distinct numbers in (0, 1), got {quantiles!r}", field="quantiles")
        if refit_days < 1 or window_days < 14 or max_lead_hours < 1:
            raise InputError("need refit_days >= 1, window_days >= 14 and max_lead_hours >= 1", field="Forecaster")
        self.method, self.history = method, history
        self.quantiles = tuple(sorted(qs))
        self.refit_days, self.window_days, self.max_lead_hours = refit_days, window_days, max_lead_hours
        self.random_state = random_state
        self.fit_count = 0
        self.fitted_at: pd.Timestamp | None = None
        self._models: dict[float, Any] = {}
        self._columns: list[str] = list(FEATURES)
        self._guard_range = (-np.inf, np.inf)
        self._windows: dict[pd.Timestamp, pd.DataFrame | None] = {}

    # -- public ---------------------------------------------------------------------------------------------------

    def predict(self, decision_time: Any, horizon: Any) -> pd.Series:
        """Point forecast (USD/MWh) of every ``horizon`` hour: the 0.5 quantile (which must be among
        ``quantiles``) for ``gbm`` / ``naive``; index exactly the horizon (UTC)."""
        if 0.5 not in self.quantiles:
            raise InputError("predict() gives the median: include 0.5 in quantiles, or use predict_quantiles()",
                             field="quantiles")
        q = self.predict_quantiles(decision_time, horizon)[0.5]
        q.name = "price_usd_per_mwh"
        q.attrs["source"] = self._source(decision_time)
        return q

    def predict_quantiles(self, decision_time: Any, horizon: Any) -> pd.DataFrame:
        """One column per quantile (float column labels). ``perfect`` and ``da`` are point values (the same in
        every column); ``naive`` takes the quantiles of its 7 same-hour prices; ``gbm`` one model per quantile
        (rows sorted so the quantiles never cross)."""
        t = _utc(decision_time)
        horizon = _check_horizon(horizon)
        nq = len(self.quantiles)
        if self.method == "perfect":
            values = np.repeat(_perfect(self.history, horizon)[:, None], nq, axis=1)
        else:
            avail = available(self.history, t)
            if self.method == "da":
                values = np.repeat(_da(avail, t, horizon)[:, None], nq, axis=1)
            elif self.method == "naive":
                values = _clip(_naive(avail, t, horizon, self.quantiles), horizon, avail.timezone)
            else:
                values = self._gbm(avail, t, horizon)
                if self.method == "da+gbm" and avail.da is not None:
                    da = avail.da.reindex(horizon).to_numpy()
                    known = ~np.isnan(da)
                    values[known] = da[known][:, None]
        return pd.DataFrame(values, index=horizon, columns=pd.Index(list(self.quantiles), name="quantile"))

    # -- gbm --------------------------------------------------------------------------------------------------------

    def _gbm(self, avail: MarketHistory, t: pd.Timestamp, horizon: pd.DatetimeIndex) -> np.ndarray:
        if self.fitted_at is None or t < self.fitted_at or t - self.fitted_at >= pd.Timedelta(days=self.refit_days):
            self._fit(avail, t)
        feats = _features(avail, t, horizon)
        with _one_thread():
            pred = np.column_stack([self._models[q].predict(feats[self._columns]) for q in self.quantiles])
        level = feats[GUARD].to_numpy()
        pred += (level - np.clip(level, *self._guard_range))[:, None]     # 0 inside the range seen in training
        pred.sort(axis=1)
        return _clip(pred, horizon, avail.timezone)

    def training_set(self, avail: MarketHistory, t: pd.Timestamp) -> tuple[pd.DataFrame, pd.Series]:
        """Features and targets known at ``t`` (``avail`` is ``available(history, t)``), as :meth:`_fit` uses: one
        window per past decision time (the same local clock time on each of the ``window_days`` days before ``t``),
        its rows the target hours whose price is known at ``t``."""
        tz = ZoneInfo(avail.timezone)
        t_local = t.tz_convert(tz)
        xs, ys = [], []
        keep: dict[pd.Timestamp, pd.DataFrame | None] = {}
        for k in range(1, self.window_days + 1):
            tk = pd.Timestamp(dt.datetime.combine(t_local.date() - dt.timedelta(days=k), t_local.time(), tz))
            tk = tk.tz_convert("UTC")
            feats = keep[tk] = self._window(tk)
            if feats is None:
                continue
            y = avail.rt.reindex(feats.index).dropna()        # labels: known at t
            if y.empty:
                continue
            xs.append(feats if len(y) == len(feats) else feats.loc[y.index])
            ys.append(y)
        self._windows = keep                                  # windows that slid out are not needed again
        if sum(len(y) for y in ys) < 14 * 24:
            raise InputError(f"gbm needs at least 14 days of real-time prices known before "
                             f"{t.isoformat()} to fit (window {self.window_days} days)", field="decision_time")
        return pd.concat(xs), pd.concat(ys)

    def _window(self, tk: pd.Timestamp) -> pd.DataFrame | None:
        """The features of past decision time ``tk`` for every target hour of its window (``tk`` rounded up to the
        hour .. ``tk + max_lead_hours``), from ``available(history, tk)`` (None when fewer than 24 real-time prices
        were known then); cached. Only the last ``LAG_DAYS + 4`` days before ``tk`` are handed to
        :func:`available`: the features read at most the last 10 days of prices (:data:`_TAIL_HOURS`), 168 hours
        and 48 hours of load."""
        if tk in self._windows:
            return self._windows[tk]
        first = tk - pd.Timedelta(days=LAG_DAYS + 4)
        h = self.history

        def since(s: pd.Series | None) -> pd.Series | None:
            return None if s is None else s.iloc[s.index.searchsorted(first):]

        past = available(dataclasses.replace(h, rt=since(h.rt), da=since(h.da), load_forecast=since(h.load_forecast),
                                             load=since(h.load)), tk)
        feats = None
        if len(past.rt) >= 24:
            targets = pd.date_range(tk.ceil("h"), tk + self.max_lead_hours * HOUR, freq="1h", inclusive="left",
                                    name="timestamp")
            feats = _features(past, tk, targets)
        self._windows[tk] = feats
        return feats

    def _fit(self, avail: MarketHistory, t: pd.Timestamp) -> None:
        try:
            from sklearn.ensemble import HistGradientBoostingRegressor
        except ImportError:  # pragma: no cover - depends on the environment
            raise InputError("forecast method 'gbm' needs scikit-learn (pip install scikit-learn)",
                             field="method") from None
        X, y = self.training_set(avail, t)
        # features never known in the window (e.g. the load forecast outside 2024) are left out: scikit-learn's
        # binning fails on an all-NaN column, and the model could not use it anyway
        self._columns = [c for c in FEATURES if X[c].notna().any()]
        lo, hi = np.nanpercentile(X[GUARD].to_numpy(), [1, 99])
        self._guard_range = (float(lo), float(hi))
        X = X[self._columns]
        self._models = {}
        for q in self.quantiles:
            m = HistGradientBoostingRegressor(loss="quantile", quantile=q, max_iter=150, learning_rate=0.05,
                                              max_leaf_nodes=15, min_samples_leaf=40, early_stopping=False,
                                              random_state=self.random_state)
            with _one_thread():
                self._models[q] = m.fit(X, y.to_numpy())
        self.fitted_at = t
        self.fit_count += 1

    def _source(self, decision_time: Any) -> str:
        return f"forecast {self.method} at {_utc(decision_time).isoformat()}"


def _one_thread():
    """scikit-learn's OpenMP threads on these small problems: measured here, a 150-tree fit on 8,000 rows took
    195 s with the default threads on a busy 2-core machine and 0.32 s with one; a 48-row predict 1.8 s vs 1.6 ms.
    One thread also leaves the other core to HiGHS or a second Dask worker. And it keeps the binning of
    ``HistGradientBoostingRegressor`` out of worker threads, which touch the process-global warning filters
    (scikit-learn issue #32631): a spurious ``UserWarning`` that ``-W error`` turns into a failure."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp")


def forecast(method: str, history: MarketHistory, decision_time: Any, horizon: Any, **kwargs: Any) -> pd.Series:
    """Hourly real-time price forecast (USD/MWh) for ``horizon`` (UTC hourly index, returned as the index) made at
    ``decision_time`` with ``method`` (see :data:`METHODS`); ``kwargs`` go to :class:`Forecaster`. A one-shot
    :class:`Forecaster`: in a walk-forward loop keep one so ``gbm`` is not refitted every day."""
    return Forecaster(method, history, **kwargs).predict(decision_time, horizon)


def best_method(history: MarketHistory, decision_time: Any, horizon: Any) -> str:
    """The best method the data allows: ``"da"`` if day-ahead prices are known at ``decision_time`` for every
    horizon hour, else ``"gbm"`` (the backtest's ``auto`` is ``gbm``: see ``backtest.engine.default_method``).
    (With a lookahead past day D, DA never covers the whole horizon at a D-1 decision: then ``"gbm"``;
    ``"da+gbm"`` is the option that uses the known DA hours.)"""
    avail = available(history, decision_time)
    horizon = _check_horizon(horizon)
    if avail.da is not None and avail.da.reindex(horizon).notna().all():
        return "da"
    return "gbm"
