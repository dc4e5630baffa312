"""4CP value of each policy out of sample, summer by summer (issue 10's goal): the table of docs/backtest.md.

Run: python benchmarks/fourcp_value.py [--years 2022,2023,2024] [--out benchmarks/results/fourcp_value.csv]

For each summer (June-September, local) the default site (west-texas-200, HB_WEST, 4CP at the site's
100 USD/kW-year, settled on the shipped actual 4CP hours) is backtested twice with the same policies:
- ``plan``: plans price the expected 4CP charge (the default);
- ``no-plan``: ``Settings(fourcp_in_plan=False)``: the same policies ignore 4CP in their plans, and still pay it.

A policy's 4CP value is profit(plan) - profit(no-plan) = charge avoided - revenue given up, where charge avoided =
charge(no-plan) - charge(plan) and revenue given up = (profit + charge)(no-plan) - (profit + charge)(plan).
Capture = a policy's 4CP value / perfect's (perfect knows the actual peaks when it plans).

Out of sample: the 4CP model's parameters are fitted on summers before the one scored (data/fourcp_params.json,
walk-forward); the price forecasts are walk-forward. The strike rule never plans, so it has no 4CP value.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import sys
import time
from pathlib import Path

import optimizer
from optimizer.backtest import engine

POLICIES = ("mpc", "schedule", "schedule+strike", "perfect", "always-on")
FIELDS = ["year", "mode", "policy", "profit_usd", "fourcp_charge_usd", "wall_seconds"]


def run(year: int, plan: bool) -> list[dict]:
    site = optimizer.load_site(optimizer.default_site_path())
    market = engine.Market.shipped(site.settlement_point)
    settings = engine.Settings(policies=POLICIES, fourcp_in_plan=plan)
    t0 = time.perf_counter()
    r = engine.run(site, dt.date(year, 6, 1), dt.date(year, 9, 30), market, settings)
    wall = time.perf_counter() - t0
    return [{"year": year, "mode": "plan" if plan else "no-plan", "policy": p, "profit_usd": round(v["profit_usd"], 2),
             "fourcp_charge_usd": round(v["fourcp_charge_usd"], 2), "wall_seconds": round(wall, 1)}
            for p, v in r.summary["policies"].items()]


def table(rows: list[dict]) -> list[str]:
    by = {(int(r["year"]), r["mode"], r["policy"]): r for r in rows}
    out = ["| year | policy | charge (no plan) M$ | charge (plan) M$ | avoided M$ | given up M$ | 4CP value M$ | "
           "capture |", "|---|---|---|---|---|---|---|---|"]
    for year in sorted({k[0] for k in by}):
        def value(p: str, year: int = year) -> tuple[float, float, float]:
            a, b = by[(year, "no-plan", p)], by[(year, "plan", p)]
            avoided = float(a["fourcp_charge_usd"]) - float(b["fourcp_charge_usd"])
            given = ((float(a["profit_usd"]) + float(a["fourcp_charge_usd"]))
                     - (float(b["profit_usd"]) + float(b["fourcp_charge_usd"])))
            return avoided, given, avoided - given
        if (year, "plan", "perfect") not in by or (year, "no-plan", "perfect") not in by:
            continue
        best = value("perfect")[2]
        for p in POLICIES:
            if (year, "plan", p) not in by or (year, "no-plan", p) not in by or p == "always-on":
                continue
            avoided, given, net = value(p)
            out.append(f"| {year} | {p} | {float(by[(year, 'no-plan', p)]['fourcp_charge_usd']) / 1e6:.2f} | "
                       f"{float(by[(year, 'plan', p)]['fourcp_charge_usd']) / 1e6:.2f} | {avoided / 1e6:.2f} | "
                       f"{given / 1e6:.2f} | {net / 1e6:.2f} | {net / best:.3f} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--years", default="2022,2023,2024")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/fourcp_value.csv"))
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    if args.out.exists():
        with args.out.open() as fh:
            rows = list(csv.DictReader(fh))
    done = {(int(r["year"]), r["mode"]) for r in rows}
    for year in (int(y) for y in args.years.split(",")):
        for plan in (True, False):
            if (year, "plan" if plan else "no-plan") in done:
                continue
            new = run(year, plan)
            rows += new
            fresh = not args.out.exists()
            with args.out.open("a", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=FIELDS)
                if fresh:
                    w.writeheader()
                w.writerows(new)
            print(f"{year} {'plan' if plan else 'no-plan'}: wall {new[0]['wall_seconds']} s", flush=True)
    print("\n".join(table(rows)))
    print(f"written {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
