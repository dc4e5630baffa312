"""What the gbm forecaster's refits cost in a year of backtest decisions, and what fewer refits do to its accuracy.

Run: python benchmarks/forecast_refits.py [--years 2021,2022,2023,2024] [--refit-days 7,14,28] [--sp HB_WEST]

For each year and each refit interval, one :class:`optimizer.forecast.Forecaster` ("gbm", defaults otherwise) makes
the backtest's forecasts: for every operating day D of the year, at 10:00 local on D-1, D plus a 24 h lookahead
(exactly what ``curtail backtest`` asks it). Printed per row: fits, seconds in fits (the training set and the
model fit apart), seconds in the other predictions, and the MAE on the hours of D (USD/MWh), with the seasonal
naive forecast's MAE for reference. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from optimizer import forecast as F


def run(history: F.MarketHistory, year: int, refit_days: int) -> dict:
    fc = F.Forecaster("gbm", history, refit_days=refit_days)
    spent = {"training_set": 0.0, "fit": 0.0}
    real_fit, real_set = fc._fit, fc.training_set

    def timed_set(*a, **kw):
        t0 = time.perf_counter()
        out = real_set(*a, **kw)
        spent["training_set"] += time.perf_counter() - t0
        return out

    def timed_fit(*a, **kw):
        t0 = time.perf_counter()
        real_fit(*a, **kw)
        spent["fit"] += time.perf_counter() - t0

    fc.training_set, fc._fit = timed_set, timed_fit
    naive = F.Forecaster("naive", history)
    tz = history.timezone
    err, err_naive = [], []
    t0 = time.perf_counter()
    for day in pd.date_range(f"{year}-01-01", f"{year}-12-31", freq="D").date:
        t = F.decision_time_for(day, tz)
        hz = F.horizon_for(day, tz, 24)
        n = len(F.horizon_for(day, tz, 0))
        actual = history.rt.reindex(hz[:n]).to_numpy()
        pred = fc.predict(t, hz).to_numpy()[:n]
        if np.isnan(actual).any():
            continue
        err.append(float(np.mean(np.abs(pred - actual))))
        err_naive.append(float(np.mean(np.abs(naive.predict(t, hz).to_numpy()[:n] - actual))))
    wall = time.perf_counter() - t0
    return {"fits": fc.fit_count, "fit_s": spent["fit"], "set_s": spent["training_set"], "wall_s": wall,
            "mae": float(np.mean(err)), "mae_naive": float(np.mean(err_naive)), "days": len(err)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sp", default="HB_WEST")
    ap.add_argument("--years", default="2021,2022,2023,2024")
    ap.add_argument("--refit-days", default="7,14,28")
    args = ap.parse_args()
    history = F.MarketHistory.shipped(args.sp)
    print(f"gbm forecaster, {args.sp}, backtest decisions (10:00 D-1, D + 24 h), MAE on the hours of D (USD/MWh)")
    print(f"{'year':>5} {'refit d':>7} {'fits':>5} {'fit s':>7} {'of which set s':>14} {'wall s':>7} "
          f"{'MAE gbm':>8} {'MAE naive':>9} {'days':>5}")
    for year in (int(y) for y in args.years.split(",")):
        for refit in (int(r) for r in args.refit_days.split(",")):
            r = run(history, year, refit)
            print(f"{year:>5} {refit:>7} {r['fits']:>5} {r['fit_s']:>7.1f} {r['set_s']:>14.1f} {r['wall_s']:>7.1f} "
                  f"{r['mae']:>8.2f} {r['mae_naive']:>9.2f} {r['days']:>5}", flush=True)


if __name__ == "__main__":
    main()
