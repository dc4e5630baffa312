"""Decision quality of every backtest policy, site by site and year by year: the table of docs/backtest.md.

Run: python benchmarks/policies.py --out benchmarks/results/policies.csv [--sites ...] [--years 2021,2022,...]
     [--fourcp off|on|both] [--forecast auto] [--quick]

For each shipped site and local calendar year it runs ``curtail backtest``'s engine with every default policy
(``mpc``, ``schedule``, ``schedule+strike``, ``strike``, ``always-on``, ``perfect``) and writes one row per
(site, year, 4CP, policy): profit, value capture ((profit - always-on) / (perfect - always-on)), 4CP charge,
restarts, solves, fallbacks, and the run's wall and HiGHS seconds. "4CP off" removes the site's 4CP charge
(energy only); "4CP on" keeps it (the shipped west-texas sites: 100 USD/kW-year) and runs June-September only,
where the charge is set. Rows are appended as each run ends (a killed run keeps the finished ones), and a run
already in the file is skipped, so the script can be resumed.

Out of sample: every forecast is walk-forward (refitted on the trailing data known at each decision); the 4CP
model's parameters are fitted on summers before the year scored; the intraday forecaster's constants on years
before; the strike rule's restart-only premium (``lock_weight = 0``) was chosen on July 2023 and May 2022, so
2022 and 2023 figures are in sample for that one constant.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import sys
import time
from pathlib import Path

import optimizer
from optimizer.backtest import engine
from optimizer.data import resource_dir
from optimizer.site import FourCP

FIELDS = ["site", "year", "fourcp", "start", "end", "policy", "profit_usd", "value_capture", "fourcp_charge_usd",
          "restarts", "solves", "fallbacks", "forecast_substitutions", "wall_seconds", "highs_seconds"]


def run_one(site_name: str, year: int, fourcp: bool, forecast: str, quick: bool) -> list[dict]:
    site = optimizer.load_site(resource_dir("models") / f"{site_name}.toml")
    if not fourcp:
        site = dataclasses.replace(site, fourcp=FourCP())
    start, end = (dt.date(year, 6, 1), dt.date(year, 9, 30)) if fourcp else (dt.date(year, 1, 1),
                                                                           dt.date(year, 12, 31))
    if quick:
        start, end = (dt.date(year, 8, 1), dt.date(year, 8, 3))
    market = engine.Market.shipped(site.settlement_point)
    t0 = time.perf_counter()
    r = engine.run(site, start, end, market, engine.Settings(forecast_method=forecast))
    wall = time.perf_counter() - t0
    s = r.summary
    rows = []
    for p, v in s["policies"].items():
        rows.append({"site": site_name, "year": year, "fourcp": "on" if fourcp else "off", "start": str(start),
                     "end": str(end), "policy": p, "profit_usd": round(v["profit_usd"], 2),
                     "value_capture": (round(s["value_capture_by_policy"][p], 4)
                                       if p in s["value_capture_by_policy"] else ""),
                     "fourcp_charge_usd": round(v["fourcp_charge_usd"], 2), "restarts": v["restarts"],
                     "solves": v["solves"], "fallbacks": v["fallbacks"],
                     "forecast_substitutions": s["forecast_substitutions"], "wall_seconds": round(wall, 1),
                     "highs_seconds": round(s["solver_seconds"], 1)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/policies.csv"))
    ap.add_argument("--sites", default="west-texas-200,west-texas-200-strict,north-texas-mining,quebec-hydro-ai")
    ap.add_argument("--years", default="2021,2022,2023,2024")
    ap.add_argument("--fourcp", choices=("off", "on", "both"), default="both")
    ap.add_argument("--forecast", default="auto")
    ap.add_argument("--quick", action="store_true", help="3 days of one year: a smoke run")
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if args.out.exists():
        with args.out.open() as fh:
            done = {(r["site"], r["year"], r["fourcp"]) for r in csv.DictReader(fh)}
    years = [int(y) for y in args.years.split(",")]
    configs = [(s, y, f) for s in args.sites.split(",") for y in years
               for f in ((False, True) if args.fourcp == "both" else ((args.fourcp == "on"),))]
    for site_name, year, fourcp in configs:
        site = optimizer.load_site(resource_dir("models") / f"{site_name}.toml")
        if fourcp and not site.fourcp.active:
            continue                        # a site without 4CP: the energy-only run covers it
        if (site_name, str(year), "on" if fourcp else "off") in done:
            continue
        rows = run_one(site_name, year, fourcp, args.forecast, args.quick)
        new = not args.out.exists()
        with args.out.open("a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=FIELDS)
            if new:
                w.writeheader()
            w.writerows(rows)
        best = {r["policy"]: r["value_capture"] for r in rows}
        print(f"{site_name} {year} 4CP {'on' if fourcp else 'off'}: capture {best}; wall {rows[0]['wall_seconds']} s",
              flush=True)
    print(f"written {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
