"""The benchmark suite of issue 11: prints every figure and ratio of its target table in one run; asserts nothing
(CI runs it once with --quick so it cannot rot).

Run: python benchmarks/run.py            (full: about 30-40 min on a 2-core machine with nothing else running)
     python benchmarks/run.py --quick    (every benchmark once, on small sizes, untimed for CI: about 2 min)
     python benchmarks/run.py --only rolling,start   (a subset; names below)

start     ``curtail --help`` and ``curtail schedule`` process wall (median of 5), the heavy modules each imports,
          and the first 4CP peak-probability call of a process (it fits or loads the peak model) against the next
schedule  one default schedule in this process: build, translate, solve, read back; median and p95 over repeats
rolling   30 rolling 48-hour days (2023-07, default site at hourly resolution, 4CP on, state carried from day to
          day): curtail's Planner (HighsSolver) against the hand-written direct-highspy model
          (``benchmarks/direct_highs.py``, rebuilt each day) and against the Pyomo persistent reference
          (PyomoSolver); every day's objectives must agree (largest differences printed)
backtest  a year of ``curtail backtest`` as a command, start to exit, against the time inside HiGHS: 2024 with
          ``--forecast naive``, and 2022 with the default forecast (gbm: its refits counted and timed in a
          library run of the same year)
mpc       a year of the hourly ``mpc`` policy alone (``optimizer.backtest.run(..., Settings(policies=("mpc",),
          forecast_method="naive"))``): wall against HiGHS
year      one 8,760-hour solve of the default site in a child process: time and peak memory
lp        HiGHS time per 48-hour day, MILP against the LP relaxation of the same model
sweep     >= 8 one-month scenarios on a Dask LocalCluster with 1 and with 2 workers: speed-up

The last lines print the issue's target table with every measured ratio. The machine is shared: the load average
at the start and end is printed with the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

FIGURES: dict[str, object] = {}       # name -> value, for the closing table


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def _wall(cmd: list[str], repeats: int, env: dict[str, str] | None = None) -> tuple[float, list[float]]:
    """Median process wall of ``cmd`` (seconds) over ``repeats`` runs, and all of them."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


HEAVY = ("pandas", "pyomo", "xarray", "highspy", "dask", "dask.array", "distributed", "scipy", "scipy.stats",
         "sklearn", "matplotlib", "netCDF4")


def _imports_of(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    return out.strip().splitlines()[-1].split() if out.strip() else []


# ----------------------------------------------------------------------------------------------------------------


def _compiled_copy(tmp: str) -> dict[str, str]:
    """The package copied to ``tmp`` with its bytecode compiled, as ``pip install .`` leaves it (this checkout may
    have no ``__pycache__``: with PYTHONDONTWRITEBYTECODE set every start compiles the package's sources); the
    environment that runs it."""
    import compileall
    import shutil

    import optimizer

    root = Path(optimizer.__file__).resolve().parent
    shutil.copytree(root, Path(tmp) / "optimizer", ignore=shutil.ignore_patterns("__pycache__"))
    for shipped in ("data", "models"):
        (Path(tmp) / shipped).symlink_to(root.parent / shipped)
    compileall.compile_dir(str(Path(tmp) / "optimizer"), quiet=1)
    return {**os.environ, "PYTHONPATH": tmp}


def bench_start(quick: bool) -> None:
    repeats = 1 if quick else 5
    cli = [sys.executable, "-m", "optimizer.cli"]
    help_src, _ = _wall([*cli, "--help"], repeats)
    sched_src, _ = _wall([*cli, "schedule"], repeats)
    with tempfile.TemporaryDirectory() as tmp:
        env = _compiled_copy(tmp)
        help_s, _ = _wall([*cli, "--help"], repeats, env)
        sched_s, _ = _wall([*cli, "schedule"], repeats, env)
    FIGURES["help_s"], FIGURES["schedule_s"] = help_s, sched_s
    print(f"\n[start] process wall, median of {repeats}, package with compiled bytecode as installed (this checkout "
          f"without bytecode in brackets) ({_load()})")
    print(f"  curtail --help     {help_s:6.2f} s ({help_src:.2f} s)   imports: "
          f"{' '.join(_imports_of('import optimizer.cli'))}")
    run_schedule = ("import contextlib, io\nfrom optimizer.cli import app\n"
                    "with contextlib.redirect_stdout(io.StringIO()):\n    try:\n        app(['schedule'])\n"
                    "    except SystemExit:\n        pass")
    print(f"  curtail schedule   {sched_s:6.2f} s ({sched_src:.2f} s)   imports: {' '.join(_imports_of(run_schedule))}")
    print(f"  import optimizer   imports: {' '.join(_imports_of('import optimizer')) or '(none of them)'}")
    out = subprocess.run([sys.executable, __file__, "--fourcp-child"], check=True, capture_output=True,
                         text=True).stdout.strip().splitlines()[-1]
    r = json.loads(out)
    FIGURES["fourcp_first_s"] = r["first_s"]
    print(f"  4CP peak probabilities: the first call of a process {r['first_s']:.2f} s, the next "
          f"{r['next_s'] * 1e3:.1f} ms (shipped load read before: {r['history_s']:.2f} s); fitting the peak model "
          f"itself (through 2022{', no cache' if r['fresh'] else ''}) {r['fit_s']:.2f} s")


def _fourcp_child() -> None:
    import inspect

    from optimizer import fourcp
    from optimizer.forecast import MarketHistory
    from optimizer.market import decision_time_for, horizon_for

    t0 = time.perf_counter()
    history = MarketHistory.shipped("HB_HUBAVG")
    history_s = time.perf_counter() - t0
    timings = []
    for day in (dt.date(2023, 7, 20), dt.date(2023, 7, 21)):
        t0 = time.perf_counter()
        fourcp.peak_probability(history, decision_time_for(day, "America/Chicago"),
                                horizon_for(day, "America/Chicago", 24))
        timings.append(time.perf_counter() - t0)
    fresh = {"cache": False} if "cache" in inspect.signature(fourcp.fit_params).parameters else {}
    t0 = time.perf_counter()
    fourcp.fit_params(history, 2022, **fresh)
    fit_s = time.perf_counter() - t0
    print(json.dumps({"first_s": timings[0], "next_s": timings[1], "history_s": history_s, "fit_s": fit_s,
                      "fresh": bool(fresh)}))


def bench_schedule(quick: bool) -> None:
    import optimizer

    repeats = 3 if quick else 30
    site = optimizer.load_site(optimizer.default_site_path())
    optimizer.schedule(site, day="2022-07-20")
    keys = ("build_seconds", "translate_seconds", "solve_seconds", "highs_seconds", "read_seconds", "total_seconds")
    a = np.array([[optimizer.summary(optimizer.schedule(site, day="2022-07-20"))[k] for k in keys]
                  for _ in range(repeats)]) * 1e3
    print(f"\n[schedule] default site, 2022-07-20, 48-hour model, {repeats} repeats in one process (ms)")
    for k, col in zip(keys, a.T, strict=True):
        print(f"  {k:18} median {np.median(col):8.2f}   p95 {np.percentile(col, 95):8.2f}")
    med = np.median(a, axis=0)
    print(f"  (total includes the day's inputs, 4CP probabilities, settlement and the independent checker) "
          f"ratio total / HiGHS {med[5] / med[3]:.2f}")


# ----------------------------------------------------------------------------------------------------------------


def bench_rolling(quick: bool) -> None:
    import direct_highs

    import optimizer
    from optimizer.planner import Planner
    from optimizer.scheduling import DayRequest, day_inputs
    from optimizer.solve import PyomoSolver, SolverOptions
    from optimizer.state import state_from_schedule

    n_days = 3 if quick else 30
    site = optimizer.load_site(optimizer.default_site_path())
    options = SolverOptions()
    days = [dt.date(2023, 7, 1) + dt.timedelta(days=k) for k in range(n_days)]
    day_inputs(site, DayRequest(days[0]))                 # the 4CP model's first call is timed under [start]
    curtail, reference = Planner(site, options), Planner(site, options, solver_factory=PyomoSolver)
    highs = direct_highs.new_highs(options)
    rows = []
    state = None
    for day in days:
        inputs, _ = day_inputs(site, DayRequest(day, initial_state=state))
        t0 = time.perf_counter()
        plan = curtail.plan(inputs.replace())
        c_wall = time.perf_counter() - t0
        t0 = time.perf_counter()
        direct = direct_highs.solve(site, inputs.replace(), options, highs)
        d_wall = time.perf_counter() - t0
        t0 = time.perf_counter()
        ref = reference.plan(inputs.replace())
        p_wall = time.perf_counter() - t0
        rows.append((c_wall, plan.report.highs_seconds, d_wall, direct.highs_seconds, p_wall,
                     ref.report.highs_seconds, plan.report.objective_usd, direct.objective_usd,
                     ref.report.objective_usd, plan.build_seconds + plan.translate_seconds))
        hours = len(optimizer.operating_hours(day, site.timezone))
        state = state_from_schedule(site, optimizer.to_frame(plan.dataset(site)).iloc[:hours])
    a = np.array(rows, dtype=float)
    c_wall, c_highs, d_wall, d_highs, p_wall, p_highs, c_obj, d_obj, p_obj, first = a.T
    FIGURES["rolling_ratio"] = c_wall.sum() / d_wall.sum()
    FIGURES["rolling_ratio_steady"] = c_wall[1:].sum() / d_wall[1:].sum() if n_days > 1 else float("nan")
    FIGURES["pyomo_ratio"] = np.median(p_wall) / np.median(c_wall)
    print(f"\n[rolling] {n_days} rolling 48-hour days from {days[0]}, default site (4CP on), state carried "
          f"({_load()})")
    print(f"  curtail Planner (HighsSolver): wall {c_wall.sum():6.2f} s, HiGHS {c_highs.sum():6.2f} s, ratio "
          f"{c_wall.sum() / c_highs.sum():.2f}; first day {c_wall[0] * 1e3:.0f} ms (build + matrix form "
          f"{first[0] * 1e3:.0f} ms), then median {np.median(c_wall[1:]) * 1e3 if n_days > 1 else 0:.1f} ms/day")
    print(f"  direct highspy (rebuilt daily): wall {d_wall.sum():6.2f} s, HiGHS {d_highs.sum():6.2f} s, ratio "
          f"{d_wall.sum() / d_highs.sum():.2f}; median {np.median(d_wall) * 1e3:.1f} ms/day")
    print(f"  curtail wall / direct wall: {c_wall.sum() / d_wall.sum():.2f} over all days (target <= 1.3), "
          f"{FIGURES['rolling_ratio_steady']:.2f} without the first day's build")
    print(f"  objectives, curtail vs direct: largest difference {np.abs(c_obj - d_obj).max():.3g} USD "
          f"({np.max(np.abs(c_obj - d_obj) / np.abs(d_obj)):.2g} relative) over {n_days} days")
    print(f"  PyomoSolver (reference) per solve: median {np.median(p_wall) * 1e3:.1f} ms (HiGHS "
          f"{np.median(p_highs) * 1e3:.1f} ms) vs HighsSolver {np.median(c_wall) * 1e3:.1f} ms (HiGHS "
          f"{np.median(c_highs) * 1e3:.1f} ms): {np.median(p_wall) / np.median(c_wall):.2f}x; objectives: largest "
          f"difference {np.abs(c_obj - p_obj).max():.3g} USD")


# ----------------------------------------------------------------------------------------------------------------


def _backtest_cli(start: str, end: str, forecast: str | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "optimizer.cli", "backtest", "--start", start, "--end", end, "--quiet",
               "--out", tmp]
        if forecast:
            cmd += ["--forecast", forecast]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        wall = time.perf_counter() - t0
        s = json.loads((Path(tmp) / "summary.json").read_text())
    return {"wall": wall, "loop": s["wall_seconds"], "highs": s["solver_seconds"], "days": s["days"],
            "method": s["forecast_method"], "solves": sum(p["solves"] for p in s["policies"].values())}


def _gbm_refits(start: dt.date, end: dt.date) -> tuple[int, float]:
    """(refits, seconds in them) of the default forecaster over a backtest of the days, counted in this process
    by timing every ``Forecaster._fit`` of a library run of only the forecasts (each day's 10:00 D-1 decision)."""
    from optimizer import forecast
    from optimizer.backtest import Market
    from optimizer.market import decision_time_for, horizon_for

    market = Market.shipped("HB_WEST")
    fc = forecast.Forecaster("gbm", market.history)
    spent = [0.0]
    real = fc._fit

    def timed(*a, **kw):
        t0 = time.perf_counter()
        real(*a, **kw)
        spent[0] += time.perf_counter() - t0

    fc._fit = timed
    day = start
    while day <= end:
        fc.predict(decision_time_for(day, "America/Chicago"), horizon_for(day, "America/Chicago", 24))
        day += dt.timedelta(days=1)
    return fc.fit_count, spent[0]


def bench_backtest(quick: bool) -> None:
    runs = (("2024-07-01", "2024-07-02", "naive", 2024), ("2022-07-01", "2022-07-02", None, 2022)) if quick else \
        (("2024-01-01", "2024-12-31", "naive", 2024), ("2022-01-01", "2022-12-31", None, 2022))
    print(f"\n[backtest] `curtail backtest` as a command, default site, every default policy ({_load()})")
    for start, end, fc, year in runs:
        r = _backtest_cli(start, end, fc)
        FIGURES[f"backtest_{year}"] = r["wall"] / r["highs"]
        print(f"  {start}..{end} forecast {r['method']}: {r['days']} days, {r['solves']} solves; command wall "
              f"{r['wall']:.1f} s (run loop {r['loop']:.1f} s), inside HiGHS {r['highs']:.1f} s: ratio "
              f"{r['wall'] / r['highs']:.2f} (run loop / HiGHS {r['loop'] / r['highs']:.2f})")
        if fc is None:
            n, secs = _gbm_refits(dt.date.fromisoformat(start), dt.date.fromisoformat(end))
            FIGURES["gbm_refits"] = (n, secs)
            print(f"    its gbm forecaster: {n} fits, {secs:.1f} s (measured in a forecasts-only run of the same "
                  f"days: {secs / r['wall'] * 100:.0f}% of the command's wall)")


def bench_mpc(quick: bool) -> None:
    import optimizer
    from optimizer.backtest import Market, Settings, run

    site = optimizer.load_site(optimizer.default_site_path())
    start, end = (dt.date(2024, 7, 1), dt.date(2024, 7, 2)) if quick else (dt.date(2024, 1, 1), dt.date(2024, 12, 31))
    market = Market.shipped(site.settlement_point)
    t0 = time.perf_counter()
    r = run(site, start, end, market, Settings(policies=("mpc",), forecast_method="naive"))
    wall = time.perf_counter() - t0
    s = r.summary
    FIGURES["mpc"] = wall / s["solver_seconds"]
    print(f"\n[mpc] hourly mpc alone, {start}..{end}, default site, naive D-1 forecast ({_load()})")
    print(f"  {s['policies']['mpc']['solves']} solves: wall {wall:.1f} s, inside HiGHS {s['solver_seconds']:.1f} s: "
          f"ratio {wall / s['solver_seconds']:.2f} (target <= 1.5); {s['policies']['mpc']['fallbacks']} fallbacks")


def _year_child(hours: int) -> None:
    import optimizer
    from optimizer.inputs import Inputs
    from optimizer.planner import Planner

    site = optimizer.load_site(optimizer.default_site_path())
    prices = optimizer.ercot_prices("HB_WEST", "rt")["2022-01-01 06:00":].iloc[:hours]
    t0 = time.perf_counter()
    plan = Planner(site).plan(Inputs(prices, 75.0))
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"hours": hours, "wall_s": wall, "highs_s": plan.report.highs_seconds,
                      "build_s": plan.build_seconds, "translate_s": plan.translate_seconds,
                      "read_s": plan.read_seconds, "peak_mb": peak, "status": plan.status,
                      "gap": plan.report.mip_gap}))


def bench_year(quick: bool) -> None:
    hours = 720 if quick else 8760
    run = subprocess.run([sys.executable, __file__, "--year-child", str(hours)], capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"the {hours}-hour solve failed: {run.stderr.strip().splitlines()[-1]}")
    r = json.loads(run.stdout.strip().splitlines()[-1])
    FIGURES["year_mb"], FIGURES["year_s"] = r["peak_mb"], r["wall_s"]
    print(f"\n[year] one {r['hours']}-hour solve of the default site in a child process (HB_WEST real-time 2022, "
          f"hashprice 75, no 4CP probabilities) ({_load()})")
    print(f"  wall {r['wall_s']:.1f} s: build {r['build_s']:.1f} s, matrix form {r['translate_s']:.1f} s, HiGHS "
          f"{r['highs_s']:.1f} s, read {r['read_s']:.2f} s; status {r['status']}, gap {r['gap']:.2g}")
    print(f"  peak memory (max RSS of the process, imports included) {r['peak_mb']:.0f} MB (target < 1024 MB)")


def bench_lp(quick: bool) -> None:
    import pyomo.environ as pyo

    import optimizer
    from optimizer import model
    from optimizer.inputs import Inputs
    from optimizer.market import decision_time_for
    from optimizer.scheduling import horizon_prices
    from optimizer.solve import HighsSolver

    site = optimizer.load_site(optimizer.default_site_path())
    days = [dt.date(2022, 1, 1) + dt.timedelta(days=7 * k) for k in range(4 if quick else 52)]
    milp, lp = [], []
    for day in days:
        inputs = Inputs(horizon_prices(site, day, None, 24).prices, optimizer.data.hashprice_known_at(
            decision_time_for(day))[0])
        for relax, out in ((False, milp), (True, lp)):
            m = model.build(site, model.Structure.of(site, inputs))
            if relax:
                pyo.TransformationFactory("core.relax_integer_vars").apply_to(m)
            out.append(HighsSolver(m).solve(model.param_values(m, site, inputs)).highs_seconds * 1e3)
    milp, lp = np.array(milp), np.array(lp)
    print(f"\n[lp] HiGHS time per 48-hour day, default site without 4CP probabilities, {len(days)} days of 2022 (ms)")
    print(f"  MILP median {np.median(milp):.2f} p95 {np.percentile(milp, 95):.2f}; "
          f"LP relaxation median {np.median(lp):.2f} p95 {np.percentile(lp, 95):.2f}")
    print(f"  ratio MILP / LP: median of per-day ratios {np.median(milp / lp):.2f}, of totals "
          f"{milp.sum() / lp.sum():.2f} (target <= 5)")


def bench_sweep(quick: bool) -> None:
    import optimizer
    from optimizer import sweep as sw

    if quick:
        periods, levels = ["2022-07-18:2022-07-18", "2022-07-19:2022-07-19"], [40.0, 80.0]
    else:
        periods = [f"2022-{m:02d}-01:2022-{m:02d}-{d}" for m, d in ((1, 31), (2, 28), (3, 31), (4, 30))]
        levels = [40.0, 80.0]
    scen = sw.grid([optimizer.default_site_path()], levels, periods, ["naive"])
    print(f"\n[sweep] {len(scen)} scenarios ({len(periods)} periods x {len(levels)} hashprices, naive, every default "
          f"policy) on a LocalCluster made for the sweep ({_load()})")
    times, warm, cpu_end = {}, {}, {}
    for workers in (1, 2):
        t0 = time.perf_counter()
        ds = sw.sweep(scen, workers=workers)
        times[workers] = time.perf_counter() - t0
        start = ds["start_seconds"].to_numpy()
        busy = ds["wall_seconds"].to_numpy()
        ends = {w: float((start + busy)[ds["worker"].to_numpy() == w].max()) for w in set(ds["worker"].values)}
        warm[workers] = max(ends.values()) - start.min()
        cpu = ds["cpu_seconds"].to_numpy()
        per = {w: float(cpu[ds["worker"].to_numpy() == w].sum()) for w in set(ds["worker"].values)}
        cpu_end[workers] = start.min() + max(per.values())
        print(f"  {workers} worker(s): wall {times[workers]:.1f} s = start-up (cluster, warm-up) {start.min():.1f} s "
              f"+ scenarios {warm[workers]:.1f} s (busy {busy.sum():.1f} s; workers end at "
              f"{', '.join(f'{e:.1f}' for e in sorted(ends.values()))} s) + close "
              f"{times[workers] - max(ends.values()):.1f} s; CPU {cpu.sum():.1f} s")
    FIGURES["sweep"] = times[1] / times[2]
    print(f"  CPU seconds per worker (2 workers): {', '.join(f'{v:.1f}' for v in sorted(per.values()))}; on two free "
          f"cores the sweep would end when the busier worker's CPU work does: estimated speed-up "
          f"{cpu_end[1] / cpu_end[2]:.2f} (start-up + CPU work of the busiest worker, 1 vs 2 workers; an estimate, "
          f"not a measurement)")
    print(f"  speed-up {times[1] / times[2]:.2f} (target >= 1.8); with the workers already warm (start-up left out, "
          f"as for a Pool kept across sweeps) {warm[1] / warm[2]:.2f} ({_load()})")


def bench_studies(quick: bool) -> None:
    """The study scripts behind docs/backtest.md's tables (policies, 4CP value, AI flexibility, bidding) are long
    runs on their own; --quick runs each once on a few days into a scratch folder so that they cannot rot."""
    if not quick:
        print("\nstudies: run on their own (docs/backtest.md names each command); skipped here")
        return
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        runs = [["policies.py", "--quick", "--sites", "west-texas-200", "--years", "2024", "--fourcp", "on",
                 "--out", f"{tmp}/policies.csv"],
                ["flexibility.py", "--quick", "--years", "2024", "--variants", "all", "--out", f"{tmp}/flex.csv"],
                ["bid_value.py", "--quick"]]
        for args in runs:
            t0 = time.perf_counter()
            done = subprocess.run([sys.executable, str(HERE / args[0]), *args[1:]], capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"benchmarks/{args[0]} --quick failed (exit {done.returncode}):\n{done.stderr}")
            print(f"\nstudy {args[0]} --quick: ok in {time.perf_counter() - t0:.0f} s")


BENCHES = {"start": bench_start, "schedule": bench_schedule, "rolling": bench_rolling, "backtest": bench_backtest,
           "mpc": bench_mpc, "year": bench_year, "lp": bench_lp, "sweep": bench_sweep,
           "studies": bench_studies}


def _table(quick: bool) -> None:
    f = FIGURES

    def get(key: str, fmt: str) -> str:
        v = f.get(key)
        return "-" if v is None else fmt.format(v)

    rows = [
        ("year backtest wall / HiGHS, --forecast naive (2024)", get("backtest_2024", "{:.2f}"), "<= 1.3"),
        ("year backtest wall / HiGHS, default forecast (2022)", get("backtest_2022", "{:.2f}"), "<= 1.5"),
        ("rolling 30 days: curtail wall / direct-highspy wall", get("rolling_ratio", "{:.2f}"), "<= 1.3"),
        ("year of hourly mpc wall / HiGHS", get("mpc", "{:.2f}"), "<= 1.5"),
        ("curtail --help / curtail schedule process wall",
         f"{get('help_s', '{:.2f} s')} / {get('schedule_s', '{:.2f} s')}", "<= 0.5 s / <= 1.0 s"),
        ("Dask 2 workers vs 1, >= 8 one-month scenarios", get("sweep", "{:.2f}"), ">= 1.8"),
        ("8,760-hour single solve peak memory", get("year_mb", "{:.0f} MB"), "< 1 GB"),
        ("PyomoSolver / HighsSolver wall per solve (30 days)", get("pyomo_ratio", "{:.2f}"), "-"),
        ("first 4CP call of a process (reported apart)", get("fourcp_first_s", "{:.2f} s"), "-"),
    ]
    if quick:
        print("\n(--quick: small sizes, so these are not the target's figures; run without --quick for them)")
    print("\n| what | measured | target |\n|---|---|---|")
    for what, measured, target in rows:
        print(f"| {what} | {measured} | {target} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", help="comma-separated subset of: " + ", ".join(BENCHES))
    ap.add_argument("--year-child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--fourcp-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.year_child:
        _year_child(args.year_child)
        return
    if args.fourcp_child:
        _fourcp_child()
        return
    chosen = [b.strip() for b in args.only.split(",")] if args.only else list(BENCHES)
    unknown = sorted(set(chosen) - set(BENCHES))
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(unknown)}; one of {', '.join(BENCHES)}")
    from importlib.metadata import version

    print(f"curtail benchmarks ({'quick, untimed' if args.quick else 'full'}): {os.cpu_count()} CPUs, Python "
          f"{sys.version.split()[0]}, highspy {version('highspy')}, Pyomo {version('pyomo')}; {_load()}")
    t0 = time.perf_counter()
    for name in BENCHES:
        if name in chosen:
            BENCHES[name](args.quick)
    _table(args.quick)
    print(f"\n{time.perf_counter() - t0:.0f} s in all; {_load()}")


if __name__ == "__main__":
    main()
