"""Fallback schedule: the operators' strike rule, hour by hour, within every hard limit.

Used when the solver returns nothing usable (time limit without a good enough solution, solver error). Each unit
wants to run when the price is below its value per MWh (fleet: mining value; GPU cluster: spot value), and moves
toward that within its ramp, minimum load, minimum on/off times and the holds of its initial state. When the
import limit binds, the least valuable units give way first. Restart costs are paid, not optimised.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from optimizer import results
from optimizer.data import interval_hours
from optimizer.errors import NoSolutionError
from optimizer.model.commitment import is_switched, on_floor_mw
from optimizer.site import Commitment, Site
from optimizer.state import UnitState, resolve


class _Unit:
    """Running state of one unit during the hour-by-hour walk."""

    def __init__(self, name: str, cap: float, c: Commitment, value: float, s: UnitState, dt: float):
        self.name, self.cap, self.c, self.value, self.dt = name, cap, c, value, dt
        self.switched = is_switched(c, dt)
        self.floor = on_floor_mw(cap, c) if self.switched else 0.0
        self.ramp = min(c.ramp_mw_per_hour * dt, cap)
        self.jump = max(self.ramp, self.floor)
        self.p = float(s.power_mw or 0.0) if s.on else 0.0
        self.on = self.p > 0 if not self.switched else bool(s.on)
        self.hours = s.hours_in_state

    def bounds(self) -> tuple[float, float]:
        """(lowest, highest) power reachable this hour within every unit limit."""
        if not self.switched:
            return max(0.0, self.p - self.ramp), min(self.cap, self.p + self.ramp)
        if self.on:
            can_stop = self.hours >= self.c.min_on_hours - 1e-9 and self.p <= self.jump + 1e-9
            low = 0.0 if can_stop else max(self.floor, self.p - self.ramp)
            return low, min(self.cap, self.p + self.ramp)
        can_start = self.hours >= self.c.min_off_hours - 1e-9
        return 0.0, (min(self.cap, self.jump) if can_start else 0.0)

    def move(self, p: float) -> bool:
        """Go to power p (already within bounds); returns True when this is a start."""
        if self.switched and p > 0.0:
            # below the floor only when stopping is allowed (else the low bound is the floor); round-off aside
            p = 0.0 if p < self.floor - 1e-9 else max(p, self.floor)
        now_on = p > 0.0
        started = now_on and not self.on
        self.hours = self.hours + self.dt if now_on == self.on else self.dt
        self.on, self.p = now_on, p
        return started


def strike_schedule(site: Site, prices: pd.Series, hashprice: float,
                    initial_state: Mapping[str, UnitState] | None = None) -> xr.Dataset:
    """The strike-rule schedule over the hours of ``prices`` (a dataset like :func:`optimizer.results.read`)."""
    state = resolve(site, initial_state)
    dt = interval_hours(pd.DatetimeIndex(prices.index))
    units = [_Unit(f.name, f.capacity_mw, f.commitment, f.value_usd_per_mwh(hashprice), state[f.name], dt)
             for f in site.mining]
    units += [_Unit(g.name, g.flexible_mw, g.commitment, g.spot_value_usd_per_mwh, state[g.name], dt)
              for g in site.gpu]
    price = prices.to_numpy(dtype=float)
    n, k = len(price), len(units)
    power, on, start = np.zeros((n, k)), np.zeros((n, k)), np.zeros((n, k))
    room = site.grid.import_limit_mw - site.committed_mw
    for t in range(n):
        b = [u.bounds() for u in units]
        want = [hi if price[t] < u.value else lo for u, (lo, hi) in zip(units, b, strict=True)]
        excess = sum(want) - room
        for j in sorted(range(k), key=lambda j: units[j].value):      # least valuable gives way first
            if excess <= 1e-9:
                break
            cut = min(excess, want[j] - b[j][0])
            want[j] -= cut
            excess -= cut
        if excess > 1e-6:
            raise NoSolutionError(f"fallback: the import limit cannot be kept in hour {prices.index[t]} "
                                  f"({excess:.3f} MW over) within the units' ramp and run-time limits")
        for j, u in enumerate(units):
            start[t, j] = u.move(want[j])
            power[t, j], on[t, j] = u.p, u.on
    n_mining = len(site.mining)
    committed = np.array([g.committed_mw for g in site.gpu])
    site_power = np.concatenate([power[:, :n_mining], power[:, n_mining:] + committed], axis=1)
    return results.assemble(site, pd.DatetimeIndex(prices.index), price, site_power, on, start,
                            hashprice_usd_per_ph_day=hashprice, dt_hours=dt)
