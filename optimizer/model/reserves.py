"""Ancillary-service capacity: curtailable load offered as Controllable Load Resource capacity (RRS, ECRS,
Non-Spin...), paid per MW per hour whether or not it is deployed.

| component | index | kind | unit | meaning |
|---|---|---|---|---|
| ``SERVICES`` | - | Set | - | the site's ``[[reserve]]`` names |
| ``reserve_price`` | SERVICES x T | mutable Param | USD/MW/h | capacity price |
| ``<unit>.offer`` | SERVICES x T | Var >= 0 | MW | capacity a fleet (or a cluster's flexible load) offers |
| ``<unit>.offer_backed`` | T | Constraint | MW | ``sum_s offer[s, t] <= mw[t]``: only load actually consumed |

Each offer is also bounded by what the unit can drop within the service's response time
(``reserve_limit_mw``). Revenue: ``sum_s reserve_price[s, t] * offer[s, t] * dt``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyomo.environ as pyo

from optimizer.inputs import Inputs
from optimizer.site import Site


def units(m: pyo.Block, site: Site) -> Iterator[tuple[object, pyo.Block]]:
    """(site unit, its model block) for every unit that can offer capacity."""
    if not site.reserves:
        return
    for f in site.mining:
        if any(f.reserve_limit_mw(r.response_minutes) > 0 for r in site.reserves):
            yield f, m.mining[f.name]
    for g in site.gpu:
        if any(g.reserve_limit_mw(r.response_minutes) > 0 for r in site.reserves):
            yield g, m.gpu[g.name]


def add(m: pyo.Block, site: Site, structure) -> None:
    if not site.reserves:
        return
    services = {r.name: r for r in site.reserves}
    m.SERVICES = pyo.Set(initialize=list(services), ordered=True)
    m.reserve_price = pyo.Param(m.SERVICES, m.T, mutable=True,
                                initialize=lambda m, s, t: services[s].price_usd_per_mw_hour)
    for unit, b in units(m, site):
        b.offer = pyo.Var(m.SERVICES, m.T, within=pyo.NonNegativeReals,
                          bounds=lambda b, s, t, u=unit: (0.0, u.reserve_limit_mw(services[s].response_minutes)))
        b.offer_backed = pyo.Constraint(m.T, rule=lambda b, t: sum(b.offer[s, t] for s in m.SERVICES) <= b.mw[t])


def set_data(m: pyo.Block, site: Site, inputs: Inputs) -> list:
    """Capacity prices per service (USD/MW/h, one per interval); a service not given keeps its site price."""
    if not site.reserves:
        return []
    return [(m.reserve_price, inputs.reserve_price(site).T)]          # (service, interval), the Param's order


def profit(m: pyo.Block, site: Site, t: int):
    """Capacity revenue in interval t (USD)."""
    if not site.reserves:
        return 0.0
    return sum(m.reserve_price[s, t] * b.offer[s, t] * m.dt_hours for _, b in units(m, site) for s in m.SERVICES)


def read(m: pyo.Block, site: Site, inputs: Inputs, values) -> dict[str, dict]:
    """Offers per asset, (interval, service) MW; zero for units that cannot offer."""
    n, k = inputs.n, len(site.reserves)
    offers = {name: np.zeros((n, k)) for name in site.asset_names}
    for unit, b in units(m, site):
        offers[unit.name] = np.clip(values(b.offer), 0.0, None).T        # Var order (service, interval)
    return {"reserve_offer_mw": offers}
