"""GPU clusters: committed GPUs owed under the SLA, and spot GPUs that serve hourly inference demand and jobs.

| component | index | kind | unit | meaning |
|---|---|---|---|---|
| ``CLUSTERS`` | - | Set | - | cluster names |
| ``gpu[g]`` | CLUSTERS | Block | - | the spot part's power: a switchable unit (:mod:`optimizer.model.commitment`), ``mw`` in MW |
| ``gpu[g].throughput`` | T | Var >= 0 | GPUs | spot throughput, full-GPU equivalents |
| ``gpu[g].served`` | T | Var >= 0 | GPUs | inference demand served |
| ``gpu[g].demand`` | T | mutable Param | GPUs | inference demand (fraction of spot GPUs x spot GPUs) |
| ``gpu[g].committed_mw`` | T | Var | MW | committed GPUs' site power: fixed at full power, or down to the SLA throughput with power capping |
| ``gpu[g].shortfall`` | T | Var >= 0 | MW | committed load not delivered (only with SLA breach allowed; ``relax_sla`` when elastic) |
| ``gpu[g].tier`` | TIERS | Var binary | - | 1 when the month's availability falls below tier k (SLA breach allowed) |

Spot side: ``throughput <= slope_k x mw + intercept_k`` for each cut of the cluster's throughput function
(:meth:`optimizer.site.GpuCluster.throughput_points`: without a power-cap curve one GPU per MW-per-GPU; with one,
the most throughput a flexible load can give when GPUs may be capped); ``served <= demand``;
``served + job work <= throughput``. Revenue: ``spot price x served x dt`` (GPUs powered beyond demand and jobs earn
nothing). Committed side: ``committed_mw`` lies between :attr:`~optimizer.site.GpuCluster.committed_min_mw` (the
SLA throughput with capped boards) and full power; committed revenue is owed per GPU-hour delivered. With
``allow_sla_breach`` committed load may fall short: those GPU-hours earn nothing and the credit of the
availability tier reached is charged:
``credit = sum_k (c_k - c_{k-1}) x monthly bill x tier[k]`` with
``(shortfall before + shortfall) share <= (1 - a_k) + a_k tier[k]``, less the tier already reached before the
horizon (``Inputs.sla_shortfall_before_mwh``). A restart cost is charged when the spot load rises from 0.
"""

from __future__ import annotations

import numpy as np
import pyomo.environ as pyo

from optimizer.inputs import Inputs
from optimizer.model import commitment, jobs
from optimizer.site import GpuCluster, Site


def has_shortfall(g: GpuCluster, structure) -> bool:
    """Whether the cluster's committed load may fall short in this structure (elastic, or SLA breach allowed)."""
    return g.committed_mw > 0 and (structure.elastic or structure.allow_sla_breach)


def add(m: pyo.Block, site: Site, structure) -> None:
    clusters = {g.name: g for g in site.gpu}
    m.CLUSTERS = pyo.Set(initialize=list(clusters), ordered=True)
    m.gpu_structure = structure                       # plain attribute: shortfall and job slots are structure

    def unit(b, name):
        g = clusters[name]
        commitment.add(b, m.T, g.flexible_mw, g.commitment, dt_hours=m.dt_hours, elastic=structure.elastic)
        b.served = pyo.Var(m.T, within=pyo.NonNegativeReals, doc="inference served, GPUs")
        b.demand = pyo.Param(m.T, mutable=True, initialize=0.0, doc="inference demand, GPUs")
        cuts = g.throughput_cuts()
        b.CUTS = pyo.Set(initialize=range(len(cuts)), ordered=True)
        has_jobs = any(s.cluster == name for s in structure.job_slots)
        if has_jobs:           # served and job work share the throughput
            b.throughput = pyo.Var(m.T, within=pyo.NonNegativeReals, doc="spot throughput, GPUs")
            b.capacity = pyo.Constraint(m.T, rule=lambda b, t: b.served[t] + jobs.work(m, structure, name, t)
                                        <= b.throughput[t])
        use = b.throughput if has_jobs else b.served
        b.throughput_curve = pyo.Constraint(b.CUTS, m.T, rule=lambda b, k, t: use[t]
                                            <= cuts[k][0] * b.mw[t] + cuts[k][1])
        if commitment.is_switched(g.commitment, m.dt_hours):
            # served only while on: a valid bound that keeps the LP relaxation from running at a fraction of "on"
            b.demand_cap = pyo.Constraint(m.T, rule=lambda b, t: b.served[t] <= b.demand[t] * b.on[t])
        else:
            b.demand_cap = pyo.Constraint(m.T, rule=lambda b, t: b.served[t] <= b.demand[t])
        if g.committed_min_mw < g.committed_mw:
            b.committed_mw = pyo.Var(m.T, bounds=(g.committed_min_mw, g.committed_mw), doc="committed load, MW")
        else:
            b.committed_mw = pyo.Param(m.T, initialize=g.committed_mw, doc="committed load, MW")
        if not has_shortfall(g, structure):
            return
        name_ = "relax_sla" if structure.elastic else "shortfall"
        b.add_component(name_, pyo.Var(m.T, bounds=(0.0, g.committed_mw), doc="SLA shortfall, MW"))
        var = b.component(name_)
        b.shortfall_mw = pyo.Expression(m.T, rule=lambda b, t: var[t])
        # committed load not delivered takes its power with it (never below zero)
        b.short_power = pyo.Constraint(m.T, rule=lambda b, t: var[t] <= b.committed_mw[t])
        if structure.elastic:
            return
        tiers = g.sla_credit_tiers
        b.TIERS = pyo.Set(initialize=range(len(tiers)), ordered=True)
        b.tier = pyo.Var(b.TIERS, within=pyo.Binary)
        b.short_before = pyo.Param(mutable=True, initialize=0.0, doc="committed MWh missed earlier this month")
        share = (b.short_before + sum(b.shortfall_mw[t] * m.dt_hours for t in m.T)) / (g.committed_mw
                                                                                       * g.sla_month_hours)
        b.tier_reached = pyo.Constraint(b.TIERS, rule=lambda b, k: share <= (1 - tiers[k][0])
                                        + tiers[k][0] * b.tier[k])
        b.credit_before = pyo.Param(mutable=True, initialize=0.0, doc="credit of the tier reached before, USD")
        steps = [c - (tiers[k - 1][1] if k else 0.0) for k, (_, c) in enumerate(tiers)]
        b.sla_credit_usd = pyo.Expression(expr=sum(s * g.monthly_bill_usd * b.tier[k] for k, s in enumerate(steps))
                                          - b.credit_before)

    m.gpu = pyo.Block(m.CLUSTERS, rule=unit)


def set_data(m: pyo.Block, site: Site, inputs: Inputs) -> list:
    state = inputs.resolved_state(site)
    demand = inputs.demand(site)
    before = dict(inputs.sla_shortfall_before_mwh or {})
    out: list = []
    for g in site.gpu:
        b = m.gpu[g.name]
        out.append((b.demand, demand[g.name]))
        out += commitment.param_values(b, m.T, g.commitment, state[g.name], m.dt_hours)
        if has_shortfall(g, m.gpu_structure) and not m.gpu_structure.elastic:
            mwh = float(before.get(g.name, 0.0))
            out += [(b.short_before, mwh), (b.credit_before, g.sla_credit_usd(mwh))]
    return out


def _shortfall(m: pyo.Block, g: GpuCluster, t: int):
    return m.gpu[g.name].shortfall_mw[t] if has_shortfall(g, m.gpu_structure) else 0.0


def load_mw(m: pyo.Block, site: Site, t: int):
    """Site power drawn by all clusters in interval t, committed and spot (MW)."""
    return sum(m.gpu[g.name].committed_mw[t] - _shortfall(m, g, t) + m.gpu[g.name].mw[t] for g in site.gpu)


def profit(m: pyo.Block, site: Site, t: int):
    """Committed and spot revenue minus restart costs in interval t (USD); SLA credits are charged in the first."""
    total = 0.0
    for g in site.gpu:
        b = m.gpu[g.name]
        short = _shortfall(m, g, t)
        delivered = 1.0 - short / g.committed_mw if g.committed_mw > 0 else 1.0
        total += ((g.committed_revenue_usd_per_hour * delivered + g.spot_price_usd_per_gpu_hour * b.served[t])
                  * m.dt_hours - commitment.restart_cost_expr(b, t, g.commitment, m.dt_hours))
        if t == 0 and has_shortfall(g, m.gpu_structure) and not m.gpu_structure.elastic:
            total -= b.sla_credit_usd
    return total


def read(m: pyo.Block, site: Site, inputs: Inputs, values) -> dict[str, dict]:
    state = inputs.resolved_state(site)
    out: dict[str, dict] = {"power_mw": {}, "on": {}, "start": {}, "sla_shortfall_mw": {}, "sla_credit_usd": {},
                            "committed_mw": {}}
    credit = 0.0
    before = dict(inputs.sla_shortfall_before_mwh or {})
    for g in site.gpu:
        b = m.gpu[g.name]
        flex, on, start = commitment.read(b, g.commitment, m.dt_hours, state[g.name], values)
        committed = (values(b.committed_mw) if g.committed_min_mw < g.committed_mw
                     else np.full(inputs.n, g.committed_mw))
        short = np.zeros(inputs.n)
        if has_shortfall(g, m.gpu_structure):
            short = np.clip(values(b.component("relax_sla" if m.gpu_structure.elastic else "shortfall")), 0.0, None)
            if not m.gpu_structure.elastic:
                credit += _credit(g, values(b.tier)) - g.sla_credit_usd(float(before.get(g.name, 0.0)))
        out["power_mw"][g.name] = committed - short + flex
        out["committed_mw"][g.name] = committed
        out["on"][g.name], out["start"][g.name], out["sla_shortfall_mw"][g.name] = on, start, short
    first = np.zeros(inputs.n)
    first[0] = credit
    out["sla_credit_usd"]["site"] = first
    return out


def _credit(g: GpuCluster, tier: np.ndarray) -> float:
    steps = [c - (g.sla_credit_tiers[k - 1][1] if k else 0.0) for k, (_, c) in enumerate(g.sla_credit_tiers)]
    return float(sum(s * g.monthly_bill_usd * round(x) for s, x in zip(steps, tier, strict=True)))
