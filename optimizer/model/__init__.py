"""The day-ahead model: structure built once from a site and a :class:`Structure`, data set separately.

Every physical part is a module of this package with the same four functions (:data:`PARTS`):

``add(b, site, structure)``        variables, mutable parameters and constraints of the part on block ``b``;
``set_data(b, site, inputs)``      the values of the part's mutable parameters for one solve, as a list of
                                   ``(Param component, array in its index order)`` (nothing else changes);
``profit(b, site, t)``             the part's profit in interval t (USD), an expression;
``read(b, site, inputs, values)``  the part's results as arrays, where ``values(var)`` gives a Var component's
                                   solution as an array of its index shape.

Callers loop over :data:`PARTS`; nobody probes a part with ``hasattr``. The same parameter values feed either
Pyomo (:func:`set_data`: export, diagnosis, the reference solver) or HiGHS directly
(:mod:`optimizer.compiled`). The objective is the profit over the whole horizon (operating day plus lookahead),
USD. The mathematics is in ``docs/formulation.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

import numpy as np
import pyomo.environ as pyo
from pyomo.common.collections import ComponentMap

from optimizer.inputs import Inputs
from optimizer.model import gpu, grid, jobs, mining, reserves
from optimizer.site import Site

PARTS = (mining, jobs, gpu, reserves, grid)

#: Penalty of one unit of slack in an elastic (diagnostic) model, USD per MW (or per unit of a hold).
SLACK_PENALTY_USD = 1e6


class IndexedComponent(Protocol):
    """What curtail uses of a Pyomo ``Param`` or ``Var`` component (Pyomo ships no type information): its name,
    whether it is indexed, and its index set (whose ``subsets()`` give the shape)."""

    @property
    def name(self) -> str: ...

    def is_indexed(self) -> bool: ...

    def index_set(self) -> Any: ...


class ParamComponent(IndexedComponent, Protocol):
    """A mutable Pyomo ``Param`` component: its ``ParamData`` in index order (each with ``set_value``), and
    ``set_value`` of a scalar one."""

    def values(self) -> Iterable[Any]: ...

    def set_value(self, value: float) -> None: ...


#: Parameter values: ``{Param component: values}`` (array in the component's index order, or a scalar), built as
#: a ``ComponentMap``: Pyomo components are not hashable.
ParamValues: TypeAlias = Mapping[ParamComponent, object]
#: Reads a solved Var component as an array of its index shape.
Values = Callable[[pyo.Var], np.ndarray]

__all__ = ["PARTS", "IndexedComponent", "Inputs", "ParamComponent", "ParamValues", "SLACK_PENALTY_USD",
           "Structure", "Values", "apply", "build", "build_scenarios", "param_values", "populate", "read",
           "scenario_param_values", "set_data", "slack_values"]


@dataclass(frozen=True)
class Structure:
    """What the model's structure depends on besides the site: the number and length of its intervals, whether
    committed GPU load may fall short (priced with the SLA credit tiers), whether every limit that can make a
    day infeasible gets a priced slack (``elastic``: diagnosis only), and the shape of each active job's slot."""

    n_intervals: int
    dt_hours: float = 1.0
    allow_sla_breach: bool = False
    elastic: bool = False
    job_slots: tuple[jobs.Slot, ...] = ()

    @classmethod
    def of(cls, site: Site, inputs: Inputs, *, allow_sla_breach: bool = False, elastic: bool = False) -> Structure:
        """The structure a solve of ``inputs`` needs."""
        return cls(inputs.n, inputs.dt_hours, allow_sla_breach, elastic, jobs.slots(site, inputs))


def build(site: Site, structure: Structure) -> pyo.ConcreteModel:
    """The model's structure for ``site``, with parameters at placeholder values."""
    m = pyo.ConcreteModel(name=site.name)
    populate(m, site, structure)
    penalty = SLACK_PENALTY_USD * sum(v for _, v in slack_values(m)) if structure.elastic else 0.0
    m.objective = pyo.Objective(expr=sum(m.profit_usd[t] for t in m.T) - penalty, sense=pyo.maximize)
    return m


def populate(b: pyo.Block, site: Site, structure: Structure) -> None:
    """Add one site's whole model (sets, parts, per-interval profit ``profit_usd``) to a block: the model itself,
    or one scenario of a two-stage model (:func:`build_scenarios`)."""
    b.T = pyo.Set(initialize=range(structure.n_intervals), ordered=True, doc="intervals of the horizon")
    b.dt_hours = structure.dt_hours            # a plain float: the resolution is structure, not data
    for part in PARTS:
        part.add(b, site, structure)
    b.profit_usd = pyo.Expression(b.T, rule=lambda b, t: sum(part.profit(b, site, t) for part in PARTS))


def param_values(b: pyo.Block, site: Site, inputs: Inputs) -> ParamValues:
    """Every part's parameter values for ``inputs``."""
    if inputs.n != len(b.T):
        raise ValueError(f"{inputs.n} intervals of data for a {len(b.T)}-interval model")
    out = ComponentMap()
    for part in PARTS:
        for comp, v in part.set_data(b, site, inputs):
            out[comp] = v
    return out


def apply(values: ParamValues) -> None:
    """Push parameter values into the Pyomo model (for export, diagnosis and the reference solver)."""
    for comp, v in values.items():
        if comp.is_indexed():
            for pd_, x in zip(comp.values(), np.asarray(v, dtype=float).reshape(-1), strict=True):
                pd_.set_value(float(x))
        else:
            comp.set_value(float(np.asarray(v, dtype=float).reshape(-1)[0]))


def set_data(m: pyo.Block, site: Site, inputs: Inputs) -> None:
    """Load one solve's data into the Pyomo model's mutable parameters."""
    apply(param_values(m, site, inputs))


def read(b: pyo.Block, site: Site, inputs: Inputs, values: Values) -> dict[str, dict]:
    """Every part's results, merged: ``{quantity: {asset or "site": array}}``."""
    out: dict[str, dict] = {}
    for part in PARTS:
        for key, per in part.read(b, site, inputs, values).items():
            out.setdefault(key, {}).update(per)
    return out


def build_scenarios(site: Site, structure: Structure, n_scenarios: int) -> pyo.ConcreteModel:
    """Two-stage model: one copy of the site model per price scenario (``m.scen[k]``); the commitment decisions
    (which units are on in each interval, hence starts and stops) are shared by every scenario
    (``nonanticipative``), power levels adapt per scenario. Objective: ``(1 - cvar_weight) x expected profit +
    cvar_weight x CVaR_alpha(profit)``, CVaR the mean of the worst ``1 - alpha`` of scenario profits
    (Rockafellar-Uryasev: ``eta - sum_k w_k u_k / (1 - alpha)``, ``u_k >= eta - profit_k``, ``u_k >= 0``).
    The weights enter as parameters computed in :func:`scenario_param_values`, and each scenario's profit is a
    variable defined by an equality row (whose coefficients are the scenario's prices: parameters in the
    constraint matrix, pushed entry by entry), so the objective stays affine in its parameters. With one scenario
    it is the deterministic model exactly."""
    m = pyo.ConcreteModel(name=f"{site.name}-scenarios")
    m.S = pyo.Set(initialize=range(n_scenarios), ordered=True)
    m.scen = pyo.Block(m.S, rule=lambda b, k: populate(b, site, structure))
    m.w_expected = pyo.Param(m.S, mutable=True, initialize=1.0 / n_scenarios, doc="(1 - cvar weight) x weight")
    m.w_tail = pyo.Param(m.S, mutable=True, initialize=0.0, doc="cvar weight x weight / (1 - alpha)")
    m.w_cvar = pyo.Param(mutable=True, initialize=0.0, doc="cvar weight")
    shared_k = {k: [b.on for b in _switched_blocks(m.scen[k], site, structure.dt_hours)] for k in m.S}
    shared = shared_k[0]
    m.NA = pyo.Set(initialize=[(i, k, t) for i in range(len(shared)) for k in list(m.S)[1:]
                                for t in range(structure.n_intervals)], dimen=3)
    m.nonanticipative = pyo.Constraint(m.NA, rule=lambda m, i, k, t: shared_k[k][i][t] == shared[i][t])
    # each scenario's profit as a variable: the weights (parameters) then multiply variables, not the price
    # parameters inside the profit, and the objective stays affine in the parameters
    m.profit_k = pyo.Var(m.S, doc="profit of scenario k over the horizon, USD")
    m.profit_def = pyo.Constraint(m.S, rule=lambda m, k: m.profit_k[k] == sum(m.scen[k].profit_usd[t]
                                                                               for t in m.scen[k].T))
    m.eta = pyo.Var(doc="value at risk of the profit, USD")
    m.shortfall = pyo.Var(m.S, within=pyo.NonNegativeReals)
    m.cvar_tail = pyo.Constraint(m.S, rule=lambda m, k: m.shortfall[k] >= m.eta - m.profit_k[k])
    m.objective = pyo.Objective(expr=sum(m.w_expected[k] * m.profit_k[k] for k in m.S) + m.w_cvar * m.eta
                                - sum(m.w_tail[k] * m.shortfall[k] for k in m.S), sense=pyo.maximize)
    return m


def scenario_param_values(m: pyo.ConcreteModel, site: Site, inputs: list[Inputs], weights: np.ndarray,
                          cvar_weight: float, alpha: float) -> ParamValues:
    """Parameter values of a two-stage model: each scenario's data and the objective's weights."""
    out = ComponentMap()
    for k, inp in zip(m.S, inputs, strict=True):
        out.update(param_values(m.scen[k], site, inp))
    w = np.asarray(weights, dtype=float)
    out[m.w_expected] = (1.0 - cvar_weight) * w
    out[m.w_tail] = cvar_weight * w / (1.0 - alpha)
    out[m.w_cvar] = float(cvar_weight)
    return out


def _switched_blocks(b: pyo.Block, site: Site, dt_hours: float) -> list[pyo.Block]:
    """The unit blocks that carry on/off decisions, in site order."""
    from optimizer.model.commitment import is_switched

    return ([b.mining[f.name] for f in site.mining if is_switched(f.commitment, dt_hours)]
            + [b.gpu[g.name] for g in site.gpu if is_switched(g.commitment, dt_hours)])


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
