"""Walk-forward backtest: replay operating days as the tool would have run them, operate in real time, settle.

For each operating day D (the site's local calendar day):

1. at the decision time on D-1 (default 10:00 local), forecast hourly real-time prices for D plus the lookahead
   with :mod:`optimizer.forecast` (which sees only what was published by then); the hashprice known then is the
   latest daily value whose UTC day had ended; 4CP peak probabilities from the system load known then;
2. each policy plans (if it plans) from the state it actually ended D-1 in (units, job progress);
3. it operates through D at the simulation's resolution (15 minutes on the shipped data) with the real-time
   controller of :mod:`optimizer.operate`;
4. every policy is settled at the actual real-time prices, the day's actual hashprice and the actual 4CP peaks.

Policies (:data:`POLICIES`, a registry: one function per policy):

``mpc``              rolling re-optimisation, the default policy (:mod:`optimizer.realtime`, the same code as
                     ``curtail operate``): every ``replan_minutes`` (60 by default) of day
                     D, re-solve a fixed horizon (``horizon_hours``) from the state really reached, on the
                     intraday price forecast known then (:mod:`optimizer.intraday`: the last ended real-time price
                     decaying to the published day-ahead price, the D-1 forecast beyond), with 4CP probabilities
                     from the load seen so far; then run the real-time intervals until the next re-plan with the
                     re-plan's strike table (:func:`optimizer.operate.strike_table`: value - expected 4CP charge +/-
                     the commitment premium the plan implies) against the actual price of each interval;
``schedule``         follow the D-1 plan's set-points (within the units' limits at real-time resolution);
``schedule+strike``  run the D-1 plan's strike table, exactly the ``strike_usd_per_mwh__<unit>`` columns
                     ``curtail schedule`` writes: a unit runs while the real-time price is below its strike;
``strike``           the operators' rule: run while the price is below the unit's value (optional hysteresis and
                     hold), ignoring 4CP and commitment costs;
``always-on``        every unit at the most it can use;
``perfect``          the same model solved on the actual real-time prices at the simulation's resolution, with the
                     actual 4CP peaks, at the hashprice known at the decision: the benchmark upper limit;
``stochastic+strike`` (optional) the two-stage plan over the forecast's 10/50/90% quantile paths (commitments
                     shared, see :mod:`optimizer.stochastic`), its median scenario's strike table;
``bid``              (optional) day-ahead energy bid curves from the scenario model (:mod:`optimizer.bid`) made at
                     the bid deadline (10:00 on D-1), awarded at the actual day-ahead price; real time as ``mpc``
                     (the award is settled whatever is consumed, so it changes no real-time decision); the deviation
                     from the award settles at the real-time price (``with_two_settlement``);
``bid-strike``       (optional) the same with the strike rule as the bid: each unit's MW at its value.

Every policy's realised trajectory over the whole run is checked by the independent checker
(:mod:`optimizer.check`) against the inputs (actual prices, hashprice, caps, demand, jobs) before the result is
returned: a violation stops the run with a named error. Results are collected as arrays and assembled into one
dataset at the end.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from optimizer import ancillary, data, forecast, operate, results
from optimizer import market as mk
from optimizer.backtest.names import DA_POLICIES, OPTIONAL_POLICIES, POLICIES
from optimizer.bid import BidSettings
from optimizer.errors import InputError, NoSolutionError
from optimizer.events import Event, load_caps
from optimizer.inputs import Inputs
from optimizer.market import operating_hours
from optimizer.planner import Plan, Planner
from optimizer.realtime import (
    Controller,
    RealtimeSettings,
    allocate_jobs,
    cluster_jobs,
    keep_rigid_jobs,
    split,
    strike_table,
)
from optimizer.site import Site
from optimizer.solve import SolverOptions
from optimizer.state import UnitState, resolve
from optimizer.workloads import JobProgress

if TYPE_CHECKING:
    from optimizer.bid import Bidder
    from optimizer.intraday import IntradayForecaster
    from optimizer.stochastic import ScenarioPlanner

#: Forecast quantiles that make the scenarios of ``stochastic+strike``.
QUANTILES = (0.1, 0.5, 0.9)



@dataclass(frozen=True)
class Settings:
    """What a backtest run needs besides the site and the dates."""

    forecast_method: str = "auto"            # "auto": gbm (see default_method), or one of forecast.METHODS
    decision_hour_local: int | None = None   # None: 10, or 14 for the day-ahead based methods
    lookahead_hours: int = 24
    hashprice_usd_per_ph_day: float | None = None     # constant; None: the market's daily series
    hysteresis_usd_per_mwh: float = 0.0      # for the strike rule
    hold_hours: float = 0.0                  # minimum hold of the strike rule
    cvar_weight: float = 0.0                 # stochastic+strike: weight of CVaR(90%) against expected profit
    policies: tuple[str, ...] = POLICIES
    solver: SolverOptions = field(default_factory=lambda: SolverOptions(mip_rel_gap=1e-6))
    events: tuple[Event, ...] = ()           # emergency caps, given in advance: honoured by every policy
    deployments: tuple[Deployment, ...] = ()  # ancillary-service deployments: offered capacity must drop
    fourcp_in_plan: bool = True              # plans price the expected 4CP charge (when the site has one)
    realtime: RealtimeSettings = field(default_factory=RealtimeSettings)   # mpc: re-plans and interval decisions
    fourcp_intraday: str = "d-1"             # mpc: 4CP chances: "d-1" (the nightly estimate), "now", "max"
    demand_aware: bool = True                # plans and real-time decisions know the clusters' hourly demand
    #                                          (False: they assume every spot GPU is wanted; settled on demand)
    jobs_deferrable: bool = True             # plans may move jobs within their windows (False: run on arrival)
    bid: BidSettings = field(default_factory=BidSettings)   # bid: segments, scenarios and how they are drawn

    def __post_init__(self) -> None:
        unknown = set(self.policies) - set(POLICIES) - set(OPTIONAL_POLICIES)
        if unknown or not self.policies:
            raise InputError(f"unknown policy {sorted(unknown)}; one of {', '.join(POLICIES + OPTIONAL_POLICIES)}",
                             field="policies")
        if self.forecast_method not in ("auto", *forecast.METHODS):
            raise InputError(f"unknown forecast method {self.forecast_method!r}; one of auto, "
                             f"{', '.join(forecast.METHODS)}", field="forecast")
        if self.fourcp_intraday not in ("d-1", "now", "max"):
            raise InputError(f"fourcp_intraday must be d-1, now or max, got {self.fourcp_intraday!r}",
                             field="fourcp_intraday")


@dataclass
class Market:
    """The data of a run: the history forecasts may read (filtered by decision time), the actual real-time prices
    that settle (any resolution: 1 h or 15 min), the daily hashprice and the actual 4CP hours."""

    history: forecast.MarketHistory
    actual: pd.Series
    hashprice: pd.Series | None = None      # daily USD/PH/day indexed by UTC date; None: constant given
    peak_hours: pd.DatetimeIndex | None = None   # actual 4CP hours (UTC hour starts) that settle the charge
    as_prices: ancillary.AsPrices | None = None  # hourly AS clearing prices; None: the shipped ERCOT MCPC

    @classmethod
    def shipped(cls, settlement_point: str, resolution: str = "15min") -> Market:
        return cls(forecast.MarketHistory.shipped(settlement_point),
                   data.ercot_prices(settlement_point, "rt", resolution), data.hashprice_series(),
                   data.ercot_4cp_hours(), ancillary.AsPrices.shipped())


@dataclass
class Result:
    """A run's outcome: per-interval dataset (dims policy, time, asset), per-day table, summary, end states."""

    intervals: xr.Dataset
    days: pd.DataFrame
    summary: dict
    end_states: dict[str, dict[str, UnitState]]
    forecast: pd.Series          # the D-1 forecast each operating hour was planned with (USD/MWh)


@dataclass(frozen=True)
class Deployment:
    """A deployment of an ancillary service (UTC, end exclusive): units that offered it drop that capacity."""

    start: pd.Timestamp
    end: pd.Timestamp
    service: str


@dataclass
class PolicyState:
    """Where a policy stands between days: its units, its jobs' progress."""

    units: dict[str, UnitState]
    jobs: dict[str, JobProgress]


@dataclass(frozen=True)
class _Day:
    """Everything one operating day's policies need: what was known at the decision, and what happened."""

    day: dt.date
    hours: pd.DatetimeIndex          # UTC hour starts of the operating day
    times: pd.DatetimeIndex          # real-time intervals of the day
    dt: float                        # their length, hours
    rt: np.ndarray                   # actual real-time prices of the day (settlement)
    decision: pd.Timestamp
    horizon: pd.DatetimeIndex        # hourly plan horizon (day + lookahead, cut where the data ends)
    forecast: pd.Series              # hourly D-1 forecast over the plan horizon
    method: str                      # the forecast method actually used
    scenarios: pd.DataFrame | None   # quantile paths over the plan horizon (stochastic+strike only)
    hp_known: float
    hp_actual: float
    peak_probability: np.ndarray | None   # 4CP chances over the plan horizon, known at the decision
    emergency: np.ndarray            # emergency caps of the day's intervals (events)
    fourcp_cap: np.ndarray           # the site's 4CP curtailment rule on the day's intervals (import limit where none)
    settle_weight: np.ndarray        # 1 in the actual monthly peak hours
    demand: np.ndarray               # (interval, cluster) inference demand, GPUs
    plan_demand: np.ndarray          # the demand the decisions assume (= demand unless demand_aware is off)
    reserve_actual: dict[str, np.ndarray] = field(default_factory=dict)  # clearing prices of the day's intervals
    deployments: tuple[Deployment, ...] = ()     # the deployment events overlapping the day


@dataclass
class _Out:
    """One policy's day: its decisions and what shaped them (arrays over the day's intervals)."""

    power: np.ndarray
    on: np.ndarray
    start: np.ndarray
    committed: np.ndarray
    jobs: np.ndarray
    offer: np.ndarray
    caps: np.ndarray
    deployed: np.ndarray
    penalty: np.ndarray
    plan_status: str = ""
    plan_gap: float = float("nan")
    fallbacks: int = 0
    solves: int = 0
    da_award_mw: np.ndarray | None = None    # day-ahead policies: the award in force in each interval, MW


class _Env:
    """What every policy of a run shares: site, settings, market, planners, forecasters."""

    def __init__(self, site: Site, market: Market, settings: Settings):
        self.site, self.market, self.settings = site, market, settings
        self.plan_site = planning_site(site, settings)      # the site as the decisions see it
        self.planner = Planner(self.plan_site, settings.solver)
        # re-plans sell no capacity: before RTC+B (2025-12-05) ancillary services cleared only day-ahead; mpc holds the
        # award of its D-1 plan (_award)
        self.rt_site = dataclasses.replace(self.plan_site, reserves=())
        self.mpc_planner = Planner(self.rt_site, settings.solver)
        self.as_prices = market.as_prices or ancillary.AsPrices.shipped()      # used only by clearing-priced services
        self.perfect_planner = Planner(self.plan_site, settings.solver)
        self._scenario_planner: ScenarioPlanner | None = None
        self._intraday: IntradayForecaster | None = None
        self._controller: Controller | None = None
        self._bidder: Bidder | None = None
        self.mpc_memo: tuple | None = None                   # (day and start state, mpc's day and end state)

    @property
    def bidder(self) -> Bidder:
        if self._bidder is None:
            from optimizer.bid import Bidder

            self._bidder = Bidder(self.plan_site, self.settings.solver)
        return self._bidder

    @property
    def scenario_planner(self) -> ScenarioPlanner:
        if self._scenario_planner is None:
            from optimizer.stochastic import ScenarioPlanner

            self._scenario_planner = ScenarioPlanner(self.plan_site, self.settings.solver)
        return self._scenario_planner

    @property
    def intraday(self) -> IntradayForecaster:
        if self._intraday is None:
            from optimizer.intraday import IntradayForecaster

            h = self.market.history
            rt15 = self.market.actual if data.interval_hours(pd.DatetimeIndex(self.market.actual.index[:2])) == 0.25 \
                else None
            self._intraday = IntradayForecaster(rt15, h.rt, h.da, h.timezone)
        return self._intraday

    @property
    def controller(self) -> Controller:
        if self._controller is None:
            self._controller = Controller(self.rt_site, self.mpc_planner, self.intraday, self.settings.realtime)
        return self._controller

    @property
    def highs_seconds(self) -> float:
        out = self.planner.highs_seconds + self.mpc_planner.highs_seconds + self.perfect_planner.highs_seconds
        out += self._bidder.cache.highs_seconds if self._bidder else 0.0
        return out + (self._scenario_planner.highs_seconds if self._scenario_planner else 0.0)


def planning_site(site: Site, settings: Settings) -> Site:
    """The site as the decisions see it: itself, or (for the value of a kind of flexibility) without hourly demand
    (every spot GPU wanted) or with jobs that must run on arrival (a deadline the job's GPUs just meet, a penalty that
    makes lateness never pay). Settlement always uses the real site."""
    if not settings.demand_aware:
        site = dataclasses.replace(site, gpu=tuple(dataclasses.replace(g, demand_profile="flat", spot_utilization=1.0)
                                                   for g in site.gpu))
    if not settings.jobs_deferrable and site.jobs:
        site = dataclasses.replace(site, jobs=tuple(
            dataclasses.replace(j, deadline=j.release + pd.Timedelta(hours=float(np.ceil(j.gpu_hours / j.gpus))),
                                late_penalty_usd_per_gpu_hour=max(j.late_penalty_usd_per_gpu_hour, 1e5))
            for j in site.jobs))
    return site


def default_method(settings: Settings) -> str:
    """``auto`` means ``gbm``: at a 10:00 decision no day-ahead price of D is published yet (13:30)."""
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
        hour = mk.DA_DECISION_HOUR_LOCAL if method in ("da", "da+gbm") else mk.DEFAULT_DECISION_HOUR_LOCAL
    if site.fourcp.active:
        from optimizer import fourcp as fourcp_model

        fourcp_model.check_peaks_cover(market.peak_hours, start, end, site.timezone)
    env = _Env(site, market, settings)
    if ancillary.clearing_priced(site):           # every settled hour has its clearing price, or a named error now
        env.as_prices.actual(site, pd.date_range(mk.local_midnight(start, site.timezone), mk.local_midnight(
            end + dt.timedelta(days=1), site.timezone), freq="1h", inclusive="left"))
    forecaster = forecast.Forecaster(method, market.history)
    naive = forecast.Forecaster("naive", market.history)
    quantile_fc = None
    if "stochastic+strike" in settings.policies:
        quantile_fc = (forecast.Forecaster(method if method in ("gbm", "naive", "da+gbm") else "naive",
                                           market.history, quantiles=QUANTILES),
                       forecast.Forecaster("naive", market.history, quantiles=QUANTILES))
    actual = market.actual.sort_index()
    dt_sim = data.interval_hours(pd.DatetimeIndex(actual.index[:2]))
    states = {p: PolicyState(resolve(site, (initial_states or {}).get(p)), {}) for p in settings.policies}
    start_states = {p: dict(s.units) for p, s in states.items()}
    collected: dict[str, list[_Out]] = {p: [] for p in settings.policies}
    days: list[_Day] = []
    rows = []
    for day in pd.date_range(start, end, freq="D").date:
        d = _prepare_day(env, day, actual, dt_sim, hour, forecaster, naive, quantile_fc)
        days.append(d)
        row = {"day": day, "forecast_method": d.method, "hashprice_known": d.hp_known, "hashprice_actual": d.hp_actual,
               "forecast_mae_usd_per_mwh": float(np.abs(d.forecast.iloc[: len(d.hours)].to_numpy()
                                                        - _hourly(d.rt, d.times, d.hours)).mean())}
        for policy in settings.policies:
            out = _POLICY_FUNCS[policy](env, d, states[policy])
            collected[policy].append(out)
            row[f"{policy}:plan_status"] = out.plan_status
            row[f"{policy}:fallbacks"] = out.fallbacks
        rows.append(row)
        if progress:
            progress(day)
    per_policy = {p: _assemble(site, days, collected[p]) for p in settings.policies}
    da = _two_settlement(env, days, collected, per_policy) if set(DA_POLICIES) & set(settings.policies) else None
    for p, ds in per_policy.items():
        _verify(site, p, ds, days, collected[p], start_states[p], da)
    intervals = xr.concat([per_policy[p] for p in settings.policies], dim="policy", combine_attrs="drop_conflicts")
    intervals = intervals.assign_coords(policy=list(settings.policies))
    intervals.attrs.update({"interval_hours": dt_sim, "site": site.name, "forecast_method": method,
                            "decision_hour_local": hour})
    table = pd.DataFrame(rows).set_index("day")
    for p in settings.policies:
        daily = per_policy[p]["profit_usd"].to_series()
        local = daily.index.tz_localize("UTC").tz_convert(site.timezone).date
        table[f"{p}:profit_usd"] = daily.groupby(local).sum().reindex(table.index).to_numpy()
    summary = _summary(site, intervals, table, settings, method, hour, start, end, env.highs_seconds,
                       time.perf_counter() - t_wall, collected)
    _reserve_summary(summary, intervals, site, env, settings)
    fc = pd.concat([d.forecast.iloc[: len(d.hours)] for d in days]).rename("forecast_usd_per_mwh")
    return Result(intervals, table, summary, {p: s.units for p, s in states.items()}, fc)


# ----------------------------------------------------------------------------------------------------------------
# one day's context


def _prepare_day(env: _Env, day: dt.date, actual: pd.Series, dt_sim: float, hour: int, forecaster, naive,
                 quantile_fc) -> _Day:
    site, settings, market = env.site, env.settings, env.market
    hours = operating_hours(day, site.timezone)
    times = pd.date_range(hours[0], hours[-1] + pd.Timedelta(hours=1), freq=f"{int(dt_sim * 60)}min",
                          inclusive="left")
    rt = actual.reindex(times)
    if rt.isna().any():
        raise InputError(f"no actual real-time price for {rt.index[rt.isna()][0].isoformat()} (operating day "
                         f"{day})", field="prices")
    decision = mk.decision_time_for(day, site.timezone, hour)
    full = mk.horizon_for(day, site.timezone, settings.lookahead_hours)
    horizon = full[: max(len(hours), int((full <= actual.index[-1]).sum()))]
    hp_known, hp_actual = _hashprices(market, settings, day, decision)
    method = default_method(settings)
    try:
        fc = forecaster.predict(decision, horizon)
    except InputError:
        if method == "perfect":
            raise
        fc, method = naive.predict(decision, horizon), "naive"
    scenarios = None
    if quantile_fc is not None:
        try:
            scenarios = quantile_fc[0].predict_quantiles(decision, horizon)
        except InputError:
            scenarios = quantile_fc[1].predict_quantiles(decision, horizon)
    fourcp = site.fourcp.active and settings.fourcp_in_plan
    prob = _peak_probability(market.history, decision, horizon) if fourcp else None
    fourcp_cap = np.full(len(times), site.grid.import_limit_mw)
    if prob is not None and site.fourcp.curtail_above_probability < 1.0:
        on_sim = pd.Series(prob, index=horizon).reindex(times.floor("h")).to_numpy()
        fourcp_cap = np.where(on_sim >= site.fourcp.curtail_above_probability, site.committed_mw, fourcp_cap)
    def demand_of(s: Site) -> np.ndarray:
        return (np.stack([g.demand_fraction(times) * g.spot_gpus for g in s.gpu], axis=1) if s.gpu
                else np.zeros((len(times), 0)))

    demand = demand_of(site)
    return _Day(day, hours, times, dt_sim, rt.to_numpy(), decision, horizon, fc, method, scenarios, hp_known,
                hp_actual, prob, load_caps(site, list(settings.events), times, dt_sim), fourcp_cap,
                _peak_weight(times, market.peak_hours), demand,
                demand if env.plan_site is site else demand_of(env.plan_site),
                reserve_actual=_reserve_actual(env, times),
                deployments=tuple(e for e in settings.deployments if e.start < times[-1] + pd.Timedelta(hours=dt_sim)
                                  and e.end > times[0]))


def _reserve_actual(env: _Env, times: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    """The clearing price of each clearing-priced service in each of ``times`` (settlement, ``perfect``)."""
    return env.as_prices.actual(env.site, times) if ancillary.clearing_priced(env.site) else {}


def _reserve_summary(summary: dict, intervals: xr.Dataset, site: Site, env: _Env, settings: Settings) -> None:
    """Where the capacity prices came from, how many deployments, and each policy's capacity revenue per service."""
    summary["reserve_price_source"] = ancillary.price_source(site, env.as_prices)
    summary["deployment_events"] = len(settings.deployments)
    if not site.reserves:
        return
    dt_h = float(intervals.attrs["interval_hours"])
    by = (intervals["reserve_offer_mw"].sum("asset") * intervals["reserve_price_usd_per_mw_hour"]).sum("time") * dt_h
    for p in intervals["policy"].values:
        summary["policies"][str(p)]["reserve_revenue_by_service_usd"] = {
            str(s): float(by.sel(policy=p, service=s)) for s in intervals["service"].values}


def _peak_probability(history, decision, horizon) -> np.ndarray:
    from optimizer import fourcp

    return fourcp.peak_probability(history, decision, horizon).to_numpy()


def _peak_weight(times: pd.DatetimeIndex, peaks: pd.DatetimeIndex | None) -> np.ndarray:
    """1 for intervals inside an actual monthly peak hour, else 0."""
    if peaks is None or len(peaks) == 0:
        return np.zeros(len(times))
    return pd.DatetimeIndex(times).floor("h").isin(peaks).astype(float)


def _hourly(rt: np.ndarray, times: pd.DatetimeIndex, hours: pd.DatetimeIndex) -> np.ndarray:
    return pd.Series(rt, index=times).groupby(times.floor("h")).mean().reindex(hours).to_numpy()


def _hashprices(market: Market, settings: Settings, day: dt.date, decision: pd.Timestamp) -> tuple[float, float]:
    """(known at the decision time: the latest UTC day that had ended; actual: the operating day's own)."""
    if settings.hashprice_usd_per_ph_day is not None:
        return (settings.hashprice_usd_per_ph_day,) * 2
    s = market.hashprice
    if s is None:
        raise InputError(f"no hashprice for {day}: no daily hashprice series and no constant hashprice; give "
                         "--hashprice (a constant USD/PH/day) or a hashprice file (in Python: "
                         "Settings.hashprice_usd_per_ph_day or Market.hashprice)", field="hashprice")
    if pd.Timestamp(day) not in s.index:
        raise InputError(f"no daily hashprice for {day}; give a constant hashprice", field="hashprice")
    known, _ = data.hashprice_known_at(decision, s, day=day)
    return known, float(s.loc[pd.Timestamp(day)])


def _hashprice_at(env: _Env, now: pd.Timestamp, d: _Day) -> float:
    if env.settings.hashprice_usd_per_ph_day is not None:
        return env.settings.hashprice_usd_per_ph_day
    return data.hashprice_known_at(now, env.market.hashprice, day=d.day)[0]


# ----------------------------------------------------------------------------------------------------------------
# policies


def _plan_inputs(env: _Env, d: _Day, st: PolicyState, prices: pd.Series, hashprice: float,
                 peak: np.ndarray | None, state: Mapping[str, UnitState] | None = None,
                 reserve_prices: Mapping[str, np.ndarray] | None = None) -> Inputs:
    """A plan's inputs; capacity prices (``reserve_prices`` None): those published at the decision, the rest as
    :meth:`optimizer.ancillary.AsPrices.plan_prices` plans them."""
    times = pd.DatetimeIndex(prices.index)
    step = data.interval_hours(times)
    caps = load_caps(env.site, list(env.settings.events), times, step) if env.settings.events else None
    if reserve_prices is None and ancillary.clearing_priced(env.plan_site):
        reserve_prices = env.as_prices.plan_prices(env.plan_site, times, d.decision)
    return Inputs(prices, hashprice, st.units if state is None else state, caps, peak, reserve_prices=reserve_prices,
                  job_progress=st.jobs)


def _on_sim(d: _Day, plan_times: pd.DatetimeIndex, plan_dt: float, times: pd.DatetimeIndex | None = None) -> np.ndarray:
    """For each real-time interval, the index of the plan interval holding it."""
    times = d.times if times is None else times
    idx = plan_times.get_indexer(times.floor(f"{int(round(plan_dt * 60))}min"))
    if (idx < 0).any():
        raise InputError(f"the plan does not cover {times[idx < 0][0].isoformat()}", field="plan")
    return idx


def _strikes_of(env: _Env, plan: Plan, rt_dt: float) -> operate.Strikes:
    """A plan's strike table (plan interval, unit), as ``curtail schedule`` writes it."""
    return strike_table(env.plan_site, plan, rt_dt, lock_weight=env.settings.realtime.lock_weight)


class _Walker:
    """Runs a policy's units through the day in chunks (a rolling policy re-plans between chunks) and collects
    the day's arrays; jobs get the work their plan gave them, as far as the spot throughput left after inference
    allows (inference first), and their progress and late penalties are tracked."""

    def __init__(self, env: _Env, d: _Day, st: PolicyState, hold_hours: float = 0.0):
        site = env.site
        self.env, self.d, self.st = env, d, st
        n, k = len(d.times), len(site.asset_names)
        self.units = operate.Units(site, st.units, d.dt, hold_hours)
        self.power, self.on, self.start = np.zeros((n, k)), np.zeros((n, k)), np.zeros((n, k))
        self.committed = np.tile([g.committed_mw for g in site.gpu], (n, 1)).reshape(n, len(site.gpu))
        self.jobs = np.zeros((n, len(site.jobs)))
        self.offer = np.zeros((n, k, len(site.reserves)))
        self.caps = np.minimum(d.emergency, d.fourcp_cap)
        self.deployed = np.zeros(n)
        self.penalty = np.zeros(n)

    def chunk(self, i0: int, i1: int, policy: operate.Policy, priority: np.ndarray,
              committed: np.ndarray | None = None, jobs_planned: np.ndarray | None = None,
              offer: np.ndarray | None = None, plan_load: np.ndarray | None = None) -> None:
        site, d = self.env.site, self.d
        sl = slice(i0, i1)
        if committed is not None:
            self.committed[sl] = committed
        caps = self.caps[sl]
        if offer is not None:
            self.offer[sl] = offer
            caps, deployed = _deployed(site, self.env.settings.deployments, d.times[sl], d.dt, caps, offer,
                                       plan_load)
            self.caps[sl], self.deployed[sl] = caps, deployed
        if jobs_planned is not None and site.jobs:
            policy = keep_rigid_jobs(site, policy, jobs_planned, d.dt)
        # a deployment is an instruction to drop the offered load now: like an emergency, units may trip for it
        instructed = np.where(self.deployed[sl] > 0, np.minimum(d.emergency[sl], caps), d.emergency[sl])
        w = operate.walk(site, self.units, i1 - i0, policy, caps, instructed, priority, self.committed[sl],
                         d.times[sl])
        self.power[sl] = w.site_power(site, self.committed[sl])
        self.on[sl], self.start[sl] = w.on, w.start
        if site.jobs:
            self._jobs(sl, w.power[:, len(site.mining):], jobs_planned)

    def _jobs(self, sl: slice, spot_mw: np.ndarray, planned: np.ndarray | None) -> None:
        site, d = self.env.site, self.d
        planned = np.zeros((sl.stop - sl.start, len(site.jobs))) if planned is None else planned
        self.st.jobs, self.jobs[sl], penalty = allocate_jobs(site, self.st.jobs, planned, spot_mw, d.demand[sl],
                                                             d.times[sl], d.dt)
        self.penalty[sl] += penalty

    def done(self, **facts) -> _Out:
        self.st.units = self.units.state()
        return _Out(self.power, self.on, self.start, self.committed, self.jobs, self.offer, self.caps, self.deployed,
                    self.penalty, **facts)


def _run_on_arrival(env: _Env, d: _Day, st: PolicyState) -> np.ndarray:
    """(interval, job): every job on all its GPUs from release until done (the no-flexibility baseline)."""
    site = env.site
    out = np.zeros((len(d.times), len(site.jobs)))
    for i, job in enumerate(site.jobs):
        left = job.gpu_hours - st.jobs.get(job.name, JobProgress(job.name, 0.0)).gpu_hours_done
        for t in np.flatnonzero(np.asarray(d.times >= job.release)):
            if left <= 1e-9:
                break
            out[t, i] = min(job.gpus, left / d.dt)
            left -= out[t, i] * d.dt
    return out


def _rule(env: _Env, d: _Day, st: PolicyState, strike: np.ndarray | None, hold_hours: float = 0.0) -> _Out:
    """A rule without a plan: run up to the useful power while the price is below the strike (``None``: always)."""
    site = env.site
    w = _Walker(env, d, st, hold_hours)
    jobs = _run_on_arrival(env, d, st)
    useful = operate.useful_mw(site, d.plan_demand, cluster_jobs(site, jobs))
    values = operate.values_usd_per_mwh(site, d.hp_known)
    prio = np.broadcast_to(values, useful.shape)
    if strike is None:
        policy = operate.strike_policy(np.full(len(d.times), -np.inf), np.broadcast_to(np.inf, useful.shape), useful)
    else:
        policy = operate.strike_policy(operate.decision_price(site, d.rt), strike, useful)
    w.chunk(0, len(d.times), policy, prio, jobs_planned=jobs)
    return w.done()


def _always_on(env: _Env, d: _Day, st: PolicyState) -> _Out:
    return _rule(env, d, st, None)


def _strike(env: _Env, d: _Day, st: PolicyState) -> _Out:
    """The operators' rule with optional hysteresis: a running unit stops only above value + h, a stopped one
    starts only below value - h."""
    s = env.settings
    values = operate.values_usd_per_mwh(env.site, d.hp_known)
    if not s.hysteresis_usd_per_mwh:
        return _rule(env, d, st, np.broadcast_to(values, (len(d.times), len(values))), s.hold_hours)
    site = env.site
    w = _Walker(env, d, st, s.hold_hours)
    jobs = _run_on_arrival(env, d, st)
    useful = operate.useful_mw(site, d.plan_demand, cluster_jobs(site, jobs))
    h = s.hysteresis_usd_per_mwh
    price = operate.decision_price(site, d.rt)

    def policy(t: int, lo: np.ndarray, hi: np.ndarray, on: np.ndarray) -> np.ndarray:
        threshold = values + np.where(on, h, -h)
        return np.where(price[t] < threshold, np.maximum(lo, np.minimum(hi, useful[t])), lo)

    w.chunk(0, len(d.times), policy, np.broadcast_to(values, useful.shape), jobs_planned=jobs)
    return w.done()


def _day_plan(env: _Env, d: _Day, st: PolicyState) -> Plan:
    inputs = _plan_inputs(env, d, st, d.forecast, d.hp_known, d.peak_probability)
    return env.planner.plan(inputs, fallback=True)


def _follow(env: _Env, d: _Day, st: PolicyState, plan: Plan) -> _Out:
    """Follow a plan's set-points (fleets, clusters' spot and committed load, jobs, reserve offers)."""
    site = env.site
    flex, _, committed = split(site, plan.arrays)
    idx = _on_sim(d, plan.inputs.times, plan.inputs.dt_hours)
    w = _Walker(env, d, st)
    values = operate.values_usd_per_mwh(site, plan.inputs.hashprice_usd_per_ph_day)
    w.chunk(0, len(d.times), operate.follow(flex[idx]), np.broadcast_to(values, (len(idx), len(values))),
            committed[idx], plan.arrays["job_gpus"][idx], plan.arrays["reserve_offer"][idx],
            plan.arrays["power"][idx].sum(axis=1))
    return w.done(plan_status=plan.status, plan_gap=_gap(plan), fallbacks=int(bool(plan.fallback_reason)), solves=1)


def _with_strikes(env: _Env, d: _Day, st: PolicyState, plan: Plan) -> _Out:
    """Run a plan's strike table: exactly what a site controller does with ``strike_usd_per_mwh__<unit>``."""
    site = env.site
    _, _, committed = split(site, plan.arrays)
    idx = _on_sim(d, plan.inputs.times, plan.inputs.dt_hours)
    strikes = _strikes_of(env, plan, d.dt)[idx]
    jobs = plan.arrays["job_gpus"][idx]
    useful = operate.useful_mw(site, d.plan_demand, cluster_jobs(site, jobs))
    w = _Walker(env, d, st)
    w.chunk(0, len(d.times), operate.strike_policy(operate.decision_price(site, d.rt), strikes, useful),
            strikes.marginal, committed[idx], jobs,
            plan.arrays["reserve_offer"][idx], plan.arrays["power"][idx].sum(axis=1))
    return w.done(plan_status=plan.status, plan_gap=_gap(plan), fallbacks=int(bool(plan.fallback_reason)), solves=1)


def _schedule(env: _Env, d: _Day, st: PolicyState) -> _Out:
    return _follow(env, d, st, _day_plan(env, d, st))


def _schedule_strike(env: _Env, d: _Day, st: PolicyState) -> _Out:
    return _with_strikes(env, d, st, _day_plan(env, d, st))


def _perfect(env: _Env, d: _Day, st: PolicyState) -> _Out:
    """The model on the actual prices at real-time resolution over the horizon, with the actual 4CP peaks."""
    actual = env.market.actual
    step = pd.Timedelta(hours=d.dt)
    times = pd.date_range(d.horizon[0], d.horizon[-1] + pd.Timedelta(hours=1), freq=step, inclusive="left")
    prices = actual.reindex(times).dropna()
    weight = (_peak_weight(pd.DatetimeIndex(prices.index), env.market.peak_hours)
              if env.site.fourcp.active and env.settings.fourcp_in_plan else None)
    inputs = _plan_inputs(env, d, st, prices, d.hp_known, weight,
                          reserve_prices=_reserve_actual(env, pd.DatetimeIndex(prices.index)))
    return _follow(env, d, st, env.perfect_planner.plan(inputs, fallback=True))


def _stochastic(env: _Env, d: _Day, st: PolicyState) -> _Out:
    from optimizer.stochastic import quantile_scenarios

    frame, weights = quantile_scenarios(d.scenarios)
    inputs = _plan_inputs(env, d, st, frame.iloc[:, 0], d.hp_known, d.peak_probability)
    two = env.scenario_planner.solve(inputs, frame, weights, cvar_weight=env.settings.cvar_weight)
    median = two.sel(scenario="q0.5")
    plan = Plan(inputs.replace(prices=frame["q0.5"]), results.arrays_of(median, env.site),
                _report_of(two), "", 0.0, 0.0, 0.0)
    return _with_strikes(env, d, st, plan)


def _mpc(env: _Env, d: _Day, st: PolicyState) -> _Out:
    """Rolling re-optimisation (:mod:`optimizer.realtime`): re-plan every ``replan_minutes`` from the state reached,
    decide each interval with the re-plan's strikes against its price."""
    site, s = env.site, env.settings
    ctl = env.controller
    award = _award(env, d, st)
    w = _Walker(env, d, st)
    per = int(round(ctl.plan_dt_hours / d.dt))
    statuses, gaps, fallbacks, solves = [], [], 0, int(award is not None)
    decide = operate.decision_price(site, d.rt)          # what each interval's strikes are compared with
    for i0 in range(0, len(d.times), per):
        now = d.times[i0]
        peak = ((lambda hours, now=now: _mpc_peak_probability(env, d, now, hours))
                if site.fourcp.active and s.fourcp_in_plan else None)
        plan = ctl.replan(now, w.units.state(), st.jobs, d.forecast, _hashprice_at(env, now, d), peak,
                          s.events, env.market.actual.index[-1])
        solves += 1
        fallbacks += int(bool(plan.fallback_reason))
        statuses.append(plan.status)
        gaps.append(_gap(plan))
        for i in range(i0, min(i0 + per, len(d.times))):
            fresh = ctl.fresh_forecast(plan, d.times[i], d.forecast) if ctl.needs_fresh_forecast() else None
            step = ctl.step(plan, d.times[i], d.plan_demand[i: i + 1], w.units.ramp_limited, d.dt, fresh)
            w.chunk(i, i + 1, step.policy(decide[i: i + 1]), step.strikes.marginal, step.committed_mw, step.job_gpus,
                    None if award is None else award[i: i + 1], step.plan_load_mw)
    worst = "fallback" if fallbacks else ("feasible" if "feasible" in statuses else "optimal")
    return w.done(plan_status=worst, plan_gap=float(np.nanmax(gaps)) if gaps else float("nan"), fallbacks=fallbacks,
                  solves=solves)


def _award(env: _Env, d: _Day, st: PolicyState) -> np.ndarray | None:
    """mpc's ancillary-service award per real-time interval (None without reserves): the offers of the plan made at
    the D-1 decision, as the day-ahead market awards them before the day. Its re-plans do not see the award (they sell
    nothing): it is paid where the load backs it (``results.assemble``)."""
    if not env.site.reserves:
        return None
    plan = _day_plan(env, d, st)
    return plan.arrays["reserve_offer"][_on_sim(d, plan.inputs.times, plan.inputs.dt_hours)]


def _mpc_peak_probability(env: _Env, d: _Day, now: pd.Timestamp, horizon: pd.DatetimeIndex) -> np.ndarray:
    """4CP chances over a re-plan's horizon: the day-before estimate where it covers the hour, else (or also, by
    ``fourcp_intraday``) the estimate made now with the load seen so far."""
    mode = env.settings.fourcp_intraday
    before = pd.Series(d.peak_probability, index=d.horizon).reindex(horizon).to_numpy()
    if mode == "d-1" and not np.isnan(before).any():
        return before
    now_p = _peak_probability(env.market.history, now, horizon)
    if mode == "now":
        return now_p
    return np.where(np.isnan(before), now_p, np.fmax(before, now_p) if mode == "max" else before)


def _gap(plan: Plan) -> float:
    return float("nan") if plan.report.mip_gap is None else float(plan.report.mip_gap)


def _report_of(ds: xr.Dataset):
    from optimizer.solve import SolveReport

    return SolveReport(ds.attrs["status"], ds.attrs["status"], ds.attrs["objective_usd"], None,
                       ds.attrs.get("mip_gap"), ds.attrs["solve_seconds"], ds.attrs["highs_seconds"], 0)


def _mpc_shared(env: _Env, d: _Day, st: PolicyState) -> _Out:
    """``mpc``, its day remembered: a day-ahead policy starting the day from the same state operates exactly as mpc
    (the award changes no real-time decision), so it gets the same trajectory without a second run."""
    key = (d.day, dict(st.units), dict(st.jobs))
    if env.mpc_memo is not None and env.mpc_memo[0] == key:
        out, units, jobs = env.mpc_memo[1]
        st.units, st.jobs = dict(units), dict(jobs)
        return out
    out = _mpc(env, d, st)
    env.mpc_memo = (key, (out, dict(st.units), dict(st.jobs)))
    return out


def _bid(env: _Env, d: _Day, st: PolicyState) -> _Out:
    """Bid curves from the scenario model at the bid deadline (only day-ahead prices published by then), awarded at
    the day's actual day-ahead prices; real time as mpc."""
    from optimizer.bid import bid_deadline, price_scenarios

    site, s = env.site, env.settings
    decision = bid_deadline(d.day, site.timezone)
    horizon = mk.horizon_for(d.day, site.timezone, s.bid.lookahead_hours).rename(None)
    frame = price_scenarios(env.market.history, decision, horizon, s.bid)
    peak = (_peak_probability(env.market.history, decision, horizon) if site.fourcp.active and s.fourcp_in_plan
            else None)
    inputs = _plan_inputs(env, d, st, frame.iloc[:, 0], _hashprices(env.market, s, d.day, decision)[0], peak)
    sol = env.bidder.solve(inputs, frame, np.full(frame.shape[1], 1.0 / frame.shape[1]), len(d.hours))
    return _awarded(env, d, st, sol.curves(s.bid.segments, site.timezone), sol.report.status)


def _bid_strike(env: _Env, d: _Day, st: PolicyState) -> _Out:
    """The strike rule as a bid: each unit's useful MW (hourly mean) at its value, known at the bid deadline."""
    from optimizer.bid import bid_deadline, strike_curves

    site = env.plan_site
    hp = _hashprices(env.market, env.settings, d.day, bid_deadline(d.day, site.timezone))[0]
    useful = operate.useful_mw(site, d.plan_demand, cluster_jobs(site, _run_on_arrival(env, d, st)))
    hourly = pd.DataFrame(useful, index=d.times.floor("h")).groupby(level=0).mean().reindex(d.hours).to_numpy()
    return _awarded(env, d, st, strike_curves(site, d.hours, hp, hourly, env.settings.bid.segments), "")


def _awarded(env: _Env, d: _Day, st: PolicyState, curves, status: str) -> _Out:
    bad = curves.problems(env.settings.bid.segments)
    if bad:
        raise NoSolutionError(f"bid curves of {d.day} fail their check (a bug: please report): {bad[0]}")
    award = curves.award_mw(_da_prices(env, d))
    out = _mpc_shared(env, d, st)
    worst = "fallback" if "fallback" in (status, out.plan_status) else out.plan_status
    return dataclasses.replace(out, da_award_mw=award[_on_sim(d, d.hours, 1.0)], plan_status=worst,
                               solves=out.solves + int(bool(status)))


def _da_prices(env: _Env, d: _Day) -> np.ndarray:
    """The operating day's actual day-ahead prices (hourly): what the awards clear and settle at."""
    da = env.market.history.da
    got = np.full(len(d.hours), np.nan) if da is None else da.reindex(d.hours).to_numpy()
    if np.isnan(got).any():
        hour = d.hours[np.isnan(got)][0]
        raise InputError(f"no day-ahead price for {hour.isoformat()} (operating day {d.day}): the "
                         f"{'/'.join(DA_POLICIES)} policies settle at day-ahead prices (shipped for 2021-2024; else "
                         "--da-prices)",
                         field="da_prices")
    return got


def _two_settlement(env: _Env, days: list[_Day], collected: dict[str, list[_Out]],
                    per_policy: dict[str, xr.Dataset]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every policy's datasets with the two-settlement variables (an award of 0 for the policies that do not bid),
    in place; returns (award per policy, day-ahead price) per interval, as the checker's inputs."""
    from optimizer.bid import with_two_settlement

    price = np.concatenate([_da_prices(env, d)[_on_sim(d, d.hours, 1.0)] for d in days])
    awards = {}
    for p, ds in per_policy.items():
        awards[p] = np.concatenate([np.zeros(len(d.times)) if o.da_award_mw is None else o.da_award_mw
                                    for d, o in zip(days, collected[p], strict=True)])
        per_policy[p] = with_two_settlement(ds, env.site, awards[p], price)
    return awards, price


_POLICY_FUNCS: dict[str, Callable[[_Env, _Day, PolicyState], _Out]] = {
    "mpc": _mpc_shared, "schedule": _schedule, "schedule+strike": _schedule_strike, "strike": _strike,
    "always-on": _always_on, "perfect": _perfect, "stochastic+strike": _stochastic, "bid": _bid,
    "bid-strike": _bid_strike,
}


def _deployed(site: Site, deployments: Sequence[Deployment], times: pd.DatetimeIndex, dt_hours: float,
              caps: np.ndarray, offer: np.ndarray, plan_load: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Load caps with deployments, and MW deployed: in a deployed interval the site draws at most its planned load
    less the capacity it offered to that service (an unknown service is an input error)."""
    deployed = np.zeros(len(times))
    if not deployments:
        return caps, deployed
    services = [r.name for r in site.reserves]
    caps = caps.copy()
    t0 = pd.DatetimeIndex(times)
    t1 = t0 + pd.Timedelta(hours=dt_hours)
    for dep in deployments:
        if dep.service not in services:
            raise InputError(f"deployment of unknown service {dep.service!r}; the site offers "
                             f"{', '.join(services) or 'none'}", field="deployments")
        hit = (t0 < dep.end) & (t1 > dep.start)
        if not hit.any() or offer.shape[2] == 0:
            continue
        deployed[hit] += offer[:, :, services.index(dep.service)].sum(axis=1)[hit]
    planned = caps.copy() if plan_load is None else plan_load
    on = deployed > 0                              # services deployed together: their drops add up
    caps[on] = np.minimum(caps[on], np.maximum(planned[on] - deployed[on], 0.0))
    return caps, deployed


# ----------------------------------------------------------------------------------------------------------------
# assembly, check, summary


def _assemble(site: Site, days: list[_Day], outs: list[_Out]) -> xr.Dataset:
    cat = np.concatenate
    times = pd.DatetimeIndex(cat([d.times.tz_convert(None).to_numpy() for d in days])).tz_localize("UTC")
    n = len(times)
    dt_hours = days[0].dt
    hp = cat([np.full(len(d.times), d.hp_actual) for d in days])
    return results.assemble(
        site, times, cat([d.rt for d in days]), cat([o.power for o in outs]), cat([o.on for o in outs]),
        cat([o.start for o in outs]), hashprice_usd_per_ph_day=hp, dt_hours=dt_hours,
        max_load_mw=cat([o.caps for o in outs]), peak_weight=cat([d.settle_weight for d in days]),
        reserve_offer=cat([o.offer for o in outs]), reserve_deployed_mw=cat([o.deployed for o in outs]),
        reserve_price=cat([ancillary.price_matrix(site, d.reserve_actual, len(d.times)) for d in days]),
        committed_mw=cat([o.committed for o in outs]), job_gpus=cat([o.jobs for o in outs]).reshape(n, -1),
        demand_gpus=cat([d.demand for d in days]).reshape(n, len(site.gpu)),
        job_penalty=cat([o.penalty for o in outs]))


def _verify(site: Site, policy: str, ds: xr.Dataset, days: list[_Day], outs: list[_Out],
            start_state: Mapping[str, UnitState], da: tuple[dict[str, np.ndarray], np.ndarray] | None = None) -> None:
    """The independent checker on a policy's whole realised trajectory, from the inputs: a violation stops the run."""
    from optimizer import check

    cat = np.concatenate
    ins = check.CheckInputs(
        timestamps=pd.DatetimeIndex(ds["time"].values).tz_localize("UTC"),
        prices_usd_per_mwh=cat([d.rt for d in days]), hashprice_usd_per_ph_day=cat([np.full(len(d.times), d.hp_actual)
                                                                                    for d in days]),
        initial_state=dict(start_state),
        emergency_cap_mw=cat([np.where(o.deployed > 0, np.minimum(d.emergency, o.caps), d.emergency)
                              for d, o in zip(days, outs, strict=True)]),
        deployment_cap_mw=cat([np.where(o.deployed > 0, o.caps, np.inf) for o in outs]),
        peak_weight=cat([d.settle_weight for d in days]),
        peak_probability=cat([np.where(d.fourcp_cap < site.grid.import_limit_mw, 1.0, 0.0) for d in days]),
        reserve_deployed_mw=cat([o.deployed for o in outs]),
        reserve_prices_usd_per_mw_hour={r.name: cat([d.reserve_actual[r.name] for d in days])
                                        for r in ancillary.clearing_priced(site)},
        deployments=tuple(dict.fromkeys(e for d in days for e in d.deployments)),
        demand_gpus={g.name: cat([d.demand[:, c] for d in days]) for c, g in enumerate(site.gpu)},
        job_penalty="settle", da_award_mw=None if da is None else da[0][policy],
        da_prices_usd_per_mwh=None if da is None else da[1])
    frame = results.to_frame(ds)
    if da is not None:
        from optimizer.bid import da_frame_columns

        frame = frame.assign(**da_frame_columns(ds))
    violations = check.check_schedule(site, frame, ins)
    if violations:
        raise NoSolutionError(f"backtest policy {policy!r}: the realised trajectory fails the independent check "
                              "(a bug: please report):\n  " + "\n  ".join(map(str, violations[:20])))


def _summary(site: Site, ds: xr.Dataset, days: pd.DataFrame, settings: Settings, method: str, hour: int,
             start: dt.date, end: dt.date, solver_s: float, wall_s: float, collected: dict[str, list[_Out]]) -> dict:
    dt_h = float(ds.attrs["interval_hours"])
    mining_cap = sum(f.capacity_mw for f in site.mining)
    per = {}
    for p in ds["policy"].values:
        d = ds.sel(policy=p)
        committed_mwh = site.committed_mw * d.sizes["time"] * dt_h
        short = float(d["sla_shortfall_mw"].sum()) * dt_h
        outs = collected[str(p)]
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
            "solves": int(sum(o.solves for o in outs)),
            "fallbacks": int(sum(o.fallbacks for o in outs)),
            **{k: float(d[k].sum()) for k in ("da_cost_usd", "rt_deviation_cost_usd", "da_settlement_usd") if k in d},
        }
    profits = {p: v["profit_usd"] for p, v in per.items()}
    candidates = {p: v for p, v in profits.items() if p not in ("perfect", "always-on")}
    default = next((p for p in POLICIES if p in candidates), None)
    substituted = int((days["forecast_method"] != method).sum())
    out = {
        "site": site.name, "settlement_point": site.settlement_point, "start": str(start), "end": str(end),
        "days": len(days), "interval_hours": dt_h, "forecast_method": method, "decision_hour_local": hour,
        "lookahead_hours": settings.lookahead_hours, "replan_minutes": settings.realtime.replan_minutes,
        "policies": per,
        "perfect_foresight_profit_usd": profits.get("perfect"), "always_on_profit_usd": profits.get("always-on"),
        "policy": default, "value_capture": None, "value_capture_by_policy": {}, "wall_seconds": wall_s,
        "solver_seconds": solver_s, "forecast_mae_usd_per_mwh": float(days["forecast_mae_usd_per_mwh"].mean()),
        "forecast_methods_used": {str(k): int(v) for k, v in days["forecast_method"].value_counts().items()},
        "forecast_substitutions": substituted,
    }
    if "perfect" in profits and "always-on" in profits and profits["perfect"] != profits["always-on"]:
        span = profits["perfect"] - profits["always-on"]
        by_policy = {p: (v - profits["always-on"]) / span for p, v in candidates.items()}
        out["value_capture_by_policy"] = by_policy
        if default:
            out["value_capture"] = by_policy[default]
    return out
