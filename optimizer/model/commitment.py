"""Switchable unit: power with on/off, minimum load, ramps, minimum on/off times and restarts.

Shared by the mining fleets and the flexible part of the GPU clusters. Adds to a Pyomo block ``b``:

| component | index | kind | unit | meaning |
|---|---|---|---|---|
| ``mw`` | T | Var >= 0 | MW | power drawn in hour t |
| ``on`` | T | Var binary | - | 1 when running (only when a commitment decision is live) |
| ``start`` / ``stop`` | T | Var binary | - | the unit starts / stops in hour t (never both) |
| ``init_mw`` | - | mutable Param | MW | power in the hour before the horizon |
| ``init_on`` | - | mutable Param | - | 1 when running in the hour before the horizon |
| ``must_on`` / ``must_off`` | T | mutable Param | - | 1 in the first hours the initial state still binds |

A commitment decision is live when the unit has a minimum load, a minimum on or off time above one hour, or a
restart cost; otherwise the unit is a pure continuous power with ramp limits (and the model can be an LP).
"When on" means drawing at least ``max(min_load_fraction x capacity, 0.1% of capacity, 1 kW)`` (at most the
capacity): a unit cannot be "on" at zero power to dodge a restart cost.
"""

from __future__ import annotations

import math

import numpy as np
import pyomo.environ as pyo

from optimizer.site import Commitment
from optimizer.state import UnitState

#: Smallest share of capacity a unit draws when it counts as on (a restart is charged when it rises from zero),
#: and an absolute least (MW), so that "on" stays distinguishable from zero for very small units.
ON_FLOOR_FRACTION = 1e-3
ON_FLOOR_MIN_MW = 1e-3


def is_switched(c: Commitment, dt_hours: float = 1.0) -> bool:
    """True when the unit needs on/off binaries at this resolution (a minimum time longer than one interval)."""
    return (c.min_load_fraction > 0 or c.min_on_hours > dt_hours or c.min_off_hours > dt_hours
            or c.restart_cost_usd > 0)


def intervals(hours: float, dt_hours: float) -> int:
    """Whole intervals of ``dt_hours`` covering ``hours``."""
    return max(math.ceil(hours / dt_hours - 1e-9), 0)


def on_floor_mw(capacity_mw: float, c: Commitment) -> float:
    """Least power when on (MW): max(min load, 0.1% of capacity, 1 kW), at most the capacity."""
    return min(max(c.min_load_fraction * capacity_mw, ON_FLOOR_FRACTION * capacity_mw, ON_FLOOR_MIN_MW), capacity_mw)


def add(b: pyo.Block, T: pyo.Set, capacity_mw: float, c: Commitment, dt_hours: float = 1.0,
        elastic: bool = False) -> None:
    """Add the unit's variables, parameters and constraints to block ``b`` over intervals ``T`` of ``dt_hours``.

    ``elastic`` adds non-negative slacks (``relax_*``) to the limits that can make a day infeasible (ramps and
    the holds of the initial state), for :func:`optimizer.diagnose`; never in a normal solve.
    """
    b.mw = pyo.Var(T, bounds=(0.0, capacity_mw), doc="power drawn, MW")
    b.init_mw = pyo.Param(mutable=True, initialize=capacity_mw, doc="power before the horizon, MW")
    ramp = min(c.ramp_mw_per_hour * dt_hours, capacity_mw)          # MW per interval
    limited = ramp < capacity_mw
    relax_up = _slack(b, "relax_ramp_up", T, elastic)
    relax_down = _slack(b, "relax_ramp_down", T, elastic)

    if not is_switched(c, dt_hours):
        if limited:
            b.ramp_up = pyo.Constraint(T, rule=lambda b, t: b.mw[t] - _prev(b, t) <= ramp + relax_up(t))
            b.ramp_down = pyo.Constraint(T, rule=lambda b, t: _prev(b, t) - b.mw[t] <= ramp + relax_down(t))
        # A minimum time of one interval or less binds nothing inside the horizon, but the initial state's run
        # may still be short of it: then the first interval keeps the state (bounds set by param_values).
        first = T.first()
        relax_hold = _slack(b, "relax_initial_hold", [first], elastic)
        b.first_max_mw = pyo.Param(mutable=True, initialize=capacity_mw, doc="first interval's most power, MW")
        b.first_min_mw = pyo.Param(mutable=True, initialize=0.0, doc="first interval's least power, MW")
        b.initial_off = pyo.Constraint(expr=b.mw[first] <= b.first_max_mw + relax_hold(first))
        b.initial_on = pyo.Constraint(expr=b.mw[first] + relax_hold(first) >= b.first_min_mw)
        return

    floor = on_floor_mw(capacity_mw, c)
    jump = max(ramp, floor)                                 # start-up / shut-down ramp, MW
    b.on = pyo.Var(T, within=pyo.Binary, doc="running")
    b.start = pyo.Var(T, within=pyo.Binary, doc="starts in hour t")
    b.stop = pyo.Var(T, within=pyo.Binary, doc="stops in hour t")
    b.init_on = pyo.Param(mutable=True, initialize=1, within=pyo.Binary)
    b.must_on = pyo.Param(T, mutable=True, initialize=0, within=pyo.Binary)
    b.must_off = pyo.Param(T, mutable=True, initialize=0, within=pyo.Binary)

    b.max_load = pyo.Constraint(T, rule=lambda b, t: b.mw[t] <= capacity_mw * b.on[t])
    b.min_load = pyo.Constraint(T, rule=lambda b, t: b.mw[t] >= floor * b.on[t])
    b.transition = pyo.Constraint(T, rule=lambda b, t: b.start[t] - b.stop[t] == b.on[t] - _prev_on(b, t))
    b.start_or_stop = pyo.Constraint(T, rule=lambda b, t: b.start[t] + b.stop[t] <= 1)
    relax_hold = _slack(b, "relax_initial_hold", T, elastic)
    b.initial_on = pyo.Constraint(T, rule=lambda b, t: b.on[t] + relax_hold(t) >= b.must_on[t])
    b.initial_off = pyo.Constraint(T, rule=lambda b, t: b.on[t] <= 1 - b.must_off[t] + relax_hold(t))

    up, down = intervals(c.min_on_hours, dt_hours), intervals(c.min_off_hours, dt_hours)
    if up > 1:
        b.min_on = pyo.Constraint(T, rule=lambda b, t: sum(b.start[k] for k in T if t - up < k <= t) <= b.on[t])
    if down > 1:
        b.min_off = pyo.Constraint(T, rule=lambda b, t: sum(b.stop[k] for k in T if t - down < k <= t)
                                   <= 1 - b.on[t])
    if limited:
        b.ramp_up = pyo.Constraint(T, rule=lambda b, t: b.mw[t] - _prev(b, t)
                                   <= ramp * _prev_on(b, t) + jump * b.start[t] + relax_up(t))
        b.ramp_down = pyo.Constraint(T, rule=lambda b, t: _prev(b, t) - b.mw[t]
                                     <= ramp * b.on[t] + jump * b.stop[t] + relax_down(t))


def param_values(b: pyo.Block, T: pyo.Set, c: Commitment, s: UnitState, dt_hours: float = 1.0) -> list:
    """The unit's parameter values for initial state ``s``: power before the horizon and, for a switched unit,
    whether it was on and the intervals its minimum on/off time still holds it."""
    full = b.mw[T.first()].ub
    out = [(b.init_mw, (full if s.power_mw is None else float(s.power_mw)) if s.on else 0.0)]
    hold_on = intervals(c.min_on_hours - s.hours_in_state, dt_hours) if s.on else 0
    hold_off = intervals(c.min_off_hours - s.hours_in_state, dt_hours) if not s.on else 0
    if not is_switched(c, dt_hours):                        # a hold of at most the first interval
        return out + [(b.first_max_mw, 0.0 if hold_off else full),
                      (b.first_min_mw, on_floor_mw(full, c) if hold_on else 0.0)]
    n = len(T)
    return out + [(b.init_on, int(s.on)), (b.must_on, (np.arange(n) < hold_on).astype(float)),
                  (b.must_off, (np.arange(n) < hold_off).astype(float))]


def read(b: pyo.Block, c: Commitment, dt_hours: float, s: UnitState,
         values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(power MW, on 0/1, starts 0/1) per interval from a solution, the unit having started in state ``s``; a
    continuous unit is on above 1e-6 MW and starts when it rises from zero."""
    mw = np.clip(values(b.mw), 0.0, None)
    if is_switched(c, dt_hours):
        return mw, np.round(values(b.on)), np.round(values(b.start))
    on = (mw > 1e-6).astype(float)
    was_on = bool(s.on) and (s.power_mw is None or s.power_mw > 1e-6)
    prev = np.concatenate([[was_on], on[:-1]])
    return mw, on, ((on > 0) & (prev == 0)).astype(float)


def restart_cost_expr(b: pyo.Block, t: int, c: Commitment, dt_hours: float):
    """Restart cost incurred in interval t (USD; per start, whatever the interval length)."""
    return c.restart_cost_usd * b.start[t] if is_switched(c, dt_hours) and c.restart_cost_usd else 0.0


def _slack(b: pyo.Block, name: str, T: pyo.Set, elastic: bool):
    """A function t -> slack term: a new non-negative variable ``b.<name>`` when elastic, else 0."""
    if not elastic:
        return lambda t: 0.0
    b.add_component(name, pyo.Var(T, within=pyo.NonNegativeReals))
    var = b.component(name)
    return lambda t: var[t]


def _prev(b: pyo.Block, t: int):
    return b.init_mw if t == 0 else b.mw[t - 1]


def _prev_on(b: pyo.Block, t: int):
    return b.init_on if t == 0 else b.on[t - 1]


