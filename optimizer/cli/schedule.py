"""``curtail schedule``: one operating day's schedule, checked, written atomically, summarised on the terminal.

Made for an unattended nightly run: bad input exits 2 and writes nothing; a schedule is written only after the
independent checker passes; the output file is locked for the run and replaced atomically, so a failure or a
kill leaves the previous good file intact. Exit codes: see :mod:`optimizer.errors`.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated

import typer

from optimizer.defaults import DEFAULT_DAY
from optimizer.errors import FALLBACK_EXIT_CODE, CurtailError, InputError


def schedule(
    site: Annotated[Path | None, typer.Option(help="Site model (TOML). Default: the embedded west-texas-200.")] = None,
    day: Annotated[str | None, typer.Option(help="Operating day, YYYY-MM-DD in the site's time zone, or "
                                            f"'today' / 'tomorrow'. Default: {DEFAULT_DAY}.")] = None,
    prices: Annotated[Path | None, typer.Option(help="Price file (CSV/Parquet: timestamp, price_usd_per_mwh). "
                                                "Default: shipped ERCOT day-ahead, else real-time.")] = None,
    hashprice: Annotated[float | None, typer.Option(help="USD per PH/s per day for the whole run. Default: "
                                                    "the latest shipped value before the day.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output file; format by suffix: .csv .parquet .json .nc")] = None,
    export_model: Annotated[Path | None, typer.Option(help="Also write the model as .mps or .lp.")] = None,
    initial_state: Annotated[Path | None, typer.Option(
        help="Previous day's schedule (.csv/.parquet/.json/.nc; must end where this day starts) or a state file "
             "(.json). Default: all on at full power.")] = None,
    lookahead_hours: Annotated[int, typer.Option(help="Hours after the day the model sees.")] = 24,
    time_limit: Annotated[float, typer.Option(help="Solver time limit, seconds.")] = 60.0,
    mip_gap: Annotated[float, typer.Option(help="Relative MIP gap at which the solver may stop.")] = 1e-6,
    accept_gap: Annotated[float, typer.Option(help="Largest gap of a solution kept when the time limit is hit; "
                                              "worse: strike-rule fallback, exit 5.")] = 0.01,
    threads: Annotated[int, typer.Option(help="Solver threads.")] = 1,
    allow_sla_breach: Annotated[bool, typer.Option(help="Let committed GPU load fall short, priced with the "
                                                   "cluster's SLA credit tiers, instead of failing.")] = False,
    emergency: Annotated[Path | None, typer.Option(help="Emergency curtailment events (CSV: start, end, "
                                                   "max_load_mw or shed_mw), honoured as hard limits.")] = None,
    json_summary: Annotated[bool, typer.Option("--json", help="Print the summary as JSON instead of a table.")] = False,
    scenarios: Annotated[Path | None, typer.Option(help="Price scenarios (CSV: timestamp and one column per "
                                                   "scenario): a two-stage schedule, commitments shared. Output "
                                                   ".nc, or .csv with a scenario column.")] = None,
    weights: Annotated[str | None, typer.Option(help="Scenario weights, comma-separated (default equal).")] = None,
    cvar_weight: Annotated[float | None,
                           typer.Option(help="With --scenarios: weight of the profit's CVaR (0..1).")] = None,
    load: Annotated[Path | None, typer.Option(help="4CP: hourly ERCOT system load (CSV/Parquet: timestamp, load_mw), "
                                              "over the shipped 2020-2024 load. Format: docs/fourcp.md.")] = None,
    load_forecast: Annotated[Path | None, typer.Option(help="4CP: ERCOT day-ahead system load forecast (CSV/Parquet: "
                                                       "timestamp, load_forecast_mw, optional published).")] = None,
    peaks: Annotated[Path | None, typer.Option(help="4CP: monthly 4CP intervals (CSV/Parquet: timestamp); the "
                                               "summary settles the day's load in them.")] = None,
    ledger: Annotated[Path | None, typer.Option(help="SQLite ledger that records the run and gives the month's SLA "
                                                "shortfall so far. Default: curtail-ledger.sqlite beside --out "
                                                "(none without --out).")] = None,
    jobs: Annotated[Path | None, typer.Option(help="Deferrable GPU jobs (CSV: name, cluster, gpus, gpu_hours, "
                                              "release, deadline, min_run_hours, value_usd_per_gpu_hour, "
                                              "late_penalty_usd_per_gpu_hour), added to the site file's "
                                              "\\[\\[job]] tables.")] = None,
    job_progress: Annotated[Path | None, typer.Option(help="JSON: each job's GPU-hours done so far "
                                                      "({job: hours} or {job: {gpu_hours_done, running_hours}}).")]
    = None,
    as_prices: Annotated[Path | None, typer.Option(help="Hourly ancillary-service clearing prices (CSV/Parquet: "
                                                   "timestamp, service, price_usd_per_mw_hour) for the services paid "
                                                   "them. Default: shipped ERCOT day-ahead MCPC 2022-2024.")] = None,
    reserve: Annotated[str | None, typer.Option(help="Ancillary services offered, replacing the site's "
                                                "\\[\\[reserve]]: NAME[:USD_PER_MW_HOUR[:RESPONSE_MINUTES]], "
                                                "comma-separated; no "
                                                "price: hourly clearing prices (e.g. rrs,nspin or ecrs:9.6).")] = None,
) -> None:
    """Solve one operating day and write its hourly schedule."""
    from optimizer import data
    from optimizer.nightly import NightlyJob, run_day
    from optimizer.solve import SolverOptions

    try:
        job = NightlyJob(site=site, day=day, prices=prices, hashprice=hashprice, out=out, export_model=export_model,
                         initial_state=initial_state, lookahead_hours=lookahead_hours,
                         allow_sla_breach=allow_sla_breach, emergency=emergency, scenarios=scenarios,
                         cvar_weight=cvar_weight, weights=_weights(weights) if weights else None,
                         load=load, load_forecast=load_forecast, peaks=peaks, ledger=_ledger_path(ledger, out),
                         jobs=jobs, job_progress=job_progress, as_prices=as_prices, reserve=reserve,
                         options=SolverOptions(time_limit_seconds=time_limit, mip_rel_gap=mip_gap,
                                               accept_gap=accept_gap, threads=threads))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", data.PriceWarning)
            summary, ds = run_day(job)
        for w in caught:
            typer.echo(f"curtail schedule: warning: {w.message}", err=True)
    except CurtailError as exc:
        typer.echo(f"curtail schedule: error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    if scenarios is not None:
        typer.echo(format_scenarios(ds))
        return
    typer.echo(json.dumps(summary, indent=1, default=str) if json_summary else format_summary(summary, out, job.ledger))
    if summary.get("fallback"):
        typer.echo(f"curtail schedule: FALLBACK schedule written (strike rule): {summary['fallback_reason']}",
                   err=True)
        raise typer.Exit(FALLBACK_EXIT_CODE)


def _ledger_path(ledger: Path | None, out: Path | None) -> Path | None:
    if ledger is not None or out is None:
        return ledger
    from optimizer.ledger import default_path

    return default_path(out)


def _weights(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise InputError(f"--weights must be comma-separated numbers, got {text!r}", field="--weights") from None


def format_scenarios(ds) -> str:
    lines = [f"two-stage schedule of {ds.attrs['day']}: {ds.sizes['scenario']} scenarios, status "
             f"{ds.attrs['status']}; expected profit {ds.attrs['expected_profit_usd']:,.0f} USD (with lookahead), "
             f"CVaR90 {ds.attrs['cvar_usd']:,.0f} USD; solve {ds.attrs['solve_seconds']:.3f} s"]
    for s, w in zip(ds["scenario"].values, ds["weight"].values, strict=True):
        lines.append(f"  {s:>12} weight {w:.3f}: profit (day) {float(ds['profit_usd'].sel(scenario=s).sum()):,.0f} USD")
    return "\n".join(lines)


def _written(out: Path | None) -> str:
    if out is None:
        return "(no --out given: nothing written)"
    if out.suffix.lower() == ".csv":
        from optimizer.results import sidecar_path

        return f"{out} (provenance in {sidecar_path(out).name})"
    return str(out)


def format_summary(s: dict, out: Path | None, ledger: Path | None = None) -> str:
    """A readable table: profit and its parts, energy per use, sell-back, status and times."""
    gap = "n/a" if s.get("mip_gap") is None else f"{s['mip_gap']:.2e}"
    objective = "n/a" if s.get("objective_usd") is None else f"{s['objective_usd']:,.2f} USD (with lookahead)"
    rows = [
        ("site", f"{s['site']} ({s['settlement_point']})"),
        ("operating day", f"{s['day']} ({s['hours']} h, lookahead {s['lookahead_hours']} h)"),
        ("prices", s["price_source"]),
        ("hashprice", f"{s['hashprice_usd_per_ph_day']:.2f} USD/PH/day ({s['hashprice_source']})"),
        *([("reserve prices", s["reserve_price_source"])] if "reserve_price_source" in s else []),
        ("", ""),
        ("mining revenue", _usd(s["mining_revenue_usd"])),
        ("AI revenue", _usd(s["ai_revenue_usd"])),
        ("sell-back credit", _usd(s["sellback_credit_usd"])),
        ("energy bought", _usd(-s["energy_cost_usd"])),
        ("contract block", _usd(-s["contract_cost_usd"])),
        ("restart costs", _usd(-s["restart_cost_usd"]) + f"  ({s['restarts']} restarts)"),
        ("SLA credits", _usd(-s["sla_credit_usd"])),
        ("4CP (expected)", _usd(-s["fourcp_charge_usd"])),
        ("reserve capacity", _usd(s["reserve_revenue_usd"])),
        ("profit (day)", _usd(s["profit_usd"])),
        ("", ""),
        ("mining", _mwh(s["mining_mwh"])),
        ("AI", _mwh(s["ai_mwh"])),
        ("sold back", _mwh(s["sellback_mwh"])),
        ("", ""),
        ("status", f"{s['status']}, gap {gap}, objective {objective}"),
        ("times", f"build {s['build_seconds']:.3f} s, translate {s['translate_seconds']:.3f} s, "
                  f"solve {s['solve_seconds']:.3f} s (HiGHS {s['highs_seconds']:.3f} s), "
                  f"read {s['read_seconds']:.3f} s, total {s['total_seconds']:.3f} s"),
        *[("emergency event", f"{e['start']} .. {e['end']}: cap {e['max_load_mw']:.1f} MW, highest load "
                                 f"{_highest_load(e['highest_load_mw'])} MW")
          for e in s.get("emergency_events", [])],
        ("written", _written(out)),
        *([("ledger", str(ledger))] if ledger is not None else []),
    ]
    return "\n".join(f"{k:<18} {v}" if k else "" for k, v in rows)


def _usd(x: float) -> str:
    return f"{_unsigned_zero(x, 2):>14,.2f} USD"


def _mwh(x: float) -> str:
    return f"{_unsigned_zero(x, 1):>14,.1f} MWh"


def _highest_load(mw: float | None) -> str:
    """An emergency event's highest load to 3 decimals, ``None`` when the schedule has no hour inside the event."""
    return str(mw if mw is None else round(mw, 3))


def _unsigned_zero(x: float, decimals: int) -> float:
    """``x`` rounded as printed, with a negative zero (``-0.00``: a cost of zero shown negated) made plain 0."""
    r = round(float(x), decimals)
    return 0.0 if r == 0 else r
