"""Walk-forward accuracy of the price forecasts on the shipped ERCOT data: mean absolute error (USD/MWh).

Run: python benchmarks/forecast_mae.py [--sp HB_WEST] [--start 2022-01-01] [--end 2022-12-31] [--step 1]
For each operating day D (every ``step``-th day), the forecast is made at 10:00 local on D-1 for D plus a 24 h
lookahead and scored on the hours of D; ``da`` (where day-ahead prices are shipped) is made at 14:00 on D-1 for
D only. ``constant`` is the mean of the last 168 known hours, for every hour. (``da+gbm`` is not listed: at 10:00
no day-ahead price of D is known, so it equals ``gbm`` on D.) Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from optimizer import forecast as F


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sp", default="HB_WEST")
    ap.add_argument("--start", default="2022-01-01")
    ap.add_argument("--end", default="2022-12-31")
    ap.add_argument("--step", type=int, default=1)
    ap.add_argument("--refit-days", type=int, default=7)
    args = ap.parse_args()
    hist = F.MarketHistory.shipped(args.sp)
    tz = hist.timezone
    days = pd.date_range(args.start, args.end, freq=f"{args.step}D").date
    fcs = {m: F.Forecaster(m, hist, refit_days=args.refit_days) for m in ("naive", "gbm")}
    err: dict[str, list[float]] = {k: [] for k in ("constant", "naive", "gbm", "da@14")}
    err_da_days: dict[str, list[float]] = {k: [] for k in err}
    t0 = time.perf_counter()
    for day in days:
        t = F.decision_time_for(day, tz)
        hz = F.horizon_for(day, tz, 24)
        n = len(F.horizon_for(day, tz, 0))
        actual = hist.rt.reindex(hz[:n]).to_numpy()
        if np.isnan(actual).any():
            continue
        row = {"constant": np.full(n, F.available(hist, t).rt.iloc[-168:].mean())}
        for m, fc in fcs.items():
            row[m] = fc.predict(t, hz).to_numpy()[:n]
        try:
            row["da@14"] = F.forecast("da", hist, F.decision_time_for(day, tz, F.DA_DECISION_HOUR_LOCAL), hz[:n]
                                      ).to_numpy()
        except F.InputError:
            pass
        for k, v in row.items():
            e = float(np.mean(np.abs(v - actual)))
            err[k].append(e)
            if "da@14" in row:
                err_da_days[k].append(e)
    secs = time.perf_counter() - t0
    print(f"{args.sp} {args.start}..{args.end} step {args.step}: {len(err['naive'])} days, {secs:.1f} s, "
          f"gbm fits {fcs['gbm'].fit_count}")
    print(f"{'method':10}{'MAE all days':>14}{'MAE DA days':>14}")
    for k, e in err.items():
        a = f"{np.mean(e):14.2f}" if e else f"{'-':>14}"
        b = f"{np.mean(err_da_days[k]):14.2f}" if err_da_days[k] else f"{'-':>14}"
        print(f"{k:10}{a}{b}")


if __name__ == "__main__":
    main()
