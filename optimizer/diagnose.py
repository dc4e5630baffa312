"""Infeasibility diagnosis: which hard limits conflict, in which hours, by how much.

The same model is rebuilt *elastic*: each family of limits that can make a day infeasible (import limit, ramps,
the holds of the initial state, the SLA floor) gets non-negative slacks priced at ``SLACK_PENALTY_USD``. Each
family is then relaxed alone, the others held hard: every family whose relaxation alone makes the day feasible
is part of the conflict, and is reported with the hours and amounts it needed. When no single family suffices,
all are relaxed together and whatever that uses is reported.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyomo.environ as pyo

from optimizer import model, solve
from optimizer.errors import InternalError
from optimizer.inputs import Inputs
from optimizer.site import GpuCluster, MiningFleet, Site
from optimizer.state import UnitState

_TOL = 1e-6


def conflicts(site: Site, inputs: Inputs) -> list[dict]:
    """The relaxations that make the day feasible: one dict per (limit, asset) with hours, timestamps, amounts
    and ``alone`` (True when relaxing that family alone suffices)."""
    m = model.build(site, model.Structure.of(site, inputs, elastic=True))
    model.set_data(m, site, inputs)
    prices = inputs.prices
    slacks = model.slack_values(m)
    families = sorted({family for (family, _, _), _ in slacks})
    found: list[dict] = []
    for family in families:
        for (f, _, _), var in slacks:
            var.fix(0.0) if f != family else var.unfix()
        found += _used(m, slacks, prices, alone=True)
    if not found:
        for _, var in slacks:
            var.unfix()
        found = _used(m, slacks, prices, alone=False)
    return found


def _used(m, slacks, prices: pd.Series, alone: bool) -> list[dict]:
    report = solve.PyomoSolver(m, solve.SolverOptions(time_limit_seconds=30.0, mip_rel_gap=1e-4)).solve()
    if not report.has_solution:
        return []
    used: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    for (family, asset, hour), var in slacks:
        amount = pyo.value(var)
        if amount is not None and amount > _TOL:
            used[(family, str(asset))][int(hour)] = float(amount)
    times = pd.DatetimeIndex(prices.index)
    out = []
    for (family, asset), by_hour in sorted(used.items()):
        hours = sorted(by_hour)
        out.append({"limit": family, "asset": asset, "hours": hours, "alone": alone,
                    "first": times[hours[0]].isoformat(), "last": times[hours[-1]].isoformat(),
                    "max_amount": max(by_hour.values()), "total_amount": float(np.sum(list(by_hour.values())))})
    return out


def describe(site: Site, state: Mapping[str, UnitState], found: list[dict]) -> str:
    """A message for an operator: the conflicting limits, each with its value, hours and amount."""
    if not found:
        return ("the hard limits cannot all hold over this horizon, and the diagnosis found no relaxation "
                "(check the initial state against the import limit and the ramps)")
    clusters = {g.name: g for g in site.gpu}
    units: dict[str, MiningFleet | GpuCluster] = {f.name: f for f in site.mining} | clusters
    alone = all(c["alone"] for c in found)
    lines = ["the hard limits cannot all hold over this horizon. These limits conflict; "
             + ("relaxing any ONE of them as shown would make the day feasible:" if alone else
                "only relaxing them TOGETHER as shown makes the day feasible:")]
    for c in found:
        span = f"{len(c['hours'])} interval(s) from {c['first']} to {c['last']}"
        if c["limit"] == "import_limit":
            what = (f"import limit {site.grid.import_limit_mw:g} MW (or a lower emergency / 4CP cap; committed GPU "
                    f"load {site.committed_mw:.3f} MW): exceeded by up to {c['max_amount']:.3f} MW")
        elif c["limit"] in ("ramp_down", "ramp_up"):
            u, s = _unit_and_state(units, state, c["asset"])
            what = (f"{c['asset']}: {c['limit'].replace('_', '-')} limit {u.ramp_mw_per_hour:g} MW/h"
                    f" (initial power {s.power_mw:g} MW): short by up to {c['max_amount']:.3f} MW")
        elif c["limit"] == "initial_hold":
            u, s = _unit_and_state(units, state, c["asset"])
            what = (f"{c['asset']}: minimum {'on' if s.on else 'off'} time "
                    f"{u.min_on_hours if s.on else u.min_off_hours} h, still binding from the initial state "
                    f"({'on' if s.on else 'off'} for {s.hours_in_state} h)")
        elif c["limit"] == "sla":
            g = clusters.get(c["asset"])
            if g is None:
                raise InternalError(f"the diagnosis relaxed the SLA floor of {c['asset']!r}, not a GPU cluster")
            what = (f"{c['asset']}: SLA floor {g.committed_mw:.3f} MW of committed GPUs: short by up to "
                    f"{c['max_amount']:.3f} MW (use --allow-sla-breach to price it with the SLA credits)")
        else:
            what = f"{c['asset']}: {c['limit']} relaxed by up to {c['max_amount']:.3f}"
        lines.append(f"  - {what}; {span}")
    return "\n".join(lines)


def _unit_and_state(units: Mapping[str, MiningFleet | GpuCluster], state: Mapping[str, UnitState],
                    asset: str) -> tuple[MiningFleet | GpuCluster, UnitState]:
    u, s = units.get(asset), state.get(asset)
    if u is None or s is None:
        raise InternalError(f"the diagnosis relaxed a limit of {asset!r}, which is not a unit with a state")
    return u, s
