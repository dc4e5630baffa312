"""``curtail operate``: decide one real-time interval, write its setpoints and the next state (for cron).

Thin over :func:`optimizer.operating.run_operate`: parses options, calls it, prints one line per unit. Exit codes
are ``curtail schedule``'s (:mod:`optimizer.errors`): 0 done; 2 bad input (a state from the future, a stale price
file, ``--now`` off a 15-minute boundary, unknown unit names, a plan for another day...); 3 infeasible; 4 no
solution; 5 the re-plan fell back to the strike rule (setpoints and state written, flagged); 6 another run holds
an output's lock. On any error nothing is written: the previous setpoints and state stay as they were.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from optimizer.errors import FALLBACK_EXIT_CODE, CurtailError


def operate(
    state: Annotated[Path, typer.Option(help="State file: the previous call's next state, or the units' state "
                                        "measured at --now (JSON: time, units, optional jobs).")],
    prices: Annotated[Path, typer.Option(help="Latest real-time prices (CSV/Parquet: timestamp with offset, "
                                         "price_usd_per_mwh; 15-minute). Rows not ended at --now are ignored.")],
    out: Annotated[Path, typer.Option(help="Setpoints file (.json), written atomically.")],
    site: Annotated[Path | None, typer.Option(help="Site model (TOML). Default: the embedded west-texas-200.")] = None,
    da_prices: Annotated[Path | None, typer.Option(help="Published day-ahead prices (hourly CSV/Parquet); day D's "
                                                   "are used from 13:30 local on D-1.")] = None,
    plan: Annotated[Path | None, typer.Option(help="The operating day's plan (curtail schedule output): fallback "
                                              "forecast and 4CP probabilities.")] = None,
    now: Annotated[str | None, typer.Option(help="Start of the interval to decide, ISO 8601 with offset, on a "
                                            "15-minute boundary. Default: the current interval.")] = None,
    replan_minutes: Annotated[int, typer.Option(help="Re-plan every 60 or 15 minutes from the local day "
                                                "start.")] = 60,
    state_out: Annotated[Path | None, typer.Option(help="Next state file (.json). Default: replace --state.")] = None,
    hashprice: Annotated[float | None, typer.Option(help="USD per PH/s per day. Default: the shipped value known "
                                                    "at --now, else the plan's.")] = None,
    time_limit: Annotated[float, typer.Option(help="Solver time limit of a re-plan, seconds.")] = 60.0,
    ledger: Annotated[Path | None, typer.Option(help="SQLite ledger that records the call (setpoints, what each unit "
                                                "drew in the interval before) and a failed call with its exit "
                                                "code; read by curtail ledger. Default: none.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the setpoints JSON instead of a summary.")] = False,
) -> None:
    """Decide the real-time interval starting at --now: setpoints per fleet and cluster, and the next state."""
    try:
        from optimizer.operating import OperateJob, OperateOptions, run_operate
        from optimizer.realtime import RealtimeSettings
        from optimizer.solve import SolverOptions

        options = OperateOptions(RealtimeSettings(replan_minutes=replan_minutes),
                                 SolverOptions(time_limit_seconds=time_limit, mip_rel_gap=1e-6), hashprice)
        job = OperateJob(state=state, prices=prices, out=out, site=site, da_prices=da_prices, plan=plan, now=now,
                         state_out=state_out, options=options, ledger=ledger)
        setpoints, _, payload = run_operate(job)
    except CurtailError as exc:
        typer.echo(f"curtail operate: error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    typer.echo(json.dumps(payload, indent=1, sort_keys=True) if json_out else format_setpoints(setpoints, out))
    for note in payload["notes"]:
        typer.echo(f"curtail operate: note: {note}", err=True)
    if setpoints.fallback:
        typer.echo(f"curtail operate: FALLBACK re-plan (strike rule): {setpoints.fallback_reason}", err=True)
        raise typer.Exit(FALLBACK_EXIT_CODE)


def format_setpoints(s, out: Path) -> str:
    """One line per unit: what it does below and above its strike."""
    lines = [f"interval {s.interval_start.isoformat()} (+15 min): forecast {s.forecast_usd_per_mwh:.2f} USD/MWh, "
             f"last price {s.last_price_usd_per_mwh:.2f}, expected 4CP {s.expected_fourcp_usd_per_mwh:.2f} USD/MWh; "
             f"{'re-planned' if s.replanned else 'plan of ' + s.plan_made_at.isoformat()} ({s.plan_status})"]
    for u in s.units:
        lines.append(f"  {u.name:<12} strike {u.strike_usd_per_mwh:>9.2f} ({u.strike_applies}): below "
                     f"{u.run_mw:8.2f} MW {'on ' if u.run_on else 'off'}, at/above {u.curtail_mw:8.2f} MW "
                     f"{'on ' if u.curtail_on else 'off'}")
    lines.append(f"written {out}")
    return "\n".join(lines)
