"""The day-ahead model: structure built once from a site and a horizon length, data set separately.

``build(site, n_hours)`` creates the Pyomo model (one module per physical part: :mod:`.mining`, :mod:`.gpu`,
:mod:`.grid`, sharing :mod:`.commitment`); ``set_data(model, site, inputs)`` loads prices, hashprice and initial
state into mutable parameters, so a rolling run updates data instead of rebuilding. The objective is the profit
over the whole horizon (operating day plus lookahead), USD. The mathematics is in ``docs/formulation.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pyomo.environ as pyo

from optimizer.model import grid, gpu, mining
from optimizer.site import Site
from optimizer.state import UnitState

MODULES = (mining, gpu, grid)


@dataclass(frozen=True)
class Inputs:
    """The data of one solve: hourly prices (USD/MWh, one per model hour), hashprice, initial state."""

    prices_usd_per_mwh: Sequence[float]
    hashprice_usd_per_ph_day: float
    state: Mapping[str, UnitState]


def build(site: Site, n_hours: int) -> pyo.ConcreteModel:
    """The model's structure for ``site`` over ``n_hours`` hours (parameters at placeholder values)."""
    m = pyo.ConcreteModel(name=site.name)
    m.T = pyo.Set(initialize=range(n_hours), ordered=True, doc="hours of the horizon")
    for module in MODULES:
        module.add(m, site)
    m.profit_usd = pyo.Expression(m.T, rule=lambda m, t: sum(mod.profit(m, site, t) for mod in MODULES))
    m.objective = pyo.Objective(expr=sum(m.profit_usd[t] for t in m.T), sense=pyo.maximize)
    return m


def set_data(m: pyo.ConcreteModel, site: Site, inputs: Inputs) -> None:
    """Load one solve's data into the model's mutable parameters."""
    if len(inputs.prices_usd_per_mwh) != len(m.T):
        raise ValueError(f"{len(inputs.prices_usd_per_mwh)} prices for a {len(m.T)}-hour model")
    mining.set_data(m, site, inputs.hashprice_usd_per_ph_day, dict(inputs.state))
    gpu.set_data(m, site, dict(inputs.state))
    grid.set_data(m, inputs.prices_usd_per_mwh)
