"""Walk-forward backtest: replay operating days as the nightly job would have, operate in real time, settle.

For each operating day D (the site's local calendar day):

1. at the decision time on D-1 (default 10:00 local), forecast hourly real-time prices for D plus the lookahead
   with :mod:`optimizer.forecast` (which sees only what was published by then); the hashprice known then is the
   latest daily value whose UTC day had ended;
2. plan: solve the day-ahead model on that forecast, from the state each policy actually ended D-1 in;
3. operate through D at the simulation's resolution (15 minutes on the shipped data) with each policy;
4. settle every policy at the actual real-time prices and the day's actual hashprice.

Policies (:data:`POLICIES`):

``schedule``         follow the plan's power set-points (within the units' limits at real-time resolution);
``schedule+strike``  follow the plan while the real-time price is on the plan's side of the unit's strike for
                     that hour, and override toward full power / zero when it crosses. The strike is the unit's
                     value per MWh moved by a commitment premium (restart cost spread over one on/off cycle:
                     ``restart_cost / (capacity x max(min on, min off, 1 h))``): up in the hours the plan runs the
                     unit, down in the hours it does not, so a short surprise is not worth a restart;
``strike``           the operators' rule: run below the value per MWh, stop above (optional hysteresis and hold);
``always-on``        everything at full power;
``perfect``          the same model solved on the actual real-time prices at the simulation's resolution
                     (with the actual lookahead), valuing mining at the hashprice known at the decision like the
                     other plans, and settled like them at the actual one: the benchmark upper limit.
``stochastic+strike`` (optional) the two-stage plan over the forecast's 10/50/90% quantile paths (commitments
                     shared, see :mod:`optimizer.stochastic`), its median-scenario set-points operated like
                     ``schedule+strike``.

Emergency events (hard load caps) are given in advance: plans honour them with their ramps; rule-based policies
trip units to zero when a cap binds (see :mod:`optimizer.operate`). 4CP: plans price each hour's peak
probability as known at the decision time; perfect foresight knows the actual peaks; every policy is settled on
the actual monthly peaks (``fourcp_charge_usd``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from optimizer import data, forecast, operate, results
from optimizer.errors import InputError
from optimizer.events import Event, load_caps
from optimizer.inputs import Inputs
from optimizer.planner import Planner
from optimizer.market import operating_hours
from optimizer.site import Site
from optimizer.solve import SolverOptions
from optimizer.state import UnitState, resolve
from optimizer.stochastic import ScenarioPlanner, quantile_scenarios

#: Forecast quantiles that make the scenarios of ``stochastic+strike``.
QUANTILES = (0.1, 0.5, 0.9)

POLICIES = ("schedule", "schedule+strike", "strike", "always-on", "perfect")
#: Also available, not run by default (it fits three quantile models): the two-stage plan over the forecaster's
#: 10/50/90% quantile scenarios, operated like schedule+strike.
OPTIONAL_POLICIES = ("stochastic+strike",)


@dataclass(frozen=True)
class Settings:
    """What a backtest run needs besides the site and the dates."""

    forecast_method: str = "auto"            # "auto": gbm (see default_method), or one of forecast.METHODS
    decision_hour_local: int | None = None   # None: 10, or 14 for the day-ahead based methods
    lookahead_hours: int = 24
    hashprice_usd_per_ph_day: float | None = None     # constant; None: the shipped daily series
    hysteresis_usd_per_mwh: float = 0.0      # for the strike rule
    hold_hours: float = 0.0                  # minimum hold of the strike rule
    cvar_weight: float = 0.0                 # stochastic+strike: weight of CVaR(90%) against expected profit
    policies: tuple[str, ...] = POLICIES
    solver: SolverOptions = field(default_factory=lambda: SolverOptions(mip_rel_gap=1e-6))
    events: tuple[Event, ...] = ()           # emergency caps, given in advance: honoured by every policy
    deployments: tuple[Deployment, ...] = ()  # ancillary-service deployments: offered capacity must drop
    fourcp_in_plan: bool = True              # plans price the expected 4CP charge (when the site has one)

    def __post_init__(self) -> None:
        unknown = set(self.policies) - set(POLICIES) - set(OPTIONAL_POLICIES)
        if unknown:
            raise InputError(f"unknown policy {sorted(unknown)}; one of {', '.join(POLICIES + OPTIONAL_POLICIES)}",
                             field="policies")
        if self.forecast_method not in ("auto", *forecast.METHODS):
            raise InputError(f"unknown forecast method {self.forecast_method!r}; one of auto, "
                             f"{', '.join(forecast.METHODS)}", field="forecast")


@dataclass
class Market:
    """The price data of a run: the history forecasts may read (filtered by decision time) and the actual
    real-time prices that settle (any resolution: 1 h or 15 min)."""

    history: forecast.MarketHistory
    actual: pd.Series
    hashprice: pd.Series | None = None      # daily USD/PH/day indexed by UTC date; None: constant given
    peak_hours: pd.DatetimeIndex | None = None   # actual 4CP hours (UTC hour starts) that settle the charge

    @classmethod
    def shipped(cls, settlement_point: str, resolution: str = "15min") -> Market:
        return cls(forecast.MarketHistory.shipped(settlement_point),
                   data.ercot_prices(settlement_point, "rt", resolution), data.hashprice_series(),
                   data.ercot_4cp_hours())


@dataclass
class Result:
    """A run's outcome: per-interval dataset (dims policy, time, asset), per-day table, summary, end states."""

    intervals: xr.Dataset
    days: pd.DataFrame
    summary: dict
    end_states: dict[str, dict[str, UnitState]]
    forecast: pd.Series          # the forecast each operating hour was planned with (USD/MWh)


@dataclass(frozen=True)
class Deployment:
    """A deployment of an ancillary service (UTC, end exclusive): units that offered it drop that capacity."""

    start: pd.Timestamp
    end: pd.Timestamp
    service: str


@dataclass(frozen=True)
class _Day:
    """Everything one operating day's policies need: what was known at the decision, and what happened."""

    hours: pd.DatetimeIndex          # UTC hour starts of the operating day
    sim_times: pd.DatetimeIndex      # real-time intervals of the day
    rt: pd.Series                    # actual real-time prices of the day (settlement)
    forecast: pd.Series              # hourly forecast over the plan horizon (decision time)
    scenarios: pd.DataFrame | None   # quantile paths over the plan horizon (stochastic+strike only)
    hashprice_known: float
    sim_caps: np.ndarray             # load caps of the day's intervals (emergency events)
    plan_caps: np.ndarray            # the same events over the plan horizon (events are given in advance)
    plan_peak_probability: np.ndarray | None   # 4CP chances over the plan horizon, known at the decision
    perfect_prices: pd.Series        # actual prices over the horizon at real-time resolution
    perfect_caps: np.ndarray
    perfect_peak_weight: np.ndarray | None      # the actual 4CP peaks over that horizon


def _peak_probability(history, decision, horizon) -> np.ndarray:
    from optimizer import fourcp

    return fourcp.peak_probability(history, decision, horizon).to_numpy()


def _peak_weight(times: pd.DatetimeIndex, peaks: pd.DatetimeIndex | None) -> np.ndarray:
    """1 for intervals inside an actual monthly peak hour, else 0."""
    if peaks is None or len(peaks) == 0:
        return np.zeros(len(times))
    return pd.DatetimeIndex(times).floor("h").isin(peaks).astype(float)


def default_method(settings: Settings) -> str:
    """``auto`` means ``gbm``: at a 10:00 decision no day-ahead price of D is published yet (13:30), and on the
    shipped data gbm beats the seasonal naive forecast (see benchmarks/forecast_mae.py)."""
    return "gbm" if settings.forecast_method == "auto" else settings.forecast_method


def run(site: Site, start: dt.date, end: dt.date, market: Market, settings: Settings | None = None, *,
        initial_states: Mapping[str, Mapping[str, UnitState]] | None = None,
        progress: Callable[[dt.date], None] | None = None) -> Result:
    """Backtest ``site`` over the local days ``start``..``end`` (inclusive)."""
    settings = settings or Settings()
    t_wall = time.perf_counter()
    if end < start:
        raise InputError(f"end {end} is before start {start}", field="end")
    method = default_method(settings)
    hour = settings.decision_hour_local
    if hour is None:
        hour = forecast.DA_DECISION_HOUR_LOCAL if method in ("da", "da+gbm") else forecast.DEFAULT_DECISION_HOUR_LOCAL
    forecaster = forecast.Forecaster(method, market.history)
    fallback_forecaster = forecast.Forecaster("naive", market.history)
    quantile_method = method if method in ("gbm", "naive", "da+gbm") else "naive"
    quantile_forecaster = forecast.Forecaster(quantile_method, market.history, quantiles=QUANTILES)
    fallback_quantiles = forecast.Forecaster("naive", market.history, quantiles=QUANTILES)
    scenario_planner = ScenarioPlanner(site, settings.solver)
    actual = market.actual.sort_index()
    dt_sim = data.interval_hours(pd.DatetimeIndex(actual.index[:2]))
    plan_planner = Planner(site, settings.solver)
    perfect_planner = Planner(site, settings.solver)
    states = {p: resolve(site, (initial_states or {}).get(p)) for p in settings.policies}
    frames: dict[str, list[xr.Dataset]] = {p: [] for p in settings.policies}
    rows, forecasts = [], []
    for day in pd.date_range(start, end, freq="D").date:
        hours = operating_hours(day, site.timezone)
        sim_times = pd.date_range(hours[0], hours[-1] + pd.Timedelta(hours=1), freq=f"{int(dt_sim * 60)}min",
                                  inclusive="left")
        rt = actual.reindex(sim_times)
        if rt.isna().any():
            raise InputError(f"no actual real-time price for {rt.index[rt.isna()][0].isoformat()} (operating day "
                             f"{day})", field="prices")
        decision = forecast.decision_time_for(day, site.timezone, hour)
        horizon = _covered(forecast.horizon_for(day, site.timezone, settings.lookahead_hours), actual, len(hours))
        hp_known, hp_actual = _hashprices(market, settings, day, decision)
        used = method
        try:
            fc = forecaster.predict(decision, horizon)
        except InputError:
            if method in ("perfect",):
                raise
            fc, used = fallback_forecaster.predict(decision, horizon), "naive"
        forecasts.append(fc.iloc[: len(hours)])
        step = pd.Timedelta(hours=dt_sim)
        perfect_times = pd.date_range(horizon[0], horizon[-1] + pd.Timedelta(hours=1), freq=step, inclusive="left")
        perfect_prices = actual.reindex(perfect_times).dropna()
        fourcp = site.fourcp.active
        scen = None
        if "stochastic+strike" in settings.policies:
            scen = _quantiles(quantile_forecaster, fallback_quantiles, decision, horizon)
        d = _Day(hours=hours, sim_times=sim_times, rt=rt, forecast=fc, scenarios=scen, hashprice_known=hp_known,
                 sim_caps=load_caps(site, list(settings.events), sim_times, dt_sim),
                 plan_caps=load_caps(site, list(settings.events), horizon, 1.0),
                 plan_peak_probability=(_peak_probability(market.history, decision, horizon)
                                        if fourcp and settings.fourcp_in_plan else None),
                 perfect_prices=perfect_prices,
                 perfect_caps=load_caps(site, list(settings.events), perfect_prices.index, dt_sim),
                 perfect_peak_weight=(_peak_weight(perfect_prices.index, market.peak_hours)
                                      if fourcp and settings.fourcp_in_plan else None))
        settle_weight = _peak_weight(sim_times, market.peak_hours)
        if d.plan_peak_probability is not None and site.fourcp.curtail_above_probability < 1.0:
            # the site's 4CP curtailment rule is a hard limit of operation, for every policy
            on_sim = pd.Series(d.plan_peak_probability, index=horizon).reindex(sim_times.floor("h")).to_numpy()
            hot = on_sim >= site.fourcp.curtail_above_probability
            d = dataclasses.replace(d, sim_caps=np.where(hot, np.minimum(d.sim_caps, site.committed_mw), d.sim_caps))
        row = {"day": day, "forecast_method": used, "hashprice_known": hp_known, "hashprice_actual": hp_actual,
               "forecast_mae_usd_per_mwh": float(np.abs(fc.iloc[: len(hours)].to_numpy()
                                                        - _hourly(rt, hours).to_numpy()).mean())}
        for policy in settings.policies:
            walk, offer, caps, deployed = _operate(policy, site, states[policy], d, settings, plan_planner,
                                                   perfect_planner, scenario_planner)
            ds = results.assemble(site, sim_times, rt.to_numpy(), walk.site_power(site), walk.on, walk.start,
                                  hashprice_usd_per_ph_day=hp_actual, dt_hours=dt_sim, max_load_mw=caps,
                                  peak_weight=settle_weight, reserve_offer=offer, reserve_deployed_mw=deployed)
            frames[policy].append(ds)
            states[policy] = walk.end_state
            row[f"{policy}:profit_usd"] = float(ds["profit_usd"].sum())
        rows.append(row)
        if progress:
            progress(day)
    intervals = xr.concat([xr.concat(frames[p], dim="time") for p in settings.policies], dim="policy",
                          combine_attrs="drop_conflicts")
    intervals = intervals.assign_coords(policy=list(settings.policies))
    intervals.attrs.update({"interval_hours": dt_sim, "site": site.name, "forecast_method": method,
                            "decision_hour_local": hour})
    days = pd.DataFrame(rows).set_index("day")
    summary = _summary(site, intervals, days, settings, method, hour, start, end,
                       plan_planner.highs_seconds + perfect_planner.highs_seconds + scenario_planner.highs_seconds,
                       time.perf_counter() - t_wall)
    return Result(intervals, days, summary, states, pd.concat(forecasts).rename("forecast_usd_per_mwh"))


def _quantiles(fc: forecast.Forecaster, fallback: forecast.Forecaster, decision: pd.Timestamp,
               horizon: pd.DatetimeIndex) -> pd.DataFrame:
    try:
        return fc.predict_quantiles(decision, horizon)
    except InputError:
        return fallback.predict_quantiles(decision, horizon)


def _covered(horizon: pd.DatetimeIndex, actual: pd.Series, n_day: int) -> pd.DatetimeIndex:
    """The horizon cut where the price data ends (the lookahead shrinks at the end of the shipped data)."""
    last = actual.index[-1]
    return horizon[: max(n_day, int((horizon <= last).sum()))]


def _hourly(rt: pd.Series, hours: pd.DatetimeIndex) -> pd.Series:
    return rt.groupby(rt.index.floor("h")).mean().reindex(hours)


def _hashprices(market: Market, settings: Settings, day: dt.date, decision: pd.Timestamp) -> tuple[float, float]:
    """(known at the decision time: the latest UTC day that had ended; actual: the operating day's own)."""
    if settings.hashprice_usd_per_ph_day is not None:
        return (settings.hashprice_usd_per_ph_day,) * 2
    s = market.hashprice
    if pd.Timestamp(day) not in s.index:
        raise InputError(f"no daily hashprice for {day}; give a constant hashprice", field="hashprice")
    known, _ = data.hashprice_known_at(decision, s, day=day)
    return known, float(s.loc[pd.Timestamp(day)])


def _operate(policy: str, site: Site, state: Mapping[str, UnitState], d: _Day, settings: Settings,
             plan_planner: Planner, perfect_planner: Planner, scenario_planner: ScenarioPlanner
             ) -> tuple[operate.Walk, np.ndarray | None, np.ndarray, np.ndarray | None]:
    """One policy through one day, from its own state: the walk, the reserve capacity it offered (plan-based
    policies only), the load caps it honoured (events, and deployments of what it offered) and the MW deployed."""
    dt_sim = data.interval_hours(d.sim_times[:2])
    price = d.rt.to_numpy()
    caps = d.sim_caps
    if policy == "strike":
        units = operate.units_for(site, d.hashprice_known, state, dt_sim, settings.hold_hours)
        return operate.walk(site, d.sim_times, units, operate.strike_policy(price, settings.hysteresis_usd_per_mwh),
                            caps), None, caps, None
    units = operate.units_for(site, d.hashprice_known, state, dt_sim)
    if policy == "always-on":
        return operate.walk(site, d.sim_times, units, lambda t, j, u, lo, hi: hi, caps), None, caps, None
    if policy == "perfect":
        plan = perfect_planner.solve(Inputs(d.perfect_prices, d.hashprice_known, state, d.perfect_caps,
                                            d.perfect_peak_weight), fallback=True)
    elif policy == "stochastic+strike":
        frame, weights = quantile_scenarios(d.scenarios)
        two = scenario_planner.solve(Inputs(frame.iloc[:, 0], d.hashprice_known, state, d.plan_caps,
                                            d.plan_peak_probability), frame, weights,
                                     cvar_weight=settings.cvar_weight)
        plan = two.sel(scenario="q0.5")
    else:
        plan = plan_planner.solve(Inputs(d.forecast, d.hashprice_known, state, d.plan_caps,
                                         d.plan_peak_probability), fallback=True)
    setpoint, offer = _setpoints(site, plan, d.sim_times)
    caps, deployed = _deployed(site, settings.deployments, d.sim_times, dt_sim, caps, setpoint, offer)
    if policy in ("schedule", "perfect"):
        return (operate.walk(site, d.sim_times, units, lambda t, j, u, lo, hi: setpoint[t, j], caps), offer, caps,
                deployed)
    strike = _strikes(units, setpoint)
    # the plan runs a unit when above its on-floor: a unit held warm at the floor counts as curtailed
    planned_on = setpoint > np.array([u.floor for u in units]) + 1e-6

    def plan_with_override(t: int, j: int, u: operate.Unit, lo: float, hi: float) -> float:
        runs = price[t] < strike[t, j]
        return setpoint[t, j] if runs == planned_on[t, j] else (hi if runs else lo)

    return operate.walk(site, d.sim_times, units, plan_with_override, caps), offer, caps, deployed


def _deployed(site: Site, deployments: Sequence[Deployment], times: pd.DatetimeIndex, dt_hours: float,
              caps: np.ndarray, setpoint: np.ndarray, offer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Load caps with deployments, and MW deployed: in a deployed interval the site draws at most its planned
    load minus the capacity it offered to that service."""
    deployed = np.zeros(len(times))
    if not deployments or offer.shape[2] == 0:
        return caps, deployed
    services = [r.name for r in site.reserves]
    planned = setpoint.sum(axis=1) + site.committed_mw
    caps = caps.copy()
    t0 = pd.DatetimeIndex(times)
    t1 = t0 + pd.Timedelta(hours=dt_hours)
    for dep in deployments:
        if dep.service not in services:
            continue
        hit = (t0 < dep.end) & (t1 > dep.start)
        drop = offer[:, :, services.index(dep.service)].sum(axis=1)
        caps[hit] = np.minimum(caps[hit], planned[hit] - drop[hit])
        deployed[hit] += drop[hit]
    return caps, deployed


def _setpoints(site: Site, plan: xr.Dataset, sim_times: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    """The plan's power of each switchable part (fleets; clusters' flexible load) and its reserve offers
    (interval, asset, service), on the simulation's times."""
    power = plan["power_mw"].to_numpy().copy()
    n_mining = len(site.mining)
    for j, g in enumerate(site.gpu):
        power[:, n_mining + j] -= g.committed_mw
    plan_times = pd.DatetimeIndex(plan["time"].values).tz_localize("UTC")
    idx = plan_times.get_indexer(sim_times.floor(f"{int(plan.attrs['interval_hours'] * 60)}min"))
    return np.clip(power[idx], 0.0, None), plan["reserve_offer_mw"].to_numpy()[idx]


def _strikes(units: Sequence[operate.Unit], setpoint: np.ndarray) -> np.ndarray:
    """Strike per interval and unit: value +/- commitment premium (up where the plan runs the unit)."""
    out = np.empty_like(setpoint)
    for j, u in enumerate(units):
        premium = u.c.restart_cost_usd / (u.cap * max(u.c.min_on_hours, u.c.min_off_hours, 1.0)) if u.cap else 0.0
        out[:, j] = u.value + np.where(setpoint[:, j] > u.floor + 1e-6, premium, -premium)
    return out


def _summary(site: Site, ds: xr.Dataset, days: pd.DataFrame, settings: Settings, method: str, hour: int,
             start: dt.date, end: dt.date, solver_s: float, wall_s: float) -> dict:
    dt_h = float(ds.attrs["interval_hours"])
    mining_cap = sum(f.capacity_mw for f in site.mining)
    per = {}
    for p in ds["policy"].values:
        d = ds.sel(policy=p)
        committed_mwh = site.committed_mw * d.sizes["time"] * dt_h
        short = float(d["sla_shortfall_mw"].sum()) * dt_h
        per[str(p)] = {
            **{k: float(d[k].sum()) for k in results.MONEY},
            "power_credits_usd": float(d["sellback_credit_usd"].sum()),
            "mined_mwh": float(d["mining_mw"].sum()) * dt_h,
            "ai_served_mwh": float(d["ai_mw"].sum()) * dt_h,
            "sold_back_mwh": float(d["sellback_mw"].sum()) * dt_h,
            "curtailed_mwh": (mining_cap * d.sizes["time"] - float(d["mining_mw"].sum())) * dt_h,
            "curtailment_hours": float((d["mining_mw"] < mining_cap - 1e-6).sum()) * dt_h,
            "restarts": int(d["start"].sum()),
            "reserve_offered_mw_hours": float(d["reserve_offer_mw"].sum()) * dt_h,
            "sla_delivered_fraction": 1.0 - short / committed_mwh if committed_mwh else 1.0,
        }
    profits = {p: v["profit_usd"] for p, v in per.items()}
    candidates = {p: v for p, v in profits.items() if p not in ("perfect", "always-on")}
    best = max(candidates, key=candidates.get) if candidates else None
    out = {
        "site": site.name, "settlement_point": site.settlement_point, "start": str(start), "end": str(end),
        "days": len(days), "interval_hours": dt_h, "forecast_method": method, "decision_hour_local": hour,
        "lookahead_hours": settings.lookahead_hours, "policies": per,
        "perfect_foresight_profit_usd": profits.get("perfect"), "always_on_profit_usd": profits.get("always-on"),
        "policy": best, "value_capture": None, "wall_seconds": wall_s, "solver_seconds": solver_s,
        "forecast_mae_usd_per_mwh": float(days["forecast_mae_usd_per_mwh"].mean()),
        "forecast_methods_used": {str(k): int(v) for k, v in days["forecast_method"].value_counts().items()},
    }
    if best and "perfect" in profits and "always-on" in profits and profits["perfect"] != profits["always-on"]:
        out["value_capture"] = (profits[best] - profits["always-on"]) / (profits["perfect"] - profits["always-on"])
    return out
