"""A hand-written reference: curtail's day-ahead MILP built directly in HiGHS with vectorised highspy calls.

What it is for: the yardstick of issue 11's "rolling 30 days" row. The same mathematical problem as
:mod:`optimizer.model` (written again here from docs/formulation.md and the parts' docstrings, not generated from
the Pyomo model), built from scratch for every horizon with one ``addVars``, one ``changeColsIntegrality``, one
``changeColsCost`` and one ``addRows`` call on arrays, solved with the same HiGHS options, read back as arrays.
``benchmarks/run.py`` checks that its objective equals curtail's on every day it times.

Scope: what the default site ``west-texas-200`` uses at hourly resolution: mining fleets and GPU clusters as
switchable units (on/off, minimum load, ramps with start-up/shut-down jumps, minimum on/off times, restart costs,
the holds of the initial state) or as continuous ramp-limited units; GPU spot throughput cuts (power-cap curve),
inference demand (served only while on); committed GPU load at full power; the import limit and load caps; the
contract block settled at the market price; the expected 4CP charge. Anything else (jobs, reserves, SLA breach,
committed capping, 15-minute intervals) is refused with ``NotImplementedError``: the reference must not silently
solve a different problem.

Columns per unit: ``mw`` (and for a switched unit ``on``, ``start``, ``stop``), per cluster ``served``, interval by
interval. Initial holds (``must_on`` / ``must_off``) are column bounds of ``on``; Pyomo writes them as rows: the
same feasible set.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import highspy
import numpy as np

from optimizer.inputs import Inputs
from optimizer.model.commitment import intervals, is_switched, on_floor_mw
from optimizer.site import Site
from optimizer.solve import SolverOptions


@dataclass(frozen=True)
class DirectResult:
    objective_usd: float | None
    status: str
    mip_gap: float | None
    power_mw: np.ndarray            # (interval, unit): fleets, then clusters' flexible part
    build_seconds: float            # arrays + the highspy calls that load the model
    solve_seconds: float            # wall time of run()
    highs_seconds: float            # HiGHS's own clock
    read_seconds: float


class _Rows:
    """Rows in coordinate form, assembled into CSR once."""

    def __init__(self) -> None:
        self.lo: list[np.ndarray] = []
        self.hi: list[np.ndarray] = []
        self.r: list[np.ndarray] = []
        self.c: list[np.ndarray] = []
        self.v: list[np.ndarray] = []
        self.n = 0

    def add(self, lo, hi, terms) -> None:
        """``len(lo)`` rows ``lo <= sum(coef * x[col]) <= hi``; ``terms``: (column array, coefficient array or
        scalar) pairs, each giving one entry per row (a column index < 0 drops the entry)."""
        lo = np.asarray(lo, dtype=float)
        k = len(lo)
        rows = self.n + np.arange(k)
        for cols, coef in terms:
            cols = np.asarray(cols, dtype=np.int64)
            coef = np.broadcast_to(np.asarray(coef, dtype=float), (k,))
            keep = (cols >= 0) & (coef != 0.0)
            self.r.append(rows[keep])
            self.c.append(cols[keep])
            self.v.append(coef[keep])
        self.lo.append(lo)
        self.hi.append(np.broadcast_to(np.asarray(hi, dtype=float), (k,)).copy())
        self.n += k

    def csr(self):
        r, c, v = np.concatenate(self.r), np.concatenate(self.c), np.concatenate(self.v)
        order = np.lexsort((c, r))
        r, c, v = r[order], c[order], v[order]
        starts = np.searchsorted(r, np.arange(self.n)).astype(np.int32)
        return np.concatenate(self.lo), np.concatenate(self.hi), starts, c.astype(np.int32), v


def _shifted(x: np.ndarray) -> np.ndarray:
    """x[t - 1], with -1 (no column) at t = 0."""
    return np.concatenate([[-1], x[:-1]])


def solve(site: Site, inputs: Inputs, options: SolverOptions | None = None, highs: highspy.Highs | None = None
          ) -> DirectResult:
    """Build the horizon's MILP from ``inputs`` in ``highs`` (a fresh model: any previous one is cleared), solve,
    and read back each unit's power."""
    options = options or SolverOptions()
    t_build = time.perf_counter()
    if site.jobs or site.reserves or inputs.active_jobs(site):
        raise NotImplementedError("the reference covers neither jobs nor reserves")
    if inputs.dt_hours != 1.0:
        raise NotImplementedError("the reference is hourly")
    for g in site.gpu:
        if g.committed_min_mw < g.committed_mw:
            raise NotImplementedError(f"{g.name}: committed capping is not in the reference")
    n, dt = inputs.n, 1.0
    inf = highspy.kHighsInf
    price = inputs.price_array
    weight = np.zeros(n) if inputs.peak_probability is None else inputs.peak_probability
    peak_usd = site.fourcp.usd_per_mw_peak if site.fourcp.charge_usd_per_kw_year else 0.0
    market = site.contract.market_exposed
    energy = ((price if market else 0.0) + weight * peak_usd) * dt      # USD per MW of load in each interval
    state = inputs.resolved_state(site)
    demand = inputs.demand(site)

    lb: list[np.ndarray] = []
    ub: list[np.ndarray] = []
    cost: list[np.ndarray] = []
    integer: list[np.ndarray] = []
    count = [0]

    def columns(lo, hi, c, is_int=False) -> np.ndarray:
        lo = np.broadcast_to(np.asarray(lo, dtype=float), (n,)).copy()
        hi = np.broadcast_to(np.asarray(hi, dtype=float), (n,)).copy()
        lb.append(lo)
        ub.append(hi)
        cost.append(np.broadcast_to(np.asarray(c, dtype=float), (n,)).copy())
        integer.append(np.full(n, is_int))
        idx = count[0] + np.arange(n)
        count[0] += n
        return idx

    rows = _Rows()
    mw_cols: list[np.ndarray] = []
    load_cols: list[np.ndarray] = []
    t = np.arange(n)

    def unit(name: str, capacity: float, c, value_per_mwh) -> tuple[np.ndarray, np.ndarray | None]:
        """Columns and rows of one switchable unit; returns (mw, on) columns (on None for a continuous unit)."""
        s = state[name]
        init_mw = float(s.power_mw) if s.on else 0.0
        ramp = min(c.ramp_mw_per_hour * dt, capacity)
        limited = ramp < capacity
        mw = columns(0.0, capacity, value_per_mwh * dt - energy)
        mw_cols.append(mw)
        load_cols.append(mw)
        if not is_switched(c, dt):
            if limited:
                prev = _shifted(mw)
                first = np.where(t == 0, init_mw, 0.0)
                rows.add(np.full(n, -inf), ramp + first, [(mw, 1.0), (prev, -1.0)])       # up
                rows.add(np.full(n, -inf), ramp - first, [(prev, 1.0), (mw, -1.0)])       # down
            return mw, None
        floor = on_floor_mw(capacity, c)
        jump = max(ramp, floor)
        hold_on = intervals(c.min_on_hours - s.hours_in_state, dt) if s.on else 0
        hold_off = intervals(c.min_off_hours - s.hours_in_state, dt) if not s.on else 0
        on = columns(np.where(t < hold_on, 1.0, 0.0), np.where(t < hold_off, 0.0, 1.0), 0.0, True)
        start = columns(0.0, 1.0, -c.restart_cost_usd, True)
        stop = columns(0.0, 1.0, 0.0, True)
        init_on = float(s.on)
        prev_on = _shifted(on)
        rows.add(np.full(n, -inf), 0.0, [(mw, 1.0), (on, -capacity)])                     # max load
        rows.add(np.zeros(n), inf, [(mw, 1.0), (on, -floor)])                             # min load
        first_on = np.where(t == 0, -init_on, 0.0)
        rows.add(first_on, first_on, [(start, 1.0), (stop, -1.0), (on, -1.0), (prev_on, 1.0)])   # transition
        rows.add(np.full(n, -inf), 1.0, [(start, 1.0), (stop, 1.0)])                      # start or stop
        up, down = intervals(c.min_on_hours, dt), intervals(c.min_off_hours, dt)
        if up > 1:
            terms = [(np.where(t - k >= 0, start[np.maximum(t - k, 0)], -1), 1.0) for k in range(up)]
            rows.add(np.full(n, -inf), 0.0, [*terms, (on, -1.0)])
        if down > 1:
            terms = [(np.where(t - k >= 0, stop[np.maximum(t - k, 0)], -1), 1.0) for k in range(down)]
            rows.add(np.full(n, -inf), 1.0, [*terms, (on, 1.0)])
        if limited:
            prev = _shifted(mw)
            first_up = np.where(t == 0, init_mw + ramp * init_on, 0.0)
            rows.add(np.full(n, -inf), first_up, [(mw, 1.0), (prev, -1.0), (prev_on, -ramp), (start, -jump)])
            first_down = np.where(t == 0, -init_mw, 0.0)
            rows.add(np.full(n, -inf), first_down, [(prev, 1.0), (mw, -1.0), (on, -ramp), (stop, -jump)])
        return mw, on

    for f in site.mining:
        unit(f.name, f.capacity_mw, f.commitment, f.value_usd_per_mwh(inputs.hashprice_usd_per_ph_day))
    committed = 0.0
    constant = 0.0
    for g in site.gpu:
        mw, on = unit(g.name, g.flexible_mw, g.commitment, 0.0)
        served = columns(0.0, inf, g.spot_price_usd_per_gpu_hour * dt)
        for slope, intercept in g.throughput_cuts():
            rows.add(np.full(n, -inf), np.full(n, intercept), [(served, 1.0), (mw, -slope)])
        d = demand[g.name]
        if on is not None:
            rows.add(np.full(n, -inf), 0.0, [(served, 1.0), (on, -d)])
        else:
            ub[-1] = np.minimum(ub[-1], d)
        committed += g.committed_mw
        constant += g.committed_revenue_usd_per_hour * dt * n
    # the import limit and load caps: load = sum(mw) + committed <= cap
    caps = inputs.caps(site)
    rows.add(np.full(n, -inf), caps - committed, [(c_, 1.0) for c_ in load_cols])
    block = site.contract.block_mw
    constant -= block * site.contract.price_usd_per_mwh * dt * n
    if market:
        constant -= float((price * (committed - block) * dt).sum())
    constant -= float((weight * committed * peak_usd * dt).sum())

    h = highs or _new_highs(options)
    h.clearModel()
    lo, hi = np.concatenate(lb), np.concatenate(ub)
    h.addVars(len(lo), lo, hi)
    ints = np.flatnonzero(np.concatenate(integer)).astype(np.int32)
    h.changeColsIntegrality(len(ints), ints, np.full(len(ints), highspy.HighsVarType.kInteger))
    every = np.arange(len(lo), dtype=np.int32)
    h.changeColsCost(len(lo), every, np.concatenate(cost))
    r_lo, r_hi, starts, index, value = rows.csr()
    h.addRows(len(r_lo), np.maximum(r_lo, -inf), np.minimum(r_hi, inf), len(value), starts, index, value)
    h.changeObjectiveOffset(constant)
    h.changeObjectiveSense(highspy.ObjSense.kMaximize)
    build_s = time.perf_counter() - t_build

    before = h.getRunTime()
    t0 = time.perf_counter()
    h.run()
    solve_s = time.perf_counter() - t0
    highs_s = h.getRunTime() - before

    t0 = time.perf_counter()
    info = h.getInfo()
    status = h.getModelStatus()
    has = info.primal_solution_status == 2
    x = np.asarray(h.getSolution().col_value) if has else None
    power = np.column_stack([x[c] for c in mw_cols]) if has else np.full((n, len(mw_cols)), np.nan)
    kind = ("optimal" if status == highspy.HighsModelStatus.kOptimal and has
            else "feasible" if has else h.modelStatusToString(status))
    return DirectResult(float(info.objective_function_value) if has else None, kind,
                        float(info.mip_gap) if has else None, power, build_s, solve_s, highs_s,
                        time.perf_counter() - t0)


def _new_highs(options: SolverOptions) -> highspy.Highs:
    """A silent HiGHS with curtail's options (:class:`optimizer.solve.HighsSolver` sets the same)."""
    from optimizer.solve import _new_highs as silent

    h = silent()
    for name, value in {"time_limit": float(options.time_limit_seconds), "mip_rel_gap": float(options.mip_rel_gap),
                        "threads": int(options.threads), "random_seed": 0,
                        "mip_heuristic_run_feasibility_jump": False, **dict(options.highs)}.items():
        h.setOptionValue(name, value)
    return h


def new_highs(options: SolverOptions | None = None) -> highspy.Highs:
    """A HiGHS instance to reuse across :func:`solve` calls (each call clears and rebuilds its model)."""
    return _new_highs(options or SolverOptions())
