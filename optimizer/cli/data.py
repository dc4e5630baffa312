"""``curtail data update``: fetch live ERCOT data through gridstatus into the local store (for cron).

Thin over :func:`optimizer.live.update`. Exit codes: 0 done; 2 bad input, gridstatus not installed, or the fetch
failed (offline, or days ERCOT no longer keeps online), with a message naming what to install or what failed. A run
killed part-way keeps the months it had stored; no file is ever left half written.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from optimizer.errors import CurtailError, InputError


def data_update(
    what: Annotated[str, typer.Option(help="rt (real-time 15-minute SPP), dam (day-ahead hourly SPP), load "
                                      "(system load), load-forecast (every vintage published in the days), "
                                      "as (day-ahead ancillary-service prices).")],
    start: Annotated[str, typer.Option(help="First local day, YYYY-MM-DD (for load-forecast: of publication).")],
    end: Annotated[str, typer.Option(help="Last local day, inclusive.")],
    location: Annotated[str | None, typer.Option(help="Settlement point for rt and dam, e.g. HB_WEST.")] = None,
    store: Annotated[Path | None, typer.Option(help="Store folder. Default: $CURTAIL_STORE, else "
                                               "~/.local/share/curtail/market.")] = None,
    archive: Annotated[bool, typer.Option(help="rt, dam, load: ERCOT's yearly files (whole past years) instead "
                                          "of the recent daily reports.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Fetch ERCOT data through gridstatus and append it to the local Parquet store (idempotent)."""
    from optimizer import live

    try:
        first, last = _day(start, "--start"), _day(end, "--end")
        target = live.Store(store or live.default_store())
        done = _run(live, what, first, last, target, location, archive, quiet)
    except CurtailError as exc:
        typer.echo(f"curtail data update: error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    rows = sum(a.rows for a in done)
    new = sum(a.new for a in done)
    replaced = sum(a.replaced for a in done)
    files = sorted({f for a in done for f in a.files})
    typer.echo(f"{what}: {rows:,} rows fetched for {first} .. {last}"
               + (f" at {location}" if location else "")
               + f"; {new:,} new, {replaced:,} changed a stored value, {rows - new - replaced:,} already stored")
    typer.echo(f"store {target.root}: {len(files)} file(s) written")
    for name, span in target.coverage().items():
        typer.echo(f"  {name:<14} {span}")


def _run(live, what, first, last, target, location, archive, quiet):
    if quiet:
        return live.update(what, first, last, target, location=location, archive=archive)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    chunks = 1 if archive else len(live.months(first, last))
    with Progress(TextColumn("data update {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task(f"{what} {first}", total=chunks)
        return live.update(what, first, last, target, location=location, archive=archive,
                           progress=lambda a, b: bar.update(task, advance=1, description=f"{what} {b}"))


def _day(text: str, flag: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InputError(f"{text!r} is not a day (expected YYYY-MM-DD)", field=flag) from None
