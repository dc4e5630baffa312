"""One day-ahead schedule: gather inputs for an operating day, build, solve, read back, check.

The operating day is the site's local calendar day (23, 24 or 25 hours); the model also sees a lookahead
(default 24 h) that shapes decisions but is not part of the schedule.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from optimizer import data, market, results, solve
from optimizer.defaults import DEFAULT_DAY
from optimizer.errors import InputError
from optimizer.events import Event, load_caps
from optimizer.inputs import Inputs
from optimizer.market import operating_hours
from optimizer.planner import Planner
from optimizer.site import Site, load_site
from optimizer.state import UnitState
from optimizer.workloads import JobProgress

if TYPE_CHECKING:
    from optimizer.ancillary import AsPrices
    from optimizer.forecast import MarketHistory



@dataclass(frozen=True)
class PriceInput:
    """Hourly prices over the horizon and where they came from."""

    prices: pd.Series          # USD/MWh, UTC hour-start index, exactly the horizon
    source: str
    lookahead_hours: int


def horizon_prices(site: Site, day: dt.date, prices: pd.Series | None, lookahead_hours: int,
                   source: str | None = None) -> PriceInput:
    """Prices for the operating day plus lookahead.

    Given ``prices``, they must cover the whole horizon hourly. Without, the shipped ERCOT day-ahead prices are
    used when they cover the operating day, else real-time; the lookahead is cut where the chosen series ends (or
    has a gap), and ``source`` says so. So a day whose day-ahead data ends inside the lookahead keeps day-ahead
    prices with a shorter lookahead (e.g. 2022-12-31 at HB_WEST: lookahead 0) rather than mixing markets.
    """
    hours = operating_hours(day, site.timezone)
    full = pd.date_range(hours[0], periods=len(hours) + lookahead_hours, freq="1h")
    if prices is not None:
        name = source or prices.attrs.get("source", "prices given")
        return PriceInput(_cover(prices, full, name), name, lookahead_hours)
    for which, label in (("da", "ERCOT day-ahead"), ("rt", "ERCOT real-time")):
        try:
            s = data.ercot_prices(site.settlement_point, which)
        except InputError:
            continue
        if s.index.isin(hours).sum() < len(hours):
            continue
        n = int(s.reindex(full).notna().cumprod().sum())        # leading hours covered without a gap
        if n < len(full) and which == "da" and s.index[-1] >= full[-1]:
            continue                                             # a gap inside day-ahead: try real-time
        la = max(n - len(hours), 0)
        note = "" if la == lookahead_hours else f", lookahead cut to {la} h where the shipped data ends"
        return PriceInput(s.reindex(full[: len(hours) + la]), f"{label} {site.settlement_point} (shipped){note}",
                          la)
    raise InputError(f"no shipped prices for {site.settlement_point} cover {day} (shipped data: real-time "
                     "2020-2024; give --prices)", source=site.source, field="settlement_point")


def _cover(prices: pd.Series, full: pd.DatetimeIndex, name: str) -> pd.Series:
    idx = pd.DatetimeIndex(prices.index)
    if idx.tz is None:
        raise InputError("price timestamps have no time zone", source=name, field="timestamp")
    s = pd.Series(prices.to_numpy(dtype=float), index=idx.tz_convert("UTC"))
    inside = s[(s.index >= full[0]) & (s.index <= full[-1])]
    off_grid = inside.index[~inside.index.isin(full)]
    if len(off_grid):
        raise InputError(f"timestamp {off_grid[0].isoformat()} is not on the hour (hourly prices expected)",
                         source=name, field="timestamp")
    missing = full[~full.isin(s.index)]
    if len(missing):
        raise InputError(f"no price for {len(missing)} hour(s) of the operating day and lookahead, first "
                         f"{missing[0].isoformat()} (horizon {full[0].isoformat()} .. {full[-1].isoformat()}; "
                         "shorten --lookahead-hours or extend the file)", source=name, field="timestamp")
    out = s.reindex(full)
    if not np.isfinite(out.to_numpy()).all():
        bad = out.index[~np.isfinite(out.to_numpy())][0]
        raise InputError(f"price at {bad.isoformat()} is not a finite number", source=name,
                         field="price_usd_per_mwh")
    return out


@dataclass(frozen=True)
class DayRequest:
    """What one operating day's schedule is asked for, before any data is read: the user's options."""

    day: dt.date = DEFAULT_DAY
    prices: pd.Series | None = None               # hourly USD/MWh covering day + lookahead; None: shipped data
    hashprice: float | None = None                # USD/PH/day; None: the value known at the decision time
    lookahead_hours: int = 24
    initial_state: Mapping[str, UnitState] | None = None
    events: tuple[Event, ...] = ()                # emergency load caps (hard limits)
    peak_probability: pd.Series | None = None     # 4CP chance per hour; None: estimated when the site has 4CP
    decision_time: pd.Timestamp | None = None     # None: 10:00 local on D-1 (what a nightly run knew)
    history: MarketHistory | None = None          # system load (+ forecast) the 4CP estimate reads; None: shipped
    job_progress: Mapping[str, JobProgress] | None = None    # jobs' GPU-hours done (and current runs) so far
    sla_shortfall_before_mwh: Mapping[str, float] | None = None   # committed MWh missed earlier this SLA month
    as_prices: AsPrices | None = None             # hourly capacity prices; None: shipped ERCOT MCPC (when needed)


def day_inputs(site: Site, req: DayRequest) -> tuple[Inputs, dict]:
    """The :class:`~optimizer.inputs.Inputs` of an operating day (day plus lookahead) and where each came from.

    Everything is taken as known at the decision time (default 10:00 local on D-1): the hashprice is the latest
    daily value whose UTC day had ended by then; the 4CP probabilities use the system load known then."""
    if not 0 <= req.lookahead_hours <= 168:
        raise InputError(f"lookahead must be 0..168 hours, got {req.lookahead_hours}", field="lookahead_hours")
    decision = req.decision_time
    if decision is None:
        decision = market.decision_time_for(req.day, site.timezone)
    decision = pd.Timestamp(decision)
    if decision.tz is None:
        raise InputError(f"decision time {decision} has no time zone", field="decision_time")
    pin = horizon_prices(site, req.day, req.prices, req.lookahead_hours)
    if req.hashprice is None:
        hp, hp_day = data.hashprice_known_at(decision, day=req.day)
        hp_source = f"shipped daily hashprice of {hp_day} (latest known at {decision.isoformat()})"
    else:
        hp, hp_source = float(req.hashprice), "given"
    times = pd.DatetimeIndex(pin.prices.index)
    caps = load_caps(site, list(req.events), times, 1.0) if req.events else None
    prob, prob_source = _peak_probability(site, decision, times, req.peak_probability, req.history)
    reserve_prices, reserve_source = _reserve_prices(site, times, req.as_prices)
    inputs = Inputs(pin.prices, hp, req.initial_state, caps, prob, reserve_prices=reserve_prices,
                    job_progress=req.job_progress, sla_shortfall_before_mwh=req.sla_shortfall_before_mwh)
    return inputs, {"price_source": pin.source, "lookahead_hours": pin.lookahead_hours, "hashprice_source": hp_source,
                    "fourcp_source": prob_source, "reserve_price_source": reserve_source,
                    "decision_time": decision.isoformat()}


def _reserve_prices(site: Site, times: pd.DatetimeIndex, given: AsPrices | None) -> tuple[dict | None, str]:
    """The hourly clearing prices of the site's clearing-priced services over the horizon (the day's and the
    lookahead's, like the energy prices: a plan GIVEN prices; the backtest applies the publication rule) and where they
    came from. Prices given for a site with no clearing-priced service are refused (they would be ignored)."""
    from optimizer import ancillary

    if not ancillary.clearing_priced(site):
        if given is not None:
            raise InputError(f"AS prices given ({given.source}) but site {site.name!r} has no [[reserve]] paid hourly "
                             "clearing prices (one without price_usd_per_mw_hour): they would be ignored",
                             field="--as-prices")
        return None, ancillary.price_source(site, None)
    prices = given or ancillary.AsPrices.shipped()
    return prices.actual(site, times), ancillary.price_source(site, prices)


def schedule(site: Site | str | Path, prices: pd.Series | None = None, *, day: dt.date | str | None = None,
             hashprice: float | None = None, lookahead_hours: int = 24,
             initial_state: Mapping[str, UnitState] | None = None,
             options: solve.SolverOptions | None = None, export_model: str | Path | None = None,
             allow_sla_breach: bool = False, fallback: bool = False, events: list[Event] | None = None,
             peak_probability: pd.Series | None = None, decision_time: pd.Timestamp | None = None,
             history: MarketHistory | None = None,
             job_progress: Mapping[str, JobProgress] | None = None,
             sla_shortfall_before_mwh: Mapping[str, float] | None = None,
             as_prices: AsPrices | None = None) -> xr.Dataset:
    """Solve one operating day and return its schedule as an ``xarray.Dataset`` (see :mod:`optimizer.results`).

    ``site``: a :class:`Site` or a path to a site model. ``prices``: hourly USD/MWh with a tz-aware index
    covering the day and lookahead (default: shipped ERCOT prices). ``day``: local operating day (default
    2022-07-20). ``hashprice``: USD per PH/s per day for the whole run (default: the latest shipped value known at
    the decision time). ``initial_state``: per asset; default all on at full power. ``events``: emergency load caps
    (:mod:`optimizer.events`), hard limits. ``peak_probability``: 4CP peak chance per hour (default, for a site
    whose ``[fourcp]`` table sets a charge or a threshold: estimated from the shipped ERCOT load as known at the
    decision time; ``history``: a :class:`~optimizer.forecast.MarketHistory` with the system load to estimate them
    from instead of the shipped load). ``job_progress``: each job's GPU-hours done so far (jobs are the site's).
    ``sla_shortfall_before_mwh``: committed MWh missed earlier in the SLA month per cluster (the credit tiers count
    from there; default none: "100% so far"). ``as_prices``: hourly capacity prices of the services paid ERCOT's
    clearing prices (:class:`optimizer.ancillary.AsPrices`; default: the shipped ERCOT MCPCs of the horizon's hours;
    refused for a site without such a service).
    ``decision_time``: when the schedule is made (default 10:00 local on the day before; the CLI
    passes "now" for today/tomorrow). With SLA breach allowed, the written day's SLA credit counts the day's own
    shortfall (the lookahead's shortfall shaped the plan but is not owed by this schedule).

    The returned schedule has passed the independent checker (:mod:`optimizer.check`). The summary is in
    ``ds.attrs`` (``optimizer.results.summary(ds)`` decodes it). Raises ``InputError`` on bad input,
    ``InfeasibleError`` when hard limits conflict, ``NoSolutionError`` when the solver finds nothing or the
    checker finds a violation.
    """
    t_start = time.perf_counter()
    site = site if isinstance(site, Site) else load_site(site)
    req = DayRequest(_as_day(day) if day is not None else DEFAULT_DAY, prices, hashprice, lookahead_hours,
                     initial_state, tuple(events or ()), peak_probability, decision_time, history, job_progress,
                     sla_shortfall_before_mwh, as_prices)
    inputs, sources = day_inputs(site, req)
    hours = operating_hours(req.day, site.timezone)
    planner = Planner(site, options, allow_sla_breach=allow_sla_breach)
    ds = planner.solve(inputs, fallback=fallback, export_model=export_model)
    full_profit = float(ds["profit_usd"].sum())
    head = inputs.head(len(hours))
    ds = results.resettle_day(ds, site, head)
    ds.attrs.update(_day_summary(req.day, ds, full_profit, time.perf_counter() - t_start))
    ds.attrs.update(sources)
    ds.attrs["emergency_events_json"] = json.dumps(_events_report(list(req.events), ds))
    verify(site, ds, head, allow_sla_breach=allow_sla_breach)
    return ds


def verify(site: Site, ds: xr.Dataset, inputs: Inputs, *, allow_sla_breach: bool = False) -> None:
    """Run the independent checker on a schedule made from ``inputs``; raise ``NoSolutionError`` naming the
    violations (nothing is written by the callers then)."""
    from optimizer import check
    from optimizer.errors import NoSolutionError

    violations = check.check_schedule(site, results.to_frame(ds), check_inputs(site, inputs, allow_sla_breach))
    if violations:
        kind = "fallback" if ds.attrs.get("fallback") else "solved"
        raise NoSolutionError(f"the {kind} schedule fails the independent check; nothing written:\n  "
                              + "\n  ".join(map(str, violations[:20])))


def check_inputs(site: Site, inputs: Inputs, allow_sla_breach: bool = False):
    """The checker's inputs for a schedule made from ``inputs``: everything taken from the inputs, nothing from
    the schedule."""
    from optimizer import check

    progress = dict(inputs.job_progress or {})
    return check.CheckInputs(
        timestamps=inputs.times, prices_usd_per_mwh=inputs.price_array,
        hashprice_usd_per_ph_day=inputs.hashprice_usd_per_ph_day, initial_state=inputs.resolved_state(site),
        emergency_cap_mw=inputs.emergency_caps(site), peak_weight=inputs.peak_probability,
        reserve_prices_usd_per_mw_hour=dict(inputs.reserve_prices or {}), allow_sla_breach=allow_sla_breach,
        sla_shortfall_before_mwh=dict(inputs.sla_shortfall_before_mwh or {}), demand_gpus=inputs.demand(site),
        job_done_before={k: p.gpu_hours_done for k, p in progress.items()},
        job_running_before={k: p.running_hours for k, p in progress.items()})


def _peak_probability(site: Site, decision: pd.Timestamp, times: pd.DatetimeIndex, given: pd.Series | None,
                      history: MarketHistory | None = None) -> tuple[np.ndarray | None, str]:
    """4CP chances over ``times`` and where they came from: ``given`` (its ``attrs["source"]`` says how it was
    made), else, for a site with 4CP, estimated from ``history`` (default: the shipped ERCOT load) as known at
    ``decision``; a site with 4CP whose load is not known then is refused, naming ``--load``."""
    if given is not None:
        return given.reindex(times).fillna(0.0).to_numpy(dtype=float), str(given.attrs.get("source", "given"))
    if not site.fourcp.active:
        return None, "off"
    from optimizer import fourcp

    try:
        prob = fourcp.peak_probability(_load_history(history), decision, times)
    except InputError as exc:
        raise InputError(f"4CP is on for this site but no peak probability can be estimated at "
                         f"{decision.isoformat()} ({exc}); give the system load (--load) or switch 4CP off",
                         field="fourcp") from None
    what = "shipped ERCOT load" if history is None else "ERCOT load (shipped and given)"
    return prob.to_numpy(dtype=float), f"estimated from {what} known at {decision.isoformat()}"


def _load_history(history: MarketHistory | None = None) -> MarketHistory:
    """``history`` if given, else the shipped ERCOT system load and day-ahead load forecast (the 4CP model reads
    no prices; the shipped HB_HUBAVG prices only fill the history's required price field)."""
    if history is not None:
        return history
    from optimizer import forecast

    return forecast.MarketHistory.shipped("HB_HUBAVG")


def _events_report(events: list[Event], ds: xr.Dataset) -> list[dict]:
    """Each event with the most the schedule draws inside it (MW), to show it was honoured."""
    out = []
    times = pd.DatetimeIndex(ds["time"].values).tz_localize("UTC")
    for e in events:
        inside = (times < e.end) & (times + pd.Timedelta(hours=float(ds.attrs.get("interval_hours", 1.0))) > e.start)
        out.append({"start": e.start.isoformat(), "end": e.end.isoformat(), "max_load_mw": e.max_load_mw,
                    "intervals_in_schedule": int(inside.sum()),
                    "highest_load_mw": float(ds["load_mw"].values[inside].max()) if inside.any() else None})
    return out


def schedule_scenarios(site: Site | str | Path, scenario_prices: pd.DataFrame, weights=None, *,
                       day: dt.date | str | None = None, hashprice: float | None = None, lookahead_hours: int = 24,
                       initial_state: Mapping[str, UnitState] | None = None,
                       options: solve.SolverOptions | None = None, cvar_weight: float = 0.0,
                       alpha: float = 0.9, allow_sla_breach: bool = False, events: list[Event] | None = None,
                       peak_probability: pd.Series | None = None,
                       decision_time: pd.Timestamp | None = None,
                       history: MarketHistory | None = None,
                       job_progress: Mapping[str, JobProgress] | None = None,
                       sla_shortfall_before_mwh: Mapping[str, float] | None = None,
                       as_prices: AsPrices | None = None) -> xr.Dataset:
    """Two-stage schedule of one operating day over price scenarios (one column each, hourly, tz-aware index
    covering the day and lookahead): commitments shared, power per scenario (see :mod:`optimizer.stochastic`).
    ``weights``: one per scenario (default equal). Every other option means what it means in :func:`schedule`
    and is honoured the same way (emergency caps, initial state, SLA breach, 4CP, accept gap). Returns the day's
    hours with a ``scenario`` dimension; every scenario's schedule has passed the independent checker."""
    from optimizer.stochastic import ScenarioPlanner

    site = site if isinstance(site, Site) else load_site(site)
    the_day = _as_day(day) if day is not None else DEFAULT_DAY
    hours = operating_hours(the_day, site.timezone)
    columns = [horizon_prices(site, the_day, scenario_prices[c], lookahead_hours, source=f"scenario {c}").prices
               for c in scenario_prices.columns]
    frame = pd.concat(columns, axis=1, keys=list(scenario_prices.columns))
    req = DayRequest(the_day, frame.iloc[:, 0], hashprice, lookahead_hours, initial_state, tuple(events or ()),
                     peak_probability, decision_time, history, job_progress, sla_shortfall_before_mwh, as_prices)
    inputs, sources = day_inputs(site, req)
    k = frame.shape[1]
    w = np.full(k, 1.0 / k) if weights is None else np.asarray(weights, dtype=float)
    ds = ScenarioPlanner(site, options, allow_sla_breach=allow_sla_breach).solve(inputs, frame, w,
                                                                                 cvar_weight=cvar_weight, alpha=alpha)
    head = inputs.head(len(hours))
    per = []
    for j in range(ds.sizes["scenario"]):
        one = results.resettle_day(ds.isel(scenario=j).drop_vars(["scenario", "weight"]), site,
                                   head.replace(prices=frame.iloc[: len(hours), j]))
        verify(site, one, head.replace(prices=frame.iloc[: len(hours), j]), allow_sla_breach=allow_sla_breach)
        per.append(one)
    attrs = dict(ds.attrs)
    ds = xr.concat(per, dim="scenario", combine_attrs="drop").assign_coords(scenario=ds["scenario"].values,
                                                                            weight=("scenario", ds["weight"].values))
    ds.attrs.update(attrs)
    ds.attrs.update({"day": the_day.isoformat(), "hours": len(hours), "site_source": site.source,
                     "site_sha256": site.sha256, **sources})
    return ds


def optimize(site: Site, inputs: Inputs, *, options: solve.SolverOptions | None = None,
             export_model: str | Path | None = None, allow_sla_breach: bool = False,
             fallback: bool = False) -> xr.Dataset:
    """Build, solve and read back the model over exactly the intervals of ``inputs`` (hourly or 15-minute): one
    :class:`~optimizer.planner.Planner` solve, then the independent checker.

    The building block of :func:`schedule` (which adds the operating day, lookahead and shipped data); use it
    directly for a horizon of any length. Solver facts go in ``ds.attrs``.

    When the hard limits conflict, raises ``InfeasibleError`` naming them (see :mod:`optimizer.diagnose`). When
    the solver returns no usable solution: with ``fallback``, returns the strike-rule schedule of
    :mod:`optimizer.fallback` with ``attrs["fallback"] = 1`` and the reason; without, raises ``NoSolutionError``.
    """
    ds = Planner(site, options, allow_sla_breach=allow_sla_breach).solve(inputs, fallback=fallback,
                                                                         export_model=export_model)
    verify(site, ds, inputs, allow_sla_breach=allow_sla_breach)
    return ds


def _as_day(day: dt.date | str) -> dt.date:
    if isinstance(day, dt.datetime):
        return day.date()
    if isinstance(day, dt.date):
        return day
    try:
        return dt.date.fromisoformat(str(day))
    except ValueError:
        raise InputError(f"day {day!r} is not a date (expected YYYY-MM-DD)", field="day") from None


def _day_summary(day: dt.date, ds: xr.Dataset, horizon_profit: float, total_s: float) -> dict:
    money = {k: float(ds[k].sum()) for k in results.MONEY}
    energy = {f"{k[:-3]}_mwh": results.energy_mwh(ds, k) for k in ("mining_mw", "ai_mw", "load_mw", "sellback_mw")}
    return {
        "day": day.isoformat(),
        "hours": int(ds.sizes["time"]),
        "horizon_profit_usd": horizon_profit,
        "total_seconds": total_s,
        **money,
        **energy,
        "restarts": int(ds["start"].sum()),
    }
