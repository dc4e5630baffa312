"""Grid connection and contract: energy balance, import limit, fixed-price block and market settlement.

| component | index | kind | unit | meaning |
|---|---|---|---|---|
| ``price`` | T | mutable Param | USD/MWh | market price at the site's settlement point |
| ``load_mw`` | T | Expression | MW | mining + GPU load |
| ``grid_mw`` | T | Expression | MW | load minus contract block: > 0 bought, < 0 sold back |
| ``load_cap_mw`` | T | mutable Param | MW | the most the site may draw: the import limit, or lower in an emergency event or a 4CP curtailment hour |
| ``peak_weight`` | T | mutable Param | - | chance that interval t lies in its month's 4CP peak hour (in settlement: 1 inside the actual peak hour) |
| ``import_limit`` | T | Constraint | MW | ``load_mw[t] <= load_cap_mw[t]`` |

Settlement in hour t: the block costs ``block_mw * contract price`` whatever is used (take-or-pay); with
sell-back, ``grid_mw[t]`` is settled at ``price[t]`` (bought above the block, credited below it). Without
sell-back, validation allows only ``block_mw = 0`` (every MWh bought at the market price) or
``block_mw >= import_limit_mw`` (nothing is ever bought; unused block power is forfeited).
"""

from __future__ import annotations

import numpy as np
import pyomo.environ as pyo

from optimizer.inputs import Inputs
from optimizer.model import gpu, mining
from optimizer.site import Site


def add(m: pyo.Block, site: Site, structure) -> None:
    m.price = pyo.Param(m.T, mutable=True, initialize=0.0, doc="market price, USD/MWh")
    m.load_cap_mw = pyo.Param(m.T, mutable=True, initialize=site.grid.import_limit_mw, doc="load cap, MW")
    m.peak_weight = pyo.Param(m.T, mutable=True, initialize=0.0, doc="4CP peak probability")
    m.load_mw = pyo.Expression(m.T, rule=lambda m, t: mining.load_mw(m, t) + gpu.load_mw(m, site, t))
    m.grid_mw = pyo.Expression(m.T, rule=lambda m, t: m.load_mw[t] - site.contract.block_mw)
    if structure.elastic:
        m.relax_import_limit = pyo.Var(m.T, within=pyo.NonNegativeReals, doc="import above the limit, MW")
    m.import_limit = pyo.Constraint(m.T, rule=lambda m, t: m.load_mw[t] <= m.load_cap_mw[t]
                                    + (m.relax_import_limit[t] if structure.elastic else 0.0))


def set_data(m: pyo.Block, site: Site, inputs: Inputs) -> list:
    weight = np.zeros(inputs.n) if inputs.peak_probability is None else inputs.peak_probability
    return [(m.price, inputs.price_array), (m.load_cap_mw, inputs.caps(site)), (m.peak_weight, weight)]


def profit(m: pyo.Block, site: Site, t: int):
    """Contract cost, market settlement and expected 4CP charge in interval t (USD; negative: a cost)."""
    contract = site.contract.block_mw * site.contract.price_usd_per_mwh
    market = m.price[t] * m.grid_mw[t] if site.contract.market_exposed else 0.0
    fourcp = (m.peak_weight[t] * m.load_mw[t] * site.fourcp.usd_per_mw_peak if site.fourcp.charge_usd_per_kw_year
              else 0.0)
    return -(contract + market + fourcp) * m.dt_hours


def read(m: pyo.Block, site: Site, inputs: Inputs, values) -> dict[str, dict]:
    """Nothing of its own: balance and settlement are derived from the units' power (``results.assemble``)."""
    return {}
