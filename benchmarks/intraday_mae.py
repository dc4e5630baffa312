"""Walk-forward accuracy of the intraday forecast (optimizer.intraday) by lead time, against the D-1 forecasts.

Run: python benchmarks/intraday_mae.py [--sp HB_WEST] [--years 2021,2022,2023,2024] [--step 1]

For every ``step``-th hour start ``now`` of each local year (hourly re-plans; ``--step 1``: all of them), the
intraday forecast is made for the 25 hours from the current one (lead 0 = the current hour, not ended) and scored
against the realised hourly real-time price at leads 0, 1, 2, 3, 6, 12 and 24 h, and over leads 0-23 ("0-23").
Each year uses constants fitted on earlier years only (``IntradayForecaster.params_for``).

Compared with, on the same (re-plan time, hour) pairs:
* ``D-1 gbm`` / ``D-1 naive``: the latest nightly forecast known at ``now``: the one made at 10:00 local on the
  day before the target hour's operating day E (``optimizer.forecast.Forecaster``, gbm refitted weekly as the
  backtest does), or, before that time, the run of the day before, whose 24 h lookahead covers E. The intraday
  forecast gets the D-1 gbm one as its fallback for hours without a published DA price;
* ``DA``: the day-ahead price of the hour, on the pairs where it is published at ``now`` (``n DA`` of them;
  the intraday forecast is also shown on exactly those pairs, ``intra@DA``).
Then the variants (each fitted walk-forward the same way): the chosen ``level`` form with the last 15-minute
price and the spread correction, without the correction, with the last hourly price, and the ``spread`` form.
Finally the time of one ``predict`` call. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from optimizer import data
from optimizer import forecast as F
from optimizer.intraday import IntradayForecaster, IntradayParams, replan_horizon

LEADS = (0, 1, 2, 3, 6, 12, 24)
HORIZON_HOURS = 25


def nightly_forecasts(method: str, hist: F.MarketHistory, grid: pd.DatetimeIndex, year: int) -> tuple[np.ndarray,
                                                                                                       np.ndarray]:
    """Per grid hour h: the forecast made at 10:00 local on the day before h's operating day E ("own"), and the
    lookahead of the run for E-1 ("prev"); NaN outside the runs made. Runs for the days of ``year`` and the next
    day's (covers the horizon of the last re-plans)."""
    tz = hist.timezone
    fc = F.Forecaster(method, hist)
    own, prev = np.full(len(grid), np.nan), np.full(len(grid), np.nan)
    for day in pd.date_range(f"{year - 1}-12-31", f"{year + 1}-01-01", freq="D").date:
        hz = F.horizon_for(day, tz, 24)
        f = fc.predict(F.decision_time_for(day, tz), hz).to_numpy()
        n = len(F.horizon_for(day, tz, 0))
        pos = grid.get_indexer(hz)
        inside = pos >= 0
        own[pos[:n][inside[:n]]] = f[:n][inside[:n]]
        prev[pos[n:][inside[n:]]] = f[n:][inside[n:]]
    return own, prev


def own_decision_ns(grid: pd.DatetimeIndex, tz: str) -> np.ndarray:
    """Per grid hour: UTC ns of 10:00 local on the day before its operating day (the nightly run for that day)."""
    local_day = grid.tz_convert(tz).normalize().tz_localize(None)
    dec = (local_day - pd.Timedelta(days=1) + pd.Timedelta(hours=F.DEFAULT_DECISION_HOUR_LOCAL)).tz_localize(tz)
    return dec.tz_convert("UTC").as_unit("ns").asi8


def score_year(year: int, fc: IntradayForecaster, hist: F.MarketHistory, step: int,
               variants: dict[str, Callable[[int], IntradayParams]]) -> None:
    tz = hist.timezone
    start = pd.Timestamp(f"{year}-01-01", tz=tz).tz_convert("UTC")
    end = pd.Timestamp(f"{year + 1}-01-01", tz=tz).tz_convert("UTC")
    grid = pd.date_range(start - pd.Timedelta(days=2), end + pd.Timedelta(days=3), freq="1h")
    t0 = time.perf_counter()
    gbm_own, gbm_prev = nightly_forecasts("gbm", hist, grid, year)
    nv_own, nv_prev = nightly_forecasts("naive", hist, grid, year)
    t_nightly = time.perf_counter() - t0
    dec = own_decision_ns(grid, tz)
    rt = hist.rt.reindex(grid).to_numpy()
    da = hist.da.reindex(grid).to_numpy() if hist.da is not None else np.full(len(grid), np.nan)
    # DA publication: 13:30 local on the day before the hour's operating day
    pub = own_decision_ns(grid, tz) + int(3.5 * 3600e9)
    nows = pd.date_range(start, end, freq=f"{step}h", inclusive="left")
    params = fc.params_for(year)
    resolved = {name: v(year) for name, v in variants.items()}
    cols = ["intraday", "D-1 gbm", "D-1 naive"]
    err = {c: np.full((len(nows), HORIZON_HOURS), np.nan) for c in cols}
    err_da = np.full((len(nows), HORIZON_HOURS), np.nan)
    err_var = {v: np.full((len(nows), HORIZON_HOURS), np.nan) for v in variants}
    calls, t_calls = 0, 0.0
    for r, now in enumerate(nows):
        hz = replan_horizon(now, HORIZON_HOURS)
        j = grid.get_loc(hz[0]) + np.arange(-1, HORIZON_HOURS)     # from the last ended hour (spread-form anchor)
        now_ns = now.value
        use_own = dec[j] <= now_ns
        gbm_all = np.where(use_own, gbm_own[j], gbm_prev[j])
        fallback = pd.Series(gbm_all, index=replan_horizon(now - pd.Timedelta(hours=1), HORIZON_HOURS + 1))
        j, use_own, gbm = j[1:], use_own[1:], gbm_all[1:]
        naive = np.where(use_own, nv_own[j], nv_prev[j])
        t1 = time.perf_counter()
        f = fc.predict(now, hz, fallback, params).to_numpy()
        t_calls += time.perf_counter() - t1
        calls += 1
        act = rt[j]
        err["intraday"][r] = np.abs(f - act)
        err["D-1 gbm"][r] = np.abs(gbm - act)
        err["D-1 naive"][r] = np.abs(naive - act)
        known = pub[j] <= now_ns
        err_da[r] = np.where(known, np.abs(da[j] - act), np.nan)
        for name, pv in resolved.items():
            err_var[name][r] = np.abs(fc.predict(now, hz, fallback, pv).to_numpy() - act)
    da_known = ~np.isnan(err_da)
    print(f"\n== {year}: {len(nows)} re-plan times (every {step} h), constants {params.basis}: tau "
          f"{params.tau_hours:g} h, c {params.spread_weight:g}, N {params.spread_days} d (training MAE "
          f"{params.training_mae_usd_per_mwh}); nightly forecasts {t_nightly:.0f} s; predict "
          f"{t_calls / calls * 1e3:.3f} ms per call (mean of {calls})")
    head = f"{'lead h':>7}" + "".join(f"{c:>11}" for c in cols) + f"{'n DA':>7}{'DA':>9}{'intra@DA':>10}"
    print(head)
    for lead in (*LEADS, "0-23"):
        sl = slice(0, 24) if lead == "0-23" else slice(lead, lead + 1)
        row = f"{lead!s:>7}" + "".join(f"{np.nanmean(err[c][:, sl]):11.2f}" for c in cols)
        m = da_known[:, sl]
        if m.any():
            row += (f"{m.mean():7.0%}{np.nanmean(err_da[:, sl]):9.2f}"
                    f"{np.nanmean(np.where(m, err['intraday'][:, sl], np.nan)):10.2f}")
        else:
            row += f"{m.mean():7.0%}{'-':>9}{'-':>10}"
        print(row)
    if variants:
        print(f"{'variant':>34}{'lead 0':>9}{'lead 1':>9}{'lead 3':>9}{'0-23':>9}{'train MAE':>11}  constants")
        for name, e in err_var.items():
            pv = resolved[name]
            print(f"{name:>34}" + "".join(f"{np.nanmean(e[:, k]):9.2f}" for k in (0, 1, 3))
                  + f"{np.nanmean(e[:, :24]):9.2f}{pv.training_mae_usd_per_mwh or float('nan'):11.2f}  tau "
                  f"{pv.tau_hours:g} h, c {pv.spread_weight:g}, N {pv.spread_days} d")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sp", default="HB_WEST")
    ap.add_argument("--years", default="2021,2022,2023,2024")
    ap.add_argument("--step", type=int, default=1, help="score every STEP-th hourly re-plan time")
    ap.add_argument("--no-variants", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    hist = F.MarketHistory.shipped(args.sp)
    fc = IntradayForecaster(data.ercot_prices(args.sp, "rt", "15min"), data.ercot_prices(args.sp, "rt"),
                            data.ercot_prices(args.sp, "da"), hist.timezone)
    print(f"{args.sp}: intraday forecast vs D-1 forecasts, hourly re-plans, constants fitted walk-forward")
    years = [int(y) for y in args.years.split(",")]
    for y in years:
        p = fc.params_for(y)
        print(f"  forecast year {y}: {p.basis}: tau {p.tau_hours:g} h, c {p.spread_weight:g}, N {p.spread_days} d, "
              f"training MAE {p.training_mae_usd_per_mwh}, pairs {p.training_pairs}")
    variants: dict[str, Callable[[int], IntradayParams]] = {}
    if not args.no_variants:
        variants = {
            "level 15min + spread (chosen)": lambda y: fc.fit(y - 1),
            "level 15min, no spread corr.": lambda y: fc.fit(y - 1, spread_correction=False),
            "level 1h + spread": lambda y: fc.fit(y - 1, last="1h"),
            "spread-form 15min + spread": lambda y: fc.fit(y - 1, form="spread"),
            "level 15min, tau 3 h, no corr.": lambda y: dataclasses.replace(
                fc.fit(y - 1), tau_hours=3.0, spread_weight=0.0, basis="fixed (the issue's prototype)",
                training_mae_usd_per_mwh=None, training_pairs=0),
        }
    for y in years:
        score_year(y, fc, hist, args.step, variants)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
