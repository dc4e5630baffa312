"""``curtail schedule``: one operating day's schedule, checked, written atomically, summarised on the terminal.

Made for an unattended nightly run: bad input exits 2 and writes nothing; a schedule is written only after the
independent checker passes; the output file is locked for the run and replaced atomically, so a failure or a
kill leaves the previous good file intact. Exit codes: see :mod:`optimizer.errors`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import typer

from optimizer import check, data, results
from optimizer.errors import FALLBACK_EXIT_CODE, CurtailError, InputError, NoSolutionError
from optimizer.events import read_events
from optimizer.scheduling import DEFAULT_DAY, operating_hours, schedule as run_schedule
from optimizer.site import Site, load_site
from optimizer.solve import SolverOptions
from optimizer.state import UnitState, state_from_dict, state_from_schedule


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
    cvar_weight: Annotated[float, typer.Option(help="With --scenarios: weight of the profit's CVaR (0..1).")] = 0.0,
) -> None:
    """Solve one operating day and write its hourly schedule."""
    if scenarios is not None:
        _scenarios(site, day, scenarios, weights, cvar_weight, hashprice, out, lookahead_hours,
                   SolverOptions(time_limit_seconds=time_limit, mip_rel_gap=mip_gap, threads=threads))
        return
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", data.PriceWarning)
            summary = _run(site, day, prices, hashprice, out, export_model, initial_state, lookahead_hours,
                           SolverOptions(time_limit_seconds=time_limit, mip_rel_gap=mip_gap, accept_gap=accept_gap,
                                         threads=threads), allow_sla_breach, emergency)
        for w in caught:
            typer.echo(f"curtail schedule: warning: {w.message}", err=True)
    except CurtailError as exc:
        typer.echo(f"curtail schedule: error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    typer.echo(json.dumps(summary, indent=1, default=str) if json_summary else format_summary(summary, out))
    if summary.get("fallback"):
        typer.echo(f"curtail schedule: FALLBACK schedule written (strike rule): {summary['fallback_reason']}",
                   err=True)
        raise typer.Exit(FALLBACK_EXIT_CODE)


def _run(site_path, day, prices, hashprice, out, export_model, initial_state, lookahead_hours, options,
         allow_sla_breach, emergency) -> dict:
    site = load_site(site_path or data.default_site_path())
    the_day = _parse_day(day, site.timezone)
    if out is not None:
        results.check_output_path(out)
    with results.output_lock(out) if out is not None else nullcontext():
        price_series = data.read_price_file(prices) if prices else None
        state = _read_state(initial_state, site, the_day) if initial_state else None
        events = read_events(emergency, site) if emergency else None
        ds = run_schedule(site, price_series, day=the_day, hashprice=hashprice, lookahead_hours=lookahead_hours,
                          initial_state=state, options=options, export_model=export_model,
                          allow_sla_breach=allow_sla_breach, fallback=True, events=events)
        ds.attrs["inputs_json"] = json.dumps(_inputs(site, prices, initial_state), sort_keys=True)
        ds.attrs["created_at"] = _created_at()
        summary = results.summary(ds)
        violations = check.check_schedule(
            site, results.to_frame(ds), hashprice_usd_per_ph_day=summary["hashprice_usd_per_ph_day"],
            initial_state={k: UnitState(**v) for k, v in summary["initial_state"].items()},
            allow_sla_breach=allow_sla_breach)
        if violations:
            raise NoSolutionError(f"the {'fallback' if summary['fallback'] else 'solved'} schedule fails the "
                                  "independent check; nothing written:\n  " + "\n  ".join(map(str, violations[:20])))
        if out is not None:
            results.write(ds, out)
    return summary


def _scenarios(site_path, day, path, weights, cvar_weight, hashprice, out, lookahead_hours, options) -> None:
    from optimizer.scheduling import schedule_scenarios

    try:
        site = load_site(site_path or data.default_site_path())
        the_day = _parse_day(day, site.timezone)
        if out is not None and out.suffix.lower() not in (".nc", ".csv"):
            raise InputError("a scenario schedule is written as .nc or .csv", source=str(out))
        frame = _scenario_file(path)
        w = [float(x) for x in weights.split(",")] if weights else None
        ds = schedule_scenarios(site, frame, w, day=the_day, hashprice=hashprice, lookahead_hours=lookahead_hours,
                                options=options, cvar_weight=cvar_weight)
        for s in ds["scenario"].values:
            bad = check.check_schedule(site, results.to_frame(ds.sel(scenario=s)),
                                       hashprice_usd_per_ph_day=ds.attrs["hashprice_usd_per_ph_day"])
            if bad:
                raise NoSolutionError(f"scenario {s} fails the independent check; nothing written:\n  "
                                      + "\n  ".join(map(str, bad[:10])))
        if out is not None:
            results.check_output_path(out)
            with results.output_lock(out), results.atomic_path(out) as tmp:
                if out.suffix.lower() == ".nc":
                    ds.to_netcdf(tmp)
                else:
                    long = pd.concat([results.to_frame(ds.sel(scenario=s)).assign(scenario=str(s))
                                      for s in ds["scenario"].values])
                    long.to_csv(tmp, index=False, float_format="%.6f")
    except (CurtailError, ValueError) as exc:
        typer.echo(f"curtail schedule: error: {exc}", err=True)
        raise typer.Exit(getattr(exc, "exit_code", 2)) from None
    typer.echo(f"two-stage schedule of {ds.attrs['day']}: {ds.sizes['scenario']} scenarios, status "
               f"{ds.attrs['status']}; expected profit {ds.attrs['expected_profit_usd']:,.0f} USD (with lookahead), "
               f"CVaR90 {ds.attrs['cvar_usd']:,.0f} USD; solve {ds.attrs['solve_seconds']:.3f} s")
    for s, w in zip(ds["scenario"].values, ds["weight"].values, strict=True):
        typer.echo(f"  {s:>12} weight {w:.3f}: profit (day) {float(ds['profit_usd'].sel(scenario=s).sum()):,.0f} USD")


def _scenario_file(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file
        raise InputError(f"cannot read scenarios ({type(exc).__name__}: {exc})", source=str(path)) from None
    if "timestamp" not in df.columns or df.shape[1] < 2:
        raise InputError("expected a timestamp column and one column per scenario", source=str(path))
    idx = pd.DatetimeIndex(pd.to_datetime(df["timestamp"], utc=True, format="ISO8601"))
    out = df.drop(columns="timestamp").set_index(idx).astype(float)
    if not np.isfinite(out.to_numpy()).all():
        raise InputError("scenario prices must be finite numbers", source=str(path))
    return out


def _inputs(site: Site, prices: Path | None, state: Path | None) -> dict:
    out = {"site": {"path": site.source, "sha256": site.sha256}}
    for name, path in (("prices", prices), ("initial_state", state)):
        if path is not None:
            out[name] = {"path": str(path), "sha256": results.file_sha256(path)}
    return out


def _created_at() -> str:
    """Now, or SOURCE_DATE_EPOCH (the reproducible-builds convention) when set: same inputs, same bytes."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = dt.datetime.fromtimestamp(int(epoch), dt.UTC) if epoch else dt.datetime.now(dt.UTC)
    return when.replace(microsecond=0).isoformat()


def _parse_day(day: str | None, timezone: str) -> dt.date:
    if day is None:
        return DEFAULT_DAY
    today = dt.datetime.now(ZoneInfo(timezone)).date()
    named = {"today": today, "tomorrow": today + dt.timedelta(days=1)}
    if day in named:
        return named[day]
    try:
        return dt.date.fromisoformat(day)
    except ValueError:
        raise InputError(f"{day!r} is not a day (expected YYYY-MM-DD, 'today' or 'tomorrow')", field="--day") from None


def _read_state(path: Path, site: Site, day: dt.date) -> dict[str, UnitState]:
    """State from a state JSON, or from the end of the previous day's schedule (which must end where ``day``
    starts: a stale or future schedule is an input error, not a silent wrong start)."""
    if path.suffix.lower() == ".json":
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read state ({exc})", source=str(path)) from None
        if isinstance(raw, dict) and "schedule" not in raw:
            return state_from_dict(raw, source=str(path))
    frame = results.read_schedule(path)
    if frame.empty or "timestamp" not in frame.columns:
        raise InputError("previous schedule has no rows or no timestamp column", source=str(path))
    end = pd.Timestamp(frame["timestamp"].iloc[-1]) + pd.Timedelta(hours=1)
    start = operating_hours(day, site.timezone)[0]
    if end != start:
        raise InputError(f"previous schedule ends at {end.isoformat()}, but {day} starts at {start.isoformat()}; "
                         "give the schedule of the day before", source=str(path), field="timestamp")
    before = results.read_summary(path).get("initial_state") or {}
    try:
        before_state = {k: UnitState(**v) for k, v in before.items()}
    except TypeError:
        before_state = {}
    return state_from_schedule(site, frame, before=before_state)


def format_summary(s: dict, out: Path | None) -> str:
    """A readable table: profit and its parts, energy per use, sell-back, status and times."""
    gap = "n/a" if s.get("mip_gap") is None else f"{s['mip_gap']:.2e}"
    objective = "n/a" if s.get("objective_usd") is None else f"{s['objective_usd']:,.2f} USD (with lookahead)"
    rows = [
        ("site", f"{s['site']} ({s['settlement_point']})"),
        ("operating day", f"{s['day']} ({s['hours']} h, lookahead {s['lookahead_hours']} h)"),
        ("prices", s["price_source"]),
        ("hashprice", f"{s['hashprice_usd_per_ph_day']:.2f} USD/PH/day ({s['hashprice_source']})"),
        ("", ""),
        ("mining revenue", _usd(s["mining_revenue_usd"])),
        ("AI revenue", _usd(s["ai_revenue_usd"])),
        ("sell-back credit", _usd(s["sellback_credit_usd"])),
        ("energy bought", _usd(-s["energy_cost_usd"])),
        ("contract block", _usd(-s["contract_cost_usd"])),
        ("restart costs", _usd(-s["restart_cost_usd"]) + f"  ({s['restarts']} restarts)"),
        ("SLA credits", _usd(-s["sla_credit_usd"])),
        ("4CP (expected)", _usd(-s["fourcp_charge_usd"])),
        ("profit (day)", _usd(s["profit_usd"])),
        ("", ""),
        ("mining", f"{s['mining_mwh']:>14,.1f} MWh"),
        ("AI", f"{s['ai_mwh']:>14,.1f} MWh"),
        ("sold back", f"{s['sellback_mwh']:>14,.1f} MWh"),
        ("", ""),
        ("status", f"{s['status']}, gap {gap}, objective {objective}"),
        ("times", f"build {s['build_seconds']:.3f} s, translate {s['translate_seconds']:.3f} s, "
                  f"solve {s['solve_seconds']:.3f} s (HiGHS {s['highs_seconds']:.3f} s), read {s['read_seconds']:.3f} s, "
                  f"total {s['total_seconds']:.3f} s"),
        *[("emergency event", f"{e['start']} .. {e['end']}: cap {e['max_load_mw']:.1f} MW, highest load "
                                 f"{e['highest_load_mw'] if e['highest_load_mw'] is None else round(e['highest_load_mw'], 3)} MW")
          for e in s.get("emergency_events", [])],
        ("written", str(out) if out else "(no --out given: nothing written)"),
    ]
    return "\n".join(f"{k:<18} {v}" if k else "" for k, v in rows)


def _usd(x: float) -> str:
    return f"{x:>14,.2f} USD"
