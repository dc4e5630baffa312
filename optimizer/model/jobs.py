"""Deferrable GPU jobs: training and batch inference that need GPU-hours by a deadline on a cluster's spot GPUs.

One slot per job active in the horizon (released before its end, work left); the slots' shape (cluster, and the
minimum run of rigid jobs, in intervals) is part of the model's structure, everything else is data.

| component | index | kind | unit | meaning |
|---|---|---|---|---|
| ``JOBS`` | - | Set | - | job slots 0..J-1 |
| ``job_x`` | JOBS x T | Var >= 0 | GPUs | work rate: full-throughput GPU equivalents given to the job |
| ``job_cap`` | JOBS x T | mutable Param | GPUs | the job's GPUs where it may run (released, in the horizon), else 0 |
| ``job_left`` | JOBS | mutable Param | GPU-h | GPU-hours still to do at the horizon's start |
| ``job_on_time`` | JOBS x T | mutable Param | - | 1 where the interval ends by the deadline |
| ``job_after`` | JOBS | mutable Param | GPU-h | most GPU-hours the job can still get after the horizon, before its deadline |
| ``job_late`` | JOBS | Var >= 0 | GPU-h | GPU-hours that will miss the deadline |
| ``job_run`` / ``job_start`` | rigid slots x T | Var binary | - | a rigid job runs on all its GPUs / starts |

Rows: ``job_x[k, t] <= job_cap[k, t]``; ``sum_t job_x dt <= job_left``;
``job_late >= job_left - sum_t job_on_time x dt - job_after``. A rigid job (minimum run between checkpoints longer
than one interval) runs on exactly its GPUs or not at all (``job_x = gpus x job_run``), and once started runs at
least its minimum run (the same tight form as :mod:`optimizer.model.commitment`); a run in progress at the
horizon's start continues until its minimum is reached (``job_must_run``). The work shares the cluster's spot
throughput with inference (:mod:`optimizer.model.gpu`). Profit: ``value x work x dt - late penalty x job_late``:
the late GPU-hours are a planning term; a backtest charges the penalty once, at the deadline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyomo.environ as pyo

from optimizer.inputs import Inputs
from optimizer.model.commitment import intervals
from optimizer.site import Site


@dataclass(frozen=True)
class Slot:
    """The structure of one job slot: the cluster it runs on and its minimum run in intervals (0: divisible)."""

    cluster: str
    min_run_intervals: int


def slots(site: Site, inputs: Inputs) -> tuple[Slot, ...]:
    """The job slots of a horizon (structure)."""
    return tuple(Slot(job.cluster or site.gpu[0].name, _min_run(job.min_run_hours, inputs.dt_hours))
                 for job, _, _ in inputs.active_jobs(site))


def _min_run(hours: float, dt_hours: float) -> int:
    m = intervals(hours, dt_hours)
    return m if m > 1 else 0


def add(m: pyo.Block, site: Site, structure) -> None:
    sl = structure.job_slots
    m.JOBS = pyo.Set(initialize=range(len(sl)), ordered=True)
    m.job_x = pyo.Var(m.JOBS, m.T, within=pyo.NonNegativeReals, doc="job work, GPUs")
    m.job_cap = pyo.Param(m.JOBS, m.T, mutable=True, initialize=0.0)
    m.job_gpus = pyo.Param(m.JOBS, mutable=True, initialize=0.0)
    m.job_left = pyo.Param(m.JOBS, mutable=True, initialize=0.0)
    m.job_on_time = pyo.Param(m.JOBS, m.T, mutable=True, initialize=0.0)
    m.job_after = pyo.Param(m.JOBS, mutable=True, initialize=0.0)
    m.job_value = pyo.Param(m.JOBS, mutable=True, initialize=0.0)
    m.job_penalty = pyo.Param(m.JOBS, mutable=True, initialize=0.0)
    m.job_late = pyo.Var(m.JOBS, within=pyo.NonNegativeReals, doc="GPU-hours late")
    m.job_window = pyo.Constraint(m.JOBS, m.T, rule=lambda m, k, t: m.job_x[k, t] <= m.job_cap[k, t])
    m.job_total = pyo.Constraint(m.JOBS, rule=lambda m, k: sum(m.job_x[k, t] for t in m.T) * m.dt_hours
                                 <= m.job_left[k])
    m.job_deadline = pyo.Constraint(m.JOBS, rule=lambda m, k: m.job_late[k] >= m.job_left[k] - m.job_after[k]
                                    - sum(m.job_on_time[k, t] * m.job_x[k, t] for t in m.T) * m.dt_hours)
    rigid = [k for k, s in enumerate(sl) if s.min_run_intervals]
    m.RIGID = pyo.Set(initialize=rigid, ordered=True)
    m.job_run = pyo.Var(m.RIGID, m.T, within=pyo.Binary)
    m.job_start = pyo.Var(m.RIGID, m.T, within=pyo.Binary)
    m.job_was_running = pyo.Param(m.RIGID, mutable=True, initialize=0, within=pyo.Binary)
    m.job_must_run = pyo.Param(m.RIGID, m.T, mutable=True, initialize=0, within=pyo.Binary)
    m.job_rigid = pyo.Constraint(m.RIGID, m.T, rule=lambda m, k, t: m.job_x[k, t] == m.job_gpus[k] * m.job_run[k, t])
    m.job_starts = pyo.Constraint(m.RIGID, m.T, rule=lambda m, k, t: m.job_start[k, t] >= m.job_run[k, t]
                                  - (m.job_run[k, t - 1] if t else m.job_was_running[k]))
    m.job_min_run = pyo.Constraint(m.RIGID, m.T, rule=lambda m, k, t: sum(
        m.job_run[k, tau] for tau in range(t, min(t + sl[k].min_run_intervals, len(m.T))))
        >= min(sl[k].min_run_intervals, len(m.T) - t) * m.job_start[k, t])
    m.job_continue = pyo.Constraint(m.RIGID, m.T, rule=lambda m, k, t: m.job_run[k, t] >= m.job_must_run[k, t])


def work(m: pyo.Block, structure, cluster: str, t: int):
    """Job work on ``cluster`` in interval t (full-throughput GPU equivalents)."""
    return sum(m.job_x[k, t] for k, s in enumerate(structure.job_slots) if s.cluster == cluster)


def set_data(m: pyo.Block, site: Site, inputs: Inputs) -> list:
    active = inputs.active_jobs(site)
    n, dt_h = inputs.n, inputs.dt_hours
    if not active:
        return []
    times = inputs.times
    end = times[-1] + pd.Timedelta(hours=dt_h)
    cap, on_time = np.zeros((len(active), n)), np.zeros((len(active), n))
    gpus, left, after, value, penalty = (np.zeros(len(active)) for _ in range(5))
    for k, (job, remaining, _) in enumerate(active):
        available, ontime = _windows(job, times, dt_h)
        cap[k] = job.gpus * available
        on_time[k] = ontime
        gpus[k], left[k] = job.gpus, remaining
        after[k] = job.gpus * late_hours_after(job, end)
        value[k], penalty[k] = job.value_usd_per_gpu_hour, job.late_penalty_usd_per_gpu_hour
    out = [(m.job_cap, cap), (m.job_on_time, on_time), (m.job_gpus, gpus), (m.job_left, left),
           (m.job_after, after), (m.job_value, value), (m.job_penalty, penalty)]
    rigid = list(m.RIGID)
    if rigid:
        was = np.zeros(len(rigid))
        must = np.zeros((len(rigid), n))
        for i, k in enumerate(rigid):
            job, _, running_hours = active[k]
            if running_hours > 0:
                was[i] = 1
                hold = intervals(job.min_run_hours - running_hours, dt_h)
                must[i, :hold] = 1
        out += [(m.job_was_running, was), (m.job_must_run, must)]
    return out


def late_hours_after(job, end: pd.Timestamp) -> float:
    """Hours a job can still run after a horizon ending at ``end`` and before its deadline."""
    return max(0.0, (job.deadline - max(end, job.release)) / pd.Timedelta(hours=1))


def expected_late_gpu_hours(job, left: float, work: np.ndarray, times: pd.DatetimeIndex, dt_h: float) -> float:
    """GPU-hours a plan leaves late: what is left, less the on-time work planned, less what all the job's GPUs
    can still do between the horizon's end and the deadline (the planning term, :data:`job_deadline` row)."""
    _, on_time = _windows(job, times, dt_h)
    end = times[-1] + pd.Timedelta(hours=dt_h)
    return max(0.0, left - float((work * on_time).sum()) * dt_h - job.gpus * late_hours_after(job, end))


def _windows(job, times, dt_h: float) -> tuple[np.ndarray, np.ndarray]:
    step = pd.Timedelta(hours=dt_h)
    available = np.asarray(times >= job.release, dtype=float)
    on_time = available * np.asarray(times + step <= job.deadline)
    return available, on_time


def profit(m: pyo.Block, site: Site, t: int):
    """Jobs' value of the work in interval t; the late penalty is booked in the first interval (USD)."""
    total = sum(m.job_value[k] * m.job_x[k, t] for k in m.JOBS) * m.dt_hours
    if t == 0:
        total -= sum(m.job_penalty[k] * m.job_late[k] for k in m.JOBS)
    return total


def read(m: pyo.Block, site: Site, inputs: Inputs, values) -> dict[str, dict]:
    active = inputs.active_jobs(site)
    if not active:
        return {}
    x = np.clip(values(m.job_x), 0.0, None)
    late = np.clip(values(m.job_late), 0.0, None)
    return {"job_gpus": {job.name: x[k] for k, (job, _, _) in enumerate(active)},
            "job_late_gpu_hours": {job.name: float(late[k]) for k, (job, _, _) in enumerate(active)}}
