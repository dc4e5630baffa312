"""Value of each kind of AI flexibility (issue 15), year by year: the table of docs/backtest.md section 9.

Run: python benchmarks/flexibility.py --out benchmarks/results/flexibility.csv [--years 2022,2023,2024]
     [--variants all,...] [--months 1-12] [--quick]

Every run is the default ``mpc`` policy of ``curtail backtest`` on the default site ``west-texas-200`` (HB_WEST,
shipped real-time prices, walk-forward gbm forecast, 4CP at the site's 100 USD/kW-year unless said), one local
calendar year, scored against perfect foresight of the same variant. The variants switch one kind of
flexibility off at a time:

| variant | what the decisions may use |
|---|---|
| ``all`` | the shipped site: the Azure 2024 hour-of-week demand profile known to the plan, power capping of spot GPUs (``h100-default`` curve), 4CP priced |
| ``no-demand`` | ``Settings(demand_aware=False)``: plans assume every spot GPU is wanted (constant utilisation 1), settled on the real demand |
| ``no-capping`` | ``power_cap_curve = None``: each GPU is on at full power or off |
| ``none`` | neither (and no jobs in the job-mix runs) |
| ``all-4cp-off``, ``none-4cp-off`` | as ``all`` / ``none`` with no 4CP charge (energy only) |
| ``jobs`` | ``all`` plus the example job mix (``examples/jobs-west-texas.csv``, one week of July 2023) repeated every week of the year (same local weekday and hour) |
| ``jobs-on-arrival`` | ``jobs`` with ``Settings(jobs_deferrable=False)``: each job runs as soon as it is released |

The value of a flexibility is profit(variant with it) - profit(variant without it), both for ``mpc``; the
value capture is (mpc - always-on) / (perfect - always-on) within a variant. Rows are appended as each run ends
and a run already in the file is skipped (resumable).

Out of sample: the forecasts and the 4CP model are walk-forward; the demand profile is Azure's 2024 trace shape,
so 2024 is in sample for the shape (2022-2023 use a shape measured after them: neither in nor out of sample
for prices, but a shape the operator could not have had then). The job mix is invented (docs/ai-workloads.md).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import sys
import time
from pathlib import Path

import pandas as pd

import optimizer
from optimizer import workloads
from optimizer.backtest import engine
from optimizer.site import FourCP, Site

FIELDS = ["variant", "year", "start", "end", "policy", "profit_usd", "value_capture", "fourcp_charge_usd",
          "ai_revenue_usd", "job_penalty_usd", "restarts", "solves", "fallbacks", "wall_seconds", "highs_seconds"]
VARIANTS = ("all", "no-demand", "no-capping", "none", "all-4cp-off", "none-4cp-off", "jobs", "jobs-on-arrival")
EXAMPLE_JOBS = Path(__file__).resolve().parents[1] / "examples" / "jobs-west-texas.csv"


def weekly_jobs(site: Site, start: dt.date, end: dt.date) -> tuple[workloads.Job, ...]:
    """The example week's jobs repeated every 7 days (local wall-clock times kept across DST), those whose window
    overlaps the local days ``start`` .. ``end`` (a job due before the run starts is not the run's)."""
    week = workloads.read_jobs(EXAMPLE_JOBS, [g.name for g in site.gpu])
    tz = site.timezone
    first = min(j.release for j in week).tz_convert(tz)
    lo = pd.Timestamp(dt.datetime.combine(start, dt.time()), tz=tz)
    hi = pd.Timestamp(dt.datetime.combine(end, dt.time()), tz=tz) + pd.Timedelta(days=1)
    k0 = int((lo.tz_localize(None) - first.tz_localize(None)).days // 7) - 1
    out = []
    for k in range(k0, k0 + (hi - lo).days // 7 + 3):
        shift = pd.Timedelta(days=7 * k)
        for j in week:
            release = (j.release.tz_convert(tz).tz_localize(None) + shift).tz_localize(tz, ambiguous=True,
                                                                                      nonexistent="shift_forward")
            deadline = (j.deadline.tz_convert(tz).tz_localize(None) + shift).tz_localize(tz, ambiguous=True,
                                                                                        nonexistent="shift_forward")
            if deadline <= lo or release >= hi:
                continue
            out.append(dataclasses.replace(j, name=f"{j.name}-w{k:+d}", release=release.tz_convert("UTC"),
                                           deadline=deadline.tz_convert("UTC")))
    return tuple(out)


def variant_site(name: str, start: dt.date, end: dt.date) -> tuple[Site, engine.Settings]:
    site = optimizer.load_site(optimizer.default_site_path())
    settings = engine.Settings()
    if name in ("none", "none-4cp-off", "no-capping"):
        site = dataclasses.replace(site, gpu=tuple(dataclasses.replace(g, power_cap_curve=None) for g in site.gpu))
    if name in ("none", "none-4cp-off", "no-demand"):
        settings = dataclasses.replace(settings, demand_aware=False)
    if name.endswith("4cp-off"):
        site = dataclasses.replace(site, fourcp=FourCP())
    if name.startswith("jobs"):
        site = dataclasses.replace(site, jobs=weekly_jobs(site, start, end))
        if name == "jobs-on-arrival":
            settings = dataclasses.replace(settings, jobs_deferrable=False)
    return site, settings


def period(year: int, quick: bool, months: tuple[int, int] = (1, 12)) -> tuple[dt.date, dt.date]:
    """First and last day run: months FIRST-LAST of ``year`` (3 days of July with ``quick``)."""
    first, last = months
    if quick:
        return dt.date(year, 7, 25), dt.date(year, 7, 27)
    return dt.date(year, first, 1), dt.date(year + (last == 12), last % 12 + 1, 1) - dt.timedelta(days=1)


def run_one(variant: str, year: int, quick: bool, months: tuple[int, int] = (1, 12)) -> list[dict]:
    start, end = period(year, quick, months)
    site, settings = variant_site(variant, start, end)
    settings = dataclasses.replace(settings, policies=("mpc", "always-on", "perfect"))
    market = engine.Market.shipped(site.settlement_point)
    t0 = time.perf_counter()
    r = engine.run(site, start, end, market, settings)
    wall = time.perf_counter() - t0
    s = r.summary
    rows = []
    for p, v in s["policies"].items():
        rows.append({"variant": variant, "year": year, "start": str(start), "end": str(end), "policy": p,
                     "profit_usd": round(v["profit_usd"], 2),
                     "value_capture": (round(s["value_capture_by_policy"][p], 4)
                                       if p in s["value_capture_by_policy"] else ""),
                     "fourcp_charge_usd": round(v["fourcp_charge_usd"], 2),
                     "ai_revenue_usd": round(v["ai_revenue_usd"], 2),
                     "job_penalty_usd": round(v.get("job_penalty_usd", 0.0), 2), "restarts": v["restarts"],
                     "solves": v["solves"], "fallbacks": v["fallbacks"], "wall_seconds": round(wall, 1),
                     "highs_seconds": round(s["solver_seconds"], 1)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/flexibility.csv"))
    ap.add_argument("--years", default="2022,2023,2024")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--quick", action="store_true", help="3 days of one year: a smoke run")
    ap.add_argument("--months", default="1-12", help="FIRST-LAST months of each year (default the whole year)")
    args = ap.parse_args()
    first, _, last = args.months.partition("-")
    months = (int(first), int(last or first))
    if not 1 <= months[0] <= months[1] <= 12:
        ap.error(f"--months must be FIRST-LAST within 1-12, got {args.months}")
    if args.quick and months != (1, 12):
        ap.error("--quick runs 3 fixed days of July; it cannot be combined with --months")
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown:
        ap.error(f"unknown variant(s) {sorted(unknown)}; known: {', '.join(VARIANTS)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if args.out.exists():
        with args.out.open() as fh:
            done = {(r["variant"], r["year"], r["start"], r["end"]) for r in csv.DictReader(fh)}
    for year in (int(y) for y in args.years.split(",")):
        for variant in args.variants.split(","):
            if (variant, str(year), *map(str, period(year, args.quick, months))) in done:
                continue
            rows = run_one(variant, year, args.quick, months)
            new = not args.out.exists()
            with args.out.open("a", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=FIELDS)
                if new:
                    w.writeheader()
                w.writerows(rows)
            mpc = next(r for r in rows if r["policy"] == "mpc")
            print(f"{variant} {year}: mpc profit {mpc['profit_usd']:,.0f} USD, capture {mpc['value_capture']}; "
                  f"wall {mpc['wall_seconds']} s", flush=True)
    print(f"written {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
