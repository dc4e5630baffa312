"""``curtail schedule``: one operating day's schedule, written to a file and summarised on the terminal."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from optimizer import check, data, results
from optimizer.errors import CurtailError, InputError, NoSolutionError
from optimizer.scheduling import DEFAULT_DAY, schedule as run_schedule
from optimizer.site import Site, load_site
from optimizer.solve import SolverOptions
from optimizer.state import UnitState, state_from_json, state_from_schedule


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
        help="Previous schedule (.csv/.parquet/.json/.nc) or state file (.json) to start from. Default: all on.")
    ] = None,
    lookahead_hours: Annotated[int, typer.Option(help="Hours after the day the model sees.")] = 24,
    time_limit: Annotated[float, typer.Option(help="Solver time limit, seconds.")] = 60.0,
    mip_gap: Annotated[float, typer.Option(help="Relative MIP gap at which the solver may stop.")] = 1e-6,
    threads: Annotated[int, typer.Option(help="Solver threads.")] = 1,
    json_summary: Annotated[bool, typer.Option("--json", help="Print the summary as JSON instead of a table.")] = False,
) -> None:
    """Solve one operating day and write its hourly schedule."""
    try:
        site_obj = load_site(site or data.default_site_path())
        the_day = _parse_day(day, site_obj.timezone)
        price_series = data.read_price_file(prices) if prices else None
        state = _read_state(initial_state, site_obj) if initial_state else None
        options = SolverOptions(time_limit_seconds=time_limit, mip_rel_gap=mip_gap, threads=threads)
        if out is not None:
            results.check_output_path(out)
        ds = run_schedule(site_obj, price_series, day=the_day, hashprice=hashprice, lookahead_hours=lookahead_hours,
                          initial_state=state, options=options, export_model=export_model)
        summary = results.summary(ds)
        frame = results.to_frame(ds)
        violations = check.check_schedule(site_obj, frame, hashprice_usd_per_ph_day=summary["hashprice_usd_per_ph_day"],
                                          initial_state={k: UnitState(**v) for k, v in summary["initial_state"].items()})
        if violations:
            raise NoSolutionError("the solved schedule fails the independent check; nothing written:\n  "
                                  + "\n  ".join(map(str, violations[:20])))
        if out is not None:
            results.write(ds, out)
    except CurtailError as exc:
        typer.echo(f"curtail schedule: error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    if json_summary:
        typer.echo(json.dumps(summary, indent=1, default=str))
    else:
        typer.echo(format_summary(summary, out))


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


def _read_state(path: Path, site: Site) -> dict[str, UnitState]:
    if path.suffix.lower() == ".json":
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read state ({exc})", source=str(path)) from None
        if isinstance(raw, dict) and "schedule" not in raw:
            return state_from_json(json.dumps(raw), source=str(path))
    return state_from_schedule(site, results.read_schedule(path))


def format_summary(s: dict, out: Path | None) -> str:
    """A readable table: profit and its parts, energy per use, sell-back, status and times."""
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
        ("profit (day)", _usd(s["profit_usd"])),
        ("", ""),
        ("mining", f"{s['mining_mwh']:>14,.1f} MWh"),
        ("AI", f"{s['ai_mwh']:>14,.1f} MWh"),
        ("sold back", f"{s['sellback_mwh']:>14,.1f} MWh"),
        ("", ""),
        ("status", f"{s['status']}, gap {s['mip_gap']:.2e}, objective {s['objective_usd']:,.2f} USD (with lookahead)"),
        ("times", f"build {s['build_seconds']:.3f} s, translate {s['translate_seconds']:.3f} s, "
                  f"solve {s['solve_seconds']:.3f} s "
                  f"(HiGHS {s['highs_seconds']:.3f} s), read {s['read_seconds']:.3f} s, total {s['total_seconds']:.3f} s"),
        ("written", str(out) if out else "(no --out given: nothing written)"),
    ]
    return "\n".join(f"{k:<18} {v}" if k else "" for k, v in rows)


def _usd(x: float) -> str:
    return f"{x:>14,.2f} USD"

