"""Ancillary-service capacity: curtailable load offered to ERCOT's day-ahead ancillary services (Reg-Up, RRS, ECRS,
Non-Spin), paid per MW per hour whether or not it is deployed. The rules (which unit may sell which service, response
times) are :mod:`optimizer.ancillary`'s.

| component | index | kind | unit | meaning |
|---|---|---|---|---|
| ``SERVICES`` | - | Set | - | the site's ``[[reserve]]`` names |
| ``reserve_price`` | SERVICES x T | mutable Param | USD/MW/h | capacity price (hourly clearing price or the site's constant) |
| ``<unit>.offer`` | SERVICES x T | Var >= 0 | MW | capacity a fleet (or a cluster's flexible load) offers |
| ``<unit>.offer_backed`` | T | Constraint | MW | ``sum_s offer[s, t] <= mw[t]``: only load actually consumed |

Each offer is bounded by what the unit can drop within the service's response time (``reserve_limit_mw`` of
:func:`optimizer.ancillary.response_minutes`), and is 0 for a service the unit's ``reserve_resource`` may not sell
(:func:`optimizer.ancillary.eligible`). Every modelled service is a reduction of load; a site with a service that is
not modelled (Regulation Down) or not an ERCOT service is refused when the model is built. Revenue:
``sum_s reserve_price[s, t] * offer[s, t] * dt``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyomo.environ as pyo

from optimizer import ancillary
from optimizer.inputs import Inputs
from optimizer.site import GpuCluster, MiningFleet, Reserve, Site


def limit_mw(unit: MiningFleet | GpuCluster, reserve: Reserve) -> float:
    """Most ``unit`` may offer to ``reserve``'s service: 0 if its resource kind may not sell it, else what it drops
    within the service's response time."""
    if not ancillary.eligible(unit.reserve_resource, reserve.name):
        return 0.0
    return unit.reserve_limit_mw(ancillary.response_minutes(reserve))


def units(m: pyo.Block, site: Site) -> Iterator[tuple[MiningFleet | GpuCluster, pyo.Block]]:
    """(site unit, its model block) for every unit that can offer capacity."""
    if not site.reserves:
        return
    for f in site.mining:
        if any(limit_mw(f, r) > 0 for r in site.reserves):
            yield f, m.mining[f.name]
    for g in site.gpu:
        if any(limit_mw(g, r) > 0 for r in site.reserves):
            yield g, m.gpu[g.name]


def add(m: pyo.Block, site: Site, structure) -> None:
    if not site.reserves:
        return
    ancillary.check_site(site)
    services = {r.name: r for r in site.reserves}
    m.SERVICES = pyo.Set(initialize=list(services), ordered=True)
    m.reserve_price = pyo.Param(m.SERVICES, m.T, mutable=True,
                                initialize=lambda m, s, t: services[s].price_usd_per_mw_hour)
    for unit, b in units(m, site):
        b.offer = pyo.Var(m.SERVICES, m.T, within=pyo.NonNegativeReals,
                          bounds=lambda b, s, t, u=unit: (0.0, limit_mw(u, services[s])))
        b.offer_backed = pyo.Constraint(m.T, rule=lambda b, t: sum(b.offer[s, t] for s in m.SERVICES) <= b.mw[t])


def set_data(m: pyo.Block, site: Site, inputs: Inputs) -> list:
    """Capacity prices per service (USD/MW/h, one per interval): given hourly prices, else the site's constant (a
    clearing-priced service without prices is a named error)."""
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
