"""Real-time operation: units driven interval by interval toward a wanted power, within every hard limit.

This is the firmware's view: each interval, every unit can reach a range of powers (its ramp, minimum load,
minimum on/off times and the holds of its state allow no more); a policy says what it wants inside that range;
when the import limit binds, the least valuable units give way first. Under an emergency cap (a load cap below the
import limit) that ramps cannot reach in time, units are tripped to zero, least valuable first, as firmware can;
the checker accepts such a drop only into an interval under an emergency cap. Used by the strike-rule fallback and
by the backtest's policies. The result always holds every hard limit (the tests check it independently).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from optimizer.errors import NoSolutionError
from optimizer.model.commitment import is_switched, on_floor_mw
from optimizer.site import Commitment, Site
from optimizer.state import LONG_AGO_HOURS, UnitState, resolve


class Unit:
    """Running state of one switchable unit (a fleet, or a cluster's flexible load) during a walk."""

    def __init__(self, name: str, cap: float, c: Commitment, value: float, s: UnitState, dt: float,
                 hold_hours: float = 0.0):
        self.name, self.cap, self.c, self.value, self.dt = name, cap, c, value, dt
        self.switched = is_switched(c, dt) or hold_hours > dt
        self.floor = on_floor_mw(cap, c) if self.switched else 0.0
        self.ramp = min(c.ramp_mw_per_hour * dt, cap)
        self.jump = max(self.ramp, self.floor)
        self.min_on = max(c.min_on_hours, hold_hours)
        self.min_off = max(c.min_off_hours, hold_hours)
        self.p = float(s.power_mw or 0.0) if s.on else 0.0
        self.on = bool(s.on) if self.switched else self.p > 0
        self.hours = float(s.hours_in_state)

    def bounds(self) -> tuple[float, float]:
        """(lowest, highest) power reachable this interval within every unit limit."""
        if not self.switched:
            return max(0.0, self.p - self.ramp), min(self.cap, self.p + self.ramp)
        if self.on:
            can_stop = self.hours >= self.min_on - 1e-9 and self.p <= self.jump + 1e-9
            low = 0.0 if can_stop else max(self.floor, self.p - self.ramp)
            return low, min(self.cap, self.p + self.ramp)
        can_start = self.hours >= self.min_off - 1e-9
        return 0.0, (min(self.cap, self.jump) if can_start else 0.0)

    def trip(self) -> None:
        """Emergency: the next move may go to zero whatever the ramp and minimum on time (firmware cuts power in
        seconds; only an emergency cap below the import limit allows it)."""
        if self.on:
            self.hours = max(self.hours, self.min_on)
            self.p = min(self.p, self.jump)

    def move(self, p: float) -> bool:
        """Go to power p (within bounds); returns True when this is a start."""
        if self.switched and p > 0.0:
            # below the floor only when stopping is allowed (else the low bound is the floor); round-off aside
            p = 0.0 if p < self.floor - 1e-9 else max(p, self.floor)
        now_on = bool(p > 0.0)
        p = float(p)
        started = now_on and not self.on
        self.hours = min(self.hours + self.dt, LONG_AGO_HOURS) if now_on == self.on else self.dt
        self.on, self.p = now_on, p
        return started

    def state(self) -> UnitState:
        return UnitState(on=bool(self.on), power_mw=float(self.p) if self.on else 0.0,
                         hours_in_state=float(self.hours))


#: A policy: (interval index, unit index, unit, low, high) -> wanted power (MW), clipped to [low, high] after.
Policy = Callable[[int, int, Unit, float, float], float]


@dataclass(frozen=True)
class Walk:
    """The outcome of a walk: per-interval power of the switchable parts (MW), on, starts; the end state."""

    power: np.ndarray          # (interval, unit): fleets' power, clusters' flexible power
    on: np.ndarray
    start: np.ndarray
    end_state: dict[str, UnitState]

    def site_power(self, site: Site) -> np.ndarray:
        """Power per asset as the site draws it (clusters with their committed load), MW."""
        committed = np.array([g.committed_mw for g in site.gpu])
        n_mining = len(site.mining)
        return np.concatenate([self.power[:, :n_mining], self.power[:, n_mining:] + committed], axis=1)


def units_for(site: Site, hashprice: float, state: Mapping[str, UnitState] | None, dt: float,
              hold_hours: float = 0.0) -> list[Unit]:
    """One :class:`Unit` per fleet and per cluster's flexible load, valued at this hashprice (USD/MWh)."""
    s = resolve(site, state)
    units = [Unit(f.name, f.capacity_mw, f.commitment, f.value_usd_per_mwh(hashprice), s[f.name], dt, hold_hours)
             for f in site.mining]
    return units + [Unit(g.name, g.flexible_mw, g.commitment, g.spot_value_usd_per_mwh, s[g.name], dt, hold_hours)
                    for g in site.gpu]


def walk(site: Site, times: pd.DatetimeIndex, units: list[Unit], policy: Policy,
         load_cap_mw: np.ndarray | None = None, emergency: np.ndarray | None = None) -> Walk:
    """Drive ``units`` through ``times`` with ``policy``; the import limit (or a lower cap per interval) is kept by
    cutting the least valuable units first. Raises ``NoSolutionError`` if it cannot be kept (the units' state
    forbids it)."""
    n, k = len(times), len(units)
    power, on, start = np.zeros((n, k)), np.zeros((n, k)), np.zeros((n, k))
    cap = np.full(n, site.grid.import_limit_mw) if load_cap_mw is None else np.asarray(load_cap_mw, dtype=float)
    # only an emergency cap (events, below the import limit) may trip units; a 4CP cap never does
    trip_ok = (np.zeros(n, dtype=bool) if emergency is None
               else np.asarray(emergency, dtype=float) < site.grid.import_limit_mw - 1e-9)
    order = sorted(range(k), key=lambda j: units[j].value)
    for t in range(n):
        b = [u.bounds() for u in units]
        want = [min(max(policy(t, j, u, lo, hi), lo), hi) for j, (u, (lo, hi)) in enumerate(zip(units, b, strict=True))]
        excess = sum(want) - (cap[t] - site.committed_mw)
        for j in order:                                   # least valuable gives way first
            if excess <= 1e-9:
                break
            cut = min(excess, want[j] - b[j][0])
            want[j] -= cut
            excess -= cut
        if excess > 1e-6 and trip_ok[t]:
            for j in order:                               # emergency: trip running units (least valuable first)
                if excess <= 1e-9:
                    break
                if want[j] <= 0.0:
                    continue
                excess -= want[j]
                want[j] = 0.0
                units[j].trip()
        if excess > 1e-6:
            raise NoSolutionError(f"the import limit cannot be kept at {times[t]} ({excess:.3f} MW over) within "
                                  "the units' ramp and run-time limits")
        for j, u in enumerate(units):
            start[t, j] = u.move(want[j])
            power[t, j], on[t, j] = u.p, u.on
    return Walk(power, on, start, {u.name: u.state() for u in units})


def strike_policy(prices: np.ndarray, hysteresis_usd_per_mwh: float = 0.0) -> Policy:
    """The operators' rule: run while the price is below the unit's value per MWh, stop when above; with
    hysteresis, a running unit stops only above value + h and a stopped one starts only below value - h."""
    def policy(t: int, j: int, u: Unit, lo: float, hi: float) -> float:
        threshold = u.value + (hysteresis_usd_per_mwh if u.on else -hysteresis_usd_per_mwh)
        return hi if prices[t] < threshold else lo
    return policy
