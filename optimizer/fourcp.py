"""ERCOT 4CP: the probability that an hour is its month's system peak hour, and the settlement helpers.

A large load's ERCOT transmission charge for the next year is set by its demand in the system peak interval of each
of June, July, August and September (4CP). The optimizer prices that in as an expected charge: for each horizon
hour h, ``P(h is this month's 4CP hour) x site MW in h x usd_per_kw_year x 1000 / 4``
(:func:`expected_charge_usd_per_mw` gives the per-MW coefficient).

:func:`peak_probability` estimates that probability from what is known at a decision time, and ONLY from
:func:`optimizer.forecast.available` (actual system load up to the decision time; the day-ahead system load forecast
for the days it is published; no prices).

The method (all in log-load space, deterministic; nothing is fitted beyond trailing means and errors):

1. **Daily peaks.** Known hourly system load is grouped by local calendar day; a day's peak is its highest hourly
   load. ``b`` is the last complete known day (the day before the decision day for a morning decision).
2. **Forecast of each remaining day's peak** in the month (the rest of the decision day, then every later day):

   * where ERCOT's day-ahead load forecast is known for all of the day's open hours, its hourly values plus a bias
     correction (mean log error of the forecast's daily peak over the last :data:`ERROR_WINDOW_DAYS` known days);
   * otherwise a persistence estimator at lead ``k = day - b`` days: the mean log peak of the last
     :data:`LEVEL_DAYS` complete days, plus :data:`TREND_WEIGHT` x the morning trend (the known hours of the
     partial day after ``b`` against the same local hours of the level days) for leads up to
     :data:`TREND_MAX_LEAD_DAYS`, plus a seasonal term (the change of the prior years' mean daily-peak shape, by
     day of year, between the level days and the target day; zero without a complete prior summer). The hourly
     shape of such a day is the mean shape (hourly load relative to the day's peak) of the level days.

3. **Spread.** The forecast error of a day's peak is Gaussian in log load with a standard deviation per lead: the
   root-mean-square error of the SAME estimator (same lead, same morning hours) replayed over the last
   :data:`ERROR_WINDOW_DAYS` days whose outcome is known (no look-ahead), made non-decreasing in lead and floored
   at :data:`MIN_SD_LOG`; for day-ahead-forecast days the spread of that forecast's bias-corrected error.
4. **Which day.** The days' peaks are jointly Gaussian with one common factor: any two days' errors correlate
   with a fitted correlation ``day_error_correlation`` (a hotter or cooler month lifts or lowers every day;
   independent days would make the maximum of many far days absurdly high). The probability that day ``d`` holds
   the month's peak is ``P(X_d > month-to-date max, X_d > X_e for every other remaining day e)``, integrated
   numerically (grid over ``x``, grid over the common factor). The probability that no remaining day beats the
   month-to-date max goes to the known hour holding it.
5. **Which hour.** Inside a day the peak hour is split among the day's open hours by the same max-of-Gaussians rule
   on their forecast shape with independent fitted noise ``hour_sd_log``.

Fitting, walk-forward (:class:`PeakModelParams`, :func:`fit_params`): the two parameters of steps 4 and 5, the
day-error correlation and the hour noise, are fitted only on data before the decision. By default
(``params=None``) a decision in local year Y uses parameters fitted on the complete June-September seasons of the
history before Y (:func:`params_for_decision`; cached by a digest of exactly the data the fit reads, and for the
shipped data read from the shipped cache :data:`PARAMS_CACHE_FILE`, so a default run pays no fit): every day D
of those summers is forecast as a backtest would (10:00 on D-1, the whole month of D) and scored by the log
probability of the month's actual peak hour, which splits into a day part (the correlation only) and an hour part
(the hour noise only); each is maximised on a grid and refined by a parabola. With no complete summer before Y
(the shipped data's 2020) the round constants :data:`DAY_ERROR_CORRELATION` (0.6) and :data:`HOUR_SD_LOG` (1%) are
used (:data:`DEFAULT_PARAMS`); they were chosen by that log score on the June-September days of 2020-2024, i.e. in
sample on the shipped data. The other constants (:data:`LEVEL_DAYS`, :data:`TREND_WEIGHT`, windows, floors) are
round values set once, not fitted; they were set with the 2020-2024 data at hand. Out-of-sample skill (fitted
through Y-1, scored on Y) is measured by ``benchmarks/fourcp_skill.py`` and documented in ``docs/fourcp.md``.

ASSUMPTIONS worth knowing: one equal correlation between all days (really it decays with the distance between
days) and independent hours inside a day; Gaussian tails in log load (real errors are skewed: storms and cold fronts
cut load sharply); weekday/holiday effects are ignored (summer weekend peaks are ~1.5% lower); the day-ahead load
forecast's publication time is :mod:`optimizer.forecast`'s assumption (06:00 local on D-1); the system load is
ERCOT's hourly Native Load while the real 4CP is a 15-minute interval of a slightly different quantity. The
probabilities of all hours of a month (one call, a horizon covering the whole month) sum to 1; hours after the
month's peak has clearly passed get small values because they must beat the month-to-date maximum, and a known
hour that holds the month-to-date maximum gets the probability that nothing later beats it. A system load that ends
more than :data:`MAX_LOAD_AGE_DAYS` before the decision is refused as stale, not extrapolated.

The user's own data (:class:`UserData`: ``--load``, ``--load-forecast``, ``--peaks`` of ``curtail schedule`` and
``curtail backtest``) is merged over the shipped data, the user's value winning on an hour both have, and
:meth:`UserData.peak_hours` chooses the monthly peaks that settle a backtest.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from optimizer.errors import InputError, InternalError
from optimizer.forecast import (
    DEFAULT_DECISION_HOUR_LOCAL,
    HOUR,
    LOAD_FORECAST_PUBLICATION_LOCAL,
    MarketHistory,
    available,
    decision_time_for,
    horizon_for,
)

#: Local calendar months of 4CP (June .. September).
FOURCP_MONTHS = (6, 7, 8, 9)
#: Complete known days whose mean log daily peak is the persistence level.
LEVEL_DAYS = 3
#: Weight of the morning trend (log ratio of today's known hours to the same hours of the level days).
TREND_WEIGHT = 0.5
#: Largest lead (days after the last complete day) the morning trend is applied to.
TREND_MAX_LEAD_DAYS = 3
#: Trailing days over which forecast errors (and the day-ahead forecast's bias) are measured.
ERROR_WINDOW_DAYS = 56
#: Fewest replayed errors needed to trust an estimated spread; else :data:`FALLBACK_SD_LOG` is used.
MIN_ERROR_SAMPLES = 14
#: Spread (log load) when too few errors are known: 5% plus 0.5% per lead day, at most 12%.
FALLBACK_SD_LOG = (0.05, 0.005, 0.12)
#: Floor of a day's peak spread (log load).
MIN_SD_LOG = 0.015
#: Independent noise (log load) of each hour around the day's forecast shape, splitting a day among its hours:
#: the value used without a prior summer to fit it on (:data:`DEFAULT_PARAMS`; chosen in sample on 2020-2024).
HOUR_SD_LOG = 0.01
#: Correlation of the errors of any two days' peak forecasts (one common factor, e.g. a hotter month): the value
#: used without a prior summer to fit it on (:data:`DEFAULT_PARAMS`; chosen in sample on 2020-2024).
DAY_ERROR_CORRELATION = 0.6
#: Leads beyond this many days use this lead's spread.
MAX_LEAD_DAYS = 40
#: Days of the centred moving average smoothing the prior years' seasonal shape.
SEASONAL_SMOOTH_DAYS = 21
#: Fewest known June-September days a prior year needs to contribute to the seasonal shape.
SEASONAL_MIN_SUMMER_DAYS = 60
#: Fewest hours of known load :func:`peak_probability` needs.
MIN_KNOWN_LOAD_HOURS = 7 * 24
#: Most days between the end of the known system load and the decision time: older load is stale (a history that
#: ends long before the decision, e.g. the shipped 2020-2024 load for a 2025 day, is refused, not extrapolated).
MAX_LOAD_AGE_DAYS = 7

_GRID_POINTS = 151          # grid of one max-of-Gaussians integral (max error ~1e-6 in probability)
_FACTOR_NODES = 21         # nodes of the common factor
_SQRT2 = math.sqrt(2.0)
_LOG_TINY = -690.0          # log of the smallest CDF value used (exp(-690) ~ 1e-300)


# ----------------------------------------------------------------------------------------------------------------
# small numerical helpers (numpy only: scipy is not a dependency)


def _norm_cdf(z: np.ndarray) -> np.ndarray:
    """Standard normal CDF; erfc by the Chebyshev fit of Numerical Recipes (relative error < 1.2e-7)."""
    x = -np.asarray(z, dtype=float) / _SQRT2
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * a)
    poly = (-1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (
        0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
    erfc_a = t * np.exp(-a * a + poly)
    return 0.5 * np.where(x >= 0, erfc_a, 2.0 - erfc_a)


def _safe_mean(a: np.ndarray, axis: int) -> np.ndarray:
    """Mean over ``axis`` ignoring NaN; NaN where nothing is finite (without numpy's empty-slice warning)."""
    finite = np.isfinite(a)
    n = finite.sum(axis=axis)
    s = np.where(finite, a, 0.0).sum(axis=axis)
    return np.divide(s, n, out=np.full(np.shape(s), np.nan), where=n > 0)


def _rolling_mean(a: np.ndarray, n: int) -> np.ndarray:
    """out[i] = mean of the finite values among a[i-n+1 .. i] (NaN if none)."""
    finite = np.isfinite(a)
    cs = np.concatenate([[0.0], np.cumsum(np.where(finite, a, 0.0))])
    cn = np.concatenate([[0], np.cumsum(finite)])
    i = np.arange(len(a))
    lo = np.maximum(i - n + 1, 0)
    s, c = cs[i + 1] - cs[lo], cn[i + 1] - cn[lo]
    return np.divide(s, c, out=np.full(len(a), np.nan), where=c > 0)


def _prob_of_max_batch(mu: np.ndarray, sd: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """For each row q of ``mu`` (shape (Q, n)), independent ``X_i ~ N(mu[q, i], sd_i)``: returns
    ``P(X_i > floor and X_i is the largest)`` (Q, n) and ``P(every X_i <= floor)`` (Q,).

    Integrated by the trapezoid rule on a grid per row; the first part is rescaled so each row adds up to 1.
    """
    q, n = mu.shape
    if n == 0:
        return np.zeros((q, 0)), np.ones(q)
    if np.isfinite(floor):
        log_below = np.maximum(np.log(np.maximum(_norm_cdf((floor - mu) / sd[None, :]), 1e-300)), _LOG_TINY)
        p_none = np.exp(log_below.sum(axis=1))
    else:
        p_none = np.zeros(q)
    hi = (mu + 8.0 * sd[None, :]).max(axis=1)
    lo = np.maximum((mu - 8.0 * sd[None, :]).max(axis=1), floor)
    empty = hi <= lo
    hi = np.where(empty, lo + 1.0, hi)
    x = lo[:, None] + (hi - lo)[:, None] * np.linspace(0.0, 1.0, _GRID_POINTS)[None, :]     # (Q, G)
    z = (x[:, None, :] - mu[:, :, None]) / sd[None, :, None]                                # (Q, n, G)
    log_cdf = np.maximum(np.log(np.maximum(_norm_cdf(z), 1e-300)), _LOG_TINY)
    y = np.exp(log_cdf.sum(axis=1, keepdims=True) - log_cdf - 0.5 * z * z) / sd[None, :, None]
    dx = (hi - lo) / (_GRID_POINTS - 1)
    p = (y.sum(axis=2) - 0.5 * (y[:, :, 0] + y[:, :, -1])) * dx[:, None] / math.sqrt(2.0 * math.pi)
    total = p.sum(axis=1)
    ok = (total > 0) & ~empty
    scale = np.divide(1.0 - p_none, total, out=np.zeros(q), where=ok)
    p = p * scale[:, None]
    p_none = np.where(ok, p_none, 1.0)
    return p, p_none


def _prob_of_max(mu: np.ndarray, sd: np.ndarray | float, floor: float = -np.inf,
                 rho: float = 0.0) -> tuple[np.ndarray, float]:
    """``X_i = mu_i + sd_i (sqrt(rho) Z + sqrt(1 - rho) e_i)`` with a common standard normal factor ``Z``
    (correlation ``rho`` between any two) and independent standard normal ``e_i``: returns
    ``P(X_i > floor and X_i is the largest)`` per i and ``P(every X_i <= floor)`` (they add up to 1).
    ``Z`` is integrated out on a uniform grid over +-5 standard deviations (more accurate here than Gauss-Hermite:
    the integrand is a steep product of CDFs)."""
    mu = np.asarray(mu, dtype=float)
    sd = np.broadcast_to(np.asarray(sd, dtype=float), mu.shape)
    if rho <= 0.0:
        p, none = _prob_of_max_batch(mu[None, :], sd, floor)
        return p[0], float(none[0])
    nodes = np.linspace(-5.0, 5.0, _FACTOR_NODES)
    weights = np.exp(-0.5 * nodes * nodes)
    weights /= weights.sum()
    p, none = _prob_of_max_batch(mu[None, :] + math.sqrt(rho) * sd[None, :] * nodes[:, None],
                                 sd * math.sqrt(1.0 - rho), floor)
    return weights @ p, float(weights @ none)


# ----------------------------------------------------------------------------------------------------------------
# daily tables


def _local_seconds(idx: pd.DatetimeIndex, timezone: str) -> np.ndarray:
    return idx.tz_convert(timezone).tz_localize(None).as_unit("s").asi8


@dataclass(frozen=True)
class _Daily:
    """Hourly log values by local day (rows: day numbers ``first`` .. , days since 1970-01-01 local) and local hour."""

    first: int
    log_hourly: np.ndarray          # (n_days, 24), NaN where unknown
    complete: np.ndarray            # (n_days,) bool: every hour of the local day is known

    @classmethod
    def of(cls, s: pd.Series, timezone: str) -> _Daily:
        secs = _local_seconds(s.index, timezone)
        day = secs // 86400
        hour = (secs // 3600) % 24
        first = int(day[0])
        row = day - first
        n = int(row[-1]) + 1
        table = np.full((n, 24), np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            table[row, hour] = np.log(s.to_numpy())
        table[~np.isfinite(table)] = np.nan
        count = np.bincount(row, minlength=n)
        complete = (count >= 23) & np.isfinite(table[:, 0]) & np.isfinite(table[:, 23])
        return cls(first, table, complete)

    def peaks(self) -> np.ndarray:
        """Log daily peak of each complete day, NaN for incomplete days."""
        m = np.where(np.isfinite(self.log_hourly), self.log_hourly, -np.inf).max(axis=1)
        return np.where(self.complete, m, np.nan)


def _day_number(d: dt.date) -> int:
    return (d - dt.date(1970, 1, 1)).days


def _calendar(day_numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(year, month, day of year) of day numbers."""
    d = np.datetime64("1970-01-01", "D") + np.asarray(day_numbers, dtype="int64")
    years = d.astype("datetime64[Y]")
    year = years.astype(int) + 1970
    month = (d.astype("datetime64[M]") - years.astype("datetime64[M]")).astype(int) + 1
    doy = (d - years.astype("datetime64[D]")).astype(int) + 1
    return year, month, doy


def _seasonal_shape(daily: _Daily, peaks: np.ndarray, before_year: int) -> np.ndarray:
    """(367,) by day of year: the mean over complete prior summers (years < ``before_year``) of the log daily peak
    minus that year's June-September mean, smoothed over :data:`SEASONAL_SMOOTH_DAYS`; 0 where unknown."""
    days = daily.first + np.arange(len(peaks))
    year, month, doy = _calendar(days)
    sums, counts = np.zeros(367), np.zeros(367)
    for y in np.unique(year[year < before_year]):
        in_year = (year == y) & np.isfinite(peaks)
        summer = in_year & (month >= 6) & (month <= 9)
        if summer.sum() < SEASONAL_MIN_SUMMER_DAYS:
            continue
        use = in_year & (month >= 3) & (month <= 10)
        np.add.at(sums, doy[use], peaks[use] - peaks[summer].mean())
        np.add.at(counts, doy[use], 1.0)
    if not counts.any():
        return np.zeros(367)
    kernel = np.ones(SEASONAL_SMOOTH_DAYS)
    s = np.convolve(sums, kernel, mode="same")
    c = np.convolve(counts, kernel, mode="same")
    return np.divide(s, c, out=np.zeros(367), where=c > 0)


# ----------------------------------------------------------------------------------------------------------------
# the load model known at a decision time


class _PeakModel:
    """Forecasts of daily peak loads (log MW) and their spreads, from an ``available`` history only."""

    def __init__(self, avail: MarketHistory, decision_time: pd.Timestamp) -> None:
        load = avail.load
        if load is None:
            raise InputError("the market history has no system load; 4CP probabilities need it", field="load")
        load = load.dropna()
        if len(load) < MIN_KNOWN_LOAD_HOURS:
            raise InputError(f"only {len(load)} hours of system load known at {decision_time.isoformat()} "
                             f"(need {MIN_KNOWN_LOAD_HOURS})", field="load")
        self.tz = avail.timezone
        self.load = load
        self.load_end = load.index[-1] + HOUR          # first hour whose load is not known
        age = decision_time - self.load_end
        if age > pd.Timedelta(days=MAX_LOAD_AGE_DAYS):
            raise InputError(f"the system load known at {decision_time.isoformat()} ends at "
                             f"{self.load_end.isoformat()}, {age / pd.Timedelta(days=1):.1f} days before (stale "
                             f"beyond {MAX_LOAD_AGE_DAYS} days)", field="load")
        self.daily = _Daily.of(load, self.tz)
        lp = self.daily.peaks()
        complete_rows = np.flatnonzero(np.isfinite(lp))
        if len(complete_rows) < LEVEL_DAYS:
            raise InputError(f"fewer than {LEVEL_DAYS} complete days of system load known at "
                             f"{decision_time.isoformat()}", field="load")
        self.lp = lp
        self.b = int(complete_rows[-1])                 # row of the last complete day
        decision_year = int(decision_time.tz_convert(self.tz).year)
        self.season = _seasonal_shape(self.daily, lp, decision_year)

        # per-row building blocks of the estimator (row i used as "last complete day")
        table = self.daily.log_hourly
        self.level = _rolling_mean(lp, LEVEL_DAYS)
        n = table.shape[0]
        partial = table[self.b + 1] if self.b + 1 < n else np.full(24, np.nan)
        mask = np.isfinite(partial)
        if mask.any():
            morning = _safe_mean(table[:, mask], axis=1)               # mean log load of those hours, per day
            next_morning = np.append(morning[1:], np.nan)
            with np.errstate(invalid="ignore"):
                self.trend = next_morning - _rolling_mean(np.where(np.isfinite(lp), morning, np.nan), LEVEL_DAYS)
        else:
            self.trend = np.zeros(n)
        days = self.daily.first + np.arange(n)
        self.season_rows = self.season[_calendar(days)[2]]
        self.season_level = _rolling_mean(np.where(np.isfinite(lp), self.season_rows, np.nan), LEVEL_DAYS)
        # hourly shape of the level days: log load minus the day's log peak, by local hour
        rows = slice(max(self.b - LEVEL_DAYS + 1, 0), self.b + 1)
        shape = _safe_mean(table[rows] - lp[rows, None], axis=0)
        self.shape = np.where(np.isfinite(shape), shape, np.nanmin(np.where(np.isfinite(shape), shape, 0.0)) - 0.1)
        self.sd = self._spreads()
        self.da = self._day_ahead(avail.load_forecast)

    # -- estimator -----------------------------------------------------------------------------------------------

    def _season_at(self, day_numbers: np.ndarray) -> np.ndarray:
        return self.season[_calendar(day_numbers)[2]]

    def _estimate(self, rows: np.ndarray, lead: np.ndarray) -> np.ndarray:
        """Log peak forecast of day ``row + lead`` made with ``row`` as the last complete day."""
        w = np.where(lead <= TREND_MAX_LEAD_DAYS, TREND_WEIGHT, 0.0)
        trend = np.where(np.isfinite(self.trend[rows]), self.trend[rows], 0.0)
        seasonal = self._season_at(self.daily.first + rows + lead) - self.season_level[rows]
        return self.level[rows] + w * trend + seasonal

    def _spreads(self) -> np.ndarray:
        """(MAX_LEAD_DAYS + 1,) spread by lead: RMS error of the estimator replayed over the trailing window."""
        leads = np.arange(1, MAX_LEAD_DAYS + 1)
        offsets = np.arange(ERROR_WINDOW_DAYS)
        rows = self.b - leads[:, None] - offsets[None, :]          # base rows whose target row + lead <= b
        valid = rows >= LEVEL_DAYS - 1
        rows_c = np.where(valid, rows, 0)
        lead_m = np.broadcast_to(leads[:, None], rows.shape)
        err = self.lp[rows_c + lead_m] - self._estimate(rows_c, lead_m)
        err = np.where(valid, err, np.nan)
        finite = np.isfinite(err)
        n_ok = finite.sum(axis=1)
        rms = np.sqrt(_safe_mean(err * err, axis=1))
        base, per_day, cap = FALLBACK_SD_LOG
        fallback = np.minimum(base + per_day * leads, cap)
        sd = np.where((n_ok >= MIN_ERROR_SAMPLES) & np.isfinite(rms), rms, fallback)
        sd = np.maximum.accumulate(np.maximum(sd, MIN_SD_LOG))
        return np.concatenate([[sd[0]], sd])                      # index = lead (lead 0 unused: same as 1)

    def spread(self, lead: int) -> float:
        return float(self.sd[min(max(lead, 0), MAX_LEAD_DAYS)])

    # -- day-ahead load forecast ---------------------------------------------------------------------------------

    def _day_ahead(self, lf: pd.Series | None) -> tuple[pd.Series, float, float] | None:
        """(known forecast, bias, spread) in log MW, or None if no forecast is known."""
        if lf is None:
            return None
        lf = lf.dropna()
        lf = lf[lf > 0]
        if lf.empty:
            return None
        start = self.load_end - pd.Timedelta(days=ERROR_WINDOW_DAYS + 2)
        tail = lf[lf.index >= start]
        errors = np.array([])
        if len(tail):
            f = _Daily.of(tail, self.tz)
            fp = f.peaks()
            rows = np.arange(len(fp))
            load_rows = f.first + rows - self.daily.first
            ok = (load_rows >= 0) & (load_rows <= self.b) & np.isfinite(fp)
            errors = self.lp[load_rows[ok]] - fp[ok]
            errors = errors[np.isfinite(errors)]
        if len(errors) >= MIN_ERROR_SAMPLES:
            bias = float(errors.mean())
            sd = max(float(np.sqrt(np.mean((errors - bias) ** 2))), MIN_SD_LOG)
        else:
            bias, sd = 0.0, self.spread(1)
        return np.log(lf), bias, sd

    # -- one month -----------------------------------------------------------------------------------------------

    def month_days(self, year: int, month: int) -> _MonthDays:
        """The month's known maximum and the forecast of each of its remaining (open) days."""
        tz = ZoneInfo(self.tz)
        first = dt.date(year, month, 1)
        nxt = dt.date(year + month // 12, month % 12 + 1, 1)
        start = pd.Timestamp(dt.datetime.combine(first, dt.time(), tz)).tz_convert("UTC")
        end = pd.Timestamp(dt.datetime.combine(nxt, dt.time(), tz)).tz_convert("UTC")
        known = self.load.iloc[self.load.index.searchsorted(start): self.load.index.searchsorted(end)]
        known_peak = known.idxmax() if len(known) else None
        m0 = float(np.log(known.max())) if len(known) else -np.inf
        open_hours = pd.date_range(max(start, self.load_end), end, freq="1h", inclusive="left")
        secs = _local_seconds(open_hours, self.tz)
        day = secs // 86400
        hour = (secs // 3600) % 24
        days, first_pos = np.unique(day, return_index=True)
        bounds = np.append(first_pos, len(open_hours))
        da = self.da
        lf_log = da[0].reindex(open_hours).to_numpy() if da is not None else None
        last_complete = self.daily.first + self.b
        mu_days = np.empty(len(days))
        sd_days = np.empty(len(days))
        hour_mu: list[np.ndarray] = []
        for i, d in enumerate(days):
            sl = slice(bounds[i], bounds[i + 1])
            lead = int(d - last_complete)
            if da is not None and lf_log is not None and np.isfinite(lf_log[sl]).all():
                mu_h = lf_log[sl] + da[1]
                sd = da[2]
            else:
                mu_h = self.estimate_day(int(d), lead) + self.shape[hour[sl]]
                sd = self.spread(lead)
            hour_mu.append(mu_h)
            mu_days[i] = mu_h.max()
            sd_days[i] = sd
        return _MonthDays(m0, known_peak, open_hours, days, bounds, mu_days, sd_days, hour_mu)

    def estimate_day(self, day_number: int, lead: int) -> float:
        """Log peak forecast of local day ``day_number``, ``lead`` days after the last complete day."""
        lead_c = min(max(lead, 1), MAX_LEAD_DAYS)
        full = float(self._estimate(np.array([self.b]), np.array([lead_c]))[0])
        if lead_c != lead:  # beyond the error table: the seasonal term still moves with the true target day
            full += float(self._season_at(np.array([day_number]))[0]
                          - self._season_at(np.array([day_number - lead + lead_c]))[0])
        return full

    def month_probabilities(self, year: int, month: int, wanted: pd.DatetimeIndex,
                            params: PeakModelParams) -> pd.Series:
        """P(hour is the month's peak hour) for the hours of ``wanted`` (UTC) in local month ``year-month``."""
        md = self.month_days(year, month)
        out = pd.Series(0.0, index=wanted)
        p_days, p_none = _prob_of_max(md.mu_log, md.sd_log, md.known_max_log, params.day_error_correlation)
        if md.known_peak is not None and p_none > 0:
            out[out.index == md.known_peak] = p_none
        for i in range(len(md.days)):
            hours_i = md.open_hours[md.bounds[i]:md.bounds[i + 1]]
            if p_days[i] <= 0 or not hours_i.isin(wanted).any():
                continue
            split, _ = _prob_of_max(md.hour_mu_log[i], params.hour_sd_log)
            part = pd.Series(p_days[i] * split, index=hours_i)
            common = part.index.intersection(out.index)
            out.loc[common] = part.loc[common].to_numpy()
        return out


@dataclass(frozen=True)
class _MonthDays:
    known_max_log: float                 # log of the month's highest known load (-inf if none is known)
    known_peak: pd.Timestamp | None      # its hour
    open_hours: pd.DatetimeIndex         # the month's hours whose load is not known (UTC)
    days: np.ndarray                     # local day numbers of the open hours' days
    bounds: np.ndarray                   # open_hours[bounds[i]:bounds[i+1]] are the hours of days[i]
    mu_log: np.ndarray                   # forecast log peak of each open day (over its open hours)
    sd_log: np.ndarray                   # its spread
    hour_mu_log: list[np.ndarray]        # forecast log load of each open hour of each day


# ----------------------------------------------------------------------------------------------------------------
# walk-forward parameters


@dataclass(frozen=True)
class PeakModelParams:
    """The peak model's two fitted parameters, and what they were fitted on.

    ``day_error_correlation``: correlation of any two days' peak-forecast errors (the common factor of step 4);
    ``hour_sd_log``: independent noise of each hour around its day's forecast shape (step 5).
    ``summers``: the June-September seasons (years) :func:`fit_params` chose them on, ``()`` for
    :data:`DEFAULT_PARAMS`; ``decisions``: how many decision days were scored; ``mean_log_score``: the mean log
    score (nats) of the month's actual peak hour over those decisions, at these values (``None`` if not fitted).
    """

    day_error_correlation: float = DAY_ERROR_CORRELATION
    hour_sd_log: float = HOUR_SD_LOG
    summers: tuple[int, ...] = ()
    decisions: int = 0
    mean_log_score: float | None = None

    def __post_init__(self) -> None:
        rho, sd = float(self.day_error_correlation), float(self.hour_sd_log)
        if not (math.isfinite(rho) and 0.0 <= rho < 1.0):
            raise InputError(f"day_error_correlation {self.day_error_correlation!r} must be in [0, 1)",
                             field="day_error_correlation")
        if not (math.isfinite(sd) and sd > 0.0):
            raise InputError(f"hour_sd_log {self.hour_sd_log!r} must be a finite number > 0", field="hour_sd_log")


#: The parameters used when no complete summer precedes the decision's year (the shipped data's 2020 summer, or
#: a user history that starts later): the round values 0.6 and 1% that were chosen by the log score of the actual
#: peak day / hour on the June-September days of 2020-2024, i.e. IN SAMPLE on the shipped data, before the model
#: was fitted walk-forward. Every later summer uses parameters fitted on earlier summers only.
DEFAULT_PARAMS = PeakModelParams()
#: Day-error correlations scored by :func:`fit_params` (the best is refined by a parabola through its neighbours).
FIT_CORRELATION_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
#: Hour spreads (log load) scored by :func:`fit_params` (refined the same way, in log space).
FIT_HOUR_SD_GRID_LOG = (0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05)
#: Floor of a probability inside a log score: one outcome the model called impossible costs log(1e-6) = -13.8 nats
#: instead of -inf (it still dominates a season's score, but cannot by itself decide the fit).
LOG_SCORE_FLOOR = 1e-6
_CACHE_SIZE = 64


@dataclass(frozen=True, eq=False)
class _Scored:
    """One scored decision: the month forecast made at a decision time, and where the month's peak really was."""

    mu_log: np.ndarray                   # forecast log peak of each open day of the month
    sd_log: np.ndarray                   # its spread
    known_max_log: float                 # the month's highest known load at the decision (log; -inf if none)
    peak_day: int                        # index of the actual peak's day among the open days; -1: a known hour
    peak_hour_mu_log: np.ndarray | None  # forecast log load of the open hours of that day
    peak_hour_pos: int                   # the actual peak's position among them


@dataclass(frozen=True, eq=False)
class _Summer:
    year: int
    decisions: tuple[_Scored, ...]
    day_scores: np.ndarray               # sum of log P(actual peak day) for each FIT_CORRELATION_GRID value
    hour_scores: np.ndarray              # sum of log P(actual peak hour | its day) for each FIT_HOUR_SD_GRID_LOG


_SUMMER_CACHE: dict[tuple, _Summer] = {}
_FIT_CACHE: dict[tuple, PeakModelParams] = {}


def _remember(cache: dict, key: tuple, value: Any) -> Any:
    if len(cache) >= _CACHE_SIZE:
        cache.pop(next(iter(cache)))
    cache[key] = value
    return value


def _summer_end_utc(year: int, timezone: str) -> pd.Timestamp:
    """UTC start of October 1st (local) of ``year``: the end of that year's 4CP season."""
    return pd.Timestamp(dt.datetime(int(year), 10, 1, tzinfo=ZoneInfo(timezone))).tz_convert("UTC")


def _through_summer(history: MarketHistory, year: int) -> MarketHistory:
    """``history`` cut at the end of ``year``'s September (local): every series, hours starting before it only
    (other fields, e.g. publication times, are kept and follow the series they belong to)."""
    end = _summer_end_utc(year, history.timezone)

    def cut(s: pd.Series | None) -> pd.Series | None:
        return None if s is None else s.iloc[: s.index.searchsorted(end, side="left")]

    return dataclasses.replace(history, rt=cut(history.rt), da=cut(history.da),
                               load_forecast=cut(history.load_forecast), load=cut(history.load))


def _fingerprint(history: MarketHistory) -> str:
    """Digest of everything the peak model may read from ``history``: every field but the prices (``rt``, ``da``;
    the model reads no prices), i.e. system load, load forecast and anything added beside them, with their times.
    The load forecast's publication times enter as the times in force: the given ones, else the documented rule's
    (:func:`load_forecast_published_by_rule`), so a history that spells the rule out digests as one without."""
    h = hashlib.blake2b(history.timezone.encode(), digest_size=16)
    for f in dataclasses.fields(history):
        if f.name in ("rt", "da", "timezone"):
            continue
        value = getattr(history, f.name)
        if f.name == "load_forecast_published" and value is None and history.load_forecast is not None:
            value = load_forecast_published_by_rule(history.load_forecast.index, history.timezone)
        h.update(f.name.encode())
        if value is None or (isinstance(value, pd.Series) and value.empty):    # nothing known either way
            h.update(b"none")
        elif isinstance(value, pd.Series):
            h.update(_series_bytes(value))
        else:
            h.update(repr(value).encode())
    return h.hexdigest()


def _series_bytes(s: pd.Series) -> bytes:
    """The hours (UTC nanoseconds) and values (float64, or UTC nanoseconds for times) of ``s`` as bytes: the same
    for equal data whatever the time unit or dtype width pandas chose."""
    idx = pd.DatetimeIndex(s.index).tz_convert("UTC").as_unit("ns").asi8
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        values = pd.DatetimeIndex(s).tz_convert("UTC").as_unit("ns").asi8
    else:
        values = s.to_numpy(dtype="float64")
    return idx.tobytes() + np.ascontiguousarray(values).tobytes()


def monthly_peak_hours(load: pd.Series, timezone: str = "America/Chicago") -> pd.DatetimeIndex:
    """UTC hour starts of the highest-load hour of each June-September local month that ``load`` (hourly system
    load, UTC hour starts) covers completely (every hour of the month known and finite): the hourly 4CP proxy
    computed from any load series (the shipped ``ercot_4cp_proxy.csv`` is this on the shipped load)."""
    s = load.dropna()
    if s.empty:
        return pd.DatetimeIndex([], tz="UTC", name="timestamp")
    local = s.index.tz_convert(timezone)
    out = []
    for (y, m), part in s.groupby([local.year, local.month]):
        if m not in FOURCP_MONTHS:
            continue
        start = pd.Timestamp(dt.datetime(int(y), int(m), 1, tzinfo=ZoneInfo(timezone))).tz_convert("UTC")
        end = pd.Timestamp(dt.datetime(int(y) + int(m) // 12, int(m) % 12 + 1, 1,
                                       tzinfo=ZoneInfo(timezone))).tz_convert("UTC")
        if len(part) == int((end - start) / HOUR):
            out.append(part.idxmax())
    return pd.DatetimeIndex(sorted(out), name="timestamp").tz_convert("UTC")


def _complete_summers(history: MarketHistory, through_year: int) -> list[int]:
    """Years <= ``through_year`` whose four 4CP months are fully known in ``history.load``."""
    if history.load is None:
        return []
    peaks = monthly_peak_hours(history.load, history.timezone)
    local = peaks.tz_convert(history.timezone)
    years = pd.Series(local.year).value_counts()
    return sorted(int(y) for y, n in years.items() if n == len(FOURCP_MONTHS) and y <= through_year)


def _score_decisions(history: MarketHistory, year: int, decision_hour_local: int) -> tuple[_Scored, ...]:
    """Every June-September day D of ``year``: the month forecast made at ``decision_hour_local`` on D-1, and the
    month's actual peak (from ``history``, which must hold the whole summer and nothing the fit may not read)."""
    tz = history.timezone
    peaks = {(t.year, t.month): t.tz_convert("UTC")
             for t in monthly_peak_hours(history.load, tz).tz_convert(tz)}
    out: list[_Scored] = []
    for month in FOURCP_MONTHS:
        peak = peaks[(year, month)]
        first = dt.date(year, month, 1)
        nxt = dt.date(year + month // 12, month % 12 + 1, 1)
        for i in range((nxt - first).days):
            t = decision_time_for(first + dt.timedelta(days=i), tz, decision_hour_local)
            try:
                model = _PeakModel(available(history, t), t)
            except InputError:                      # too little load known yet (a history starting in summer)
                continue
            md = model.month_days(year, month)
            if peak < model.load_end:
                out.append(_Scored(md.mu_log, md.sd_log, md.known_max_log, -1, None, 0))
                continue
            pos = int(md.open_hours.get_loc(peak))
            day = int(np.searchsorted(md.bounds, pos, side="right") - 1)
            out.append(_Scored(md.mu_log, md.sd_log, md.known_max_log, day, md.hour_mu_log[day],
                               pos - int(md.bounds[day])))
    return tuple(out)


def _prob_none(mu: np.ndarray, sd: np.ndarray, floor: float, rho: float) -> float:
    """``_prob_of_max(mu, sd, floor, rho)[1]`` (no open day beats ``floor``) without the grid over ``x``: the same
    product of normal CDFs over the same factor nodes; 1 where every day's ``mu + 8 sd`` lies below the floor (as
    there). Half of the fit's decisions need only this (the month's peak is already known)."""
    if len(mu) == 0 or not np.isfinite(floor):
        return 1.0 if len(mu) == 0 else 0.0
    if rho <= 0.0:
        nodes, weights, rows_mu, rows_sd = np.zeros(1), np.ones(1), mu[None, :], sd
    else:
        nodes = np.linspace(-5.0, 5.0, _FACTOR_NODES)
        weights = np.exp(-0.5 * nodes * nodes)
        weights /= weights.sum()
        rows_mu = mu[None, :] + math.sqrt(rho) * sd[None, :] * nodes[:, None]
        rows_sd = sd * math.sqrt(1.0 - rho)
    log_below = np.maximum(np.log(np.maximum(_norm_cdf((floor - rows_mu) / rows_sd[None, :]), 1e-300)), _LOG_TINY)
    none = np.exp(log_below.sum(axis=1))
    empty = (rows_mu + 8.0 * rows_sd[None, :]).max(axis=1) <= floor
    return float(weights @ np.where(empty, 1.0, none))


def _day_log_score(d: _Scored, rho: float) -> float:
    if d.peak_day < 0:
        p = _prob_none(d.mu_log, d.sd_log, d.known_max_log, rho)
    else:
        p = float(_prob_of_max(d.mu_log, d.sd_log, d.known_max_log, rho)[0][d.peak_day])
    return math.log(max(p, LOG_SCORE_FLOOR))


def _hour_log_score(d: _Scored, hour_sd_log: float) -> float:
    if d.peak_day < 0:
        return 0.0
    if d.peak_hour_mu_log is None:
        raise InternalError("a scored 4CP decision with a peak day has no hour forecast")
    split, _ = _prob_of_max(d.peak_hour_mu_log, hour_sd_log)
    return math.log(max(float(split[d.peak_hour_pos]), LOG_SCORE_FLOOR))


def _summer(history: MarketHistory, year: int, decision_hour_local: int, cache: bool) -> _Summer:
    """The scored decisions of ``year``'s summer, read from ``history`` cut at that summer's end (cached by the
    digest of exactly that data)."""
    cut = _through_summer(history, year)
    key = (year, decision_hour_local, _fingerprint(cut))
    if cache and key in _SUMMER_CACHE:
        return _SUMMER_CACHE[key]
    decisions = _score_decisions(cut, year, decision_hour_local)
    day = np.array([sum(_day_log_score(d, r) for d in decisions) for r in FIT_CORRELATION_GRID])
    hour = np.array([sum(_hour_log_score(d, h) for d in decisions) for h in FIT_HOUR_SD_GRID_LOG])
    out = _Summer(year, decisions, day, hour)
    return _remember(_SUMMER_CACHE, key, out) if cache else out


def _refine(grid: Sequence[float], scores: np.ndarray, log_space: bool = False) -> float:
    """The grid value with the best score, moved to the top of the parabola through it and its two neighbours
    (in log space if asked); a best value at the edge of the grid is returned as it is."""
    k = int(np.argmax(scores))
    if k == 0 or k == len(grid) - 1:
        return float(grid[k])
    x = np.log(np.asarray(grid[k - 1:k + 2], dtype=float)) if log_space else np.asarray(grid[k - 1:k + 2], float)
    y = np.asarray(scores[k - 1:k + 2], dtype=float)
    denom = (x[0] - x[1]) * (x[0] - x[2]) * (x[1] - x[2])
    a = (x[2] * (y[1] - y[0]) + x[1] * (y[0] - y[2]) + x[0] * (y[2] - y[1])) / denom
    b = (x[2] ** 2 * (y[0] - y[1]) + x[1] ** 2 * (y[2] - y[0]) + x[0] ** 2 * (y[1] - y[2])) / denom
    v = float(np.clip(-b / (2.0 * a), x[0], x[2])) if a < 0 else float(x[1])
    return float(math.exp(v)) if log_space else v


def fit_params(history: MarketHistory, through_year: int, *,
               decision_hour_local: int = DEFAULT_DECISION_HOUR_LOCAL, cache: bool = True) -> PeakModelParams:
    """Fit the peak model's parameters on the complete June-September seasons of ``history`` up to and including
    ``through_year``, reading nothing from October 1st (local) of ``through_year`` on.

    Each day D of those summers is forecast as a backtest would (one call at ``decision_hour_local`` on D-1, the
    whole month of D); the score is the log probability (floored at :data:`LOG_SCORE_FLOOR`) of the month's
    actual peak hour (the highest hour of ``history.load``), which splits into the log probability of its day
    (depends on the correlation only) plus that of its hour within the day (the hour spread only). Each is
    maximised over its grid (:data:`FIT_CORRELATION_GRID`, :data:`FIT_HOUR_SD_GRID_LOG`) and refined by a parabola.
    :data:`DEFAULT_PARAMS` if no complete summer is held. ``cache``: reuse (and keep) per-summer scores keyed by a
    digest of the data they read, and take the result from the shipped parameter cache (:data:`PARAMS_CACHE_FILE`)
    when it holds an entry for exactly this data (same digest, year, decision hour and model constants: the
    shipped data's fits, so that a default run pays no fit); ``False`` recomputes everything (what a
    no-look-ahead test wants).
    """
    year = int(through_year)
    cut = _through_summer(history, year)
    key = (year, decision_hour_local, _fingerprint(cut))
    if cache and key in _FIT_CACHE:
        return _FIT_CACHE[key]
    if cache and (shipped := _shipped_params().get(key)) is not None:
        return _remember(_FIT_CACHE, key, shipped)
    out = _fit(cut, year, decision_hour_local, cache)
    return _remember(_FIT_CACHE, key, out) if cache and out is not DEFAULT_PARAMS else out


def _fit(cut: MarketHistory, year: int, decision_hour_local: int, cache: bool) -> PeakModelParams:
    """:func:`fit_params` on a history already cut at the end of ``year``'s summer, without the result caches
    (``cache``: reuse per-summer scores)."""
    summers = [_summer(cut, y, decision_hour_local, cache) for y in _complete_summers(cut, year)]
    decisions = [d for s in summers for d in s.decisions]
    if not decisions:
        return DEFAULT_PARAMS
    rho = _refine(FIT_CORRELATION_GRID, sum((s.day_scores for s in summers), np.zeros(len(FIT_CORRELATION_GRID))))
    hour_sd = _refine(FIT_HOUR_SD_GRID_LOG, sum((s.hour_scores for s in summers), np.zeros(len(FIT_HOUR_SD_GRID_LOG))),
                      log_space=True)
    total = sum(_day_log_score(d, rho) + _hour_log_score(d, hour_sd) for d in decisions)
    return PeakModelParams(rho, hour_sd, tuple(s.year for s in summers), len(decisions), total / len(decisions))


def params_for_decision(history: MarketHistory, decision_time: Any) -> PeakModelParams:
    """The parameters :func:`peak_probability` uses by default at ``decision_time``: fitted on the complete
    summers of ``history`` before the decision's local year (:func:`fit_params` through the year before, cached),
    :data:`DEFAULT_PARAMS` if there is none."""
    t = _utc(decision_time)
    return fit_params(history, int(t.tz_convert(history.timezone).year) - 1)


# ----------------------------------------------------------------------------------------------------------------
# shipped parameter cache: the walk-forward fits of the shipped data, so that a default run pays no fit

#: File (in the shipped data folder) holding :func:`params_cache` of the shipped data; rebuilt by
#: ``python data/fourcp_params.py`` (a test checks it equals a fresh fit). :func:`fit_params` uses an entry only when
#: the data it would read has the entry's digest (e.g. not with a user's load file that changes a past summer).
PARAMS_CACHE_FILE = "fourcp_params.json"
#: The years the shipped cache is fitted through: decisions in 2021 .. 2026.
PARAMS_CACHE_YEARS = tuple(range(2020, 2026))
_PARAMS_CACHE_FORMAT = 1


def _model_key() -> str:
    """Digest of the constants a fit depends on besides the data: a cache entry made with other constants is
    ignored (the data digest cannot see them)."""
    constants = (LEVEL_DAYS, TREND_WEIGHT, TREND_MAX_LEAD_DAYS, ERROR_WINDOW_DAYS, MIN_ERROR_SAMPLES, FALLBACK_SD_LOG,
                 MIN_SD_LOG, DAY_ERROR_CORRELATION, HOUR_SD_LOG, MAX_LEAD_DAYS, SEASONAL_SMOOTH_DAYS,
                 SEASONAL_MIN_SUMMER_DAYS, MIN_KNOWN_LOAD_HOURS, MAX_LOAD_AGE_DAYS, _GRID_POINTS, _FACTOR_NODES,
                 FIT_CORRELATION_GRID, FIT_HOUR_SD_GRID_LOG, LOG_SCORE_FLOOR, str(LOAD_FORECAST_PUBLICATION_LOCAL))
    return hashlib.blake2b(repr(constants).encode(), digest_size=8).hexdigest()


@functools.cache
def _params_cache_file() -> dict:
    from optimizer import data

    try:
        path = data.resource_dir("data") / PARAMS_CACHE_FILE
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:              # a cache: without it every fit runs (slower, same result)
        return {}
    return json.loads(text)


def _shipped_params() -> dict[tuple, PeakModelParams]:
    """The shipped cache's entries made with the current constants, keyed as :func:`fit_params` keys its fits."""
    raw = _params_cache_file()
    if raw.get("format") != _PARAMS_CACHE_FORMAT or raw.get("model") != _model_key():
        return {}
    return {(e["through_year"], e["decision_hour_local"], e["data_digest"]):
            PeakModelParams(e["day_error_correlation"], e["hour_sd_log"], tuple(e["summers"]), e["decisions"],
                            e["mean_log_score"]) for e in raw.get("entries", ())}


def params_cache(history: MarketHistory, years: Sequence[int] = PARAMS_CACHE_YEARS,
                 decision_hour_local: int = DEFAULT_DECISION_HOUR_LOCAL) -> dict[str, Any]:
    """What the shipped parameter cache holds for ``history``: a FRESH fit (never read from a result cache or a
    file; per-summer scores are computed once and shared) through each of ``years`` that has a complete summer,
    with the digest of exactly the data that fit read. JSON-ready; ``data/fourcp_params.py`` writes it."""
    entries = []
    for year in years:
        cut = _through_summer(history, int(year))
        params = _fit(cut, int(year), decision_hour_local, cache=True)
        if params is DEFAULT_PARAMS:
            continue
        entries.append({"through_year": int(year), "decision_hour_local": int(decision_hour_local),
                        "data_digest": _fingerprint(cut), "day_error_correlation": params.day_error_correlation,
                        "hour_sd_log": params.hour_sd_log, "summers": list(params.summers),
                        "decisions": params.decisions, "mean_log_score": params.mean_log_score})
    return {"format": _PARAMS_CACHE_FORMAT, "model": _model_key(),
            "note": "walk-forward 4CP peak-model parameters of the shipped ERCOT load (optimizer.fourcp.fit_params); "
                    "rebuilt by python data/fourcp_params.py; used only for data with the same digest",
            "entries": entries}


# ----------------------------------------------------------------------------------------------------------------
# the user's own system load, load forecast and 4CP intervals, merged over the shipped data


def load_forecast_published_by_rule(index: pd.DatetimeIndex, timezone: str = "America/Chicago") -> pd.Series:
    """The documented publication rule as times: the day-ahead load forecast of local day D is published at
    06:00 local on D-1 (:data:`optimizer.market.LOAD_FORECAST_PUBLICATION_LOCAL`). A UTC time per hour of
    ``index`` (UTC hour starts); :func:`optimizer.forecast.available` treats a forecast without publication times
    exactly as one with these."""
    idx = pd.DatetimeIndex(index).tz_convert("UTC")
    wall = idx.tz_convert(timezone).tz_localize(None).normalize() - pd.Timedelta(days=1)
    rule = LOAD_FORECAST_PUBLICATION_LOCAL
    wall = wall + pd.Timedelta(hours=rule.hour, minutes=rule.minute)
    return pd.Series(wall.tz_localize(timezone).tz_convert("UTC"), index=pd.DatetimeIndex(idx, name="timestamp"),
                     name="published")


def _over(user: pd.Series | None, base: pd.Series | None) -> pd.Series | None:
    """``user`` where it has a value, ``base`` elsewhere (the union of their hours)."""
    if user is None or base is None:
        return base if user is None else user
    out = user.combine_first(base)
    out.attrs = {}
    return out


@dataclass(frozen=True, eq=False)
class UserData:
    """A user's own 4CP inputs (``curtail schedule`` / ``curtail backtest`` ``--load``, ``--load-forecast``,
    ``--peaks``), read and validated by :mod:`optimizer.data`'s readers: hourly ERCOT system load, the day-ahead
    system load forecast with its publication times when the file has them (else the documented rule applies),
    and the monthly 4CP intervals (UTC starts). ``sources``: the files, for provenance."""

    load: pd.Series | None = None
    load_forecast: pd.Series | None = None
    load_forecast_published: pd.Series | None = None
    peaks: pd.DatetimeIndex | None = None
    sources: tuple[str, ...] = ()

    @classmethod
    def read(cls, load: Any = None, load_forecast: Any = None, peaks: Any = None,
             timezone: str = "America/Chicago") -> UserData:
        """Read whichever files are given (paths; ``None``: not given). Any bad file raises
        :class:`~optimizer.errors.InputError` naming the file, the row and the value."""
        from optimizer import data

        lf = published = None
        if load_forecast is not None:
            lf = data.read_load_forecast_file(load_forecast)
            published = lf.attrs.pop("published", None)
        return cls(load=None if load is None else data.read_load_file(load), load_forecast=lf,
                   load_forecast_published=published,
                   peaks=None if peaks is None else data.read_peaks_file(peaks, timezone),
                   sources=tuple(str(p) for p in (load, load_forecast, peaks) if p is not None))

    def history(self, base: MarketHistory) -> MarketHistory:
        """``base`` with the user's load and load forecast over its own: the user's value wins on an hour both
        have, ``base`` keeps every other hour (so the walk-forward fit still has the shipped summers). Publication
        times: the user's where given, the documented rule's for every other hour (only when some are given)."""
        if self.load is None and self.load_forecast is None:
            return base
        tz = base.timezone
        published = None
        if self.load_forecast_published is not None or base.load_forecast_published is not None:
            def times(s: pd.Series | None, given: pd.Series | None) -> pd.Series | None:
                if given is not None or s is None:
                    return given
                return load_forecast_published_by_rule(s.index, tz)

            published = _over(times(self.load_forecast, self.load_forecast_published),
                              times(base.load_forecast, base.load_forecast_published))
        return dataclasses.replace(base, load=_over(self.load, base.load),
                                   load_forecast=_over(self.load_forecast, base.load_forecast),
                                   load_forecast_published=published)

    def peak_hours(self, load: pd.Series | None, base: pd.DatetimeIndex,
                   timezone: str = "America/Chicago") -> pd.DatetimeIndex:
        """The monthly 4CP hours that settle a backtest (UTC hour starts), by local month: the peaks file's
        (a 15-minute start mapped to its hour), else, when the user gave a load file, the highest hour of ``load``
        (the merged system load; :func:`monthly_peak_hours`, months fully known only), else ``base`` (shipped)."""
        by_month: dict[tuple[int, int], pd.Timestamp] = {}

        def put(hours: pd.DatetimeIndex) -> None:
            for ts in pd.DatetimeIndex(hours).tz_convert("UTC").floor("h"):
                local = ts.tz_convert(timezone)
                by_month[(local.year, local.month)] = ts

        put(base)
        if self.load is not None and load is not None:
            put(monthly_peak_hours(load, timezone))
        if self.peaks is not None:
            put(self.peaks)
        return pd.DatetimeIndex(sorted(by_month.values()), name="timestamp")


def check_peaks_cover(peak_hours: pd.DatetimeIndex | None, start: dt.date, end: dt.date,
                      timezone: str = "America/Chicago") -> None:
    """Refuse a backtest that settles 4CP over local days ``start`` .. ``end`` when a June-September month among
    them has no known peak hour (its charge would silently be left out)."""
    known = set()
    if peak_hours is not None:
        known = {(t.year, t.month) for t in pd.DatetimeIndex(peak_hours).tz_convert(timezone)}
    months = sorted({(d.year, d.month) for d in pd.date_range(start, end, freq="D")
                     if d.month in FOURCP_MONTHS})
    missing = [f"{y}-{m:02d}" for y, m in months if (y, m) not in known]
    if missing:
        raise InputError(f"4CP is settled on each June-September month's peak interval, and none is known for "
                         f"{', '.join(missing)} (the backtest runs {start} .. {end}; shipped peaks cover 2020-2024): "
                         "give --peaks, or a --load covering the whole month, or switch 4CP off (--fourcp 0)",
                         field="--peaks")


# ----------------------------------------------------------------------------------------------------------------
# public API


def _utc(decision_time: Any) -> pd.Timestamp:
    t = pd.Timestamp(decision_time)
    if t.tz is None:
        raise InputError(f"decision time {t} has no time zone (give a tz-aware timestamp)", field="decision_time")
    return t.tz_convert("UTC")


def _check_horizon(horizon: Any) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(horizon)
    if idx.tz is None:
        raise InputError("horizon must be tz-aware (UTC hour starts)", field="horizon")
    idx = idx.tz_convert("UTC")
    if not (idx.is_unique and idx.is_monotonic_increasing):
        raise InputError("horizon must be increasing without repeats", field="horizon")
    if len(idx) and (idx != idx.floor("h")).any():
        raise InputError("horizon hours must start on the hour", field="horizon")
    return idx


def peak_probability(history: MarketHistory, decision_time: Any, horizon: pd.DatetimeIndex,
                     params: PeakModelParams | None = None) -> pd.Series:
    """P(hour is its local month's 4CP peak hour), in [0, 1], for each hour of ``horizon`` (UTC hour starts).

    Uses only ``available(history, decision_time)``: the system load known then and the day-ahead system load
    forecast where published (see the module docstring for the method). 0 for hours outside June-September.
    The result's index is ``horizon`` itself (converted to UTC, name ``timestamp``).

    ``params``: the model's parameters; ``None`` (the default) uses :func:`params_for_decision`, i.e. parameters
    fitted by :func:`fit_params` on the complete summers of ``history`` before the decision's local year (cached),
    or :data:`DEFAULT_PARAMS` when there is none. Either way nothing after the decision time is read.

    Raises :class:`~optimizer.errors.InputError` if a June-September hour is asked for and fewer than
    :data:`MIN_KNOWN_LOAD_HOURS` hours of system load are known.
    """
    t = _utc(decision_time)
    idx = _check_horizon(horizon)
    result = pd.Series(0.0, index=pd.DatetimeIndex(idx, name="timestamp"), name="peak_probability")
    if len(idx) == 0:
        return result
    local = idx.tz_convert(history.timezone)
    months = sorted({(y, m) for y, m in zip(local.year, local.month, strict=True) if m in FOURCP_MONTHS})
    if not months:
        return result
    model = _PeakModel(available(history, t), t)
    if params is None:
        params = params_for_decision(history, t)
    values = result.to_numpy(copy=True)
    for y, m in months:
        sel = (local.year == y) & (local.month == m)
        values[sel] = model.month_probabilities(y, m, idx[sel], params).to_numpy()
    return pd.Series(np.clip(values, 0.0, 1.0), index=result.index, name=result.name)


def expected_charge_usd_per_mw(probability: pd.Series, usd_per_kw_year: float) -> pd.Series:
    """Expected 4CP charge per MW of site load in each hour: ``probability x usd_per_kw_year x 1000 / 4`` (USD/MW).

    Each of the four summer months sets a quarter of the yearly charge; this is the objective coefficient of the
    site's MW in each hour.
    """
    rate = _check_rate(usd_per_kw_year)
    return (probability.astype(float) * rate * 1000.0 / 4.0).rename("fourcp_usd_per_mw")


def _check_rate(usd_per_kw_year: float) -> float:
    rate = float(usd_per_kw_year)
    if not math.isfinite(rate) or rate < 0:
        raise InputError(f"4CP rate {usd_per_kw_year!r} USD/kW-year must be a finite number >= 0",
                         field="usd_per_kw_year")
    return rate


def site_peak_charge_usd(load_mw_at_peaks: Sequence[float] | Mapping[Any, float] | pd.Series,
                         usd_per_kw_year: float) -> float:
    """The 4CP transmission charge (USD for the following year) of a site drawing ``load_mw_at_peaks`` MW in each
    month's actual peak interval (up to four values, June-September): ``sum(MW) x 1000 x usd_per_kw_year / 4``.

    >>> site_peak_charge_usd([10, 10, 10, 10], 100.0)
    1000000.0
    """
    values = list(load_mw_at_peaks.values()) if isinstance(load_mw_at_peaks, Mapping) else list(load_mw_at_peaks)
    if len(values) > len(FOURCP_MONTHS):
        raise InputError(f"{len(values)} peak loads given; 4CP has at most {len(FOURCP_MONTHS)} (June-September)",
                         field="load_mw_at_peaks")
    mw = np.asarray(values, dtype=float)
    if not np.isfinite(mw).all() or (mw < 0).any():
        raise InputError(f"peak loads {values} MW must be finite and >= 0", field="load_mw_at_peaks")
    return float(mw.sum() * 1000.0 * _check_rate(usd_per_kw_year) / 4.0)


def actual_peak_hours(year: int) -> list[pd.Timestamp]:
    """UTC hour starts of the June-September monthly peak hours of ``year`` from the shipped HOURLY PROXY
    (highest Native Load hour of each month; not ERCOT's official 15-minute 4CP list; see ``data/SOURCE.md``)."""
    from optimizer import data

    hours = data.ercot_4cp_hours()
    chosen = [ts for ts in hours if ts.year == int(year)]
    if not chosen:
        raise InputError(f"no shipped 4CP proxy for {year} (covers {hours[0].year}..{hours[-1].year})",
                         field="year")
    return chosen


def site_load_at_peaks_mw(site_mw: pd.Series, year: int) -> list[float]:
    """A site's MW (hourly series on UTC hour starts) in each of ``year``'s actual peak hours (shipped proxy)."""
    idx = pd.DatetimeIndex(site_mw.index)
    if idx.tz is None:
        raise InputError("site load index must be tz-aware (UTC hour starts)", field="site_mw")
    s = pd.Series(site_mw.to_numpy(dtype=float), index=idx.tz_convert("UTC"))
    peaks = actual_peak_hours(year)
    missing = [ts.isoformat() for ts in peaks if ts not in s.index]
    if missing:
        raise InputError(f"no site load for peak hour(s) {', '.join(missing)}", field="site_mw")
    return [float(s.loc[ts]) for ts in peaks]


def evaluate(history: MarketHistory, year: int,
             decision_hour_local: int = DEFAULT_DECISION_HOUR_LOCAL,
             params: PeakModelParams | None = None) -> dict[str, Any]:
    """Skill of :func:`peak_probability` on ``year``'s summer, as a backtest would see it.

    Every day D of June-September is forecast by one call at ``decision_hour_local`` on D-1 with horizon = day D
    (no lookahead); the day's probabilities are stitched into one series per month. The actual peak hour of each
    month is the highest hour of ``history.load`` in it (the month must be fully known). ``params``: as
    :func:`peak_probability`; ``None`` is the walk-forward default, fitted on the summers before ``year`` (out of
    sample for ``year``).

    Returns ``{"year", "decision_hour_local", "params", "probabilities": Series over all summer hours, "months":
    {month: {"peak_hour", "peak_load_mw", "probability_at_peak", "log_score" (natural log of it, floored at
    :data:`LOG_SCORE_FLOOR`), "uniform_log_score" (log(1 / hours): the no-skill forecast), "daily_log_score" (the
    sum over the month's days D of the log probability the D-1 forecast gave to what happened in D: the peak hour
    if D holds it, else "none of D's hours"; unlike ``log_score`` it also charges false alarms),
    "uniform_daily_log_score" (the same for the uniform forecast), "rank_of_peak" (1 = the month's
    highest-probability hour; ties count against it), "hours", "mean_probability_other_hours",
    "mean_probability_all_hours", "sum_probability"}}}``.
    """
    tz = history.timezone
    if history.load is None:
        raise InputError("the market history has no system load", field="load")
    if params is None:
        params = fit_params(history, int(year) - 1)
    months: dict[int, dict[str, Any]] = {}
    parts: list[pd.Series] = []
    for month in FOURCP_MONTHS:
        first = dt.date(year, month, 1)
        nxt = dt.date(year + month // 12, month % 12 + 1, 1)
        days = [first + dt.timedelta(days=i) for i in range((nxt - first).days)]
        by_day = [peak_probability(history, decision_time_for(d, tz, decision_hour_local), horizon_for(d, tz, 0),
                                   params) for d in days]
        probs = pd.concat(by_day)
        actual = history.load.reindex(probs.index)
        if actual.isna().any():
            raise InputError(f"system load of {year}-{month:02d} is not fully known; cannot score it", field="load")
        peak = actual.idxmax()
        p_peak = float(probs.loc[peak])
        others = probs.drop(peak)
        n_hours = len(probs)
        daily = sum(math.log(max(float(p.loc[peak]) if peak in p.index else 1.0 - float(p.sum()), LOG_SCORE_FLOOR))
                    for p in by_day)
        uniform_daily = sum(-math.log(n_hours) if peak in p.index else math.log(1.0 - len(p) / n_hours)
                            for p in by_day)
        months[month] = {
            "peak_hour": peak,
            "peak_load_mw": float(actual.loc[peak]),
            "probability_at_peak": p_peak,
            "log_score": math.log(max(p_peak, LOG_SCORE_FLOOR)),
            "uniform_log_score": -math.log(n_hours),
            "daily_log_score": daily,
            "uniform_daily_log_score": uniform_daily,
            "rank_of_peak": int((others >= p_peak).sum()) + 1,
            "hours": len(probs),
            "mean_probability_other_hours": float(others.mean()),
            "mean_probability_all_hours": float(probs.mean()),
            "sum_probability": float(probs.sum()),
        }
        parts.append(probs)
    return {"year": int(year), "decision_hour_local": int(decision_hour_local), "params": params,
            "probabilities": pd.concat(parts), "months": months}


#: Probability bins of :func:`calibration` (lower edges inclusive; the last bin includes 1).
CALIBRATION_BINS = (0.0, 0.001, 0.01, 0.05, 0.2, 1.0)


def calibration(probabilities: pd.Series, peak_hours: Sequence[pd.Timestamp] | pd.DatetimeIndex,
                bins: Sequence[float] = CALIBRATION_BINS) -> pd.DataFrame:
    """Predicted against observed peak frequency in probability bins.

    ``probabilities``: P(hour is its month's peak) per hour (e.g. :func:`evaluate`'s stitched series);
    ``peak_hours``: the actual peak hours among them. One row per bin ``[low, high)``: ``hours`` in it,
    ``predicted_peaks`` (the sum of their probabilities: how many peaks a calibrated forecast expects there),
    ``observed_peaks``, ``mean_probability`` and ``observed_frequency`` (observed peaks / hours).
    """
    edges = np.asarray(bins, dtype=float)
    if len(edges) < 2 or (np.diff(edges) <= 0).any() or edges[0] > 0 or edges[-1] < 1:
        raise InputError(f"calibration bins {list(bins)} must increase from <= 0 to >= 1", field="bins")
    p = probabilities.to_numpy(dtype=float)
    hit = probabilities.index.isin(pd.DatetimeIndex(peak_hours))
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
    rows = []
    for k in range(len(edges) - 1):
        m = which == k
        n = int(m.sum())
        rows.append({"low": edges[k], "high": edges[k + 1], "hours": n, "predicted_peaks": float(p[m].sum()),
                     "observed_peaks": int(hit[m].sum()),
                     "mean_probability": float(p[m].mean()) if n else float("nan"),
                     "observed_frequency": float(hit[m].mean()) if n else float("nan")})
    return pd.DataFrame(rows)
