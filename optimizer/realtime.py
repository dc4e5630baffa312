"""The real-time layer: rolling re-plans from the state really reached, and each real-time interval's decision.

Shared by the backtest's default policy ``mpc`` (:mod:`optimizer.backtest.engine`) and by ``curtail operate`` in
production, so both decide the same way:

1. **Re-plan** (:meth:`Controller.replan`) every ``replan_minutes`` (60 by default; 15 allowed): the model over a
   fixed horizon (``horizon_hours`` of hourly intervals; 15-minute intervals with 15-minute re-plans) from the units'
   state and the jobs' progress, on the intraday price forecast known then (:mod:`optimizer.intraday`: the last
   ended real-time price decaying to the published day-ahead price; a fallback forecast, the day-ahead plan's, for
   hours without a published day-ahead price), the 4CP peak probabilities the caller gives, the hashprice known
   then and the emergency events announced.
2. **Decide an interval** (:meth:`Controller.step`) before its price is known: each unit's strikes (stop, start,
   marginal: :func:`optimizer.operate.strike_table`), the power it can use, the plan's anticipation for
   ramp-limited units, the committed GPU load, the jobs' work and the reserve offers of the plan interval holding
   it. The interval's price then picks run or curtail for each unit (:func:`optimizer.operate.strike_policy`).

The strikes' commitment premium counts the restart cost only (``lock_weight = 0``): weighting in the plan's
expected margins over lock-out and forced-on windows (``lock_weight = 1``) lost against it on the months it was
compared on (July 2023, May 2022; the comparison's figures were not kept), so the constant is in sample for
2022-2023.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from optimizer import data, operate
from optimizer.errors import InputError
from optimizer.events import Event, load_caps
from optimizer.inputs import Inputs
from optimizer.planner import Plan, Planner
from optimizer.site import Site
from optimizer.state import UnitState
from optimizer.workloads import JobProgress


@dataclass(frozen=True)
class RealtimeSettings:
    """How the real-time layer re-plans and decides."""

    replan_minutes: int = 60                 # minutes between re-plans: 60 or 15
    horizon_hours: int = 24                  # hours each re-plan sees
    lock_weight: float = 0.0                 # strikes: weight of the plan's margins over lock-out windows
    anticipate: bool = True                  # follow a plan's ramp-down of a ramp-limited unit ahead of dear hours
    anticipation_margin_usd_per_mwh: float = 0.0   # ... when the next hour is forecast this far above the strike

    def __post_init__(self) -> None:
        if self.replan_minutes not in (15, 60):
            raise InputError(f"replan minutes must be 15 or 60, got {self.replan_minutes}", field="replan_minutes")
        if not 1 <= self.horizon_hours <= 168:
            raise InputError(f"the re-plan horizon must be 1..168 hours, got {self.horizon_hours}",
                             field="horizon_hours")
        if not 0.0 <= self.lock_weight <= 1.0:
            raise InputError(f"lock weight must be in [0, 1], got {self.lock_weight}", field="lock_weight")


@dataclass(frozen=True)
class Step:
    """One real-time interval's decision before its price is known, per unit (arrays of one row)."""

    strikes: operate.Strikes
    useful_mw: np.ndarray
    ahead_mw: np.ndarray | None
    committed_mw: np.ndarray
    job_gpus: np.ndarray
    reserve_offer_mw: np.ndarray
    plan_load_mw: np.ndarray

    def policy(self, price: np.ndarray) -> operate.Policy:
        """The controller's rule once the interval's price (an array of one) is known."""
        return operate.strike_policy(price, self.strikes, self.useful_mw, self.ahead_mw)


@dataclass(frozen=True)
class _Prepared:
    """What a plan implies for every interval, derived once per re-plan."""

    plan: Plan
    start_ns: int
    step_ns: int
    flex: np.ndarray
    committed: np.ndarray
    load: np.ndarray
    rows: int                    # leading intervals whose strikes carry their commitment premium
    strikes: operate.Strikes


class Controller:
    """Re-plans and interval decisions for one site (see the module docstring)."""

    def __init__(self, site: Site, planner: Planner, intraday, settings: RealtimeSettings | None = None):
        self.site, self.planner, self.intraday = site, planner, intraday
        self.settings = settings or RealtimeSettings()

    @property
    def plan_dt_hours(self) -> float:
        return self.settings.replan_minutes / 60.0

    def replan(self, now: pd.Timestamp, units: Mapping[str, UnitState], jobs: Mapping[str, JobProgress],
               fallback: pd.Series, hashprice: float,
               peak_probability: Callable[[pd.DatetimeIndex], np.ndarray | None] | None = None,
               events: Sequence[Event] = (), last_data: pd.Timestamp | None = None) -> Plan:
        """Solve the horizon from ``now`` (an interval start) on the intraday forecast known then. ``fallback``:
        hourly prices for the hours without a published day-ahead price (the horizon ends where it ends, or at
        ``last_data``); ``peak_probability(hours)``: 4CP chances of the horizon's hours (None: 4CP left out)."""
        s = self.settings
        hours = pd.date_range(now.floor("h"), periods=s.horizon_hours, freq="1h")
        end = fallback.index[-1] if last_data is None else min(fallback.index[-1], last_data)
        hours = hours[hours <= end]
        if len(hours) == 0:
            raise InputError(f"no forecast covers the hour of {now.isoformat()}", field="fallback")
        fc = self.intraday.predict(now, hours, fallback=fallback)
        prob = None if peak_probability is None else peak_probability(hours)
        if self.plan_dt_hours < 1.0:                # 15-minute re-plans: a 15-minute model from now
            times = pd.date_range(now, hours[-1] + pd.Timedelta(hours=1), freq="15min", inclusive="left")
            fc = fc.reindex(times.floor("h")).set_axis(times)
            prob = None if prob is None else pd.Series(prob, index=hours).reindex(times.floor("h")).to_numpy()
        times = pd.DatetimeIndex(fc.index)
        caps = load_caps(self.site, list(events), times, data.interval_hours(times)) if events else None
        inputs = Inputs(fc, hashprice, dict(units), caps, prob, job_progress=dict(jobs))
        return self.planner.plan(inputs, fallback=True)

    def step(self, plan: Plan, now: pd.Timestamp, demand_gpus: np.ndarray, ramp_limited: np.ndarray,
             rt_dt_hours: float, fresh_forecast: np.ndarray | None = None) -> Step:
        """The decision for the real-time interval starting at ``now`` (inside the plan's horizon), before its
        price is known. ``demand_gpus``: (1, cluster) inference demand of the interval; ``ramp_limited``: per
        unit; ``fresh_forecast``: prices over the plan's intervals made at ``now`` (only used with a lock weight).
        What depends on the plan alone (its strike table, its set-points) is derived once per plan."""
        site, s = self.site, self.settings
        prep = self._prepared(plan, rt_dt_hours)
        j = int((now.value - prep.start_ns) // prep.step_ns)
        if not 0 <= j < plan.inputs.n:
            raise InputError(f"the plan does not cover {now.isoformat()}", field="plan")
        jobs = plan.arrays["job_gpus"][j: j + 1]
        useful = operate.useful_mw(site, demand_gpus, cluster_jobs(site, jobs))
        if fresh_forecast is None:
            if j >= prep.rows:                   # premiums are derived for the intervals a re-plan covers
                prep = self._prep = dataclasses.replace(
                    prep, rows=j + 1, strikes=strike_table(site, plan, rt_dt_hours, rows=j + 1,
                                                           lock_weight=s.lock_weight))
            strikes = prep.strikes[j: j + 1]
        else:
            strikes = strike_table(site, plan, rt_dt_hours, fresh_forecast, rows=j + 1,
                                   lock_weight=s.lock_weight)[j: j + 1]
        ahead = (operate.anticipation_mw(prep.flex[j:], useful, strikes.marginal,
                                         operate.decision_price(site, plan.inputs.price_array[j:]),
                                         ramp_limited, s.anticipation_margin_usd_per_mwh,
                                         max(1, round(1 / self.plan_dt_hours))) if s.anticipate else None)
        return Step(strikes, useful, ahead, prep.committed[j: j + 1], jobs, plan.arrays["reserve_offer"][j: j + 1],
                    prep.load[j: j + 1])

    def _prepared(self, plan: Plan, rt_dt_hours: float) -> _Prepared:
        cached = getattr(self, "_prep", None)
        if cached is not None and cached.plan is plan:
            return cached
        flex, _, committed = split(self.site, plan.arrays)
        times = plan.inputs.times
        self._prep = _Prepared(plan, times[0].value, int(round(plan.inputs.dt_hours * 3600e9)), flex, committed,
                               plan.arrays["power"].sum(axis=1), 1,
                               strike_table(self.site, plan, rt_dt_hours, rows=1,
                                            lock_weight=self.settings.lock_weight))
        return self._prep

    def needs_fresh_forecast(self) -> bool:
        return self.settings.lock_weight > 0

    def fresh_forecast(self, plan: Plan, now: pd.Timestamp, fallback: pd.Series) -> np.ndarray:
        """The intraday forecast over a plan's intervals, made again at ``now`` with the prices known by then."""
        times = plan.inputs.times
        hours = pd.DatetimeIndex(times.floor("h").unique())
        fc = self.intraday.predict(now, hours, fallback=fallback)
        return fc.reindex(times.floor("h")).to_numpy()


def split(site: Site, arrays: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(switchable MW per unit, on per unit, committed MW per cluster) of a plan's arrays."""
    n_mining = len(site.mining)
    committed = arrays["committed_mw"]
    flex = arrays["power"].copy()
    flex[:, n_mining:] = flex[:, n_mining:] - committed + arrays["shortfall"][:, n_mining:]
    return np.clip(flex, 0.0, None), arrays["on"], committed


def cluster_jobs(site: Site, jobs: np.ndarray) -> np.ndarray:
    """(interval, cluster) job work from (interval, job)."""
    out = np.zeros((len(jobs), len(site.gpu)))
    names = [g.name for g in site.gpu]
    for i, job in enumerate(site.jobs):
        out[:, names.index(job.cluster or names[0])] += jobs[:, i]
    return out


def strike_table(site: Site, plan: Plan, rt_dt_hours: float = 0.25, forecast: np.ndarray | None = None,
                 rows: int | None = None, lock_weight: float = 0.0) -> operate.Strikes:
    """A plan's strikes (plan interval, unit); ``forecast``: fresher prices than the plan's own, ``rows``: only the
    first intervals' premiums. The one function behind the strike columns of ``curtail schedule``, the backtest's
    plan-following policies and the real-time layer."""
    inputs = plan.inputs
    flex, on, _ = split(site, plan.arrays)
    demand = np.stack([inputs.demand(site)[g.name] for g in site.gpu], axis=1) if site.gpu else np.zeros((inputs.n, 0))
    useful = operate.useful_mw(site, demand, cluster_jobs(site, plan.arrays["job_gpus"]))
    c4 = (np.zeros(inputs.n) if inputs.peak_probability is None
          else inputs.peak_probability * site.fourcp.usd_per_mw_peak)
    price = operate.decision_price(site, inputs.price_array if forecast is None else forecast)
    return operate.strike_table(site, flex, on, price, c4,
                                operate.values_usd_per_mwh(site, inputs.hashprice_usd_per_ph_day), useful,
                                inputs.dt_hours, rt_dt_hours, rows, lock_weight)


def allocate_jobs(site: Site, progress: Mapping[str, JobProgress], planned: np.ndarray, spot_mw: np.ndarray,
                  demand_gpus: np.ndarray, times: pd.DatetimeIndex, dt_hours: float
                  ) -> tuple[dict[str, JobProgress], np.ndarray, np.ndarray]:
    """The jobs' work in real-time intervals from the throughput the spot power gives (``spot_mw``: interval x
    cluster), and their progress after them: rigid jobs (minimum run longer than an interval) first, all their
    GPUs or none (their last interval may be partial: it finishes the job), then inference demand, then divisible
    jobs as planned, as far as room is left. Returns (progress, work (interval x job), late penalty per interval:
    the GPU-hours missing at a deadline x the job's penalty, in the deadline's interval)."""
    n = len(times)
    names = [g.name for g in site.gpu]
    before = {j.name: progress.get(j.name, JobProgress(j.name, 0.0)) for j in site.jobs}
    left = np.array([j.gpu_hours - before[j.name].gpu_hours_done for j in site.jobs])
    rigid = np.array([j.min_run_hours > dt_hours + 1e-9 for j in site.jobs])
    run_hours = np.array([before[j.name].running_hours for j in site.jobs])     # of each job's current run
    work = np.zeros((n, len(site.jobs)))
    for c, g in enumerate(site.gpu):
        mine = [i for i, job in enumerate(site.jobs) if (job.cluster or names[0]) == g.name]
        theta = g.spot_throughput_gpus(spot_mw[:, c])
        for t in range(n):
            room = theta[t] + 1e-6
            # a run in progress keeps its GPUs before any other rigid job may start (its minimum run holds)
            for i in sorted((i for i in mine if rigid[i]), key=lambda i: run_hours[i] <= 0):
                x = min(site.jobs[i].gpus, max(left[i], 0.0) / dt_hours)
                if planned[t, i] > 1e-6 and x > 1e-9 and room >= x:
                    work[t, i], room, left[i] = x, room - x, left[i] - x * dt_hours
            run_hours[mine] = np.where(work[t, mine] > 1e-9, run_hours[mine] + dt_hours, 0.0)
            room -= min(room, demand_gpus[t, c])
            for i in (i for i in mine if not rigid[i]):
                x = min(planned[t, i], room, max(left[i], 0.0) / dt_hours)
                if x > 1e-9:
                    work[t, i], room, left[i] = x, room - x, left[i] - x * dt_hours
    ends = times + pd.Timedelta(hours=dt_hours)
    out = dict(progress)
    penalty = np.zeros(n)
    for i, job in enumerate(site.jobs):
        x, p = work[:, i], before[job.name]
        inside = np.flatnonzero(np.asarray((times < job.deadline) & (ends >= job.deadline)))
        if len(inside):
            t = int(inside[0])
            done_by = p.gpu_hours_done + (x[: t + 1].sum() if ends[t] <= job.deadline else x[:t].sum()) * dt_hours
            penalty[t] += job.late_penalty_usd_per_gpu_hour * max(0.0, job.gpu_hours - done_by)
        running = p.running_hours
        for v in x:
            running = running + dt_hours if v > 1e-9 else 0.0
        out[job.name] = JobProgress(job.name, min(job.gpu_hours, p.gpu_hours_done + x.sum() * dt_hours), running)
    return out, work, penalty


def keep_rigid_jobs(site: Site, policy: operate.Policy, planned: np.ndarray, dt_hours: float) -> operate.Policy:
    """A policy that never takes a cluster's spot power below what its planned rigid jobs need (a rigid job runs
    its whole checkpoint interval: the price does not curtail it, like committed load)."""
    names = [g.name for g in site.gpu]
    n_mining = len(site.mining)
    floor = np.zeros((len(planned), n_mining + len(site.gpu)))
    for i, job in enumerate(site.jobs):
        if job.min_run_hours > dt_hours + 1e-9:
            floor[:, n_mining + names.index(job.cluster or names[0])] += planned[:, i]
    if not floor.any():
        return policy
    for c, g in enumerate(site.gpu):
        floor[:, n_mining + c] = np.where(floor[:, n_mining + c] > 0, g.spot_mw_for(floor[:, n_mining + c]), 0.0)

    def keep(t: int, lo: np.ndarray, hi: np.ndarray, on: np.ndarray) -> np.ndarray:
        return np.maximum(policy(t, lo, hi, on), np.minimum(hi, floor[t]))
    return keep
