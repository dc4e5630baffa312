"""One day-ahead schedule: gather inputs for an operating day, build, solve, read back, check.

The operating day is the site's local calendar day (23, 24 or 25 hours); the model also sees a lookahead
(default 24 h) that shapes decisions but is not part of the schedule.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import xarray as xr

from optimizer import data, results, solve
from optimizer.errors import InputError
from optimizer.events import Event, load_caps
from optimizer.planner import Planner
from optimizer.site import Site, load_site
from optimizer.state import UnitState

#: Default operating day of ``curtail schedule`` with no ``--day``: a real summer day with day-ahead prices.
DEFAULT_DAY = dt.date(2022, 7, 20)


def operating_hours(day: dt.date, timezone: str) -> pd.DatetimeIndex:
    """UTC start of every hour of the local calendar day ``day`` (23, 24 or 25 of them)."""
    tz = ZoneInfo(timezone)
    start = pd.Timestamp(dt.datetime.combine(day, dt.time(), tz)).tz_convert("UTC")
    end = pd.Timestamp(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz)).tz_convert("UTC")
    return pd.date_range(start, end, freq="1h", inclusive="left", name="timestamp")


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
    for market, label in (("da", "ERCOT day-ahead"), ("rt", "ERCOT real-time")):
        try:
            s = data.ercot_prices(site.settlement_point, market)
        except InputError:
            continue
        if s.index.isin(hours).sum() < len(hours):
            continue
        n = int(s.reindex(full).notna().cumprod().sum())        # leading hours covered without a gap
        if n < len(full) and market == "da" and s.index[-1] >= full[-1]:
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


def schedule(site: Site | str | Path, prices: pd.Series | None = None, *, day: dt.date | str | None = None,
             hashprice: float | None = None, lookahead_hours: int = 24,
             initial_state: Mapping[str, UnitState] | None = None,
             options: solve.SolverOptions | None = None, export_model: str | Path | None = None,
             allow_sla_breach: bool = False, fallback: bool = False, events: list[Event] | None = None,
             peak_probability: pd.Series | None = None) -> xr.Dataset:
    """Solve one operating day and return its schedule as an ``xarray.Dataset`` (see :mod:`optimizer.results`).

    ``site``: a :class:`Site` or a path to a site model. ``prices``: hourly USD/MWh with a tz-aware index
    covering the day and lookahead (default: shipped ERCOT prices). ``day``: local operating day (default
    2022-07-20). ``hashprice``: USD per PH/s per day for the whole run (default: the latest shipped value
    before the day). ``initial_state``: per asset; default all on at full power. ``events``: emergency load caps
    (:mod:`optimizer.events`), hard limits. ``peak_probability``: 4CP peak chance per hour (default, for a site
    whose ``[fourcp]`` table sets a charge or a threshold: estimated from the shipped ERCOT load as known at 10:00
    the day before). With SLA breach allowed, the written day's SLA credit counts the day's own shortfall (the
    lookahead's shortfall shaped the plan but is not owed by this schedule).

    The summary is in ``ds.attrs`` (``optimizer.results.summary(ds)`` decodes it). Raises ``InputError`` on bad
    input, ``InfeasibleError`` when hard limits conflict, ``NoSolutionError`` when the solver finds nothing.
    """
    t_start = time.perf_counter()
    site = site if isinstance(site, Site) else load_site(site)
    day = _as_day(day) if day is not None else DEFAULT_DAY
    if not 0 <= lookahead_hours <= 168:
        raise InputError(f"lookahead must be 0..168 hours, got {lookahead_hours}", field="lookahead_hours")
    hours = operating_hours(day, site.timezone)
    pin = horizon_prices(site, day, prices, lookahead_hours)
    if hashprice is None:
        hp, hp_day = data.hashprice_known_on(day)
        hp_source = f"shipped daily hashprice of {hp_day} (latest known before {day})"
    else:
        hp, hp_source = float(hashprice), "given"
    times = pd.DatetimeIndex(pin.prices.index)
    caps = load_caps(site, events, times, 1.0) if events else None
    prob, prob_source = _peak_probability(site, day, times, peak_probability)
    planner = Planner(site, options, allow_sla_breach=allow_sla_breach)
    ds = planner.solve(pin.prices, hp, initial_state, fallback=fallback, export_model=export_model,
                       load_cap_mw=caps, peak_probability=prob)
    full_profit = float(ds["profit_usd"].sum())
    ds = results.resettle_sla_credit(ds.isel(time=slice(0, len(hours))), site)
    ds.attrs.update(_day_summary(site, day, pin, hp_source, ds, full_profit, time.perf_counter() - t_start))
    ds.attrs["fourcp_source"] = prob_source
    ds.attrs["emergency_events_json"] = json.dumps(_events_report(events, ds))
    return ds


def _peak_probability(site: Site, day: dt.date, times: pd.DatetimeIndex,
                      given: pd.Series | None) -> tuple[np.ndarray | None, str]:
    if given is not None:
        return given.reindex(times).fillna(0.0).to_numpy(dtype=float), "given"
    if not site.fourcp.active:
        return None, "off"
    from optimizer import forecast, fourcp

    decision = forecast.decision_time_for(day, site.timezone, forecast.DEFAULT_DECISION_HOUR_LOCAL)
    try:
        prob = fourcp.peak_probability(_load_history(), decision, times)
    except InputError as exc:
        warnings.warn(f"4CP: no peak probability for {day} ({exc}); 4CP left out", data.PriceWarning, stacklevel=3)
        return None, f"unavailable: {exc}"
    return prob.to_numpy(dtype=float), f"estimated from ERCOT load known at {decision.isoformat()}"


def _load_history():
    from optimizer import forecast

    return forecast.MarketHistory.shipped("HB_HUBAVG")


def _events_report(events: list[Event] | None, ds: xr.Dataset) -> list[dict]:
    """Each event with the most the schedule draws inside it (MW), to show it was honoured."""
    out = []
    times = pd.DatetimeIndex(ds["time"].values).tz_localize("UTC")
    for e in events or ():
        inside = (times < e.end) & (times + pd.Timedelta(hours=float(ds.attrs.get("interval_hours", 1.0))) > e.start)
        out.append({"start": e.start.isoformat(), "end": e.end.isoformat(), "max_load_mw": e.max_load_mw,
                    "intervals_in_schedule": int(inside.sum()),
                    "highest_load_mw": float(ds["load_mw"].values[inside].max()) if inside.any() else None})
    return out


def schedule_scenarios(site: Site | str | Path, scenario_prices: pd.DataFrame, weights=None, *,
                       day: dt.date | str | None = None, hashprice: float | None = None, lookahead_hours: int = 24,
                       initial_state: Mapping[str, UnitState] | None = None,
                       options: solve.SolverOptions | None = None, cvar_weight: float = 0.0,
                       alpha: float = 0.9) -> xr.Dataset:
    """Two-stage schedule of one operating day over price scenarios (one column each, hourly, tz-aware index
    covering the day and lookahead): commitments shared, power per scenario (see :mod:`optimizer.stochastic`).
    ``weights``: one per scenario (default equal). Returns the day's hours with a ``scenario`` dimension."""
    from optimizer.stochastic import ScenarioPlanner

    site = site if isinstance(site, Site) else load_site(site)
    day = _as_day(day) if day is not None else DEFAULT_DAY
    hours = operating_hours(day, site.timezone)
    columns = [horizon_prices(site, day, scenario_prices[c], lookahead_hours, source=f"scenario {c}").prices
               for c in scenario_prices.columns]
    frame = pd.concat(columns, axis=1, keys=list(scenario_prices.columns))
    k = frame.shape[1]
    w = np.full(k, 1.0 / k) if weights is None else np.asarray(weights, dtype=float)
    if hashprice is None:
        hashprice, _ = data.hashprice_known_on(day)
    ds = ScenarioPlanner(site, options).solve(frame, w, hashprice, initial_state, cvar_weight=cvar_weight,
                                              alpha=alpha)
    ds = ds.isel(time=slice(0, len(hours)))
    ds.attrs.update({"day": day.isoformat(), "hours": len(hours), "lookahead_hours": lookahead_hours,
                     "site_source": site.source, "site_sha256": site.sha256})
    return ds


def optimize(site: Site, prices: pd.Series, hashprice: float, *,
             initial_state: Mapping[str, UnitState] | None = None, options: solve.SolverOptions | None = None,
             export_model: str | Path | None = None, allow_sla_breach: bool = False,
             fallback: bool = False, load_cap_mw: np.ndarray | None = None,
             peak_probability: np.ndarray | None = None) -> xr.Dataset:
    """Build, solve and read back the model over exactly the intervals of ``prices`` (hourly or 15-minute,
    tz-aware index): one :class:`~optimizer.planner.Planner` solve.

    The building block of :func:`schedule` (which adds the operating day, lookahead and shipped data); use it
    directly for a horizon of any length. Solver facts go in ``ds.attrs``.

    When the hard limits conflict, raises ``InfeasibleError`` naming them (see :mod:`optimizer.diagnose`). When
    the solver returns no usable solution: with ``fallback``, returns the strike-rule schedule of
    :mod:`optimizer.fallback` with ``attrs["fallback"] = 1`` and the reason; without, raises ``NoSolutionError``.
    """
    planner = Planner(site, options, allow_sla_breach=allow_sla_breach)
    return planner.solve(prices, hashprice, initial_state, fallback=fallback, export_model=export_model,
                         load_cap_mw=load_cap_mw, peak_probability=peak_probability)


def _as_day(day: dt.date | str) -> dt.date:
    if isinstance(day, dt.datetime):
        return day.date()
    if isinstance(day, dt.date):
        return day
    try:
        return dt.date.fromisoformat(str(day))
    except ValueError:
        raise InputError(f"day {day!r} is not a date (expected YYYY-MM-DD)", field="day") from None


def _day_summary(site: Site, day: dt.date, pin: PriceInput, hp_source: str, ds: xr.Dataset,
                 horizon_profit: float, total_s: float) -> dict:
    money = {k: float(ds[k].sum()) for k in results.MONEY}
    energy = {f"{k[:-3]}_mwh": results.energy_mwh(ds, k) for k in ("mining_mw", "ai_mw", "load_mw", "sellback_mw")}
    return {
        "day": day.isoformat(),
        "hours": int(ds.sizes["time"]),
        "lookahead_hours": pin.lookahead_hours,
        "price_source": pin.source,
        "hashprice_source": hp_source,
        "horizon_profit_usd": horizon_profit,
        "total_seconds": total_s,
        **money,
        **energy,
        "restarts": int(ds["start"].sum()),
    }


