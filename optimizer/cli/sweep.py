"""``curtail sweep``: a grid of backtests on Dask, one Dataset (``scenario`` dimension) and a summary table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from optimizer.backtest.names import OPTIONAL_POLICIES, POLICIES
from optimizer.errors import CurtailError, InputError


def sweep(
    sites: Annotated[str | None, typer.Option(help="Comma-separated site models. Default: the embedded site.")] = None,
    hashprices: Annotated[str, typer.Option(help="Comma-separated USD/PH/day levels; 'actual' for the shipped "
                                            "daily series.")] = "actual",
    periods: Annotated[str, typer.Option(help="Comma-separated years (2022) or ranges "
                                         "(2022-07-01:2022-07-07).")] = "2022",
    forecasts: Annotated[str, typer.Option(help="Comma-separated forecast methods.")] = "auto",
    policies: Annotated[str, typer.Option(help="Comma-separated policies.")] = ",".join(POLICIES),
    scheduler: Annotated[str | None, typer.Option(help="Existing Dask scheduler, tcp://HOST:PORT. Default: a "
                                                  "LocalCluster on this machine.")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes of the LocalCluster (1 thread each).")] = 2,
    serial: Annotated[bool, typer.Option(help="Run in this process, without Dask.")] = False,
    out: Annotated[Path | None, typer.Option(help="Write the Dataset: .nc or .zarr.")] = None,
) -> None:
    """Run every combination of sites x hashprice levels x periods x forecast methods as a backtest."""
    from optimizer import data
    from optimizer import sweep as sw

    try:
        site_paths = [Path(p) for p in sites.split(",")] if sites else [data.default_site_path()]
        levels = [None if h.strip() == "actual" else _level(h) for h in hashprices.split(",")]
        scenarios = sw.grid(site_paths, levels, [p.strip() for p in periods.split(",")],
                            [f.strip() for f in forecasts.split(",")])
        pols = [p.strip() for p in policies.split(",")]
        if set(pols) - set(POLICIES) - set(OPTIONAL_POLICIES):
            raise InputError(f"unknown policy in {policies!r}; one of {', '.join(POLICIES + OPTIONAL_POLICIES)}",
                             field="--policies")
        ds = sw.sweep(scenarios, scheduler=scheduler, workers=workers, policies=pols, serial=serial)
        if out is not None:
            sw.write(ds, out)
    except CurtailError as exc:
        typer.echo(f"curtail sweep: error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    table = ds["profit_usd"].to_pandas()
    table.index = [f"{s} | {h} | {p} | {f}" for s, h, p, f in zip(ds["site"].values,
                                                                 ds["hashprice_usd_per_ph_day"].values,
                                                                 ds["period"].values, ds["forecast"].values,
                                                                 strict=True)]
    typer.echo("profit, USD (site | hashprice | period | forecast)")
    typer.echo(table.to_string(float_format=lambda x: f"{x:,.0f}"))
    typer.echo(f"\n{ds.sizes['scenario']} scenarios on {ds.attrs['scheduler']} ({ds.attrs['workers']} workers): "
               f"wall {ds.attrs['wall_seconds']:.1f} s, scenario time {float(ds['wall_seconds'].sum()):.1f} s")


def _level(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise InputError(f"hashprice level {text!r} is not a number or 'actual'", field="--hashprices") from None
    if not v > 0:
        raise InputError(f"hashprice level must be positive, got {v}", field="--hashprices")
    return v
