"""``curtail bid``: one operating day's day-ahead energy bid curves, checked, written atomically.

A thin layer: options are parsed into an :class:`optimizer.bid.BidJob` and :func:`optimizer.bid.run_job` does the
rest (inputs validated before anything is solved, the output locked, curves checked before they are written). Exit
codes as ``curtail schedule`` (:mod:`optimizer.errors`): 0 written; 2 bad input; 3 infeasible; 4 no usable solution
(nothing written); 6 another run holds the output's lock. There is no fallback bid: a failed run writes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from optimizer.errors import CurtailError, InputError


def bid(
    site: Annotated[Path | None, typer.Option(help="Site model (TOML). Default: the embedded west-texas-200.")] = None,
    day: Annotated[str | None, typer.Option(help="Operating day, YYYY-MM-DD in the site's time zone, or 'tomorrow' "
                                            "(before 10:00 local, when the day-ahead market closes). Default: "
                                            "2022-07-20.")] = None,
    segments: Annotated[int, typer.Option(help="Price-quantity pairs per hour, at most.")] = 10,
    scenarios: Annotated[Path | None, typer.Option(help="Day-ahead price scenarios (CSV: timestamp and one column "
                                                   "per scenario, covering the day and lookahead). Default: "
                                                   "generated from the day-ahead prices published by the deadline.")]
    = None,
    scenario_count: Annotated[int | None, typer.Option(help="Generated scenarios (quantile levels). Default 20.")]
    = None,
    weights: Annotated[str | None, typer.Option(help="With --scenarios: weights, comma-separated (default equal).")]
    = None,
    da_prices: Annotated[Path | None, typer.Option(help="History of day-ahead prices (CSV/Parquet: timestamp, "
                                                   "price_usd_per_mwh) to generate scenarios from. Default: the "
                                                   "shipped ERCOT day-ahead prices of the site's settlement point.")]
    = None,
    hashprice: Annotated[float | None, typer.Option(help="USD per PH/s per day. Default: the latest shipped value "
                                                    "known at the deadline.")] = None,
    initial_state: Annotated[Path | None, typer.Option(help="State at the start of the day (state JSON or the previous "
                                                       "day's schedule). Default: all on at full power.")] = None,
    emergency: Annotated[Path | None, typer.Option(help="Emergency curtailment events known in advance (CSV: start, "
                                                   "end, max_load_mw or shed_mw): hard limits in every scenario.")]
    = None,
    load: Annotated[Path | None, typer.Option(help="4CP: hourly ERCOT system load (CSV/Parquet: timestamp, "
                                              "load_mw), over the shipped 2020-2024 load. Format: docs/fourcp.md.")]
    = None,
    load_forecast: Annotated[Path | None, typer.Option(help="4CP: ERCOT day-ahead system load forecast (CSV/Parquet: "
                                                       "timestamp, load_forecast_mw, optional published).")] = None,
    lookahead_hours: Annotated[int, typer.Option(help="Hours after the day the model sees (not bid).")] = 24,
    time_limit: Annotated[float, typer.Option(help="Solver time limit, seconds.")] = 60.0,
    mip_gap: Annotated[float, typer.Option(help="Relative MIP gap at which the solver may stop.")] = 1e-6,
    out: Annotated[Path | None, typer.Option(help="Bid CSV (layout: docs/bidding.md); provenance in "
                                             "<out>.meta.json. Without it the curves are printed.")] = None,
) -> None:
    """Day-ahead energy bid curves for one operating day: monotone, at most --segments pairs per hour."""
    import warnings

    from optimizer import data
    from optimizer.bid import BidJob, BidSettings, run_job
    from optimizer.solve import SolverOptions

    try:
        settings = BidSettings(segments=segments, scenarios=20 if scenario_count is None else scenario_count,
                               lookahead_hours=lookahead_hours)
        job = BidJob(site=site, day=day, settings=settings, scenarios=scenarios,
                     scenario_count_given=scenario_count is not None, weights=_weights(weights), da_prices=da_prices,
                     hashprice=hashprice, initial_state=initial_state, emergency=emergency,
                     options=SolverOptions(time_limit_seconds=time_limit, mip_rel_gap=mip_gap), out=out, load=load,
                     load_forecast=load_forecast)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", data.PriceWarning)
            result = run_job(job)
        for w in caught:
            typer.echo(f"curtail bid: warning: {w.message}", err=True)
    except CurtailError as exc:
        typer.echo(f"curtail bid: error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    s = result.summary
    gap = "n/a" if s["mip_gap"] is None else f"{s['mip_gap']:.2e}"
    typer.echo(f"bid of {s['site']} ({s['settlement_point']}) for {s['day']} ({s['hours']} h), made at "
               f"{s['decision_time']} (deadline {s['bid_deadline']})\n"
               f"scenarios: {s['scenarios']} ({s['scenario_source']}), weights "
               f"{_weights_text(s['weights'])}; lookahead {s['lookahead_hours']} h\n"
               f"hashprice {s['hashprice_usd_per_ph_day']:.2f} USD/PH/day ({s['hashprice_source']}); 4CP: "
               f"{s['fourcp_source']}\n"
               f"segments used: at most {s['segments_used_max']} of {s['segments_limit']}; status {s['status']}, "
               f"gap {gap} (mip gap option {s['mip_rel_gap_option']:g}), solve {s['solve_seconds']:.2f} s")
    if out is None:
        typer.echo(result.curves.to_frame(segments).to_csv(index=False, float_format="%.2f", lineterminator="\n"))
    else:
        typer.echo(f"written {out} (provenance in {out.name}.meta.json)")


def _weights_text(weights: list[float]) -> str:
    return "equal" if len(set(weights)) == 1 else ", ".join(f"{w:.3g}" for w in weights)


def _weights(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise InputError(f"--weights must be comma-separated numbers, got {text!r}", field="--weights") from None
