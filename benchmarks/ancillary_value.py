"""What ancillary-service capacity is worth to the default site, per service and year, out of sample.

For each local year 2022-2024, the default site (west-texas-200: its two mining fleets are Controllable Load
Resources by default; the GPU cluster has no drop rate, so it offers nothing) is backtested

- without reserves (the baseline: the same site, the same forecasts, the same policy);
- with each ERCOT service alone, paid the hourly day-ahead clearing prices (MCPC, shipped): regup, rrs, nspin and,
  from its launch, ecrs;
- with all services it can sell the whole year together (regup, rrs, nspin; 2024 also ecrs);

each once without deployments and once under the conservative deployment assumption (``weekly-cheapest``: every
service deployed once a week, for its deployment duration, in the week's cheapest real-time hours).

Plans are made at 10:00 on D-1 and see only the clearing prices published by then (13:30 on D-1 for day D; the
hours of D and D+1 are planned with the median of the same hour over the last 7 published days); capacity is settled
at the actual MCPC, energy at the actual 15-minute real-time price (a load that drops for a deployment does not buy
that energy, or sells it back within its fixed-price block). Per row:

- ``capacity``: capacity revenue (USD), what the award earns where the load backs it;
- ``net``: profit with the service minus profit of the baseline over the same days (USD);
- ``energy given up``: capacity - net (USD): the margin lost to keep load on to back the award, to deployments and to
  the plan's changed dispatch.

Days: 2022 starts on 2022-01-02 (a plan for 2022-01-01 has no published clearing price: the shipped data starts
that day); ECRS 2023 covers 2023-06-11 .. 2023-12-31 (its first published day is 2023-06-10) and is compared with the
baseline's same days. Policy ``schedule`` (the D-1 plan followed, which backs its award) for every row; with
``--mpc``, the baseline and the all-services rows are also run with ``mpc`` (whose re-plans do not see the award).

Rows are appended to ``--csv`` as they finish (a rerun skips the rows already there), then the table is printed.

    python benchmarks/ancillary_value.py                          # 2022-2024, full years (about 1-2 h on 2 cores)
    python benchmarks/ancillary_value.py --years 2023 --months 7  # one month, to try it
    python benchmarks/ancillary_value.py --forecast-error         # how well unpublished hours are planned (seconds)
"""

from __future__ import annotations

import argparse
import calendar
import dataclasses
import datetime as dt
import json
import sys
import time
from pathlib import Path

import pandas as pd

import optimizer
from optimizer import ancillary
from optimizer.backtest import engine

SERVICES = ("regup", "rrs", "nspin", "ecrs")
RULES = ("none", "weekly-cheapest")


def period(year: int, months: list[int] | None, service: str | None) -> tuple[dt.date, dt.date] | None:
    """First and last day of a year's run (or of its sampled months); None when the service did not exist."""
    first, last = dt.date(year, 1, 1), dt.date(year, 12, 31)
    if months:
        first, last = dt.date(year, min(months), 1), dt.date(year, max(months),
                                                             calendar.monthrange(year, max(months))[1])
    first = max(first, dt.date(2022, 1, 2))                   # the first day with a published clearing price before it
    if service == "ecrs":
        first = max(first, dt.date(2023, 6, 11))
    return (first, last) if first <= last else None


def all_services(year: int) -> tuple[str, ...]:
    return ("regup", "rrs", "nspin", "ecrs") if year >= 2024 else ("regup", "rrs", "nspin")


def run_one(site, market, year, services, rule, policies, forecast, months) -> pd.DataFrame:
    """Daily profit and capacity revenue per policy of one configuration (rows: days)."""
    span = period(year, months, "ecrs" if services == ("ecrs",) else None)
    if span is None:
        return pd.DataFrame()
    s = dataclasses.replace(site, reserves=ancillary.parse_reserve_option(",".join(services)) if services else ())
    events = ancillary.assumed_deployments(s, market.actual, *span, rule) if services else ()
    settings = engine.Settings(forecast_method=forecast, policies=tuple(policies), deployments=events)
    t0 = time.perf_counter()
    r = engine.run(s, *span, market, settings)
    out = pd.DataFrame(index=r.days.index)
    for p in policies:
        out[f"{p}:profit_usd"] = r.days[f"{p}:profit_usd"]
        rev = r.intervals["reserve_revenue_usd"].sel(policy=p).to_series()
        local = rev.index.tz_localize("UTC").tz_convert(site.timezone).date
        out[f"{p}:capacity_usd"] = rev.groupby(local).sum().reindex(out.index).fillna(0.0).to_numpy()
    out.attrs["seconds"] = time.perf_counter() - t0
    out.attrs["events"] = len(events)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--years", default="2022,2023,2024")
    ap.add_argument("--months", default="", help="comma-separated months to sample (default: whole years)")
    ap.add_argument("--forecast", default="gbm")
    ap.add_argument("--mpc", action="store_true", help="also run mpc for the baseline and the all-services rows")
    ap.add_argument("--csv", type=Path, default=Path("benchmarks/results/ancillary_value.csv"))
    ap.add_argument("--report-only", action="store_true", help="print the table from --csv, run nothing")
    ap.add_argument("--forecast-error", action="store_true",
                    help="print the error of the plan prices of unpublished hours, run nothing else")
    a = ap.parse_args(argv)
    if a.forecast_error:
        print(markdown(forecast_error()))
        return 0
    years = [int(y) for y in a.years.split(",")]
    months = [int(m) for m in a.months.split(",") if m] or None
    if not a.report_only:
        site = optimizer.load_site(optimizer.default_site_path())
        market = engine.Market.shipped(site.settlement_point)
        a.csv.parent.mkdir(parents=True, exist_ok=True)
        done = pd.read_csv(a.csv) if a.csv.exists() else pd.DataFrame(columns=["key"])
        for year in years:
            configs = [("baseline", (), "none")]
            configs += [(svc, (svc,), rule) for svc in SERVICES for rule in RULES]
            configs += [("all", all_services(year), rule) for rule in RULES]
            for name, services, rule in configs:
                if name == "ecrs" and year < 2023:
                    continue
                big = name in ("baseline", "all") and a.mpc
                policies = ("schedule", "mpc") if big else ("schedule",)
                key = f"{year}|{name}|{rule}|{a.forecast}|{a.months}|{'+'.join(policies)}"
                if key in set(done["key"].astype(str)):
                    continue
                daily = run_one(site, market, year, services, rule, policies, a.forecast, months)
                if daily.empty:
                    continue
                rows = []
                for p in policies:
                    rows.append({"key": key, "year": year, "service": name, "services": "+".join(services),
                                 "deployments": rule, "policy": p, "forecast": a.forecast, "months": a.months,
                                 "first_day": str(daily.index[0]), "last_day": str(daily.index[-1]),
                                 "days": len(daily), "events": daily.attrs["events"],
                                 "seconds": round(daily.attrs["seconds"], 1),
                                 "capacity_usd": float(daily[f"{p}:capacity_usd"].sum()),
                                 "profit_usd": float(daily[f"{p}:profit_usd"].sum()),
                                 "daily_profit_json": json.dumps({str(d): float(v) for d, v
                                                                  in daily[f"{p}:profit_usd"].items()})})
                pd.DataFrame(rows).to_csv(a.csv, mode="a", header=not a.csv.exists(), index=False)
                done = pd.read_csv(a.csv)
                print(f"{year} {name:8} {rule:15} {'+'.join(policies):13} {daily.attrs['seconds']:6.1f} s",
                      file=sys.stderr, flush=True)
    print(markdown(table(pd.read_csv(a.csv), years, a.forecast, a.months)))
    return 0


def forecast_error() -> pd.DataFrame:
    """Mean absolute error (USD/MW-h) of the prices a 10:00 D-1 plan uses for day D's hours (none is published
    then), per service and local year: the rule curtail uses (median of the same hour over the latest 7 published
    days, :meth:`optimizer.ancillary.AsPrices.plan_prices`) and, for comparison, the latest published day's price of
    the same hour. Every day with a published day before it."""
    prices = ancillary.AsPrices.shipped()
    rows = []
    for svc in SERVICES:
        s = dataclasses.replace(optimizer.load_site(optimizer.default_site_path()),
                                reserves=ancillary.parse_reserve_option(svc))
        actual = prices.series(svc)
        days = sorted(set(actual.index.tz_convert(ancillary.AS_TIMEZONE).date))[1:]
        err = {"median of 7 days": [], "latest day": []}
        years = []
        for d in days:
            hours = optimizer.market.operating_hours(d, ancillary.AS_TIMEZONE)
            truth = actual.reindex(hours).to_numpy()
            plan = prices.plan_prices(s, hours, optimizer.market.decision_time_for(d, ancillary.AS_TIMEZONE))[svc]
            prev = actual.reindex(hours - pd.Timedelta(days=1)).to_numpy()     # same hour, the day before
            ok = ~pd.isna(truth) & ~pd.isna(prev)
            err["median of 7 days"].append(float(abs(plan - truth)[ok].mean()))
            err["latest day"].append(float(abs(prev - truth)[ok].mean()))
            years.append(d.year)
        frame = pd.DataFrame(err).assign(year=years)
        for (y, g) in frame.groupby("year"):
            rows.append({"service": svc, "year": y, "days": len(g),
                         "MAE median of 7 days": float(g["median of 7 days"].mean()),
                         "MAE latest day": float(g["latest day"].mean()),
                         "mean price": float(actual[actual.index.tz_convert(ancillary.AS_TIMEZONE).year == y].mean())})
    return pd.DataFrame(rows)


def markdown(t: pd.DataFrame) -> str:
    """A Markdown table, money as whole USD with thousands separators."""
    if t.empty:
        return "(no rows)"
    fmt = "{:,.2f}" if "MAE latest day" in t.columns else "{:,.0f}"
    cells = [[fmt.format(v + 0.0 if abs(v) >= 0.005 else 0.0) if isinstance(v, float) else str(v) for v in row]
             for row in t.itertuples(index=False)]
    lines = ["| " + " | ".join(map(str, t.columns)) + " |", "|" + "---|" * len(t.columns)]
    return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in cells])


def table(rows: pd.DataFrame, years: list[int], forecast: str, months: str) -> pd.DataFrame:
    """Per year, service, deployment rule and policy: capacity revenue, energy given up, net, all in USD, against the
    baseline's profit over the same days."""
    months = "" if pd.isna(months) else str(months)
    sampled = rows["months"].astype(object).where(rows["months"].notna(), "").astype(str)
    rows = rows[(rows["forecast"] == forecast) & (sampled == months) & rows["year"].isin(years)]
    rows = rows.drop_duplicates(["year", "service", "deployments", "policy"])   # a rerun with --mpc repeats schedule
    out = []
    for _, r in rows.iterrows():
        if r["service"] == "baseline":
            continue
        base = rows[(rows["year"] == r["year"]) & (rows["service"] == "baseline") & (rows["policy"] == r["policy"])]
        if base.empty:
            continue
        base_daily = json.loads(base.iloc[0]["daily_profit_json"])
        base_profit = float(sum(base_daily[d] for d in json.loads(r["daily_profit_json"])))
        net = float(r["profit_usd"]) - base_profit
        out.append({"year": r["year"], "service": r["service"] if r["service"] != "all" else f"all ({r['services']})",
                    "deployments": r["deployments"], "policy": r["policy"],
                    "days": f"{r['first_day']} .. {r['last_day']} ({r['days']})",
                    "capacity USD": float(r["capacity_usd"]), "energy given up USD": float(r["capacity_usd"]) - net,
                    "net USD": net, "baseline profit USD": base_profit})
    for _, b in rows[rows["service"] == "baseline"].iterrows():
        out.append({"year": b["year"], "service": "none (baseline)", "deployments": "-", "policy": b["policy"],
                    "days": f"{b['first_day']} .. {b['last_day']} ({b['days']})", "capacity USD": 0.0,
                    "energy given up USD": 0.0, "net USD": 0.0, "baseline profit USD": float(b["profit_usd"])})
    t = pd.DataFrame(out)
    if t.empty:
        return t
    order = {"regup": 0, "rrs": 1, "nspin": 2, "ecrs": 3}
    t["_o"] = [order.get(s, 5 if s.startswith("all") else 9) for s in t["service"]]
    return t.sort_values(["year", "policy", "_o", "deployments"]).drop(columns="_o")


if __name__ == "__main__":
    raise SystemExit(main())
