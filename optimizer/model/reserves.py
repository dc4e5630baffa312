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

from collections.abc import Iterator, Mapping, Sequence

import pyomo.environ as pyo

from optimizer.site import Site


def units(m: pyo.ConcreteModel, site: Site) -> Iterator[tuple[object, pyo.Block]]:
    """(site unit, its model block) for every unit that can offer capacity."""
    if not site.reserves:
        return
    for f in site.mining:
        if any(f.reserve_limit_mw(r.response_minutes) > 0 for r in site.reserves):
            yield f, m.mining[f.name]
    for g in site.gpu:
        if any(g.reserve_limit_mw(r.response_minutes) > 0 for r in site.reserves):
            yield g, m.gpu[g.name]


def add(m: pyo.ConcreteModel, site: Site, **_: object) -> None:
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


def set_data(m: pyo.ConcreteModel, site: Site, prices: Mapping[str, Sequence[float]] | None) -> None:
    """Capacity prices per service (USD/MW/h, one per interval); a service not given keeps its site price."""
    for r in site.reserves:
        given = (prices or {}).get(r.name)
        for t in m.T:
            m.reserve_price[r.name, t].set_value(float(given[t]) if given is not None else r.price_usd_per_mw_hour)


def profit(m: pyo.ConcreteModel, site: Site, t: int):
    """Capacity revenue in interval t (USD)."""
    if not site.reserves:
        return 0.0
    return sum(m.reserve_price[s, t] * b.offer[s, t] * m.dt_hours for _, b in units(m, site) for s in m.SERVICES)
