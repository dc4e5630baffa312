"""What day-ahead bidding is worth: the ``bid`` policy against no day-ahead participation (``mpc``) and the strike
rule as a bid (``bid-strike``), per local calendar year, on the shipped ERCOT data (default site, HB_WEST).

    python benchmarks/bid_value.py                       # 2022, 2023, 2024 (measured 539-605 s a year, shared 2 cores)
    python benchmarks/bid_value.py --years 2023 --months 7,8 --site models/north-texas-mining.toml
    python benchmarks/bid_value.py --quick               # one week, naive forecast, nothing appended (CI smoke run)

Each year is one ``optimizer.backtest.run`` with policies mpc, bid, bid-strike (every day's real-time trajectory is
the same for the three: the award changes no real-time decision, see docs/bidding.md), so the differences are the
two-settlement alone. Printed per year and policy: the day-ahead cost (award x DA price), the real-time deviation cost
((grid position - award) x RT price), their total (the market settlement of the position; the fixed-price block's
cost is the same for every policy and left out), the profit and its difference to mpc. Also per year: how many days'
curves were checked (monotone, within the segment limit: the engine refuses any other), the most segments used, and
the calibration of the day-ahead price scenarios (mean |share of hours whose actual DA price is at or below scenario
k - k's quantile level| over the levels; MAE of the median scenario). Rows are appended to
``benchmarks/results/bid_value.csv`` (with the command) as each year finishes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import optimizer
from optimizer import bid as bids
from optimizer import market as mk
from optimizer.backtest import Market, Settings, engine, run

POLICIES = ("mpc", "bid", "bid-strike")
OUT = Path(__file__).resolve().parent / "results" / "bid_value.csv"


def _days(year: int, months: list[int] | None) -> list[tuple[dt.date, dt.date]]:
    if not months:
        return [(dt.date(year, 1, 1), dt.date(year, 12, 31))]
    out = []
    for m in months:
        end = (pd.Timestamp(year, m, 1) + pd.offsets.MonthEnd(0)).date()
        out.append((dt.date(year, m, 1), end))
    return out


def _instrument() -> dict:
    """Record, for every day's bid, the curves' segments used and their problems (the engine refuses any)."""
    seen = {"days": 0, "max_used": 0, "problems": 0}
    original = engine._awarded

    def awarded(env, d, st, curves, status):
        seen["days"] += 1
        seen["max_used"] = max(seen["max_used"], int(curves.used.max()))
        seen["problems"] += len(curves.problems(env.settings.bid.segments))
        return original(env, d, st, curves, status)

    engine._awarded = awarded
    return seen


def calibration(site, history, first: dt.date, last: dt.date, settings: bids.BidSettings) -> dict:
    """Scenario calibration over the days: per level, the share of hours whose actual DA price is at or below the
    level's scenario; mean |share - level|; MAE of the median scenario against the actual DA price."""
    below, err, n = np.zeros(settings.scenarios), [], 0
    for day in pd.date_range(first, last, freq="D").date:
        hours = mk.operating_hours(day, site.timezone)
        frame = bids.price_scenarios(history, bids.bid_deadline(day, site.timezone), hours.rename(None), settings)
        actual = history.da.reindex(hours).to_numpy()
        below += (actual[:, None] <= frame.to_numpy()).sum(axis=0)
        err.append(np.abs(frame.median(axis=1).to_numpy() - actual))
        n += len(hours)
    levels = (np.arange(settings.scenarios) + 0.5) / settings.scenarios
    return {"calibration_error": float(np.abs(below / n - levels).mean()),
            "share_below_lowest": float(below[0] / n), "share_above_highest": float(1 - below[-1] / n),
            "median_mae_usd_per_mwh": float(np.concatenate(err).mean())}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--years", default="2022,2023,2024")
    ap.add_argument("--months", default="", help="comma-separated months to sample (default: whole years)")
    ap.add_argument("--site", default=None)
    ap.add_argument("--forecast", default="auto", help="the mpc's D-1 forecast (default auto: gbm)")
    ap.add_argument("--quick", action="store_true", help="one week of 2022, naive forecast; nothing appended")
    args = ap.parse_args(argv)
    if args.quick:
        args.years, args.forecast = "2022", "naive"
    site = optimizer.load_site(args.site or optimizer.default_site_path())
    market = Market.shipped(site.settlement_point)
    settings = Settings(policies=POLICIES, forecast_method=args.forecast)
    months = [int(m) for m in args.months.split(",") if m]
    seen = _instrument()
    rows = []
    for year in (int(y) for y in args.years.split(",")):
        for first, last in ([(dt.date(2022, 7, 18), dt.date(2022, 7, 24))] if args.quick else _days(year, months)):
            before = dict(seen)
            t0 = time.perf_counter()
            r = run(site, first, last, market, settings)
            wall = time.perf_counter() - t0
            cal = calibration(site, market.history, first, last, settings.bid)
            base = r.summary["policies"]["mpc"]["profit_usd"]
            for p in POLICIES:
                v = r.summary["policies"][p]
                award = r.intervals["da_award_mw"].sel(policy=p).to_numpy()
                rows.append({"site": site.name, "year": year, "first": first, "last": last, "policy": p,
                             "days": r.summary["days"], "da_cost_usd": v["da_cost_usd"],
                             "rt_deviation_cost_usd": v["rt_deviation_cost_usd"],
                             "market_total_usd": v["da_cost_usd"] + v["rt_deviation_cost_usd"],
                             "profit_usd": v["profit_usd"], "vs_mpc_usd": v["profit_usd"] - base,
                             "mean_award_mw": float(award.mean()),
                             "curves_checked": seen["days"] - before["days"] if p == "bid" else None,
                             "max_segments_used": seen["max_used"], "curve_problems": seen["problems"],
                             "wall_seconds": wall, **cal,
                             "command": "python benchmarks/bid_value.py " + " ".join(sys.argv[1:] if argv is None
                                                                                    else argv)})
            frame = pd.DataFrame(rows[-len(POLICIES):])
            if not args.quick:
                OUT.parent.mkdir(exist_ok=True)
                frame.to_csv(OUT, mode="a", header=not OUT.exists(), index=False)
            _print(frame)
    print("\nall rows:")
    _print(pd.DataFrame(rows))


def _print(frame: pd.DataFrame) -> None:
    cols = ["year", "first", "last", "policy", "days", "da_cost_usd", "rt_deviation_cost_usd", "market_total_usd",
            "profit_usd", "vs_mpc_usd", "mean_award_mw", "curves_checked", "max_segments_used", "calibration_error",
            "median_mae_usd_per_mwh", "wall_seconds"]
    print(frame[cols].to_string(index=False, float_format=lambda x: f"{x:,.2f}"), flush=True)


if __name__ == "__main__":
    main()
