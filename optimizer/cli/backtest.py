"""``curtail backtest``: replay real market days as the nightly job would have, and report."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from optimizer.backtest.names import OPTIONAL_POLICIES, POLICIES
from optimizer.errors import CurtailError, InputError

if TYPE_CHECKING:
    import pandas as pd

    from optimizer.backtest import Deployment, Market


def backtest(
    start: Annotated[str, typer.Option(help="First operating day, YYYY-MM-DD (site time zone).")],
    end: Annotated[str, typer.Option(help="Last operating day, inclusive.")],
    site: Annotated[Path | None, typer.Option(help="Site model (TOML). Default: the embedded west-texas-200.")] = None,
    forecast: Annotated[str, typer.Option(help="auto (gbm), gbm, naive, da, da+gbm or perfect.")] = "auto",
    prices: Annotated[Path | None, typer.Option(help="Real-time prices (CSV/Parquet), the only real-time series; "
                                                "its resolution sets the simulation's. Default: shipped "
                                                "15-minute ERCOT prices.")] = None,
    da_prices: Annotated[Path | None, typer.Option(help="Day-ahead prices (CSV/Parquet). Default: shipped.")] = None,
    hashprice: Annotated[str | None, typer.Option(help="USD/PH/day constant, or a CSV/Parquet with columns date, "
                                                  "hashprice_usd_per_ph_day. Default: shipped daily.")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for intervals.nc, days.csv, summary.json, plots and "
                                             "report.html.")] = None,
    decision_hour: Annotated[int | None, typer.Option(help="Local hour on D-1 of the decision (default 10; 14 "
                                                      "for da and da+gbm).")] = None,
    lookahead_hours: Annotated[int, typer.Option(help="Hours after each day the plan sees.")] = 24,
    hysteresis: Annotated[float, typer.Option(help="Strike rule hysteresis, USD/MWh.")] = 0.0,
    hold_hours: Annotated[float, typer.Option(help="Strike rule minimum hold, hours.")] = 0.0,
    policies: Annotated[str, typer.Option(help="Comma-separated subset of: " + ", ".join(POLICIES + OPTIONAL_POLICIES)
                                          + " (stochastic+strike, bid and bid-strike are not run by default; "
                                          "bid: docs/bidding.md).")] = ",".join(POLICIES),
    cvar_weight: Annotated[float, typer.Option(help="stochastic+strike: weight of the 90% CVaR of profit against "
                                               "expected profit, 0..1.")] = 0.0,
    time_limit: Annotated[float, typer.Option(help="Solver time limit per solve, seconds.")] = 60.0,
    emergency: Annotated[Path | None, typer.Option(help="Emergency events (CSV: start, end, max_load_mw or "
                                                   "shed_mw): hard caps every policy honours.")] = None,
    fourcp: Annotated[float | None, typer.Option(help="4CP charge, USD/kW-year (overrides the site's \\[fourcp]); "
                                                 "settled on the actual monthly peaks.")] = None,
    fourcp_plan: Annotated[bool, typer.Option(help="Plans price the expected 4CP charge (--no-fourcp-plan: they "
                                              "ignore it, and still pay it).")] = True,
    reserve: Annotated[str | None, typer.Option(help="Ancillary services offered, overriding the site's: "
                                                "NAME[:USD_PER_MW_HOUR[:RESPONSE_MINUTES]], comma-separated; no "
                                                "price: hourly clearing prices (e.g. rrs,nspin or ecrs:9.62:10).")]
    = None,
    as_prices: Annotated[Path | None, typer.Option(help="Hourly ancillary-service clearing prices (CSV/Parquet: "
                                                   "timestamp, service, price_usd_per_mw_hour). Default: shipped "
                                                   "ERCOT day-ahead MCPC 2022-2024.")] = None,
    deployments: Annotated[Path | None, typer.Option(help="Ancillary-service deployments (CSV: start, end, "
                                                     "service): offered capacity must drop then.")] = None,
    deployment_rule: Annotated[str | None, typer.Option(help="Without --deployments: weekly-cheapest (each service "
                                                        "deployed once a week in its cheapest hours; the default "
                                                        "for a site with reserves) or none.")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    load: Annotated[Path | None, typer.Option(help="4CP: hourly ERCOT system load (CSV/Parquet: timestamp, load_mw), "
                                              "over the shipped 2020-2024 load. Format: docs/fourcp.md.")] = None,
    load_forecast: Annotated[Path | None, typer.Option(help="4CP: ERCOT day-ahead system load forecast (CSV/Parquet: "
                                                       "timestamp, load_forecast_mw, optional published).")] = None,
    peaks: Annotated[Path | None, typer.Option(help="4CP: monthly 4CP intervals that settle the charge "
                                               "(CSV/Parquet: timestamp). Default: from --load, else shipped.")] = None,
    replan_minutes: Annotated[int, typer.Option(help="mpc: minutes between re-plans, 60 or 15.")] = 60,
    jobs: Annotated[Path | None, typer.Option(help="Deferrable GPU jobs (CSV, as curtail schedule --jobs), added to "
                                              "the site file's \\[\\[job]] tables.")] = None,
    demand_aware: Annotated[bool, typer.Option(help="Decisions know the clusters' hourly inference demand "
                                               "(--no-demand-aware: they assume every spot GPU is wanted, and "
                                               "are settled on the demand: the value of knowing it).")] = True,
    jobs_deferrable: Annotated[bool, typer.Option(help="Plans may move jobs within their windows "
                                                  "(--no-jobs-deferrable: run on arrival).")] = True,
) -> None:
    """Walk forward day by day, operate at real-time resolution, settle at actual prices, compare policies."""
    from optimizer import data
    from optimizer.backtest import Settings, report
    from optimizer.events import read_events
    from optimizer.realtime import RealtimeSettings
    from optimizer.site import load_site
    from optimizer.solve import SolverOptions

    try:
        site_obj = load_site(site or data.default_site_path())
        if fourcp is not None:
            if not 0 <= fourcp <= 1000:
                raise InputError(f"4CP charge must be 0..1000 USD/kW-year, got {fourcp}", field="--fourcp")
            site_obj = dataclasses.replace(site_obj, fourcp=dataclasses.replace(site_obj.fourcp,
                                                                                charge_usd_per_kw_year=fourcp))
        if reserve is not None:
            from optimizer.ancillary import parse_reserve_option

            site_obj = dataclasses.replace(site_obj, reserves=parse_reserve_option(reserve))
        from optimizer.workloads import with_jobs_file

        site_obj = with_jobs_file(site_obj, jobs)
        if not jobs_deferrable and not site_obj.jobs:
            raise InputError("--no-jobs-deferrable needs jobs (the site file's [[job]] tables or --jobs)",
                             field="--no-jobs-deferrable")
        first, last = _day(start, "--start"), _day(end, "--end")
        settings = Settings(forecast_method=forecast, decision_hour_local=decision_hour,
                            lookahead_hours=lookahead_hours, hysteresis_usd_per_mwh=hysteresis,
                            hold_hours=hold_hours, policies=tuple(p.strip() for p in policies.split(",") if p.strip()),
                            solver=SolverOptions(time_limit_seconds=time_limit),
                            hashprice_usd_per_ph_day=_constant(hashprice),
                            events=tuple(read_events(emergency, site_obj)) if emergency else (),
                            fourcp_in_plan=fourcp_plan,
                            deployments=_deployments(deployments) if deployments else (),
                            cvar_weight=cvar_weight, realtime=RealtimeSettings(replan_minutes=replan_minutes),
                            demand_aware=demand_aware, jobs_deferrable=jobs_deferrable)
        market = _market(site_obj.settlement_point, prices, da_prices, hashprice)
        market = _with_user_fourcp(market, site_obj, first, last, load, load_forecast, peaks)
        market, settings, reserves_note = _with_reserves(market, settings, site_obj, first, last, as_prices,
                                                         deployments, deployment_rule)
        result = _run_with_progress(site_obj, first, last, market, settings, quiet)
        if out is not None:
            report.write(result, out)
    except CurtailError as exc:
        typer.echo(f"curtail backtest: error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    table = report.headline(result)
    typer.echo(table.to_string(float_format=lambda x: f"{x:,.0f}"))
    s = result.summary
    capture = "n/a" if s["value_capture"] is None else f"{s['value_capture']:.3f}"
    typer.echo(f"\nvalue capture {capture} ({s['policy']}); perfect {s['perfect_foresight_profit_usd'] or 0:,.0f} USD, "
               f"always-on {s['always_on_profit_usd'] or 0:,.0f} USD; {s['days']} days, forecast "
               f"{s['forecast_method']} (MAE {s['forecast_mae_usd_per_mwh']:.1f} USD/MWh); "
               f"wall {s['wall_seconds']:.1f} s, HiGHS {s['solver_seconds']:.1f} s")
    if reserves_note:
        typer.echo(f"reserves: {reserves_note}")
    if out is not None:
        typer.echo(f"written to {out}/ (report.html, summary.json, days.csv, intervals.nc, plots)")


def _run_with_progress(site, first, last, market, settings, quiet):
    from optimizer.backtest import run

    if quiet:
        return run(site, first, last, market, settings)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    n = (last - first).days + 1
    with Progress(TextColumn("backtest {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task(str(first), total=n)
        return run(site, first, last, market, settings,
                   progress=lambda day: bar.update(task, advance=1, description=str(day)))


def _with_reserves(market, settings, site, first: dt.date, last: dt.date, as_prices: Path | None,
                   deployments: Path | None, rule: str | None):
    """The market with the user's AS prices, the settings with the deployments (the file's, else the rule's: by
    default weekly-cheapest for a site with reserves), and a line saying where both came from. Options that would be
    ignored are refused."""
    from optimizer import ancillary

    if rule is not None and rule not in ancillary.DEPLOYMENT_RULES:
        raise InputError(f"unknown deployment rule {rule!r}; one of {', '.join(ancillary.DEPLOYMENT_RULES)}",
                         field="--deployment-rule")
    if as_prices is not None:
        if not ancillary.clearing_priced(site):
            raise InputError(f"--as-prices given but site {site.name!r} has no [[reserve]] paid hourly clearing prices "
                             "(one without price_usd_per_mw_hour): they would be ignored", field="--as-prices")
        market = dataclasses.replace(market, as_prices=ancillary.AsPrices.read(as_prices))
    if not site.reserves:
        if deployments is not None or rule is not None:
            raise InputError(f"site {site.name!r} offers no ancillary service ([[reserve]] or --reserve): nothing to "
                             "deploy", field="--deployments" if deployments is not None else "--deployment-rule")
        return market, settings, ""
    if deployments is not None:
        if rule is not None:
            raise InputError("--deployments gives the deployments; --deployment-rule is for runs without them",
                             field="--deployment-rule")
        note = ancillary.describe_deployments(None, settings.deployments, str(deployments))
    else:
        rule = rule or "weekly-cheapest"
        events = ancillary.assumed_deployments(site, market.actual, first, last, rule)
        settings = dataclasses.replace(settings, deployments=events)
        note = ancillary.describe_deployments(rule, events)
    return market, settings, f"{ancillary.price_source(site, market.as_prices)}; deployments: {note}"


def _deployments(path: Path) -> tuple[Deployment, ...]:
    import pandas as pd

    from optimizer.backtest import Deployment

    try:
        df = pd.read_csv(path, dtype=str)
        out = tuple(Deployment(pd.Timestamp(r["start"]).tz_convert("UTC"), pd.Timestamp(r["end"]).tz_convert("UTC"),
                               str(r["service"]).strip()) for r in df.to_dict(orient="records"))
    except FileNotFoundError:
        raise InputError("deployments file not found", source=str(path)) from None
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file
        raise InputError(f"cannot read deployments ({type(exc).__name__}: {exc}); expected columns start, end "
                         "(ISO 8601 with offset), service", source=str(path)) from None
    return out


def _day(text: str, flag: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InputError(f"{text!r} is not a day (expected YYYY-MM-DD)", field=flag) from None


def _constant(hashprice: str | None) -> float | None:
    if hashprice is None:
        return None
    try:
        value = float(hashprice)
    except ValueError:
        return None                 # a file
    if not value > 0:
        raise InputError(f"hashprice must be positive, got {hashprice}", field="--hashprice")
    return value


def _market(settlement_point: str, prices: Path | None, da_prices: Path | None, hashprice: str | None) -> Market:
    from optimizer import data
    from optimizer.backtest import Market
    from optimizer.forecast import MarketHistory

    if prices:
        rt = data.read_price_file(prices)
        rt_hourly = rt.groupby(rt.index.floor("h")).mean()
    else:
        rt = data.ercot_prices(settlement_point, "rt", "15min")
        rt_hourly = data.ercot_prices(settlement_point, "rt")          # the shipped history's hourly prices
    da = data.read_price_file(da_prices) if da_prices else MarketHistory.shipped(settlement_point).da
    history = MarketHistory(rt=rt_hourly, da=da, load_forecast=data.ercot_load_forecast(), load=data.ercot_load())
    hp = data.hashprice_series()
    if hashprice is not None and _constant(hashprice) is None:
        hp = _read_hashprice(Path(hashprice))
    return Market(history, rt, hp, data.ercot_4cp_hours())


def _with_user_fourcp(market, site, first: dt.date, last: dt.date, load: Path | None, load_forecast: Path | None,
                      peaks: Path | None):
    """The market with the user's 4CP files merged over the shipped data (read and validated first) and the
    settling peaks from --peaks, else --load, else shipped; refused for a site without 4CP, and when a summer
    month of the run has no known peak."""
    from optimizer import fourcp

    if not site.fourcp.active:
        if load or load_forecast or peaks:
            raise InputError(f"--load, --load-forecast and --peaks are 4CP inputs, and site {site.name!r} has no 4CP "
                             "charge (set [fourcp] or --fourcp, or leave them out)", field="--load")
        return market
    user = fourcp.UserData.read(load, load_forecast, peaks, site.timezone)
    history = user.history(market.history)
    hours = user.peak_hours(history.load, market.peak_hours, site.timezone)
    fourcp.check_peaks_cover(hours, first, last, site.timezone)
    return dataclasses.replace(market, history=history, peak_hours=hours)


def _read_hashprice(path: Path) -> pd.Series:
    import pandas as pd

    try:
        df = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)
        s = pd.Series(df["hashprice_usd_per_ph_day"].astype(float).to_numpy(),
                      index=pd.DatetimeIndex(pd.to_datetime(df["date"])), name="hashprice_usd_per_ph_day")
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file
        raise InputError(f"cannot read hashprice file ({type(exc).__name__}: {exc}); expected columns date, "
                         "hashprice_usd_per_ph_day", source=str(path)) from None
    if not (s > 0).all():
        raise InputError("hashprice values must be positive", source=str(path), field="hashprice_usd_per_ph_day")
    return s.sort_index()


