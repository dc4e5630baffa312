"""GPU clusters: committed load owed under the SLA every hour, plus a switchable flexible (spot) load.

| component | index | kind | unit | meaning |
|---|---|---|---|---|
| ``CLUSTERS`` | - | Set | - | cluster names |
| ``gpu[g]`` | CLUSTERS | Block | - | the flexible part: a switchable unit (see :mod:`optimizer.model.commitment`) |
| ``gpu[g].committed_mw`` | - | Param | MW | committed GPUs x kW/GPU x PUE / 1000, drawn every hour |
| ``gpu[g].spot_value_usd_per_mwh`` | - | mutable Param | USD/MWh | spot price x utilisation / MW per GPU |
| ``gpu[g].committed_usd_per_hour`` | - | mutable Param | USD/h | committed GPUs x committed price |

The SLA floor is structural: the cluster's load is ``committed_mw + gpu[g].mw[t]`` with ``gpu[g].mw >= 0``,
so no price can switch committed GPUs off. A restart cost is charged in the hour the flexible load rises from 0.
"""

from __future__ import annotations

import pyomo.environ as pyo

from optimizer.model import commitment
from optimizer.site import Site
from optimizer.state import UnitState


def add(m: pyo.ConcreteModel, site: Site) -> None:
    clusters = {g.name: g for g in site.gpu}
    m.CLUSTERS = pyo.Set(initialize=list(clusters), ordered=True)

    def unit(b, name):
        g = clusters[name]
        commitment.add(b, m.T, g.flexible_mw, g.commitment)
        b.committed_mw = pyo.Param(initialize=g.committed_mw, doc="SLA load, MW")
        b.spot_value_usd_per_mwh = pyo.Param(mutable=True, initialize=g.spot_value_usd_per_mwh)
        b.committed_usd_per_hour = pyo.Param(mutable=True, initialize=g.committed_revenue_usd_per_hour)

    m.gpu = pyo.Block(m.CLUSTERS, rule=unit)


def set_data(m: pyo.ConcreteModel, site: Site, state: dict[str, UnitState]) -> None:
    for g in site.gpu:
        commitment.set_state(m.gpu[g.name], m.T, g.commitment, state[g.name])


def load_mw(m: pyo.ConcreteModel, t: int):
    """Site power drawn by all clusters in hour t, committed and flexible (MW)."""
    return sum(m.gpu[g].committed_mw + m.gpu[g].mw[t] for g in m.CLUSTERS)


def profit(m: pyo.ConcreteModel, site: Site, t: int):
    """Committed and spot revenue minus restart costs in hour t (USD)."""
    return sum(m.gpu[g.name].committed_usd_per_hour
               + m.gpu[g.name].spot_value_usd_per_mwh * m.gpu[g.name].mw[t]
               - commitment.restart_cost_expr(m.gpu[g.name], t, g.commitment) for g in site.gpu)
