"""Mining fleets: switchable loads that earn the hashprice.

| component | index | kind | unit | meaning |
|---|---|---|---|---|
| ``FLEETS`` | - | Set | - | fleet names |
| ``mining[f]`` | FLEETS | Block | - | a switchable unit (see :mod:`optimizer.model.commitment`) |
| ``mining[f].value_usd_per_mwh`` | - | mutable Param | USD/MWh | mining revenue of one MWh at this hashprice |

Revenue of fleet f in interval t: ``value_usd_per_mwh[f] * mining[f].mw[t] * dt_hours``, where the value is
``hashprice / 24 * 1000 / (J/TH * (1 + cooling overhead)) * (1 - pool fee)``.
"""

from __future__ import annotations

import pyomo.environ as pyo

from optimizer.inputs import Inputs
from optimizer.model import commitment
from optimizer.site import Site


def add(m: pyo.Block, site: Site, structure) -> None:
    fleets = {f.name: f for f in site.mining}
    m.FLEETS = pyo.Set(initialize=list(fleets), ordered=True)

    def unit(b, name):
        f = fleets[name]
        commitment.add(b, m.T, f.capacity_mw, f.commitment, dt_hours=m.dt_hours, elastic=structure.elastic)
        b.value_usd_per_mwh = pyo.Param(mutable=True, initialize=0.0, doc="mining value, USD/MWh")

    m.mining = pyo.Block(m.FLEETS, rule=unit)


def set_data(m: pyo.Block, site: Site, inputs: Inputs) -> list:
    state = inputs.resolved_state(site)
    out: list = []
    for f in site.mining:
        b = m.mining[f.name]
        out.append((b.value_usd_per_mwh, f.value_usd_per_mwh(inputs.hashprice_usd_per_ph_day)))
        out += commitment.param_values(b, m.T, f.commitment, state[f.name], m.dt_hours)
    return out


def load_mw(m: pyo.Block, t: int):
    """Site power drawn by all fleets in interval t (MW)."""
    return sum(m.mining[f].mw[t] for f in m.FLEETS)


def profit(m: pyo.Block, site: Site, t: int):
    """Mining revenue minus restart costs in interval t (USD)."""
    return sum(m.mining[f.name].value_usd_per_mwh * m.mining[f.name].mw[t] * m.dt_hours
               - commitment.restart_cost_expr(m.mining[f.name], t, f.commitment, m.dt_hours) for f in site.mining)


def read(m: pyo.Block, site: Site, inputs: Inputs, values) -> dict[str, dict]:
    state = inputs.resolved_state(site)
    out: dict[str, dict] = {"power_mw": {}, "on": {}, "start": {}}
    for f in site.mining:
        mw, on, start = commitment.read(m.mining[f.name], f.commitment, m.dt_hours, state[f.name], values)
        out["power_mw"][f.name], out["on"][f.name], out["start"][f.name] = mw, on, start
    return out
