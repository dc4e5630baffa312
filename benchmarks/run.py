"""The benchmark suite: prints figures and ratios, asserts nothing (CI runs it once with --quick so it cannot rot).

Run: python benchmarks/run.py            (full: ~15-20 min on a 2-core machine)
     python benchmarks/run.py --quick    (every benchmark once, on small sizes: ~1-2 min)
     python benchmarks/run.py --only lp  (one of: schedule, backtest, lp, year, sweep)

1. schedule  one default schedule: build, translate, solve, read back; median and p95 over repeats
2. backtest  a whole year's `curtail backtest` command, start to exit: wall, time inside HiGHS, their ratio
3. lp        HiGHS time per 48-hour day (MILP) against the LP relaxation of the same model, over many days
4. year      one 8,760-hour solve of the default site: time and peak memory (in a child process)
5. sweep     the same scenarios on 1 and 2 Dask workers: speed-up
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyomo.environ as pyo

import optimizer
from optimizer import model
from optimizer.planner import Planner
from optimizer.scheduling import horizon_prices
from optimizer.solve import Solver
from optimizer.state import resolve


def bench_schedule(quick: bool) -> None:
    repeats = 3 if quick else 30
    site = optimizer.load_site(optimizer.default_site_path())
    optimizer.schedule(site, day="2022-07-20")
    keys = ("build_seconds", "translate_seconds", "solve_seconds", "highs_seconds", "read_seconds", "total_seconds")
    a = np.array([[optimizer.summary(optimizer.schedule(site, day="2022-07-20"))[k] for k in keys]
                  for _ in range(repeats)]) * 1e3
    print(f"\n[schedule] default site, 2022-07-20, 48-hour model, {repeats} repeats (ms)")
    for k, col in zip(keys, a.T, strict=True):
        print(f"  {k:18} median {np.median(col):8.2f}   p95 {np.percentile(col, 95):8.2f}")
    med = np.median(a, axis=0)
    print(f"  ratio total / HiGHS {med[5] / med[3]:.2f}")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "optimizer.cli", "schedule"], check=True, capture_output=True)
    print(f"  `curtail schedule` process, start to exit: {time.perf_counter() - t0:.2f} s")


def bench_backtest(quick: bool) -> None:
    start, end = ("2022-07-18", "2022-07-24") if quick else ("2022-01-01", "2022-12-31")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "optimizer.cli", "backtest", "--start", start, "--end", end,
                        "--quiet", "--out", tmp], check=True, capture_output=True)
        wall = time.perf_counter() - t0
        s = json.loads((Path(tmp) / "summary.json").read_text())
    print(f"\n[backtest] default site HB_WEST {start}..{end}, forecast {s['forecast_method']}, {s['days']} days")
    print(f"  command wall {wall:.1f} s (run loop {s['wall_seconds']:.1f} s), inside HiGHS {s['solver_seconds']:.1f} s")
    print(f"  ratio command wall / HiGHS {wall / s['solver_seconds']:.2f} (target <= 1.3); "
          f"run loop / HiGHS {s['wall_seconds'] / s['solver_seconds']:.2f}")


def bench_lp(quick: bool) -> None:
    site = optimizer.load_site(optimizer.default_site_path())
    days = [dt.date(2022, 1, 1) + dt.timedelta(days=7 * k) for k in range(4 if quick else 52)]
    milp, lp = [], []
    for day in days:
        prices = horizon_prices(site, day, None, 24).prices
        hp, _ = optimizer.data.hashprice_known_on(day)
        for relax, out in ((False, milp), (True, lp)):
            m = model.build(site, len(prices))
            model.set_data(m, site, model.Inputs(prices.to_numpy(), hp, resolve(site, None)))
            if relax:
                pyo.TransformationFactory("core.relax_integer_vars").apply_to(m)
            out.append(Solver(m).solve().highs_seconds * 1e3)
    milp, lp = np.array(milp), np.array(lp)
    print(f"\n[lp] HiGHS time per 48-hour day, default site, {len(days)} days of 2022 (ms)")
    print(f"  MILP median {np.median(milp):.2f} p95 {np.percentile(milp, 95):.2f}; "
          f"LP relaxation median {np.median(lp):.2f} p95 {np.percentile(lp, 95):.2f}")
    print(f"  ratio MILP / LP: median of per-day ratios {np.median(milp / lp):.2f}, of totals "
          f"{milp.sum() / lp.sum():.2f} (target <= 5)")


def _year_child(hours: int) -> None:
    site = optimizer.load_site(optimizer.default_site_path())
    prices = optimizer.ercot_prices("HB_WEST", "rt")["2022-01-01 06:00":].iloc[:hours]
    t0 = time.perf_counter()
    ds = Planner(site).solve(prices, 75.0)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"hours": hours, "wall_s": wall, "highs_s": ds.attrs["highs_seconds"],
                      "build_s": ds.attrs["build_seconds"], "translate_s": ds.attrs["translate_seconds"],
                      "peak_mb": peak, "status": ds.attrs["status"], "gap": ds.attrs["mip_gap"]}))


def bench_year(quick: bool) -> None:
    hours = 720 if quick else 8760
    out = subprocess.run([sys.executable, __file__, "--year-child", str(hours)], check=True, capture_output=True,
                         text=True).stdout.strip().splitlines()[-1]
    r = json.loads(out)
    print(f"\n[year] one {r['hours']}-hour solve of the default site (HB_WEST real-time 2022, hashprice 75)")
    print(f"  wall {r['wall_s']:.1f} s: build {r['build_s']:.1f} s, translate {r['translate_s']:.1f} s, "
          f"HiGHS {r['highs_s']:.1f} s; status {r['status']}, gap {r['gap']:.2g}")
    print(f"  peak memory {r['peak_mb']:.0f} MB (target < 2048 MB)")


def bench_sweep(quick: bool) -> None:
    from optimizer import sweep as sw

    period = "2022-07-18:2022-07-19" if quick else "2022-07-01:2022-07-14"
    scen = sw.grid([optimizer.default_site_path()], [40.0, 55.0, 70.0, 85.0], [period], ["naive"])
    times = {}
    for workers in (1, 2):
        t0 = time.perf_counter()
        sw.sweep(scen, workers=workers)
        times[workers] = time.perf_counter() - t0
    print(f"\n[sweep] {len(scen)} scenarios ({period}) on a LocalCluster: 1 worker {times[1]:.1f} s, "
          f"2 workers {times[2]:.1f} s; speed-up {times[1] / times[2]:.2f} (target >= 1.8)")


BENCHES = {"schedule": bench_schedule, "backtest": bench_backtest, "lp": bench_lp, "year": bench_year,
           "sweep": bench_sweep}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=sorted(BENCHES))
    ap.add_argument("--year-child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.year_child:
        _year_child(args.year_child)
        return
    print(f"curtail benchmarks ({'quick' if args.quick else 'full'}); machine: {resource.getpagesize()} B pages")
    for name, fn in BENCHES.items():
        if args.only in (None, name):
            fn(args.quick)


if __name__ == "__main__":
    main()
