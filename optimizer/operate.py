"""Real-time operation: every switchable unit driven interval by interval toward a wanted power, within every hard
limit, and the strike tables that turn a plan into real-time decisions.

**The controller** (:class:`Units`, :func:`walk`). This is the firmware's view: each interval, every unit (a mining
fleet, or a GPU cluster's spot load) can reach a range of powers (its ramp, minimum load, minimum on/off times
and the holds of its state allow no more); a policy says what it wants inside that range; when a load cap binds,
the units with the lowest priority (their strike) give way first. Under an EMERGENCY cap (events, below the
import limit) that ramps cannot reach in time, units are tripped to zero, lowest priority first, as firmware can;
nothing else trips a unit (a 4CP cap is honoured by planning, not by tripping). The state is held as arrays over
the units, so a walk costs a few numpy operations per interval, and a walk can be resumed (rolling policies walk
an hour, re-plan, walk the next hour). The result always holds every hard limit (the checker verifies it).

**Strikes** (:func:`strike_table`). A unit runs in a real-time interval while the real-time price is below its
strike, and curtails above it. The strike of unit j in plan interval t is derived from the plan, not from the
price alone:

``strike = value_j - fourcp_t + premium``, where

- ``value_j``: the unit's revenue per MWh: a fleet's mining value at the hashprice the plan used; a GPU cluster's
  spot price x the GPUs one MW powers at its most efficient cap (while there is demand to serve);
- ``fourcp_t = peak probability_t x the charge of one MW in a monthly peak``: the expected 4CP charge per MWh,
  raised in the intervals in which the plan ramps a ramp-limited unit down ahead of a later risky interval it
  curtails it in (:func:`ramp_ahead_fourcp`);
- ``premium`` (commitment) where the plan runs the unit: stopping now locks it off for its minimum off time and,
  if the plan runs it after that, costs a restart, so ``+ (restart cost + the margin the plan expected in the
  locked-off hours) / (MW x real-time interval)``; where the plan has it stopped: starting now commits it to its
  minimum on time and a restart the plan did not pay, so ``- (restart cost + the loss the plan expected in the
  forced-on hours) / (MW x interval)``. Margins are the plan's own: value - fourcp - forecast price, per MWh.

A unit without a commitment (no minimum load, minimum times within one interval, no restart cost) has no
premium: its strike is its value less the expected 4CP charge. The same table is what ``curtail schedule`` writes
as ``strike_usd_per_mwh__<unit>`` and what the backtest's plan-following policies run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from optimizer.errors import NoSolutionError
from optimizer.model.commitment import is_switched, on_floor_mw
from optimizer.site import Site
from optimizer.state import LONG_AGO_HOURS, UnitState, resolve

_EPS = 1e-9


class Units:
    """Running state of every switchable unit of a site (fleets, then clusters' spot load), as arrays."""

    def __init__(self, site: Site, state: Mapping[str, UnitState] | None, dt_hours: float, hold_hours: float = 0.0):
        s = resolve(site, state)
        parts = [(f.name, f.capacity_mw, f.commitment) for f in site.mining] + \
                [(g.name, g.flexible_mw, g.commitment) for g in site.gpu]
        self.names = [p[0] for p in parts]
        self.dt = dt_hours
        self.cap = np.array([p[1] for p in parts], dtype=float)
        self.switched = np.array([is_switched(c, dt_hours) or hold_hours > dt_hours for _, _, c in parts])
        self.on_floor = np.array([on_floor_mw(cap, c) for _, cap, c in parts], dtype=float)
        self.floor = np.where(self.switched, self.on_floor, 0.0)
        self.ramp = np.minimum([c.ramp_mw_per_hour * dt_hours for _, _, c in parts], self.cap)
        self.jump = np.maximum(self.ramp, self.floor)
        self.min_on = np.maximum([c.min_on_hours for _, _, c in parts], hold_hours).astype(float)
        self.min_off = np.maximum([c.min_off_hours for _, _, c in parts], hold_hours).astype(float)
        self.restart_usd = np.array([c.restart_cost_usd for _, _, c in parts], dtype=float)
        on = np.array([s[n].on for n in self.names], dtype=bool)
        self.p = np.where(on, [float(s[n].power_mw or 0.0) for n in self.names], 0.0)
        self.on = np.where(self.switched, on, self.p > 0)
        self.hours = np.array([float(s[n].hours_in_state) for n in self.names])

    def __len__(self) -> int:
        return len(self.names)

    @property
    def ramp_limited(self) -> np.ndarray:
        """Units that cannot go from zero to full (or back) within one interval."""
        return self.ramp < self.cap - _EPS

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lowest, highest) power reachable this interval by each unit within every unit limit."""
        cont_lo = np.maximum(0.0, self.p - self.ramp)
        up = np.minimum(self.cap, self.p + self.ramp)
        can_stop = (self.hours >= self.min_on - _EPS) & (self.p <= self.jump + _EPS)
        on_lo = np.where(can_stop, 0.0, np.maximum(self.floor, self.p - self.ramp))
        can_start = self.hours >= self.min_off - _EPS
        off_hi = np.where(can_start, np.minimum(self.cap, self.jump), 0.0)
        # a unit without on/off states (its minimum times fit in one interval) still honours a hold it starts in,
        # as the model's first interval does (commitment.param_values): off too briefly -> 0 MW, on -> its floor
        cont_lo = np.where(self.on & (self.hours < self.min_on - _EPS), np.maximum(cont_lo, self.on_floor), cont_lo)
        cont_hi = np.where(~self.on & (self.hours < self.min_off - _EPS), 0.0, up)
        lo = np.where(self.switched, np.where(self.on, on_lo, 0.0), cont_lo)
        hi = np.where(self.switched, np.where(self.on, up, off_hi), cont_hi)
        return lo, hi

    def trip(self, mask: np.ndarray) -> None:
        """Emergency: the next move of the masked running units may go to zero whatever the ramp and minimum on
        time (firmware cuts power in seconds; only an emergency cap allows it)."""
        m = mask & self.on
        self.hours = np.where(m, np.maximum(self.hours, self.min_on), self.hours)
        self.p = np.where(m, np.minimum(self.p, self.jump), self.p)

    def move(self, want: np.ndarray) -> np.ndarray:
        """Go to ``want`` (already within bounds); returns which units start."""
        w = np.asarray(want, dtype=float)
        # below the floor only when stopping is allowed (else the low bound is the floor); round-off aside
        w = np.where(self.switched & (w > 0), np.where(w < self.floor - _EPS, 0.0, np.maximum(w, self.floor)), w)
        now_on = w > 0
        started = now_on & ~self.on
        self.hours = np.where(now_on == self.on, np.minimum(self.hours + self.dt, LONG_AGO_HOURS), self.dt)
        self.on, self.p = now_on, w
        return started

    def state(self) -> dict[str, UnitState]:
        return {n: UnitState(on=bool(o), power_mw=float(p) if o else 0.0, hours_in_state=float(h))
                for n, o, p, h in zip(self.names, self.on, self.p, self.hours, strict=True)}


#: A policy: (interval index, lowest reachable MW, highest reachable MW, which units are on) -> wanted MW per unit
#: (clipped to the reachable range after).
Policy = Callable[[int, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Walk:
    """The outcome of a walk: per-interval power of the switchable parts (MW: fleets' power, clusters' spot power),
    on, starts; the end state."""

    power: np.ndarray          # (interval, unit)
    on: np.ndarray
    start: np.ndarray
    end_state: dict[str, UnitState]

    def site_power(self, site: Site, committed_mw: np.ndarray | None = None) -> np.ndarray:
        """Power per asset as the site draws it (clusters with their committed load), MW."""
        n_mining = len(site.mining)
        committed = (np.array([g.committed_mw for g in site.gpu]) if committed_mw is None else committed_mw)
        return np.concatenate([self.power[:, :n_mining], self.power[:, n_mining:] + committed], axis=1)


def walk(site: Site, units: Units, n: int, policy: Policy, load_cap_mw: np.ndarray | None = None,
         emergency_cap_mw: np.ndarray | None = None, priority: np.ndarray | None = None,
         committed_mw: np.ndarray | None = None, times: pd.DatetimeIndex | None = None) -> Walk:
    """Drive ``units`` through ``n`` intervals with ``policy``. A load cap (default the import limit) is kept by
    cutting the lowest ``priority`` units first (per interval and unit, default: as listed); a unit is tripped to
    zero only where ``emergency_cap_mw`` (events) lies below the import limit. ``committed_mw`` (interval, cluster):
    the clusters' committed load (default full). Raises ``NoSolutionError`` if a cap cannot be kept (the units'
    state forbids it)."""
    k = len(units)
    power, on, start = np.zeros((n, k)), np.zeros((n, k), dtype=bool), np.zeros((n, k), dtype=bool)
    limit = site.grid.import_limit_mw
    cap = np.full(n, limit) if load_cap_mw is None else np.asarray(load_cap_mw, dtype=float)
    trip_ok = (np.zeros(n, dtype=bool) if emergency_cap_mw is None
               else np.asarray(emergency_cap_mw, dtype=float) < limit - _EPS)
    committed = (np.full(n, site.committed_mw) if committed_mw is None else np.asarray(committed_mw).sum(axis=1))
    prio = np.zeros((n, k)) if priority is None else np.broadcast_to(priority, (n, k))
    for t in range(n):
        lo, hi = units.bounds()
        stuck = np.flatnonzero(lo > hi + 1e-6)
        if len(stuck):
            j = int(stuck[0])
            when = times[t].isoformat() if times is not None else f"interval {t}"
            raise NoSolutionError(f"{units.names[j]} cannot hold its limits at {when}: it must stay on at "
                                  f">= {lo[j]:.4f} MW but can reach only {hi[j]:.4f} MW from {units.p[j]:.4f} MW")
        want = np.clip(policy(t, lo, hi, units.on), lo, hi)
        excess = want.sum() - (cap[t] - committed[t])
        if excess > _EPS:
            for j in np.argsort(prio[t], kind="stable"):          # lowest priority gives way first
                cut = min(excess, want[j] - lo[j])
                want[j] -= cut
                excess -= cut
                if excess <= _EPS:
                    break
        if excess > 1e-6 and trip_ok[t]:
            trip = np.zeros(k, dtype=bool)
            for j in np.argsort(prio[t], kind="stable"):          # emergency: trip running units
                if excess <= _EPS:
                    break
                if want[j] > 0:
                    excess -= want[j]
                    want[j] = 0.0
                    trip[j] = True
            units.trip(trip)
        if excess > 1e-6:
            when = times[t].isoformat() if times is not None else f"interval {t}"
            raise NoSolutionError(f"the load cap cannot be kept at {when} ({excess:.3f} MW over) within the units' "
                                  "ramp and run-time limits")
        start[t] = units.move(want)
        power[t], on[t] = units.p, units.on
    return Walk(power, on.astype(float), start.astype(float), units.state())


def values_usd_per_mwh(site: Site, hashprice: float) -> np.ndarray:
    """Each unit's revenue per MWh while it is useful: mining value; spot value of a cluster's first MW."""
    return np.array([f.value_usd_per_mwh(hashprice) for f in site.mining]
                    + [g.spot_value_usd_per_mwh for g in site.gpu], dtype=float)


def useful_mw(site: Site, demand_gpus: np.ndarray | None, job_gpus: np.ndarray | None = None) -> np.ndarray:
    """(interval, unit): the most power each unit can use: a fleet's capacity; a cluster's spot MW needed for its
    inference demand plus its jobs' work (``demand_gpus``: (interval, cluster); ``job_gpus``: (interval, cluster))."""
    n = 1 if demand_gpus is None else len(demand_gpus)
    cols = [np.full(n, f.capacity_mw) for f in site.mining]
    for j, g in enumerate(site.gpu):
        need = np.zeros(n) if demand_gpus is None else demand_gpus[:, j].copy()
        if job_gpus is not None:
            need = need + job_gpus[:, j]
        cols.append(np.minimum(g.spot_mw_for(need), g.flexible_mw))
    return np.stack(cols, axis=1) if cols else np.zeros((n, 0))


@dataclass(frozen=True)
class Strikes:
    """Strike prices (USD/MWh) per interval and unit: ``stop`` for a running unit whose next move may stop it,
    ``start`` for a stopped unit, ``marginal`` (value - expected 4CP charge) for a running unit that can only
    ramp this interval (no commitment is at stake then)."""

    stop: np.ndarray
    start: np.ndarray
    marginal: np.ndarray

    def __getitem__(self, idx) -> Strikes:
        return Strikes(self.stop[idx], self.start[idx], self.marginal[idx])

    def for_plan(self, plan_on: np.ndarray) -> np.ndarray:
        """The one strike per interval a site controller follows: where the plan runs the unit, the price above
        which it stops; where it does not, the price below which it starts."""
        return np.where(plan_on > 0.5, self.stop, self.start)


def decision_price(site: Site, price: np.ndarray) -> np.ndarray:
    """The price real-time decisions weigh a unit's energy against: the market price where the site's grid position
    is settled at it (``Contract.market_exposed``), else 0. A site that cannot sell back and whose block covers its
    import limit has paid for every MWh it can draw, whatever the market price, so curtailing saves nothing; its
    strikes are compared with 0 (a unit runs while its strike is positive)."""
    p = np.asarray(price, dtype=float)
    return p if site.contract.market_exposed else np.zeros_like(p)


def strike_policy(price: np.ndarray, strikes: Strikes | np.ndarray, useful: np.ndarray,
                  ahead_mw: np.ndarray | None = None) -> Policy:
    """Run (up to the useful power) while the price is below the unit's strike, else go as low as allowed. ``price``:
    what the strikes are compared with (:func:`decision_price` of the market price).
    ``strikes``: a :class:`Strikes` (the stop strike applies only when the move could stop a running unit, the
    start strike to a stopped one), or one array used in every state; (interval, unit) arrays. ``ahead_mw``
    (interval, unit): a plan's anticipation: the most a unit should run even when the price says run (a plan that
    ramps a unit down ahead of dear hours, or holds it lower for a commitment)."""
    if not isinstance(strikes, Strikes):
        strikes = Strikes(strikes, strikes, strikes)
    top = useful if ahead_mw is None else np.minimum(useful, ahead_mw)

    def policy(t: int, lo: np.ndarray, hi: np.ndarray, on: np.ndarray) -> np.ndarray:
        threshold = np.where(on, np.where(lo <= 0.0, strikes.stop[t], strikes.marginal[t]), strikes.start[t])
        return np.where(price[t] < threshold, np.maximum(lo, np.minimum(hi, top[t])), lo)
    return policy


def anticipation_mw(plan_mw: np.ndarray, useful: np.ndarray, marginal: np.ndarray, forecast: np.ndarray,
                    ramp_limited: np.ndarray, margin_usd_per_mwh: float = 0.0, lead: int = 1) -> np.ndarray:
    """(1, unit) for a plan's first interval: where the plan runs a ramp-limited unit below its useful power
    although the forecast price of that interval is below the unit's marginal strike, and a following interval (up
    to ``lead`` ahead) is forecast above the strike by more than ``margin_usd_per_mwh`` (the plan ramps down ahead
    of dear hours), the plan's power; elsewhere the useful power (the real-time price decides). ``forecast``: the
    prices the plan was made with."""
    nxt = forecast[1: 1 + lead].max() if len(forecast) > 1 else -np.inf
    ahead = (ramp_limited & (plan_mw[0] < useful[0] - 1e-6) & (forecast[0] < marginal[0])
             & (nxt > marginal[0] + margin_usd_per_mwh))
    return np.where(ahead, plan_mw[0], useful[0])[None, :]


def follow(setpoint: np.ndarray) -> Policy:
    """Follow set-points (interval, unit) as closely as the units' limits allow."""
    return lambda t, lo, hi, on: setpoint[t]


def strike_table(site: Site, plan_mw: np.ndarray, plan_on: np.ndarray, forecast: np.ndarray,
                 fourcp_usd_per_mwh: np.ndarray, values: np.ndarray, useful: np.ndarray, plan_dt_hours: float,
                 rt_dt_hours: float = 0.25, rows: int | None = None, lock_weight: float = 0.0) -> Strikes:
    """Strikes (plan interval, unit), USD/MWh, from a plan: its power ``plan_mw`` and on/off ``plan_on`` per
    interval and unit, the forecast prices and expected 4CP charge per MWh it used, each unit's value per MWh and
    useful MW. See the module docstring for the rule. ``rows``: compute the commitment premiums of the first
    ``rows`` intervals only (a rolling policy needs the first). ``lock_weight``: the weight of the margins the plan
    expects over a lock-out or forced-on window (1: as expected; 0: the restart cost alone)."""
    n, k = plan_mw.shape
    units = [f.commitment for f in site.mining] + [g.commitment for g in site.gpu]
    fourcp = ramp_ahead_fourcp(fourcp_usd_per_mwh, plan_mw, useful, np.array([c.ramp_mw_per_hour for c in units]),
                               plan_dt_hours)
    base = values[None, :] - fourcp
    margin = base - forecast[:, None]                     # per MWh, as the plan expected it
    stop, start = base.copy(), base.copy()
    starts = np.arange(n) * plan_dt_hours
    for j, c in enumerate(units):
        if not (is_switched(c, plan_dt_hours) or is_switched(c, rt_dt_hours)):
            continue
        running = plan_on[:, j] > 0.5
        keep = np.maximum.accumulate(running[::-1])[::-1]         # the plan runs it at or after this interval
        lock_off = max(c.min_off_hours, rt_dt_hours)
        lock_on = max(c.min_on_hours, rt_dt_hours)
        after_off = np.minimum(np.arange(n) + int(np.ceil((lock_off - 1e-9) / plan_dt_hours)), n)
        runs_after = np.append(keep, False)[after_off]            # a stop now is followed by a restart
        soon = int(np.ceil((lock_on - 1e-9) / plan_dt_hours))
        for t in range(n if rows is None else min(rows, n)):
            mw_stop = max(plan_mw[t, j], useful[t, j])
            mw_start = useful[t, j]
            if mw_stop > 1e-9:
                w = _window(starts, t * plan_dt_hours + rt_dt_hours, t * plan_dt_hours + lock_off, plan_dt_hours)
                restart = c.restart_cost_usd if runs_after[t] else 0.0
                stop[t, j] += (restart + lock_weight * (w * np.maximum(margin[:, j], 0.0)).sum() * mw_stop) / (
                    mw_stop * rt_dt_hours)
            if mw_start > 1e-9:
                w = _window(starts, t * plan_dt_hours + rt_dt_hours, t * plan_dt_hours + lock_on, plan_dt_hours)
                restart = 0.0 if running[t + 1: t + 1 + soon].any() else c.restart_cost_usd
                start[t, j] -= (restart + lock_weight * (w * np.maximum(-margin[:, j], 0.0)).sum() * mw_start) / (
                    mw_start * rt_dt_hours)
    return Strikes(stop, start, base)


def ramp_ahead_fourcp(fourcp_usd_per_mwh: np.ndarray, plan_mw: np.ndarray, useful: np.ndarray,
                      ramp_mw_per_hour: np.ndarray, plan_dt_hours: float) -> np.ndarray:
    """(plan interval, unit) expected 4CP charge per MWh the strikes use: the interval's own, raised to that of a
    later 4CP-risky interval t' in which the plan curtails the unit (below its useful power), in the intervals
    before t' where the plan is already ramping the unit down for it: those within the unit's ramp time of t'
    (``(useful - plan) / ramp`` hours) in which the plan runs it below its useful power. Without this, cheap
    real-time prices in those hours undo the plan's ramp-down and the unit enters the risky hour too high to get
    down in time. Where the plan runs the unit at its useful power up to t' (its hourly ramp allows the drop in
    one step) nothing is carried: the real-time layer does not impose a ramp-down the plan did not choose (carrying
    it there cost the default site 0.02-0.13 of value capture in the summers of 2022-2024)."""
    n, k = plan_mw.shape
    out = np.broadcast_to(np.asarray(fourcp_usd_per_mwh, dtype=float)[:, None], (n, k)).copy()
    for t2 in np.flatnonzero(np.asarray(fourcp_usd_per_mwh) > 0):
        for j in range(k):
            drop = useful[t2, j] - plan_mw[t2, j]
            if drop <= 1e-6 or not np.isfinite(ramp_mw_per_hour[j]) or ramp_mw_per_hour[j] <= 0:
                continue
            lead = int(np.ceil(drop / ramp_mw_per_hour[j] / plan_dt_hours - 1e-9))    # intervals before t2
            lo = max(t2 - lead, 0)
            ramping = plan_mw[lo:t2, j] < useful[lo:t2, j] - 1e-6
            out[lo:t2, j] = np.where(ramping, np.maximum(out[lo:t2, j], fourcp_usd_per_mwh[t2]), out[lo:t2, j])
    return out


def _window(starts: np.ndarray, a: float, b: float, plan_dt: float) -> np.ndarray:
    """Hours of each plan interval (starting at ``starts``) inside [a, b)."""
    return np.clip(np.minimum(starts + plan_dt, b) - np.maximum(starts, a), 0.0, None)
