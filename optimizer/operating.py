"""``curtail operate`` as library logic: decide one real-time interval from the state really reached.

A site controller (or cron every 15 minutes) calls :func:`operate_step` once per 15-minute interval ``now``. The
call uses only what is known at ``now`` and decides exactly as the backtest's default policy ``mpc`` does
(:mod:`optimizer.realtime`, the same :class:`~optimizer.realtime.Controller`), so a chain of calls over a day
reproduces the backtest's ``mpc`` trajectory for that day interval by interval (tested on a real day).

**The chain.** Interval ``t``'s decision is made before its price is known: each unit runs while the price stays
below its strike and curtails above it (:func:`optimizer.operate.strike_policy`). So the state a call writes
(:class:`OperateState`) holds the units' state at ``t`` (just before the interval), the jobs' progress and the
PENDING decision for ``t`` (:class:`Pending`: per unit the strikes, the useful and anticipated MW, the committed
GPU load and the jobs' planned work; the interval's load cap). The next call, at ``t + 15 min``, reads ``t``'s
now-known price from the price file and walks the units through ``t`` with that price, with
:func:`optimizer.operate.walk` on :class:`optimizer.operate.Units` exactly as the backtest's walker does (the
lowest-priority unit gives way first under a cap; only an emergency cap trips units). That gives the state at
``t + 15 min`` and what was really drawn in ``t`` (:class:`Realised`), from which the call decides its own
interval. A chain therefore never needs telemetry, but a state measured at ``now`` (``time`` = ``now``, no pending
decision) can be given at any time to re-anchor it.

**Re-plans.** At re-plan times (every ``replan_minutes`` from the site's local day start: hourly, or every
interval with 15) the call re-solves the horizon from the state reached (:meth:`Controller.replan`); otherwise it
reuses the last re-plan, kept in the state file in compact form (:class:`StoredPlan`: the plan's horizon, the
forecast and 4CP probabilities it was made with, and its power, on/off, committed, shortfall, job and reserve
arrays: what :meth:`Controller.step` reads), so a call between re-plans solves nothing. A call also re-plans when
the state holds no usable plan (a fresh state, another re-plan period, another site model, a plan not covering
``now``).

**What is known at ``now``** (nothing later is read):

* real-time prices of the 15-minute intervals that have ENDED (``start + 15 min <= now``); later rows of the
  price file are ignored, with a warning. The interval that ended at ``now`` must be in the file (else the file is
  stale: :class:`~optimizer.errors.InputError`);
* the published day-ahead prices (``da_prices``; operating day D's from 13:30 local on D-1, the intraday
  forecaster applies the publication time);
* the day-ahead plan (``curtail schedule`` output, :func:`read_plan`; it may run on into its lookahead): its
  ``price_usd_per_mwh`` is the fallback forecast for hours without a published day-ahead price, its
  ``peak_weight`` the 4CP probabilities (the nightly estimate, as the backtest's ``mpc`` uses by default). Hours
  without a published day-ahead price that the plan does not cover (every such hour without a plan: before 13:30
  the next day's) fall back to the real-time price of the same hour 24 h earlier (seasonal naive,
  :func:`fallback_forecast`); hours without a plan probability get 4CP probabilities estimated at ``now`` from
  the shipped ERCOT system load (as ``curtail schedule`` does without a given probability; an input error where
  no load is known then);
* the hashprice: given, else the shipped daily value known at ``now``, else the plan's; the source is reported;
* the intraday forecaster's constants: fitted walk-forward on the shipped prices of the site's settlement point
  (:meth:`optimizer.intraday.IntradayForecaster.params_for`, as the backtest does), else on the given files,
  cached in the state for the year (one fit per year, ~0.6 s).

**Outputs.** :class:`Setpoints`: per fleet and cluster the MW and on/off if the price stays below the strike that
applies now and if it does not, the three strikes (stop, start, marginal) and which applies, the price bands
(every price range with the MW of every unit: exact under a binding load cap too), and why, in words (the
forecast, the expected 4CP charge per MWh, a commitment premium, a hold or minimum run/off time, a ramp, the SLA
floor, a load cap, the plan's anticipation). And the next :class:`OperateState`. :func:`run_operate` reads the
files, holds a lock on both outputs and writes both atomically (the setpoints first: a crash between the two
renames leaves a state whose next call stops with a named gap error rather than a state that does not match the
setpoints in force). Bad input raises :class:`~optimizer.errors.InputError` before anything is written.

Not covered: emergency events and ancillary-service deployments (the backtest supports both; ``operate`` has no
input for them yet), lock-weighted strikes (``lock_weight > 0`` re-forecasts every interval: the stored plan is
enough for the default, 0), SLA shortfall carried within the month (the backtest does not carry it either).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import math
import warnings
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from optimizer import data, market, operate, results
from optimizer.errors import FALLBACK_EXIT_CODE, CurtailError, InputError
from optimizer.inputs import Inputs
from optimizer.intraday import SPREAD_DAYS_GRID, IntradayForecaster, IntradayParams
from optimizer.planner import Plan, Planner
from optimizer.realtime import Controller, RealtimeSettings, Step, allocate_jobs
from optimizer.realtime import keep_rigid_jobs as realtime_keep_rigid_jobs
from optimizer.site import Site, load_site
from optimizer.solve import SolveReport, SolverOptions
from optimizer.state import UnitState, resolve, state_from_dict
from optimizer.workloads import JobProgress

STATE_FORMAT = "curtail-operate-state"
SETPOINTS_FORMAT = "curtail-operate-setpoints"
FORMAT_VERSION = 1
#: The real-time interval operate decides.
INTERVAL = pd.Timedelta(minutes=15)
RT_DT_HOURS = 0.25


class OperateWarning(UserWarning):
    """Something the operator should know that does not stop the call (ignored rows, a changed site model)."""


# ----------------------------------------------------------------------------------------------------------------
# the pending decision and its resolution


@dataclass(frozen=True)
class Pending:
    """Interval ``interval_start``'s decision before its price is known: the real-time layer's :class:`Step` and the
    interval's load cap (``load_cap_mw``) and emergency cap (``trip_cap_mw``; below the import limit units may be
    tripped)."""

    interval_start: pd.Timestamp
    step: Step
    load_cap_mw: float
    trip_cap_mw: float

    def walk(self, site: Site, units: operate.Units, price_usd_per_mwh: float) -> operate.Walk:
        """Walk ``units`` (mutated) through the interval at a price, exactly as the backtest's walker does."""
        s = self.step
        policy = s.policy(operate.decision_price(site, np.array([float(price_usd_per_mwh)])))
        if site.jobs:
            policy = keep_rigid_jobs(site, policy, s.job_gpus)
        return operate.walk(site, units, 1, policy,
                            np.array([self.load_cap_mw]), np.array([self.trip_cap_mw]), s.strikes.marginal,
                            s.committed_mw, pd.DatetimeIndex([self.interval_start]))


@dataclass(frozen=True)
class Realised:
    """What an interval really drew once its price was known: per asset (site order) the power as the site draws it
    (clusters with their committed load), MW, on/off and starts; per cluster the committed MW; per job the GPUs
    worked and the late penalty falling due; the load cap in force."""

    interval_start: pd.Timestamp
    price_usd_per_mwh: float
    power_mw: np.ndarray
    on: np.ndarray
    start: np.ndarray
    committed_mw: np.ndarray
    job_gpus: np.ndarray
    job_penalty_usd: float
    load_cap_mw: float

    def to_dict(self, site: Site) -> dict:
        names = list(site.asset_names)
        return {"interval_start": _iso(self.interval_start), "price_usd_per_mwh": float(self.price_usd_per_mwh),
                "mw": dict(zip(names, map(float, self.power_mw), strict=True)),
                "on": dict(zip(names, map(bool, self.on), strict=True)),
                "started": [n for n, s in zip(names, self.start, strict=True) if s],
                "committed_mw": {g.name: float(c) for g, c in zip(site.gpu, self.committed_mw, strict=True)},
                "job_gpus": {j.name: float(x) for j, x in zip(site.jobs, self.job_gpus, strict=True)},
                "job_penalty_usd": self.job_penalty_usd, "load_cap_mw": self.load_cap_mw}


def resolve_pending(site: Site, state: OperateState, price_usd_per_mwh: float
                    ) -> tuple[dict[str, UnitState], dict[str, JobProgress], Realised]:
    """Walk the state's units through its pending interval at the interval's now-known price: (units' state at the
    interval's end, jobs' progress then, what was drawn). The same rule as the backtest's ``mpc`` walk."""
    pending = state.pending
    if pending is None:
        raise InputError(f"the state at {_iso(state.time)} holds no pending decision to resolve", field="pending")
    units = units_at(site, state.units)
    w = pending.walk(site, units, price_usd_per_mwh)
    spot = w.power[:, len(site.mining):]
    demand = demand_gpus(site, pending.interval_start)
    jobs, work, penalty = advance_jobs(site, state.jobs, pending.step.job_gpus, spot, demand, pending.interval_start)
    real = Realised(pending.interval_start, float(price_usd_per_mwh), w.site_power(site, pending.step.committed_mw)[0],
                    w.on[0].astype(bool), w.start[0].astype(bool), pending.step.committed_mw[0].copy(), work[0],
                    penalty, pending.load_cap_mw)
    return w.end_state, jobs, real


def units_at(site: Site, state: Mapping[str, UnitState]) -> operate.Units:
    """:class:`optimizer.operate.Units` holding exactly a state (as :meth:`Units.state` wrote it: the raw power
    is kept, not the rounding :func:`optimizer.state.resolve` applies to a user's state)."""
    units = operate.Units(site, state, RT_DT_HOURS)
    raw_on = np.array([bool(state[n].on) if n in state else True for n in units.names])
    raw_p = np.array([cap if (s := state.get(n)) is None or s.power_mw is None else float(s.power_mw)
                      for n, cap in zip(units.names, units.cap, strict=True)])
    units.p = np.where(raw_on, np.clip(raw_p, 0.0, units.cap), 0.0)
    units.on = units.p > 0
    return units


def advance_jobs(site: Site, jobs: Mapping[str, JobProgress], planned: np.ndarray, spot_mw: np.ndarray,
                 demand: np.ndarray, interval_start: pd.Timestamp
                 ) -> tuple[dict[str, JobProgress], np.ndarray, float]:
    """Jobs' progress after one interval, the work each got (1, job) and the late penalty falling due in it (USD):
    :func:`optimizer.realtime.allocate_jobs`, the backtest's rule, for one interval."""
    out, work, penalty = allocate_jobs(site, jobs, planned, spot_mw, demand, pd.DatetimeIndex([interval_start]),
                                       RT_DT_HOURS)
    return out, work, float(penalty[0])


def keep_rigid_jobs(site: Site, policy: operate.Policy, planned: np.ndarray) -> operate.Policy:
    """:func:`optimizer.realtime.keep_rigid_jobs` at the real-time interval."""
    return realtime_keep_rigid_jobs(site, policy, planned, RT_DT_HOURS)


def demand_gpus(site: Site, interval_start: pd.Timestamp) -> np.ndarray:
    """(1, cluster) spot inference demand of an interval, GPUs, computed over its local operating day's intervals
    as the backtest does (a demand series is read at 15-minute resolution)."""
    day = market.local_day(interval_start, site.timezone)
    times = _day_intervals(site, day)
    i = int(times.get_indexer([interval_start])[0])
    if not site.gpu:
        return np.zeros((1, 0))
    return np.stack([g.demand_fraction(times)[i: i + 1] * g.spot_gpus for g in site.gpu], axis=1)


def _day_intervals(site: Site, day: dt.date) -> pd.DatetimeIndex:
    hours = market.operating_hours(day, site.timezone)
    return pd.date_range(hours[0], hours[-1] + market.HOUR, freq=INTERVAL, inclusive="left")


# ----------------------------------------------------------------------------------------------------------------
# the stored re-plan


@dataclass(frozen=True)
class StoredPlan:
    """A re-plan in the compact form :meth:`Controller.step` needs: its horizon (``start``, ``dt_hours``), the
    forecast, hashprice and 4CP probabilities it was made with, and its decision arrays (``power``, ``on``,
    ``committed_mw``, ``shortfall``, ``job_gpus``, ``reserve_offer``), with when it was made and how it went."""

    made_at: pd.Timestamp
    replan_minutes: int
    site_sha256: str
    start: pd.Timestamp
    dt_hours: float
    forecast_usd_per_mwh: np.ndarray
    hashprice_usd_per_ph_day: float
    peak_probability: np.ndarray | None
    arrays: dict[str, np.ndarray]
    status: str
    fallback_reason: str
    hashprice_source: str = ""

    KEYS = ("power", "on", "committed_mw", "shortfall", "job_gpus", "reserve_offer")

    @classmethod
    def of(cls, plan: Plan, made_at: pd.Timestamp, replan_minutes: int, site: Site, hashprice_source: str = ""
           ) -> StoredPlan:
        inputs = plan.inputs
        if inputs.load_cap_mw is not None:
            raise InputError("a re-plan with emergency caps cannot be stored (operate takes no events)", field="plan")
        return cls(made_at, replan_minutes, site.sha256, inputs.times[0], inputs.dt_hours,
                   inputs.price_array.copy(), float(inputs.hashprice_usd_per_ph_day),
                   None if inputs.peak_probability is None else np.asarray(inputs.peak_probability, dtype=float),
                   {k: np.asarray(plan.arrays[k], dtype=float) for k in cls.KEYS}, plan.status, plan.fallback_reason,
                   hashprice_source)

    @property
    def times(self) -> pd.DatetimeIndex:
        return pd.date_range(self.start, periods=len(self.forecast_usd_per_mwh),
                             freq=pd.Timedelta(hours=self.dt_hours))

    def covers(self, now: pd.Timestamp) -> bool:
        return self.start <= now < self.start + pd.Timedelta(hours=self.dt_hours * len(self.forecast_usd_per_mwh))

    def plan(self) -> Plan:
        """The :class:`Plan` again (what :meth:`Controller.step` and :func:`strike_table` read of it)."""
        inputs = Inputs(pd.Series(self.forecast_usd_per_mwh, index=self.times, name="price_usd_per_mwh"),
                        self.hashprice_usd_per_ph_day, None, None, self.peak_probability)
        report = SolveReport(self.status, "stored", None, None, None, 0.0, 0.0, 0)
        return Plan(inputs, dict(self.arrays), report, self.fallback_reason, 0.0, 0.0, 0.0)

    def to_dict(self) -> dict:
        return {"made_at": _iso(self.made_at), "replan_minutes": self.replan_minutes,
                "site_sha256": self.site_sha256, "start": _iso(self.start), "dt_hours": self.dt_hours,
                "forecast_usd_per_mwh": self.forecast_usd_per_mwh.tolist(),
                "hashprice_usd_per_ph_day": self.hashprice_usd_per_ph_day,
                "peak_probability": None if self.peak_probability is None else self.peak_probability.tolist(),
                "arrays": {k: {"shape": list(v.shape), "values": v.ravel().tolist()} for k, v in self.arrays.items()},
                "status": self.status, "fallback_reason": self.fallback_reason,
                "hashprice_source": self.hashprice_source}

    @classmethod
    def from_dict(cls, raw: Mapping, source: str) -> StoredPlan:
        r = _Reader(raw, source, "plan")
        fc = r.floats("forecast_usd_per_mwh")
        peak = None if raw.get("peak_probability") is None else r.floats("peak_probability")
        arrays = {}
        for k in cls.KEYS:
            a = _Reader(r.mapping("arrays").get(k) or {}, source, f"plan.arrays.{k}")
            shape = tuple(int(x) for x in a.list("shape"))
            values = a.floats("values")
            if not shape or shape[0] != len(fc) or int(np.prod(shape)) != len(values):
                raise InputError(f"array of shape {list(shape)} with {len(values)} values does not fit the "
                                 f"{len(fc)} plan intervals", source=source, field=f"plan.arrays.{k}")
            arrays[k] = values.reshape(shape)
        if peak is not None and len(peak) != len(fc):
            raise InputError("one 4CP probability per plan interval expected", source=source,
                             field="plan.peak_probability")
        return cls(r.time("made_at"), int(r.number("replan_minutes")), str(raw.get("site_sha256", "")),
                   r.time("start"), r.number("dt_hours"), fc, r.number("hashprice_usd_per_ph_day"), peak, arrays,
                   str(raw.get("status", "")), str(raw.get("fallback_reason", "")),
                   str(raw.get("hashprice_source", "")))


# ----------------------------------------------------------------------------------------------------------------
# the state file


@dataclass(frozen=True)
class OperateState:
    """What one call hands the next: the units' state at ``time`` (just before that interval), the jobs' progress
    then, the pending decision for the interval at ``time`` (None for a measured state), the last re-plan, and the
    intraday forecaster's constants (``intraday_params`` for the local year ``params_year``)."""

    time: pd.Timestamp
    units: dict[str, UnitState]
    jobs: dict[str, JobProgress] = field(default_factory=dict)
    pending: Pending | None = None
    plan: StoredPlan | None = None
    intraday_params: IntradayParams | None = None
    params_year: int | None = None
    site: str = ""

    def to_dict(self, site: Site) -> dict:
        return {"format": STATE_FORMAT, "version": FORMAT_VERSION, "site": site.name, "time": _iso(self.time),
                "units": {k: dataclasses.asdict(v) for k, v in self.units.items()},
                "jobs": {k: {"gpu_hours_done": v.gpu_hours_done, "running_hours": v.running_hours}
                         for k, v in self.jobs.items()},
                "pending": None if self.pending is None else _pending_to_dict(site, self.pending),
                "plan": None if self.plan is None else self.plan.to_dict(),
                "intraday_params": None if self.intraday_params is None else
                {"year": self.params_year, **dataclasses.asdict(self.intraday_params)}}

    def to_json(self, site: Site) -> str:
        return _dumps(self.to_dict(site))


def state_from_mapping(raw: Any, site: Site, source: str = "<state>") -> OperateState:
    """An :class:`OperateState` from its JSON form, checked against the site (unknown units, jobs, a pending decision
    for other units): a written state or a user's ``{"time": ..., "units": {...}}`` (``jobs`` optional)."""
    if not isinstance(raw, Mapping):
        raise InputError("a state file holds a JSON object", source=source)
    if raw.get("format", STATE_FORMAT) != STATE_FORMAT or raw.get("version", FORMAT_VERSION) != FORMAT_VERSION:
        raise InputError(f"not a {STATE_FORMAT} version {FORMAT_VERSION} file (format {raw.get('format')!r}, "
                         f"version {raw.get('version')!r})", source=source, field="format")
    r = _Reader(raw, source, "")
    when = r.time("time")
    _on_boundary(when, source, "time")
    units = state_from_dict(r.mapping("units"), source)
    try:
        resolve(site, units)                 # unknown units, powers outside [0, capacity]: named errors
    except InputError as exc:
        raise InputError(str(exc), source=source, field="units") from None
    jobs = _jobs(site, raw.get("jobs") or {}, source)
    pending = None if raw.get("pending") is None else _pending_from_dict(site, raw["pending"], source)
    if pending is not None and pending.interval_start != when:
        raise InputError(f"the pending decision is for {_iso(pending.interval_start)}, but the state is at "
                         f"{_iso(when)}", source=source, field="pending.interval_start")
    plan = None if raw.get("plan") is None else StoredPlan.from_dict(raw["plan"], source)
    params, year = None, None
    if raw.get("intraday_params") is not None:
        p = dict(r.mapping("intraday_params"))
        year = p.pop("year", None)
        try:
            params = IntradayParams(**p)
        except TypeError as exc:
            raise InputError(f"bad intraday constants ({exc})", source=source, field="intraday_params") from None
    return OperateState(when, units, jobs, pending, plan, params, year, str(raw.get("site", "")))


def read_state(path: str | Path, site: Site) -> OperateState:
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError("state file not found", source=str(path)) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the state ({exc})", source=str(path)) from None
    return state_from_mapping(raw, site, str(path))


def _jobs(site: Site, raw: Mapping, source: str) -> dict[str, JobProgress]:
    known = {j.name for j in site.jobs}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InputError(f"progress for unknown job(s) {', '.join(unknown)}; the site has "
                         f"{', '.join(sorted(known)) or 'none'}", source=source, field="jobs")
    out = {}
    for name, v in raw.items():
        r = _Reader(v, source, f"jobs.{name}")
        out[name] = JobProgress(name, r.number("gpu_hours_done"), r.number("running_hours", 0.0))
    return out


def _pending_to_dict(site: Site, p: Pending) -> dict:
    s = p.step
    return {"interval_start": _iso(p.interval_start), "units": _unit_names(site),
            "clusters": [g.name for g in site.gpu], "jobs": [j.name for j in site.jobs],
            "stop": s.strikes.stop[0].tolist(), "start": s.strikes.start[0].tolist(),
            "marginal": s.strikes.marginal[0].tolist(), "useful_mw": s.useful_mw[0].tolist(),
            "ahead_mw": None if s.ahead_mw is None else s.ahead_mw[0].tolist(),
            "committed_mw": s.committed_mw[0].tolist(), "job_gpus": s.job_gpus[0].tolist(),
            "reserve_offer_mw": {"shape": list(s.reserve_offer_mw.shape),
                                 "values": s.reserve_offer_mw.ravel().tolist()},
            "plan_load_mw": s.plan_load_mw.tolist(), "load_cap_mw": p.load_cap_mw, "trip_cap_mw": p.trip_cap_mw}


def _pending_from_dict(site: Site, raw: Any, source: str) -> Pending:
    r = _Reader(raw, source, "pending")
    for key, names in (("units", _unit_names(site)), ("clusters", [g.name for g in site.gpu]),
                       ("jobs", [j.name for j in site.jobs])):
        given = [str(x) for x in r.list(key)]
        if given != names:
            raise InputError(f"the pending decision is for {key} {given}, the site has {names}", source=source,
                             field=f"pending.{key}")
    k, c, n_jobs = len(_unit_names(site)), len(site.gpu), len(site.jobs)

    def row(key: str, n: int) -> np.ndarray:
        a = r.floats(key)
        if len(a) != n:
            raise InputError(f"{len(a)} values, expected {n}", source=source, field=f"pending.{key}")
        return a[None, :]

    offer = _Reader(r.mapping("reserve_offer_mw"), source, "pending.reserve_offer_mw")
    shape = tuple(int(x) for x in offer.list("shape"))
    strikes = operate.Strikes(row("stop", k), row("start", k), row("marginal", k))
    step = Step(strikes, row("useful_mw", k), None if raw.get("ahead_mw") is None else row("ahead_mw", k),
                row("committed_mw", c), row("job_gpus", n_jobs), offer.floats("values").reshape(shape),
                r.floats("plan_load_mw"))
    return Pending(r.time("interval_start"), step, r.number("load_cap_mw"), r.number("trip_cap_mw"))


# ----------------------------------------------------------------------------------------------------------------
# inputs: prices, the day-ahead plan, the hashprice, 4CP


@dataclass(frozen=True)
class DayPlan:
    """The day-ahead plan an operating day runs with: its local ``day``, hourly ``prices`` (the fallback forecast)
    and, if it has them, 4CP ``peak_probability`` per hour and the ``hashprice_usd_per_ph_day`` it used."""

    day: dt.date
    prices: pd.Series
    peak_probability: pd.Series | None = None
    hashprice_usd_per_ph_day: float | None = None
    source: str = "<plan>"


def read_plan(path: str | Path, site: Site) -> DayPlan:
    """A ``curtail schedule`` output (any format it writes) as a :class:`DayPlan`: hourly ``timestamp`` and
    ``price_usd_per_mwh``, optionally ``peak_weight``; the day from its provenance, else its first hour's local
    day. Rows may run on into the lookahead."""
    src = str(path)
    frame = results.read_schedule(path)
    missing = {"timestamp", "price_usd_per_mwh"} - set(frame.columns)
    if missing:
        raise InputError(f"the plan has no column(s) {', '.join(sorted(missing))}", source=src)
    if frame.empty:
        raise InputError("the plan has no rows", source=src)
    times = data.parse_timestamps(frame["timestamp"], src)
    if data.interval_hours(times) != 1.0:
        raise InputError("the plan must be hourly (a curtail schedule output)", source=src, field="timestamp")
    prices = _finite_series(frame["price_usd_per_mwh"], times, src, "price_usd_per_mwh")
    peak = (_finite_series(frame["peak_weight"], times, src, "peak_weight") if "peak_weight" in frame.columns
            else None)
    if peak is not None and ((peak < 0) | (peak > 1)).any():
        raise InputError("peak_weight must lie in [0, 1]", source=src, field="peak_weight")
    summary = results.read_summary(path)
    first_day = market.local_day(times[0], site.timezone)
    day = first_day
    if summary.get("day"):
        try:
            day = dt.date.fromisoformat(str(summary["day"]))
        except ValueError:
            raise InputError(f"day {summary['day']!r} is not a date", source=src, field="day") from None
    if summary.get("site") and summary["site"] != site.name:
        raise InputError(f"the plan is for site {summary['site']!r}, not {site.name!r}", source=src, field="site")
    if times[0] != market.local_midnight(day, site.timezone):
        raise InputError(f"the plan's first hour {_iso(times[0])} is not the start of its day {day}", source=src,
                         field="timestamp")
    hp = summary.get("hashprice_usd_per_ph_day")
    return DayPlan(day, prices, peak, float(hp) if hp else None, src)


def _finite_series(col: pd.Series, times: pd.DatetimeIndex, src: str, name: str) -> pd.Series:
    values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"row {i + 1}: {col.iloc[i]!r} is not a finite number", source=src, field=name)
    return pd.Series(values, index=times, name=name)


def known_prices(prices: pd.Series, now: pd.Timestamp, source: str = "<prices>") -> tuple[pd.Series, int]:
    """The 15-minute real-time prices of intervals ENDED by ``now`` (and how many later rows were dropped).
    Raises if a row is off the 15-minute grid, the file is not 15-minute, or the interval that ended at ``now`` is
    missing (a stale file)."""
    idx = pd.DatetimeIndex(prices.index)
    if idx.tz is None:
        raise InputError("price timestamps have no time zone", source=source, field="timestamp")
    idx = idx.tz_convert("UTC")
    off = idx != idx.floor(INTERVAL)
    if off.any():
        raise InputError(f"row {int(np.flatnonzero(off)[0]) + 1}: timestamp {_iso(idx[off][0])} is not a 15-minute "
                         "interval start", source=source, field="timestamp")
    s = pd.Series(prices.to_numpy(dtype=float), index=idx, name="price_usd_per_mwh").sort_index()
    if s.index.has_duplicates:
        raise InputError(f"timestamp {_iso(s.index[s.index.duplicated()][0])} appears twice", source=source,
                         field="timestamp")
    if len(s) > 1 and (s.index[1:] - s.index[:-1]).min() != INTERVAL:
        raise InputError("real-time prices must be 15-minute (rows are at least "
                         f"{(s.index[1:] - s.index[:-1]).min()} apart)", source=source, field="timestamp")
    ended = s.index + INTERVAL <= now
    known = s[ended]
    last = now - INTERVAL
    if last not in known.index:
        latest = _iso(known.index[-1]) if len(known) else "none"
        raise InputError(f"stale price file: no price for the interval {_iso(last)} (ended at {_iso(now)}); the "
                         f"latest ended interval in the file is {latest}", source=source, field="price_usd_per_mwh")
    return known, int((~ended).sum())


def _hourly(known: pd.Series) -> pd.Series:
    """Hourly means of the hours whose four quarters are known."""
    g = known.groupby(known.index.floor("h"))
    hourly = g.mean()[g.count() == 4]
    hourly.index.name = "timestamp"
    return hourly


def _padded(hourly: pd.Series, now: pd.Timestamp) -> pd.Series:
    """The hourly series with one unknown (NaN) hour far enough back that the intraday forecaster's grid spans its
    longest spread window: its spread median fails on a grid shorter than the window (a short price file)."""
    first = now.floor("h") - pd.Timedelta(hours=24 * (max(SPREAD_DAYS_GRID) + 1))
    if len(hourly) and hourly.index[0] <= first:
        return hourly
    return pd.concat([pd.Series([np.nan], index=pd.DatetimeIndex([first], name="timestamp")), hourly])


def fallback_forecast(site: Site, plan: DayPlan | None, hourly: pd.Series, da: pd.Series | None,
                      now: pd.Timestamp, horizon_hours: int) -> tuple[pd.Series, dict[str, int]]:
    """Hourly fallback forecast over the horizon from ``now``'s hour (the intraday forecast uses it where no
    day-ahead price is published at ``now``): the plan's prices where it covers the hour, else the published
    day-ahead price, else the real-time price of the same hour 24 h earlier. Returns the series (the plan's rows
    beyond the horizon kept: the horizon ends where the fallback does) and, per horizon hour, which base the
    intraday forecast stands on: ``day_ahead`` (published), ``plan``, ``same_hour_yesterday``."""
    hours = pd.date_range(now.floor("h"), periods=horizon_hours, freq="1h")
    base = plan.prices if plan is not None else pd.Series(dtype=float, index=pd.DatetimeIndex([], tz="UTC"))
    published = pd.Series(dtype=float, index=pd.DatetimeIndex([], tz="UTC"))
    if da is not None:
        cut = market.first_unpublished_day_start(now, site.timezone, market.DA_PUBLICATION_LOCAL)
        published = da[pd.DatetimeIndex(da.index).tz_convert("UTC") < cut]
        published = published.set_axis(pd.DatetimeIndex(published.index).tz_convert("UTC"))
    in_plan, in_da = hours.isin(base.index), hours.isin(published.index)
    need = hours[~in_plan & ~in_da]
    naive = hourly.reindex(need - pd.Timedelta(hours=24))
    if naive.isna().any():
        gone = need[naive.isna().to_numpy()]
        raise InputError(f"no plan price, no published day-ahead price and no real-time price 24 h earlier for "
                         f"{len(gone)} horizon hour(s) {_iso(gone[0])} .. {_iso(gone[-1])} (the seasonal-naive "
                         "fallback); give --plan, --da-prices or a price file reaching back a day", field="fallback")
    da_only = hours[~in_plan & in_da]
    out = pd.concat([base, published.reindex(da_only), pd.Series(naive.to_numpy(), index=need)]).sort_index()
    sources = {"day_ahead": int(in_da.sum()), "plan": int((in_plan & ~in_da).sum()),
               "same_hour_yesterday": len(need)}
    return out.rename("price_usd_per_mwh"), sources


def peak_source(site: Site, plan: DayPlan | None, now: pd.Timestamp
                ) -> Callable[[pd.DatetimeIndex], np.ndarray] | None:
    """4CP probabilities of horizon hours: 0 outside the 4CP months, the plan's ``peak_weight`` where it covers the
    hour, else estimated at ``now`` from the shipped ERCOT load (None: the site has no 4CP)."""
    if not site.fourcp.active:
        return None

    def peak(hours: pd.DatetimeIndex) -> np.ndarray:
        hours = pd.DatetimeIndex(hours).tz_convert("UTC")
        out = np.full(len(hours), np.nan)
        if plan is not None and plan.peak_probability is not None:
            out = plan.peak_probability.reindex(hours).to_numpy(dtype=float, copy=True)
        summer = hours.tz_convert(site.timezone).month.isin(market.FOURCP_MONTHS)
        out[~summer] = 0.0
        missing = np.isnan(out)
        if missing.any():
            out[missing] = _estimate_peak(now, hours[missing])
        return out

    return peak


def _estimate_peak(now: pd.Timestamp, hours: pd.DatetimeIndex) -> np.ndarray:
    from optimizer import fourcp
    from optimizer.scheduling import _load_history

    try:
        return fourcp.peak_probability(_load_history(), now, hours).to_numpy(dtype=float)
    except InputError as exc:
        raise InputError(f"4CP is on and {len(hours)} horizon hour(s) {_iso(hours[0])} .. {_iso(hours[-1])} have no "
                         f"plan peak_weight; estimating them at {_iso(now)} failed ({exc}); give a plan covering "
                         "them", field="fourcp") from None


def hashprice_at(site: Site, now: pd.Timestamp, given: float | None, plan: DayPlan | None) -> tuple[float, str]:
    """(USD/PH/day, where it came from): given, else the shipped daily value known at ``now``, else the plan's."""
    if given is not None:
        if not (math.isfinite(given) and given > 0):
            raise InputError(f"hashprice must be a positive number of USD/PH/day, got {given!r}", field="--hashprice")
        return float(given), "given"
    try:
        value, day = data.hashprice_known_at(now, day=market.local_day(now, site.timezone))
        return value, f"shipped daily value of {day} (the latest whose UTC day had ended)"
    except InputError as exc:
        if plan is not None and plan.hashprice_usd_per_ph_day:
            return plan.hashprice_usd_per_ph_day, f"the plan's ({plan.source}); no shipped value: {exc}"
        raise InputError(f"{exc}; or give a plan that records its hashprice", field="--hashprice") from None


def intraday_params(site: Site, now: pd.Timestamp, state: OperateState,
                    files: Callable[[], IntradayForecaster]) -> IntradayParams:
    """The intraday forecaster's constants for ``now``'s local year: kept in the state, else fitted walk-forward
    on the shipped prices of the site's settlement point (as the backtest), else on the given files (``files()``;
    the documented default when they hold too little)."""
    year = now.tz_convert(site.timezone).year
    if state.intraday_params is not None and state.params_year == year:
        return state.intraday_params
    try:
        shipped = IntradayForecaster.shipped(site.settlement_point)
    except InputError:
        return files().params_for(year)
    return shipped.params_for(year)


# ----------------------------------------------------------------------------------------------------------------
# the step


@dataclass(frozen=True)
class OperateOptions:
    """How a call decides: the real-time layer's settings (re-plan minutes, horizon), the solver's options, and an
    optional constant hashprice and intraday constants (None: see :func:`hashprice_at`, :func:`intraday_params`)."""

    realtime: RealtimeSettings = field(default_factory=RealtimeSettings)
    solver: SolverOptions = field(default_factory=lambda: SolverOptions(mip_rel_gap=1e-6))
    hashprice_usd_per_ph_day: float | None = None
    intraday_params: IntradayParams | None = None

    def __post_init__(self) -> None:
        if self.realtime.lock_weight > 0:
            raise InputError("operate runs the default strikes (lock weight 0); lock-weighted strikes need a "
                             "fresh forecast every interval and are not supported", field="lock_weight")


def operate_step(site: Site, state: OperateState, prices: pd.Series, now: pd.Timestamp, *,
                 da_prices: pd.Series | None = None, plan: DayPlan | None = None,
                 options: OperateOptions | None = None, prices_source: str | None = None,
                 planner: Planner | None = None) -> tuple[Setpoints, OperateState]:
    """Decide the real-time interval starting at ``now`` (see the module docstring); returns the setpoints and the
    state for the next call. ``prices``: 15-minute real-time prices (rows after ``now`` are ignored, with an
    :class:`OperateWarning`); ``da_prices``: hourly day-ahead prices (applied from their publication time);
    ``plan``: the operating day's plan. ``planner``: reuse a planner across calls (a long-running ``--watch``
    loop; built for the site without its ``[[reserve]]`` services, which re-plans do not sell); default a new one.
    Raises ``InputError`` (bad input), ``InfeasibleError``, ``NoSolutionError``."""
    options = options or OperateOptions()
    now = check_now(now)
    prices_source = prices_source or str(prices.attrs.get("source", "<prices>"))
    units_state, jobs, previous, notes = _reach(site, state, prices, now, prices_source)
    known, ignored = known_prices(prices, now, prices_source)
    if ignored:
        notes.append(f"{ignored} row(s) of {prices_source} are for intervals not ended at {_iso(now)}: ignored")
        warnings.warn(notes[-1], OperateWarning, stacklevel=2)
    if plan is not None and plan.day != market.local_day(now, site.timezone):
        raise InputError(f"the plan is for {plan.day}, but {_iso(now)} is in operating day "
                         f"{market.local_day(now, site.timezone)}", source=plan.source, field="day")
    hourly = _hourly(known)
    if hourly.empty:
        raise InputError("the price file holds no complete ended hour (four quarters)", source=prices_source,
                         field="price_usd_per_mwh")
    if da_prices is not None:
        _check_hourly(da_prices)
    params = options.intraday_params or intraday_params(
        site, now, state, lambda: IntradayForecaster(known, _padded(hourly, now), da_prices, site.timezone))
    forecaster = IntradayForecaster(known, _padded(hourly, now), da_prices, site.timezone, params=params)
    rt = options.realtime
    # re-plans sell no ancillary capacity (no real-time AS market before RTC+B; the day-ahead award is the nightly
    # plan's), as the backtest's mpc: the same decisions, and no clearing prices needed in real time
    rt_site = dataclasses.replace(site, reserves=())
    ctl = Controller(rt_site, planner or Planner(rt_site, options.solver), forecaster, rt)
    fallback, sources = fallback_forecast(site, plan, hourly, da_prices, now, rt.horizon_hours)
    peak = peak_source(site, plan, now)
    stored = state.plan
    if stored is not None and stored.site_sha256 != site.sha256:
        notes.append("the site model changed since the stored re-plan: re-planning")
        stored = None
    replanned = stored is None or _replan_due(site, now, rt.replan_minutes) or \
        stored.replan_minutes != rt.replan_minutes or not stored.covers(now)
    if stored is None or replanned:        # replanned is True whenever stored is None: said again for mypy
        hp, hp_source = hashprice_at(site, now, options.hashprice_usd_per_ph_day, plan)
        solved = ctl.replan(now, units_state, jobs, fallback, hp, peak)
        stored = StoredPlan.of(solved, now, rt.replan_minutes, site, hp_source)
    the_plan = stored.plan()
    units = units_at(site, units_state)
    step = ctl.step(the_plan, now, demand_gpus(site, now), units.ramp_limited, RT_DT_HOURS)
    cap = _load_cap(site, peak, now)
    pending = Pending(now, step, cap, site.grid.import_limit_mw)
    context = _Context(site, now, units, pending, the_plan, stored, replanned,
                       forecaster.predict(now, pd.DatetimeIndex([now.floor("h")]), fallback=fallback).iloc[0],
                       float(known.iloc[-1]), sources, previous, notes)
    setpoints = build_setpoints(context)
    next_state = OperateState(now, units_state, jobs, pending, stored, params, now.tz_convert(site.timezone).year,
                              site.name)
    return setpoints, next_state


def check_now(now: Any) -> pd.Timestamp:
    """``now`` as a UTC timestamp on a 15-minute boundary (else ``InputError``)."""
    t = pd.Timestamp(now)
    if t.tz is None:
        raise InputError(f"--now {now!s} has no UTC offset (ISO 8601 with offset, e.g. 2023-08-17T05:00:00Z)",
                         field="--now")
    t = t.tz_convert("UTC")
    if t != t.floor(INTERVAL):
        raise InputError(f"--now {t.isoformat()} is not on a 15-minute interval boundary", field="--now")
    return t


def parse_now(text: str | None, clock: dt.datetime | None = None) -> pd.Timestamp:
    """``--now``: ISO 8601 with offset; None: the start of the current 15-minute interval."""
    if text is None:
        return pd.Timestamp(clock or dt.datetime.now(dt.UTC)).tz_convert("UTC").floor(INTERVAL)
    try:
        t = pd.Timestamp(text)
    except ValueError:
        raise InputError(f"--now {text!r} is not an ISO 8601 time", field="--now") from None
    return check_now(t)


def _reach(site: Site, state: OperateState, prices: pd.Series, now: pd.Timestamp, src: str
           ) -> tuple[dict[str, UnitState], dict[str, JobProgress], Realised | None, list[str]]:
    """The units' state and jobs' progress at ``now``: the state itself if it is at ``now``, else its pending
    interval (which must be the one just ended) resolved at that interval's price."""
    if state.site and state.site != site.name:
        raise InputError(f"the state is for site {state.site!r}, not {site.name!r}", field="site")
    if state.time > now:
        raise InputError(f"the state is from the future: it is at {_iso(state.time)}, after --now {_iso(now)}",
                         field="time")
    if state.time == now:
        notes = ["a pending decision for this interval in the state was replaced"] if state.pending else []
        return dict(state.units), dict(state.jobs), None, notes
    if state.time != now - INTERVAL or state.pending is None:
        what = "holds no pending decision to carry it forward" if state.pending is None else \
            f"is {int((now - state.time) / INTERVAL)} intervals before --now (a call was missed)"
        raise InputError(f"the state at {_iso(state.time)} {what}; give the units' state measured at {_iso(now)} "
                         f"(time {_iso(now)}, no pending decision)", field="time")
    idx = pd.DatetimeIndex(prices.index).tz_convert("UTC")
    hit = idx == state.time
    if not hit.any():
        raise InputError(f"stale price file: no price for the pending interval {_iso(state.time)} (ended at "
                         f"{_iso(now)})", source=src, field="price_usd_per_mwh")
    units, jobs, real = resolve_pending(site, state, float(prices.to_numpy(dtype=float)[np.flatnonzero(hit)[0]]))
    return units, jobs, real, []


def _check_hourly(da: pd.Series) -> None:
    idx = pd.DatetimeIndex(da.index)
    off = idx != idx.floor("h")
    if idx.tz is None or off.any():
        bad = idx[off][0].isoformat() if idx.tz is not None else "(no time zone)"
        raise InputError(f"day-ahead prices must be hourly on UTC hour starts; found {bad}",
                         source=str(da.attrs.get("source", "<da_prices>")), field="timestamp")


def _replan_due(site: Site, now: pd.Timestamp, minutes: int) -> bool:
    start = market.local_midnight(market.local_day(now, site.timezone), site.timezone)
    return int((now - start) / pd.Timedelta(minutes=1)) % minutes == 0


def _load_cap(site: Site, peak: Callable | None, now: pd.Timestamp) -> float:
    """The interval's load cap: the import limit, or the committed GPU load where the 4CP probability of its hour
    reaches the site's curtailment threshold (as the backtest's walker)."""
    cap = site.grid.import_limit_mw
    if peak is not None and site.fourcp.curtail_above_probability < 1.0:
        if peak(pd.DatetimeIndex([now.floor("h")]))[0] >= site.fourcp.curtail_above_probability:
            cap = min(cap, site.committed_mw)
    return float(cap)


# ----------------------------------------------------------------------------------------------------------------
# setpoints


@dataclass(frozen=True)
class UnitSetpoint:
    """One fleet's or cluster's setpoints for the interval. MW are as the site draws them (a cluster's include its
    committed load); ``run`` if the price stays below ``strike_usd_per_mwh``, ``curtail`` if it does not."""

    name: str
    kind: str
    mw_now: float
    on_now: bool
    reachable_mw: tuple[float, float]
    strike_usd_per_mwh: float
    strike_applies: str
    stop_strike_usd_per_mwh: float
    start_strike_usd_per_mwh: float
    marginal_strike_usd_per_mwh: float
    fourcp_usd_per_mwh: float
    run_mw: float
    run_on: bool
    curtail_mw: float
    curtail_on: bool
    expected: str
    committed_mw: float
    why: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "mw_now": self.mw_now, "on_now": self.on_now,
                "reachable_mw": list(self.reachable_mw),
                "strike_usd_per_mwh": self.strike_usd_per_mwh, "strike_applies": self.strike_applies,
                "strikes_usd_per_mwh": {"stop": self.stop_strike_usd_per_mwh, "start": self.start_strike_usd_per_mwh,
                                        "marginal": self.marginal_strike_usd_per_mwh},
                "expected_fourcp_usd_per_mwh": self.fourcp_usd_per_mwh,
                "if_price_below_strike": {"mw": self.run_mw, "on": self.run_on},
                "if_price_at_or_above_strike": {"mw": self.curtail_mw, "on": self.curtail_on},
                "expected_at_forecast": self.expected, "committed_mw": self.committed_mw, "why": list(self.why)}


@dataclass(frozen=True)
class PriceBand:
    """For real-time prices in ``[price_from, price_below)`` (None: unbounded), each unit's MW and on/off."""

    price_from: float | None
    price_below: float | None
    mw: dict[str, float]
    on: dict[str, bool]

    def to_dict(self) -> dict:
        return {"price_from_usd_per_mwh": self.price_from, "price_below_usd_per_mwh": self.price_below,
                "mw": self.mw, "on": self.on, "load_mw": float(sum(self.mw.values()))}


@dataclass(frozen=True)
class Setpoints:
    """The decision for the interval ``interval_start`` (see :func:`operate_step`)."""

    site: str
    interval_start: pd.Timestamp
    units: tuple[UnitSetpoint, ...]
    bands: tuple[PriceBand, ...]
    replanned: bool
    plan_made_at: pd.Timestamp
    plan_status: str
    fallback_reason: str
    forecast_usd_per_mwh: float
    last_price_usd_per_mwh: float
    expected_fourcp_usd_per_mwh: float
    peak_probability: float
    load_cap_mw: float
    hashprice_usd_per_ph_day: float
    hashprice_source: str
    forecast_sources: dict[str, int]
    previous: Realised | None
    notes: tuple[str, ...]

    @property
    def fallback(self) -> bool:
        return bool(self.fallback_reason)

    def to_dict(self, site: Site) -> dict:
        local = self.interval_start.tz_convert(site.timezone)
        return {
            "format": SETPOINTS_FORMAT, "version": FORMAT_VERSION, "site": self.site,
            "interval_start": _iso(self.interval_start), "interval_end": _iso(self.interval_start + INTERVAL),
            "interval_start_local": local.isoformat(),
            "units": [u.to_dict() for u in self.units], "price_bands": [b.to_dict() for b in self.bands],
            "price": {"forecast_usd_per_mwh": self.forecast_usd_per_mwh,
                      "last_known_usd_per_mwh": self.last_price_usd_per_mwh,
                      "horizon_hours_by_base": self.forecast_sources},
            "expected_fourcp_usd_per_mwh": self.expected_fourcp_usd_per_mwh,
            "peak_probability": self.peak_probability, "load_cap_mw": self.load_cap_mw,
            "hashprice_usd_per_ph_day": self.hashprice_usd_per_ph_day, "hashprice_source": self.hashprice_source,
            "plan": {"replanned": self.replanned, "made_at": _iso(self.plan_made_at), "status": self.plan_status,
                     "fallback": self.fallback, "fallback_reason": self.fallback_reason},
            "previous_interval": None if self.previous is None else self.previous.to_dict(site),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class _Context:
    site: Site
    now: pd.Timestamp
    units: operate.Units
    pending: Pending
    plan: Plan
    stored: StoredPlan
    replanned: bool
    forecast: float
    last_price: float
    sources: dict[str, int]
    previous: Realised | None
    notes: list[str]


def build_setpoints(c: _Context) -> Setpoints:
    site, s = c.site, c.pending.step
    lo, hi = c.units.bounds()
    st = s.strikes
    applies = np.where(c.units.on, np.where(lo <= 0.0, "stop", "marginal"), "start")
    thr = np.where(c.units.on, np.where(lo <= 0.0, st.stop[0], st.marginal[0]), st.start[0])
    levels = sorted({float(x) for x in thr})
    bands = []
    for i, price in enumerate([-math.inf, *levels]):
        w = c.pending.walk(site, copy.deepcopy(c.units), price)
        mw = w.site_power(site, s.committed_mw)[0]
        names = _unit_names(site)
        bands.append(PriceBand(None if i == 0 else price, levels[i] if i < len(levels) else None,
                               dict(zip(names, map(float, mw), strict=True)),
                               dict(zip(names, map(bool, w.on[0]), strict=True))))
    j = int(c.plan.inputs.times.get_indexer([c.now.floor(f"{int(round(c.plan.inputs.dt_hours * 60))}min")])[0])
    prob = 0.0 if c.plan.inputs.peak_probability is None else float(c.plan.inputs.peak_probability[j])
    c4 = prob * site.fourcp.usd_per_mw_peak
    units = []
    for k, name in enumerate(_unit_names(site)):
        below, above = bands[levels.index(float(thr[k]))], bands[levels.index(float(thr[k])) + 1]
        units.append(_unit_setpoint(c, k, name, str(applies[k]), float(thr[k]), below, above, lo[k], hi[k], c4))
    return Setpoints(site.name, c.now, tuple(units), tuple(bands), c.replanned, c.stored.made_at, c.stored.status,
                     c.stored.fallback_reason, float(c.forecast), c.last_price, c4, prob, c.pending.load_cap_mw,
                     c.stored.hashprice_usd_per_ph_day, c.stored.hashprice_source, c.sources, c.previous,
                     tuple(c.notes))


def _unit_setpoint(c: _Context, k: int, name: str, applies: str, strike: float, below: PriceBand,
                   above: PriceBand, lo: float, hi: float, c4: float) -> UnitSetpoint:
    site, s, u = c.site, c.pending.step, c.units
    n_mining = len(site.mining)
    committed = float(s.committed_mw[0, k - n_mining]) if k >= n_mining else 0.0
    value = float(operate.values_usd_per_mwh(site, c.plan.inputs.hashprice_usd_per_ph_day)[k])
    unit_c4 = value - float(s.strikes.marginal[0, k])     # this interval's, or a later risky one's (ramp-ahead)
    why = _why(c, k, name, applies, strike, below, above, lo, hi, value, c4, unit_c4, committed)
    expected = "run" if _decided(c) < strike else "curtail"
    return UnitSetpoint(name, "mining" if k < n_mining else "gpu", float(u.p[k]) + committed, bool(u.on[k]),
                        (float(lo) + committed, float(hi) + committed), strike, applies, float(s.strikes.stop[0, k]),
                        float(s.strikes.start[0, k]), float(s.strikes.marginal[0, k]), unit_c4, below.mw[name],
                        below.on[name], above.mw[name], above.on[name], expected, committed, tuple(why))


def _why(c: _Context, k: int, name: str, applies: str, strike: float, below: PriceBand, above: PriceBand,
         lo: float, hi: float, value: float, c4: float, unit_c4: float, committed: float) -> list[str]:
    """The reasons behind a unit's setpoints, in words, from the numbers that made them."""
    site, s, u = c.site, c.pending.step, c.units
    n_mining = len(site.mining)
    what = (f"mining value {value:.2f} USD/MWh at a hashprice of {c.plan.inputs.hashprice_usd_per_ph_day:.2f} "
            "USD/PH/day" if k < n_mining else f"spot GPU value {value:.2f} USD/MWh")
    charge = (f"the expected 4CP charge {c4:.2f} USD/MWh" if unit_c4 <= c4 + 1e-6 else
              f"the expected 4CP charge {unit_c4:.2f} USD/MWh of a later risky interval the plan ramps it down "
              f"for (this interval's: {c4:.2f})")
    out = [f"strike {strike:.2f} USD/MWh ({applies}): {what}, less {charge}"
           + _premium(u, k, applies, strike - float(s.strikes.marginal[0, k]))]
    out.append(f"price forecast for this hour {c.forecast:.2f} USD/MWh (intraday, made now; last real-time price "
               f"{c.last_price:.2f} USD/MWh): expected to " + ("run" if _decided(c) < strike else "curtail")
               + ("" if site.contract.market_exposed else " (this site's power is prepaid and cannot be sold back: its "
                  "strikes are weighed against 0, not the market price)"))
    out.extend(_holds(u, k, lo, hi, "power" if k < n_mining else "spot load"))
    if s.ahead_mw is not None and s.ahead_mw[0, k] < s.useful_mw[0, k] - 1e-6:
        out.append(f"the plan ramps it down ahead of dearer hours: at most {s.ahead_mw[0, k]:.2f} MW even below "
                   "the strike")
    if k >= n_mining:
        out.append(f"committed load {committed:.2f} MW always served (the SLA floor); the strike drives the spot "
                   f"load, useful up to {s.useful_mw[0, k]:.2f} MW for this interval's inference demand and jobs")
    cap = c.pending.load_cap_mw
    if cap < site.grid.import_limit_mw - 1e-9:
        out.append(f"load cap {cap:.2f} MW in force (4CP curtailment: peak probability above the site's threshold)")
    want = min(max(lo, min(hi, float(s.useful_mw[0, k] if s.ahead_mw is None else
                                     min(s.useful_mw[0, k], s.ahead_mw[0, k])))), hi)
    if below.mw[name] < want + committed - 1e-6:
        out.append(f"the load cap holds it at {below.mw[name]:.2f} MW below the strike (lower-priority units give "
                   "way first)")
    out.append(f"below the strike: {below.mw[name]:.2f} MW ({'on' if below.on[name] else 'off'}); at or above: "
               f"{above.mw[name]:.2f} MW ({'on' if above.on[name] else 'off'})")
    return out


def _decided(c: _Context) -> float:
    """The interval's forecast as the strikes weigh it (:func:`optimizer.operate.decision_price`)."""
    return float(operate.decision_price(c.site, np.array([float(c.forecast)]))[0])


def _premium(u: operate.Units, k: int, applies: str, premium: float) -> str:
    if applies == "stop" and premium > 1e-9:
        return (f", plus a commitment premium {premium:.2f} USD/MWh (a stop now means a restart of "
                f"{u.restart_usd[k]:.0f} USD the plan would pay to run it again, over this interval's MWh)")
    if applies == "start" and premium < -1e-9:
        return (f", less a commitment premium {-premium:.2f} USD/MWh (a start now costs a restart of "
                f"{u.restart_usd[k]:.0f} USD and commits it to its minimum run time)")
    return ""


def _holds(u: operate.Units, k: int, lo: float, hi: float, what: str) -> list[str]:
    """Why a unit cannot reach every power this interval (``what``: the power meant, e.g. a cluster's spot load)."""
    out = []
    if u.on[k] and lo > 0:
        if u.hours[k] < u.min_on[k] - 1e-9:
            out.append(f"held on: minimum run time {u.min_on[k]:g} h, on for {u.hours[k]:g} h; its {what} cannot go "
                       f"below {lo:.2f} MW this interval")
        else:
            out.append(f"ramp limit: its {what} can come down from {u.p[k]:.2f} to {lo:.2f} MW this interval")
    if not u.on[k] and hi <= 0 and u.switched[k]:
        out.append(f"held off: minimum off time {u.min_off[k]:g} h, off for {u.hours[k]:g} h; 0 MW whatever the "
                   "price")
    if hi < u.cap[k] - 1e-9 and hi > u.p[k] + 1e-9:
        out.append(f"ramp limit: its {what} can rise only to {hi:.2f} MW this interval")
    return out


# ----------------------------------------------------------------------------------------------------------------
# the job: files, lock, atomic writes


@dataclass(frozen=True)
class OperateJob:
    """One ``curtail operate`` call: every option as given (paths are read by :func:`run_operate`)."""

    state: Path
    prices: Path
    out: Path
    site: Path | None = None
    da_prices: Path | None = None
    plan: Path | None = None
    now: str | None = None
    state_out: Path | None = None           # None: replace --state
    options: OperateOptions = field(default_factory=OperateOptions)
    ledger: Path | None = None              # SQLite ledger: record the call (setpoints, the interval before)

    @property
    def next_state_path(self) -> Path:
        return self.state_out or self.state


def run_operate(job: OperateJob, clock: dt.datetime | None = None) -> tuple[Setpoints, OperateState, dict]:
    """Lock both outputs, read and check every input, decide, and write the setpoints and the next state
    atomically. Returns (setpoints, next state, the setpoints file's content). Nothing is written on an error.
    With ``job.ledger``, the call is recorded there once its outputs are written (a failure too, with its exit
    code, when the site could be read)."""
    site = load_site(job.site or data.default_site_path())
    if job.ledger is not None and not Path(job.ledger).parent.is_dir():
        raise InputError("ledger folder does not exist", source=str(Path(job.ledger).parent))
    try:
        setpoints, nxt, payload = _run(job, site, clock)
    except CurtailError as exc:
        if job.ledger is not None:
            _record_failure(job, job.ledger, site, exc)
        raise
    if job.ledger is not None:
        from optimizer import ledger

        ledger.record_operate(job.ledger, payload, site, exit_code=FALLBACK_EXIT_CODE if setpoints.fallback else 0)
    return setpoints, nxt, payload


def _record_failure(job: OperateJob, ledger_path: str | Path, site: Site, exc: CurtailError) -> None:
    from optimizer import ledger

    ledger.record_failure_or_warn(ledger_path, kind="operate", site=site, error=exc,
                                  inputs=lambda: _inputs(site, job), interval_start=job.now)


def _run(job: OperateJob, site: Site, clock: dt.datetime | None) -> tuple[Setpoints, OperateState, dict]:
    now = parse_now(job.now, clock)
    for path in (job.out, job.next_state_path):
        if path.suffix.lower() != ".json":
            raise InputError("operate writes JSON (.json)", source=str(path))
        if not path.parent.is_dir():
            raise InputError("output folder does not exist", source=str(path.parent))
    if job.out.resolve() == job.next_state_path.resolve():
        raise InputError("the setpoints and the next state need two different files", source=str(job.out))
    with ExitStack() as stack:
        for path in (job.out, job.next_state_path):
            stack.enter_context(results.output_lock(path))
        state = read_state(job.state, site)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", data.PriceWarning)     # prices beyond the market's caps: reported
            warnings.simplefilter("ignore", OperateWarning)        # already in the setpoints' notes
            prices = data.read_price_file(job.prices)
            da = data.read_price_file(job.da_prices) if job.da_prices else None
            plan = read_plan(job.plan, site) if job.plan else None
            setpoints, nxt = operate_step(site, state, prices, now, da_prices=da, plan=plan, options=job.options,
                                          prices_source=str(job.prices))
        payload = setpoints.to_dict(site)
        payload["notes"] += [str(w.message) for w in caught if issubclass(w.category, data.PriceWarning)]
        payload["created_at"] = _created_at()
        payload["inputs"] = _inputs(site, job)
        payload["next_state"] = str(job.next_state_path)
        with results.atomic_path(job.next_state_path) as tmp_state:
            Path(tmp_state).write_text(nxt.to_json(site) + "\n")
            with results.atomic_path(job.out) as tmp_out:
                Path(tmp_out).write_text(_dumps(payload, indent=1) + "\n")
    return setpoints, nxt, payload


def _inputs(site: Site, job: OperateJob) -> dict:
    out = {"site": {"path": site.source, "sha256": site.sha256}}
    for name in ("state", "prices", "da_prices", "plan"):
        path = getattr(job, name)
        if path is not None:
            out[name] = {"path": str(path), "sha256": results.file_sha256(path)}
    return out


def _created_at() -> str:
    from optimizer.nightly import created_at

    return created_at()


# ----------------------------------------------------------------------------------------------------------------
# helpers


def _unit_names(site: Site) -> list[str]:
    return [f.name for f in site.mining] + [g.name for g in site.gpu]


def _iso(t: pd.Timestamp) -> str:
    return pd.Timestamp(t).tz_convert("UTC").isoformat().replace("+00:00", "Z")


def _on_boundary(t: pd.Timestamp, source: str, name: str) -> None:
    if t != t.floor(INTERVAL):
        raise InputError(f"{_iso(t)} is not a 15-minute interval start", source=source, field=name)


def _dumps(obj: Any, indent: int | None = None) -> str:
    try:
        return json.dumps(obj, sort_keys=True, indent=indent, allow_nan=False)
    except ValueError as exc:            # a non-finite number would make invalid JSON: a bug, said so
        raise ValueError(f"operate output holds a non-finite number ({exc})") from None


class _Reader:
    """Typed reads from a JSON object, errors naming the file and the field."""

    def __init__(self, raw: Any, source: str, prefix: str):
        if not isinstance(raw, Mapping):
            raise InputError("expected a JSON object", source=source, field=prefix or None)
        self.raw, self.source, self.prefix = raw, source, prefix

    def _field(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def get(self, key: str) -> Any:
        if key not in self.raw:
            raise InputError("missing", source=self.source, field=self._field(key))
        return self.raw[key]

    def number(self, key: str, default: float | None = None) -> float:
        v = self.raw.get(key, default) if default is not None else self.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InputError(f"expected a finite number, got {v!r}", source=self.source, field=self._field(key))
        return float(v)

    def time(self, key: str) -> pd.Timestamp:
        v = self.get(key)
        try:
            t = pd.Timestamp(v)
        except (ValueError, TypeError):
            raise InputError(f"{v!r} is not an ISO 8601 time", source=self.source, field=self._field(key)) from None
        if t.tz is None:
            raise InputError(f"{v!r} has no UTC offset", source=self.source, field=self._field(key))
        return t.tz_convert("UTC")

    def list(self, key: str) -> list:
        v = self.get(key)
        if not isinstance(v, list):
            raise InputError(f"expected a list, got {type(v).__name__}", source=self.source, field=self._field(key))
        return v

    def floats(self, key: str) -> np.ndarray:
        v = self.list(key)
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v):
            raise InputError("expected finite numbers", source=self.source, field=self._field(key))
        return np.array(v, dtype=float)

    def mapping(self, key: str) -> Mapping:
        v = self.get(key)
        if not isinstance(v, Mapping):
            raise InputError(f"expected a JSON object, got {type(v).__name__}", source=self.source,
                             field=self._field(key))
        return v


__all__ = ["OperateJob", "OperateOptions", "OperateState", "OperateWarning", "Pending", "PriceBand", "Realised",
           "Setpoints", "StoredPlan", "DayPlan", "UnitSetpoint", "operate_step", "read_plan", "read_state",
           "resolve_pending", "run_operate", "state_from_mapping", "known_prices", "fallback_forecast", "parse_now",
           "check_now", "units_at", "advance_jobs", "keep_rigid_jobs", "demand_gpus", "hashprice_at", "intraday_params",
           "peak_source"]
