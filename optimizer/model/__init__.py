"""The day-ahead model: structure built once from a site and a horizon length, data set separately.

``build(site, n_hours)`` creates the Pyomo model (one module per physical part: :mod:`.mining`, :mod:`.gpu`,
:mod:`.grid`, sharing :mod:`.commitment`); ``set_data(model, site, inputs)`` loads prices, hashprice and initial
state into mutable parameters, so a rolling run updates data instead of rebuilding. The objective is the profit
over the whole horizon (operating day plus lookahead), USD. The mathematics is in ``docs/formulation.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyomo.environ as pyo

from optimizer.model import grid, gpu, mining, reserves
from optimizer.site import Site
from optimizer.state import UnitState

MODULES = (mining, gpu, reserves, grid)


@dataclass(frozen=True)
class Inputs:
    """The data of one solve, one value per model interval where a sequence: prices (USD/MWh), hashprice
    (USD/PH/day), initial state; optional load caps (MW; emergency events) and 4CP peak probabilities."""

    prices_usd_per_mwh: Sequence[float]
    hashprice_usd_per_ph_day: float
    state: Mapping[str, UnitState]
    load_cap_mw: Sequence[float] | None = None
    peak_probability: Sequence[float] | None = None
    reserve_prices: Mapping[str, Sequence[float]] | None = None     # USD/MW/h per service; default site prices

    def caps(self, site: Site) -> np.ndarray:
        """The load cap of every interval: the import limit, lowered by emergency caps and, where the 4CP
        probability reaches the site's threshold, to the committed GPU load."""
        n = len(self.prices_usd_per_mwh)
        cap = np.full(n, site.grid.import_limit_mw)
        if self.load_cap_mw is not None:
            cap = np.minimum(cap, np.asarray(self.load_cap_mw, dtype=float))
        if self.peak_probability is not None and site.fourcp.curtail_above_probability < 1.0:
            hot = np.asarray(self.peak_probability, dtype=float) >= site.fourcp.curtail_above_probability
            cap = np.where(hot, np.minimum(cap, site.committed_mw), cap)
        return cap


#: Penalty of one unit of slack in an elastic (diagnostic) model, USD per MW (or per unit of a hold).
SLACK_PENALTY_USD = 1e6


def build(site: Site, n_intervals: int, *, dt_hours: float = 1.0, elastic: bool = False,
          allow_sla_breach: bool = False) -> pyo.ConcreteModel:
    """The model's structure for ``site`` over ``n_intervals`` intervals of ``dt_hours`` (1 or 0.25), with
    parameters at placeholder values.

    ``allow_sla_breach``: committed GPU load may fall short, at the cluster's SLA credit. ``elastic``: every
    limit that can make a day infeasible gets a slack priced at ``SLACK_PENALTY_USD`` (diagnosis only).
    """
    m = pyo.ConcreteModel(name=site.name)
    populate(m, site, n_intervals, dt_hours=dt_hours, elastic=elastic, allow_sla_breach=allow_sla_breach)
    penalty = SLACK_PENALTY_USD * sum(v for _, v in slack_values(m)) if elastic else 0.0
    m.objective = pyo.Objective(expr=sum(m.profit_usd[t] for t in m.T) - penalty, sense=pyo.maximize)
    return m


def populate(b: pyo.Block, site: Site, n_intervals: int, *, dt_hours: float = 1.0, elastic: bool = False,
             allow_sla_breach: bool = False) -> None:
    """Add one site's whole model (sets, parts, per-interval profit ``profit_usd``) to a block: the model itself,
    or one scenario of a two-stage model (:func:`build_scenarios`)."""
    b.T = pyo.Set(initialize=range(n_intervals), ordered=True, doc="intervals of the horizon")
    b.dt_hours = dt_hours                       # a plain float: the resolution is structure, not data
    for module in MODULES:
        module.add(b, site, elastic=elastic, allow_sla_breach=allow_sla_breach)
    b.profit_usd = pyo.Expression(b.T, rule=lambda b, t: sum(mod.profit(b, site, t) for mod in MODULES))


def build_scenarios(site: Site, n_intervals: int, n_scenarios: int, *, dt_hours: float = 1.0,
                    allow_sla_breach: bool = False) -> pyo.ConcreteModel:
    """Two-stage model: one copy of the site model per price scenario (``m.scen[k]``); the commitment decisions
    (which units are on in each interval, hence starts and stops) are shared by every scenario
    (``nonanticipative``), power levels adapt per scenario. Objective: ``(1 - cvar_weight) x expected profit +
    cvar_weight x CVaR_alpha(profit)``, CVaR the mean of the worst ``1 - alpha`` of scenario profits
    (Rockafellar-Uryasev: ``eta - sum_k w_k u_k / (1 - alpha)``, ``u_k >= eta - profit_k``, ``u_k >= 0``).
    With one scenario it is the deterministic model exactly."""
    m = pyo.ConcreteModel(name=f"{site.name}-scenarios")
    m.S = pyo.Set(initialize=range(n_scenarios), ordered=True)
    m.scen = pyo.Block(m.S, rule=lambda b, k: populate(b, site, n_intervals, dt_hours=dt_hours,
                                                       allow_sla_breach=allow_sla_breach))
    m.weight = pyo.Param(m.S, mutable=True, initialize=1.0 / n_scenarios)
    m.cvar_weight = pyo.Param(mutable=True, initialize=0.0)
    m.alpha = pyo.Param(mutable=True, initialize=0.9)
    shared = [(part, name) for part, names in (("mining", [f.name for f in site.mining]),
                                                ("gpu", [g.name for g in site.gpu]))
              for name in names if hasattr(getattr(m.scen[0], part)[name], "on")]
    m.NA = pyo.Set(initialize=[(i, k, t) for i in range(len(shared)) for k in list(m.S)[1:] for t in range(n_intervals)],
                   dimen=3)
    m.nonanticipative = pyo.Constraint(m.NA, rule=lambda m, i, k, t: getattr(m.scen[k], shared[i][0])[shared[i][1]].on[t]
                                       == getattr(m.scen[0], shared[i][0])[shared[i][1]].on[t])
    m.profit_k = pyo.Expression(m.S, rule=lambda m, k: sum(m.scen[k].profit_usd[t] for t in m.scen[k].T))
    m.eta = pyo.Var(doc="value at risk of the profit, USD")
    m.shortfall = pyo.Var(m.S, within=pyo.NonNegativeReals)
    m.cvar_tail = pyo.Constraint(m.S, rule=lambda m, k: m.shortfall[k] >= m.eta - m.profit_k[k])
    expected = sum(m.weight[k] * m.profit_k[k] for k in m.S)
    cvar = m.eta - sum(m.weight[k] * m.shortfall[k] for k in m.S) / (1 - m.alpha)
    m.objective = pyo.Objective(expr=(1 - m.cvar_weight) * expected + m.cvar_weight * cvar, sense=pyo.maximize)
    return m


def slack_values(m: pyo.ConcreteModel):
    """Every slack variable of an elastic model, as (family, asset, hour, var) tuples."""
    out = []
    for v in m.component_data_objects(pyo.Var, descend_into=True):
        name = v.parent_component().local_name
        if name.startswith("relax_"):
            block = v.parent_block()
            asset = block.index() if block is not m else "site"
            out.append(((name[len("relax_"):], asset, v.index()), v))
    return out


def set_data(m: pyo.ConcreteModel, site: Site, inputs: Inputs) -> None:
    """Load one solve's data into the model's mutable parameters."""
    if len(inputs.prices_usd_per_mwh) != len(m.T):
        raise ValueError(f"{len(inputs.prices_usd_per_mwh)} prices for a {len(m.T)}-hour model")
    mining.set_data(m, site, inputs.hashprice_usd_per_ph_day, dict(inputs.state))
    gpu.set_data(m, site, dict(inputs.state))
    n = len(m.T)
    weight = np.zeros(n) if inputs.peak_probability is None else np.asarray(inputs.peak_probability, dtype=float)
    grid.set_data(m, site, np.asarray(inputs.prices_usd_per_mwh, dtype=float), inputs.caps(site), weight)
    reserves.set_data(m, site, inputs.reserve_prices)
