"""GPU clusters: committed load owed under the SLA every hour, plus a switchable flexible (spot) load.

| component | index | kind | unit | meaning |
|---|---|---|---|---|
| ``CLUSTERS`` | - | Set | - | cluster names |
| ``gpu[g]`` | CLUSTERS | Block | - | the flexible part: a switchable unit (see :mod:`optimizer.model.commitment`) |
| ``gpu[g].committed_mw`` | - | Param | MW | committed GPUs x kW/GPU x PUE / 1000, drawn every hour |
| ``gpu[g].spot_value_usd_per_mwh`` | - | mutable Param | USD/MWh | spot price x utilisation / MW per GPU |
| ``gpu[g].committed_usd_per_hour`` | - | mutable Param | USD/h | committed GPUs x committed price |
| ``gpu[g].shortfall_mw`` | T | Var >= 0 | MW | committed load not delivered (only with SLA breach allowed, or elastic) |
| ``gpu[g].tier`` | TIERS | Var binary | - | 1 when the month's availability falls below tier k (SLA breach allowed) |

By default the SLA floor is structural: the cluster's load is ``committed_mw + gpu[g].mw[t]`` with
``gpu[g].mw >= 0``, so no price can switch committed GPUs off. With ``allow_sla_breach`` the load is
``committed_mw - shortfall_mw[t] + mw[t]``; committed GPUs earn only the GPU-hours delivered, and the credit of
the availability tier reached is charged:
``credit = sum_k (c_k - c_{k-1}) * monthly bill * tier[k]`` with ``shortfall share <= (1 - a_k) + a_k tier[k]``
(the month's availability before the day is taken as 100%). A restart cost is charged in the hour the flexible
load rises from 0.
"""

from __future__ import annotations

import pyomo.environ as pyo

from optimizer.model import commitment
from optimizer.site import Site
from optimizer.state import UnitState


def add(m: pyo.ConcreteModel, site: Site, *, elastic: bool = False, allow_sla_breach: bool = False) -> None:
    clusters = {g.name: g for g in site.gpu}
    m.CLUSTERS = pyo.Set(initialize=list(clusters), ordered=True)

    def unit(b, name):
        g = clusters[name]
        commitment.add(b, m.T, g.flexible_mw, g.commitment, dt_hours=m.dt_hours, elastic=elastic)
        b.committed_mw = pyo.Param(initialize=g.committed_mw, doc="SLA load, MW")
        b.spot_value_usd_per_mwh = pyo.Param(mutable=True, initialize=g.spot_value_usd_per_mwh)
        b.committed_usd_per_hour = pyo.Param(mutable=True, initialize=g.committed_revenue_usd_per_hour)
        if elastic:
            b.relax_sla = pyo.Var(m.T, bounds=(0.0, g.committed_mw), doc="SLA shortfall, MW")
            b.shortfall_mw = pyo.Expression(m.T, rule=lambda b, t: b.relax_sla[t])
        elif allow_sla_breach and g.committed_mw > 0:
            b.shortfall_mw = pyo.Var(m.T, bounds=(0.0, g.committed_mw), doc="SLA shortfall, MW")
            tiers = g.sla_credit_tiers
            b.TIERS = pyo.Set(initialize=range(len(tiers)), ordered=True)
            b.tier = pyo.Var(b.TIERS, within=pyo.Binary)
            share = sum(b.shortfall_mw[t] * m.dt_hours for t in m.T) / (g.committed_mw * g.sla_month_hours)
            b.tier_reached = pyo.Constraint(b.TIERS, rule=lambda b, k: share <= (1 - tiers[k][0])
                                            + tiers[k][0] * b.tier[k])
            steps = [c - (tiers[k - 1][1] if k else 0.0) for k, (_, c) in enumerate(tiers)]
            b.sla_credit_usd = pyo.Expression(expr=sum(s * g.monthly_bill_usd * b.tier[k]
                                                       for k, s in enumerate(steps)))

    m.gpu = pyo.Block(m.CLUSTERS, rule=unit)


def set_data(m: pyo.ConcreteModel, site: Site, state: dict[str, UnitState]) -> None:
    for g in site.gpu:
        commitment.set_state(m.gpu[g.name], m.T, g.commitment, state[g.name], m.dt_hours)


def load_mw(m: pyo.ConcreteModel, t: int):
    """Site power drawn by all clusters in hour t, committed and flexible (MW)."""
    return sum(m.gpu[g].committed_mw - _shortfall(m.gpu[g], t) + m.gpu[g].mw[t] for g in m.CLUSTERS)


def profit(m: pyo.ConcreteModel, site: Site, t: int):
    """Committed and spot revenue minus restart costs in interval t (USD); SLA credits are charged in the first."""
    total = 0.0
    for g in site.gpu:
        b = m.gpu[g.name]
        delivered = 1.0 - _shortfall(b, t) / g.committed_mw if g.committed_mw > 0 else 1.0
        total += ((b.committed_usd_per_hour * delivered + b.spot_value_usd_per_mwh * b.mw[t]) * m.dt_hours
                  - commitment.restart_cost_expr(b, t, g.commitment))
        if t == 0 and hasattr(b, "sla_credit_usd"):
            total -= b.sla_credit_usd
    return total


def _shortfall(b: pyo.Block, t: int):
    return b.shortfall_mw[t] if hasattr(b, "shortfall_mw") else 0.0
