"""Intraday price forecast for rolling re-optimisation: the latest real-time price, decaying to the day-ahead price.

A rolling policy (``mpc``) re-plans every hour (or 15 minutes) of the operating day from the state really
reached. At a re-plan time ``now`` this module forecasts the hourly real-time price (USD/MWh) of every horizon
hour from what is known at ``now`` only:

* real-time prices of the intervals that have ENDED (15-minute interval ``[s, s + 15 min)`` is known iff
  ``s + 15 min <= now``; an hour iff ``s + 1 h <= now``);
* the published day-ahead (DA) prices: the prices of operating day D (local calendar day) are published at
  13:30 local on D-1 (:data:`optimizer.market.DA_PUBLICATION_LOCAL`), so during D all of D's are known, and
  D+1's from 13:30 on D;
* a fallback forecast given by the caller (the D-1 plan's forecast series) for horizon hours without a published
  DA price.

Method (the "level" form; ``P`` the last known real-time price, ``t_info`` the end of its interval)::

    B(h) = DA(h) + c * m_N(h)          if DA(h) is published at now, else fallback(h)
    f(h) = B(h) + (P - B(h)) * exp(-x(h) / tau),     x(h) = (middle of hour h - t_info) in hours

* ``P`` is the last ended 15-minute price (``last="15min"``, the default when 15-minute prices are given) or the
  last ended hourly price (``last="1h"``).
* ``m_N(h)`` is the median, over the last ``N`` days whose same hour has ended (the hours 24 d h before ``h``,
  d = d0 .. d0 + N - 1, d0 the first such day), of the real-time minus DA spread: ERCOT's real-time prices sit
  systematically apart from DA at some hours (HB_WEST median RT - DA: -2.5 to -4.4 USD/MWh a year), and this
  corrects the DA baseline by a fitted share ``c`` of it. Days without both prices are skipped; with none the
  correction is 0. ("24 h earlier" is the same local hour except within N days after a DST change, where it is
  one hour off.) The fallback gets no correction (it already forecasts real-time prices).
* The current hour, not ended, is part of the horizon. At a 15-minute re-plan (``now`` = hh:15, hh:30, hh:45)
  its ended quarters are known: the hour's forecast is the mean of those quarters and of ``f`` (with ``x`` to
  the middle of the rest of the hour) for the others.
* Forecasts are clipped to ERCOT's floor (-250) and cap of the target hour (9,000 through 2021, 5,000 from 2022)
  like :mod:`optimizer.forecast`: a realised settlement price above the cap (adders) is not forecast again.

Variants measured (``benchmarks/intraday_mae.py``, each fitted walk-forward the same way), and why this one:

* the additive-spread form (``form="spread"``): ``f(h) = B(h) + (P - B(h0)) * exp(-x / tau)``, ``h0`` the hour
  of ``P``: keeps the DA shape and moves it by the last surprise. Worse at lead 0 in every year (2021-2024:
  22.59 / 18.91 / 24.86 / 9.67 against 18.79 / 16.01 / 21.73 / 8.43 USD/MWh), slightly better at lead 3 in
  2022-2024 (by 0.07-0.76), within 0.2 over leads 0-23 in 2022-2024 (0.47 worse in 2021);
* the last hourly price instead of the last 15-minute one (``last="1h"``): worse at lead 0 by 1.8-3.9 USD/MWh;
* no spread correction (c = 0): worse at leads 0, 1, 3 and over 0-23 in 2022-2024, by up to 1.8 USD/MWh (lead
  3, 2023) (2021 uses the default, c = 0, for both);
* the prototype's fixed tau = 3 h without correction: worse than the fitted constants everywhere in 2023-2024
  and over 0-23 in 2022, but better at leads 1-3 in 2022 (24.69 / 30.39 against 24.86 / 31.75: the tau of 5 h
  fitted on the Uri year decays too slowly).
On the training years, the chosen combination (level, last 15-minute price) also has the lowest fitted MAE of
these variants in every walk-forward fit (2021, 2021-2022, 2021-2023: the benchmark's ``train MAE`` column), so
choosing the form by the fit would choose it too. A previous-day same-hour spread (one day instead of a median
over N) was tried in a prototype: it made 2021 and 2022 worse (one-day spreads are too noisy), so the median over
N days replaced it.

Fitting (:meth:`IntradayForecaster.fit`), walk-forward: the constants ``tau``, ``c`` and ``N`` minimise the mean
absolute error, on the local years ``<= through_year`` only (nothing later is read), of the forecasts made at
every hourly re-plan time (``now`` = hh:00) for the hours of lead 0..23 h whose DA price was published at
``now`` (the only hours where the formula uses DA), by grid search: tau in :data:`TAU_GRID_HOURS`, c in
:data:`SPREAD_WEIGHT_GRID`, N in :data:`SPREAD_DAYS_GRID`. A forecast for year Y uses the constants fitted
through Y-1 (:meth:`IntradayForecaster.params_for`). When no earlier year has DA prices (2021 on the shipped
data: DA starts in 2021) the documented default :meth:`IntradayParams.default` is used: tau = 3 h (the time
constant of the issue's hourly prototype), c = 0 (no spread correction). The tau fitted on DA hours is also
used for fallback hours (not fitted there: there is no fallback series in the history; DA is missing only for
hours more than 10.5 h ahead when the history has DA, where exp(-x / tau) < 0.13 for tau <= 5 h). Constants are
fitted on hourly re-plans and used as they are at 15-minute re-plans (not separately measured there).

Fitted constants, shipped HB_WEST (training MAE over the fitted pairs, USD/MWh)::

    forecast year  fitted on    tau_h  c    N (days)  training MAE  pairs
    2021           -            3.0    0.0  14        -             default: no DA price before 2021
    2022           2021         5.0    0.8  28        44.97         176,816
    2023           2021-2022    3.0    0.8  28        37.94         353,841
    2024           2021-2023    2.5    0.8  28        38.45         530,866

2021 (Winter Storm Uri) pulls tau up to 5 h for 2022: that year the forecast is slightly worse than DA alone at
leads 3-6 h (31.75 / 31.54 against 30.90). Every fit picked c = 0.8 (0.9 once for the spread form) and N = 28
(inside the grid: 56 was never better).

MAE by lead time (USD/MWh), HB_WEST, every hourly re-plan ``now`` = hh:00 of the local year (8,760 / 8,784; lead
0 = the current hour, not ended), each year with constants fitted on earlier years only. ``D-1 gbm`` /
``D-1 naive``: the latest nightly forecast known at ``now`` (made at 10:00 local on the day before the target's
operating day, or before that time the previous run's 24 h lookahead; :class:`optimizer.forecast.Forecaster`,
gbm refitted weekly); the intraday forecast uses the gbm one as its fallback. ``DA``: the DA price, scored on
the pairs where it is published at ``now`` (``DA known``), with the intraday forecast on the same pairs
(``intra@DA``); ``0-23`` the mean over leads 0-23 h::

    year  lead h  intraday  D-1 gbm  D-1 naive  DA known     DA  intra@DA
    2021       0     18.79   102.53     198.83      100%  47.35     18.79
    (Uri)      1     31.47   102.53     198.83      100%  47.35     31.47
               2     38.08   102.53     198.83      100%  47.35     38.08
               3     41.73   102.53     198.83      100%  47.35     41.73
               6     46.13   102.54     198.84      100%  47.35     46.13
              12     50.80   102.55     198.85       92%  48.32     48.25
              24     94.70   122.64     217.58       42%  54.71     54.71
            0-23     55.52   106.29     202.40       84%  49.43     46.06
    2022       0     16.01    33.95      34.08      100%  30.90     16.01
               1     24.86    33.95      34.07      100%  30.90     24.86
               2     29.47    33.96      34.08      100%  30.90     29.47
               3     31.75    33.96      34.08      100%  30.90     31.75
               6     31.54    33.97      34.08      100%  30.90     31.54
              12     30.11    33.98      34.08       92%  32.52     31.00
              24     32.95    34.19      34.33       42%  46.86     43.70
            0-23     30.15    34.01      34.11       84%  33.37     31.41
    2023       0     21.73    44.12      39.78      100%  36.16     21.73
               1     32.44    44.11      39.78      100%  36.16     32.44
               2     35.54    44.11      39.77      100%  36.16     35.54
               3     36.72    44.10      39.77      100%  36.16     36.72
               6     36.34    44.09      39.77      100%  36.16     36.34
              12     35.51    44.07      39.77       92%  38.71     37.52
              24     39.17    44.20      39.86       42%  73.49     71.55
            0-23     35.61    44.11      39.79       84%  41.27     39.63
    2024       0      8.43    18.56      18.73      100%  14.09      8.43
               1     13.09    18.57      18.73      100%  14.09     13.09
               2     14.05    18.57      18.73      100%  14.09     14.05
               3     14.11    18.57      18.73      100%  14.09     14.11
               6     13.86    18.58      18.73      100%  14.10     13.86
              12     14.21    18.58      18.74       92%  14.69     14.34
              24     16.43    18.89      18.80       42%  21.27     20.68
            0-23     14.27    18.64      18.75       84%  15.01     14.41

What it shows: against the nightly forecasts the intraday one halves the error of the current hour and stays
better at every lead (mostly because the published DA price is a far better forecast than the nightly models).
Against DA alone: better at leads 0-2 h in every year (lead 0 by 5.7-28.6 USD/MWh, lead 2 by 0.04-9.3); at
leads 3-6 h within 0.9 of DA in 2022-2024 (worse by up to 0.85) and better in 2021 (Uri's persistence); at 12
and 24 h better or equal, by up to 3.2 (the spread correction). What it does not show: the value of these
errors to a schedule (that is the ``mpc`` backtest's job); MAE weighs a scarcity hour like any other; other hubs
and 15-minute re-plan times were not measured.

Speed: :meth:`IntradayForecaster.predict` does numpy indexing on arrays precomputed at construction: 0.15-0.24 ms
per call for a 25-hour horizon with a fallback series (mean over each year's 8,760 calls in the benchmark, two
runs on the shared 2-core machine). The whole benchmark (four years, every hourly re-plan, no sampling) took
4 min 21 s, most of it in the nightly gbm forecasts.
"""

from __future__ import annotations

import datetime as dt
import warnings
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from optimizer.errors import InputError
from optimizer.market import (
    DA_PUBLICATION_LOCAL,
    PRICE_CAP_CHANGE,
    PRICE_CAPS_USD_PER_MWH,
    PRICE_FLOOR_USD_PER_MWH,
    local_midnight,
)

HOUR_NS = 3_600_000_000_000
QUARTER_NS = HOUR_NS // 4
_NO_PUBLICATION = np.iinfo(np.int64).max      # publication time of an hour without a DA price: never

#: Grids of the walk-forward fit (see the module docstring).
TAU_GRID_HOURS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 12.0, 24.0)
SPREAD_WEIGHT_GRID = tuple(round(0.1 * i, 1) for i in range(11))
SPREAD_DAYS_GRID = (7, 14, 28, 56)
#: Leads (hours after ``now``, 0 = the current hour) scored by the fit.
FIT_LEADS_HOURS = 24
#: Fewer training (re-plan time, hour) pairs than 30 days' worth of hourly re-plans x 10 leads: not fitted.
MIN_FIT_PAIRS = 30 * 24 * 10

FORMS = ("level", "spread")
LASTS = ("15min", "1h")


@dataclass(frozen=True)
class IntradayParams:
    """The constants of the intraday forecast and where they come from.

    ``tau_hours`` decay time constant; ``spread_weight`` the share ``c`` of the median RT - DA spread of the last
    ``spread_days`` days added to DA; ``form`` ``"level"`` or ``"spread"``; ``last`` the last known price used,
    ``"15min"`` or ``"1h"``; ``through_year`` the last local year of the training data (None: the default, not
    fitted); ``basis`` says how they were obtained; ``training_mae_usd_per_mwh`` and ``training_pairs`` the fit's
    score and size (None / 0 for the default).
    """

    tau_hours: float = 3.0
    spread_weight: float = 0.0
    spread_days: int = 14
    form: str = "level"
    last: str = "15min"
    through_year: int | None = None
    basis: str = "default"
    training_mae_usd_per_mwh: float | None = None
    training_pairs: int = 0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.tau_hours) and self.tau_hours > 0):
            raise InputError(f"tau_hours must be > 0, got {self.tau_hours!r}", field="tau_hours")
        if not 0.0 <= self.spread_weight <= 1.0:
            raise InputError(f"spread_weight must be in [0, 1], got {self.spread_weight!r}", field="spread_weight")
        if int(self.spread_days) != self.spread_days or self.spread_days < 1:
            raise InputError(f"spread_days must be a whole number >= 1, got {self.spread_days!r}",
                             field="spread_days")
        if self.form not in FORMS:
            raise InputError(f"unknown form {self.form!r}; one of {', '.join(FORMS)}", field="form")
        if self.last not in LASTS:
            raise InputError(f"unknown last-price resolution {self.last!r}; one of {', '.join(LASTS)}",
                             field="last")

    @classmethod
    def default(cls, reason: str, *, form: str = "level", last: str = "15min") -> IntradayParams:
        """The documented default when nothing can be fitted: tau 3 h (the issue's prototype), no spread
        correction."""
        return cls(form=form, last=last, basis=f"default ({reason})")


def _ns(index: Any, field: str) -> np.ndarray:
    """UTC nanoseconds of a tz-aware DatetimeIndex."""
    idx = index if isinstance(index, pd.DatetimeIndex) else pd.DatetimeIndex(index)
    if idx.tz is None:
        raise InputError("timestamps must be tz-aware (UTC interval starts)", field=field)
    return idx.asi8 if idx.unit == "ns" else idx.as_unit("ns").asi8


def _series(s: Any, field: str, step_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """(UTC ns of the interval starts, float values) of a price series on a ``step_ns`` grid."""
    if not isinstance(s, pd.Series):
        raise InputError(f"expected a pandas Series, got {type(s).__name__}", field=field)
    t = _ns(s.index, field)
    v = s.to_numpy(dtype=float, na_value=np.nan)
    if len(t) == 0:
        raise InputError("no prices", field=field)
    if np.any(np.diff(t) <= 0):
        raise InputError("timestamps must be increasing without repeats", field=field)
    off = t % step_ns
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise InputError(f"timestamp {s.index[i]} is not on the {step_ns // 60_000_000_000}-minute grid",
                         field=field)
    return t, v


def _last_valid(values: np.ndarray) -> np.ndarray:
    """For every position, the index of the last non-NaN value at or before it (-1 if none)."""
    pos = np.where(np.isnan(values), -1, np.arange(len(values)))
    return np.maximum.accumulate(pos)


class IntradayForecaster:
    """Hourly real-time price forecasts at intraday re-plan times (see the module docstring for the method).

    ``rt_15min`` (optional) and ``rt_hourly`` are real-time prices (USD/MWh) on UTC interval starts, ``da`` the
    day-ahead prices (hourly; None: there are none and every hour uses the fallback), ``timezone`` the market's
    local time (DA publication). All series are copied into arrays on one hourly grid at construction; gaps are
    NaN and count as unknown. ``params``: constants used for every prediction; None (default): walk-forward, a
    prediction at ``now`` uses :meth:`params_for` (the local year of ``now``), fitted on the years before.
    """

    def __init__(self, rt_15min: pd.Series | None, rt_hourly: pd.Series, da: pd.Series | None,
                 timezone: str = "America/Chicago", *, params: IntradayParams | None = None):
        try:
            self._tz = ZoneInfo(timezone)
        except Exception:  # noqa: BLE001 - any failure is an unknown zone
            raise InputError(f"unknown time zone {timezone!r}", field="timezone") from None
        self.timezone = timezone
        th, vh = _series(rt_hourly, "rt_hourly", HOUR_NS)
        parts = [(th, vh)]
        tq = vq = td = vd = None
        if rt_15min is not None:
            tq, vq = _series(rt_15min, "rt_15min", QUARTER_NS)
            parts.append((tq - tq % HOUR_NS, vq))
        if da is not None:
            td, vd = _series(da, "da", HOUR_NS)
            parts.append((td, vd))
        t0 = min(int(t[0]) for t, _ in parts)
        n = (max(int(t[-1]) for t, _ in parts) - t0) // HOUR_NS + 1
        self._t0, self._n = t0, n
        self._rt_h = np.full(n, np.nan)
        self._rt_h[(th - t0) // HOUR_NS] = vh
        self._q = np.full(4 * n, np.nan)
        if tq is not None:
            self._q[(tq - t0) // QUARTER_NS] = vq
        self.has_15min = tq is not None
        self._da = np.full(n, np.nan)
        if td is not None:
            self._da[(td - t0) // HOUR_NS] = vd
        hours = pd.date_range(pd.Timestamp(t0, tz="UTC"), periods=n, freq="1h")
        local = hours.tz_convert(self._tz)
        self._year = local.year.to_numpy()
        self._pub = self._publication_ns(local)
        self._pub[np.isnan(self._da)] = _NO_PUBLICATION
        self._spread = self._rt_h - self._da
        self._q_last = _last_valid(self._q)
        self._h_last = _last_valid(self._rt_h)
        self.params = params
        self.default_last = "15min" if self.has_15min else "1h"
        self._medians: dict[int, np.ndarray] = {}
        self._fits: dict[tuple, IntradayParams] = {}

    @classmethod
    def shipped(cls, settlement_point: str, *, params: IntradayParams | None = None) -> IntradayForecaster:
        """The shipped ERCOT prices of ``settlement_point``: real-time 15-minute and hourly, day-ahead."""
        from optimizer import data

        return cls(data.ercot_prices(settlement_point, "rt", "15min"), data.ercot_prices(settlement_point, "rt"),
                   data.ercot_prices(settlement_point, "da"), "America/Chicago", params=params)

    def _publication_ns(self, local: pd.DatetimeIndex) -> np.ndarray:
        """Per grid hour: UTC ns at which the DA price of its local operating day D is published (13:30 on D-1)."""
        days = local.normalize().tz_localize(None)
        uniq, inverse = np.unique(days.to_numpy(), return_inverse=True)
        pub = np.array([pd.Timestamp(dt.datetime.combine(pd.Timestamp(d).date() - dt.timedelta(days=1),
                                                         DA_PUBLICATION_LOCAL, self._tz)).value for d in uniq],
                       dtype=np.int64)
        return pub[inverse]

    # -- spread correction -----------------------------------------------------------------------------------------

    def _spread_median(self, days: int) -> np.ndarray:
        """M[r] = median of the RT - DA spread at r - 24 d, d = 1..days (NaNs skipped; none known: 0). Cached."""
        if days in self._medians:
            return self._medians[days]
        n = self._n
        cols = np.full((n, days), np.nan)
        for d in range(1, days + 1):
            if 24 * d >= n:                       # a short price history: fewer lags known
                break
            cols[24 * d:, d - 1] = self._spread[: n - 24 * d]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)      # all-NaN rows: no spread known, handled below
            med = np.nanmedian(cols, axis=1)
        self._medians[days] = np.nan_to_num(med, nan=0.0)
        return self._medians[days]

    # -- fit ---------------------------------------------------------------------------------------------------------

    def fit(self, through_year: int, *, form: str = "level", last: str | None = None,
            spread_correction: bool = True) -> IntradayParams:
        """Constants fitted on the local years ``<= through_year`` only (grid search, see the module docstring).

        Reads no price of a later local year: the training set ends at the last hour of ``through_year``. Returns
        :meth:`IntradayParams.default` when that data holds fewer than :data:`MIN_FIT_PAIRS` scorable pairs
        (e.g. no DA price in those years). Cached per arguments (the data do not change)."""
        last = last or self.default_last
        key = (through_year, form, last, spread_correction)
        if key not in self._fits:
            self._fits[key] = self._fit(through_year, form, last, spread_correction)
        return self._fits[key]

    def _fit(self, through_year: int, form: str, last: str, spread_correction: bool) -> IntradayParams:
        if form not in FORMS or last not in LASTS:
            raise InputError(f"unknown form {form!r} or last {last!r}; forms {', '.join(FORMS)}, last "
                             f"{', '.join(LASTS)}", field="form")
        if last == "15min" and not self.has_15min:
            raise InputError("last='15min' needs 15-minute real-time prices", field="last")
        n_end = int(np.searchsorted(self._year, through_year, side="right"))     # first hour of a later year
        data = self._training_pairs(n_end, last)
        if data is None:
            return IntradayParams.default(f"no day-ahead and real-time prices to fit on in local years <= "
                                          f"{through_year}", form=form, last=last)
        da, act, price, lead, anchor_da, rows, cols = data
        w_by_tau = {tau: np.exp(-(np.arange(FIT_LEADS_HOURS) + 0.5) / tau)[lead] for tau in TAU_GRID_HOURS}
        best = (np.inf, 0.0, 0.0, 0)
        for days in (SPREAD_DAYS_GRID if spread_correction else (SPREAD_DAYS_GRID[1],)):
            med = self._spread_median(days)
            m_target, m_anchor = med[cols], med[rows - 1]
            for c in (SPREAD_WEIGHT_GRID if spread_correction else (0.0,)):
                base = da + c * m_target
                signal = price - base if form == "level" else (price - (anchor_da + c * m_anchor))
                resid = base - act
                for tau, w in w_by_tau.items():
                    mae = float(np.mean(np.abs(resid + signal * w)))
                    if mae < best[0] - 1e-12:
                        best = (mae, tau, c, days)
        years = sorted(set(self._year[np.unique(rows)].tolist()))
        return IntradayParams(tau_hours=best[1], spread_weight=best[2], spread_days=best[3], form=form, last=last,
                              through_year=through_year, basis=f"fitted on local years {years[0]}-{years[-1]}",
                              training_mae_usd_per_mwh=round(best[0], 4), training_pairs=len(act))

    def _training_pairs(self, n_end: int, last: str) -> tuple[np.ndarray, ...] | None:
        """Hourly re-plan times i (now = start of hour i) and targets i + k, k < 24, inside ``[0, n_end)``, where
        the target's DA is published at now and its real-time price, the last price and the anchor DA exist."""
        if n_end < 2:
            return None
        i = np.arange(1, n_end)
        now = self._t0 + i * HOUR_NS
        price = self._q[4 * i - 1] if last == "15min" else self._rt_h[i - 1]
        anchor_da = self._da[i - 1]
        cols = i[:, None] + np.arange(FIT_LEADS_HOURS)[None, :]
        inside = cols < n_end
        cols_c = np.minimum(cols, n_end - 1)
        ok = (inside & (self._pub[cols_c] <= now[:, None]) & np.isfinite(self._rt_h[cols_c])
              & np.isfinite(price)[:, None] & np.isfinite(anchor_da)[:, None])
        if int(ok.sum()) < MIN_FIT_PAIRS:
            return None
        r, k = np.nonzero(ok)
        tgt = cols_c[r, k]
        return (self._da[tgt], self._rt_h[tgt], price[r], k, anchor_da[r], i[r], tgt)

    def params_for(self, year: int) -> IntradayParams:
        """The walk-forward constants for forecasts made in local ``year``: fitted through ``year - 1``."""
        return self.fit(year - 1)

    # -- predict -----------------------------------------------------------------------------------------------------

    def predict(self, now: Any, horizon: Any, fallback: pd.Series | None = None,
                params: IntradayParams | None = None) -> pd.Series:
        """Hourly forecast (USD/MWh) of every ``horizon`` hour (UTC hour starts, increasing, none ended at
        ``now``; the current hour may be the first) made at ``now`` (tz-aware) from what is known then.

        ``fallback`` (hourly, UTC) must cover the horizon hours whose DA price is not published at ``now`` (else
        :class:`InputError` naming them). ``params``: override the forecaster's constants for this call."""
        t = pd.Timestamp(now)
        if t.tz is None:
            raise InputError(f"re-plan time {t} has no time zone", field="now")
        now_ns = int(t.value)
        h = _ns(horizon, "horizon")
        if len(h) == 0:
            raise InputError("horizon is empty", field="horizon")
        if (h % HOUR_NS).any() or (len(h) > 1 and np.any(np.diff(h) <= 0)):
            raise InputError("horizon hours must start on the hour, increasing without repeats", field="horizon")
        if h[0] + HOUR_NS <= now_ns:
            raise InputError(f"horizon hour {pd.Timestamp(h[0], tz='UTC').isoformat()} has ended at "
                             f"{t.isoformat()}: its price is known, not forecast", field="horizon")
        t0, n = self._t0, self._n
        i_now = (now_ns - t0) // HOUR_NS                    # the hour containing now (not ended)
        p = params or self.params or self.params_for(self._local_year(now_ns, i_now))
        price, t_info = self._last_price(now_ns, p.last)
        pos = (h - t0) // HOUR_NS
        inside = (pos >= 0) & (pos < n)
        pc = np.clip(pos, 0, n - 1)
        da = np.where(inside, self._da[pc], np.nan)
        known = inside & (self._pub[pc] <= now_ns)
        base = da
        if p.spread_weight:
            med = self._spread_median(p.spread_days)
            ref = pos - 24 * ((pos - i_now) // 24)         # M at ref = median over d = d0.. (d0 first ended day)
            base = da + p.spread_weight * np.where((ref >= 0) & (ref < n), med[np.clip(ref, 0, n - 1)], 0.0)
        if not known.all():
            base = np.where(known, base, self._fallback(fallback, h, ~known, t))
        if p.form == "level":
            signal = price - base
        else:
            signal = np.full(len(h), price - self._anchor(t_info, p, fallback, t))
        x = (h + HOUR_NS // 2 - t_info) / HOUR_NS
        f = base + signal * np.exp(-x / p.tau_hours)
        if h[0] < now_ns and self.has_15min:
            f[0] = self._partial_hour(now_ns, int(h[0]), base[0], signal[0], t_info, p.tau_hours)
        cap = np.where(h < _CAP_CHANGE_NS, PRICE_CAPS_USD_PER_MWH[0], PRICE_CAPS_USD_PER_MWH[1])
        np.clip(f, PRICE_FLOOR_USD_PER_MWH, cap, out=f)
        return pd.Series(f, index=horizon, name="price_usd_per_mwh")

    def _local_year(self, now_ns: int, i_now: int) -> int:
        if 0 <= i_now < self._n:
            return int(self._year[i_now])
        return pd.Timestamp(now_ns, tz="UTC").tz_convert(self._tz).year

    def _last_price(self, now_ns: int, last: str) -> tuple[float, int]:
        """The last ended interval's price and the UTC ns its interval ended."""
        if last == "15min":
            if not self.has_15min:
                raise InputError("last='15min' needs 15-minute real-time prices", field="last")
            k = (now_ns - self._t0) // QUARTER_NS - 1           # the last ended quarter
            j = int(self._q_last[min(k, len(self._q) - 1)]) if k >= 0 else -1
            if j < 0:
                raise InputError("no real-time price known", field="now")
            return float(self._q[j]), self._t0 + (j + 1) * QUARTER_NS
        k = (now_ns - self._t0) // HOUR_NS - 1
        j = int(self._h_last[min(k, self._n - 1)]) if k >= 0 else -1
        if j < 0:
            raise InputError("no real-time price known", field="now")
        return float(self._rt_h[j]), self._t0 + (j + 1) * HOUR_NS

    def _fallback(self, fallback: pd.Series | None, h: np.ndarray, need: np.ndarray, t: pd.Timestamp) -> np.ndarray:
        out = np.full(len(h), np.nan)
        if fallback is not None:
            fb_t = _ns(fallback.index, "fallback")
            if len(fb_t) > 1 and np.any(np.diff(fb_t) <= 0):
                raise InputError("fallback timestamps must be increasing without repeats", field="fallback")
            j = np.clip(np.searchsorted(fb_t, h), 0, len(fb_t) - 1)
            hit = fb_t[j] == h
            out[hit] = fallback.to_numpy(dtype=float, na_value=np.nan)[j[hit]]
        missing = need & np.isnan(out)
        if missing.any():
            hours = pd.DatetimeIndex(h[missing]).tz_localize("UTC")
            raise InputError(f"no day-ahead price published at {t.isoformat()} and no fallback forecast for "
                             f"{int(missing.sum())} horizon hour(s): {hours[0].isoformat()} .. "
                             f"{hours[-1].isoformat()}", field="fallback")
        return out

    def _anchor(self, t_info: int, p: IntradayParams, fallback: pd.Series | None, t: pd.Timestamp) -> float:
        """Baseline of the hour containing the last known price (the ``spread`` form)."""
        a = (t_info - 1 - self._t0) // HOUR_NS
        if 0 <= a < self._n and np.isfinite(self._da[a]):
            corr = p.spread_weight * self._spread_median(p.spread_days)[a] if p.spread_weight else 0.0
            return float(self._da[a] + corr)
        hour = np.array([self._t0 + a * HOUR_NS], dtype=np.int64)
        return float(self._fallback(fallback, hour, np.array([True]), t)[0])

    def _partial_hour(self, now_ns: int, h0: int, base: float, signal: float, t_info: int, tau: float) -> float:
        """The current hour with ``j`` ended quarters: their mean with the forecast of the rest."""
        j = (now_ns - h0) // QUARTER_NS
        x = (h0 + (j * QUARTER_NS + HOUR_NS) // 2 - t_info) / HOUR_NS
        g = base + signal * np.exp(-x / tau)
        q0 = (h0 - self._t0) // QUARTER_NS
        seen = self._q[q0: q0 + j] if q0 >= 0 else np.array([])
        seen = np.where(np.isnan(seen), g, seen)
        return float((seen.sum() + (4 - len(seen)) * g) / 4)


_CAP_CHANGE_NS = PRICE_CAP_CHANGE.value     # ERCOT's cap 9,000 -> 5,000 (optimizer.market)


def replan_horizon(now: Any, hours: int) -> pd.DatetimeIndex:
    """``hours`` UTC hour starts from the hour containing ``now`` (the current, not-ended hour first)."""
    t = pd.Timestamp(now)
    if t.tz is None:
        raise InputError(f"re-plan time {t} has no time zone", field="now")
    return pd.date_range(t.tz_convert("UTC").floor("h"), periods=hours, freq="1h", name="timestamp")


def rest_of_day(now: Any, timezone: str) -> pd.DatetimeIndex:
    """UTC hour starts from the hour containing ``now`` to the end of its local operating day (a whole day from
    local midnight has 23, 24 or 25 hours)."""
    t = pd.Timestamp(now)
    if t.tz is None:
        raise InputError(f"re-plan time {t} has no time zone", field="now")
    day = t.tz_convert(ZoneInfo(timezone)).date()
    end = local_midnight(day + dt.timedelta(days=1), timezone)
    return pd.date_range(t.tz_convert("UTC").floor("h"), end, freq="1h", inclusive="left", name="timestamp")


__all__ = ["IntradayForecaster", "IntradayParams", "replan_horizon", "rest_of_day", "TAU_GRID_HOURS",
           "SPREAD_WEIGHT_GRID", "SPREAD_DAYS_GRID"]
