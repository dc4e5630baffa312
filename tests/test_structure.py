"""Model structure without a solver: components, counts, bounds, and the LP/MILP switch."""

from __future__ import annotations

import pyomo.environ as pyo
import pytest
from support import fleet, hourly, make_site

from optimizer import model
from optimizer.inputs import Inputs
from optimizer.model import commitment
from optimizer.state import UnitState


def _count(m, ctype, integer=None):
    comps = list(m.component_data_objects(ctype, active=True, descend_into=True))
    if integer is not None:
        comps = [v for v in comps if v.is_integer() == integer]
    return len(comps)


def test_default_site_model_has_the_expected_size(default_site):
    n = 48
    m = model.build(default_site, model.Structure(n))
    # s21-pro, s19j-pro and h100 all have restart costs: each has mw, on, start, stop per hour; the cluster also
    # has the inference it serves per hour (no jobs: no throughput variable; committed GPUs never capped: fixed)
    assert _count(m, pyo.Var) == 3 * 4 * n + n
    assert _count(m, pyo.Var, integer=True) == 3 * 3 * n
    # h100-default has 7 segments above its most efficient cap: one throughput row per segment and hour
    assert len(m.gpu["h100"].throughput_curve) == 6 * n
    assert list(m.FLEETS) == ["s21-pro", "s19j-pro"] and list(m.CLUSTERS) == ["h100"]
    # s19j-pro (min_on 2) has a min-on row; only h100 and s19j-pro have ramp rows (s21-pro ramps 80 = capacity)
    assert hasattr(m.mining["s19j-pro"], "min_on") and not hasattr(m.mining["s21-pro"], "min_on")
    assert hasattr(m.gpu["h100"], "ramp_up") and not hasattr(m.mining["s21-pro"], "ramp_up")
    assert len(m.import_limit) == n


def test_unit_without_live_commitment_is_continuous():
    m = model.build(make_site([fleet(ramp_mw_per_hour=3.0)]), model.Structure(12))
    assert _count(m, pyo.Var, integer=True) == 0                # an LP
    assert _count(m, pyo.Var) == 12
    assert hasattr(m.mining["f"], "ramp_up") and not hasattr(m.mining["f"], "on")


@pytest.mark.parametrize("kw", [{"min_load_fraction": 0.2}, {"min_on_hours": 2}, {"min_off_hours": 2},
                                {"restart_cost_usd": 1.0}])
def test_any_live_commitment_adds_binaries(kw):
    site = make_site([fleet(**kw)])
    assert commitment.is_switched(site.mining[0].commitment)
    m = model.build(site, model.Structure(6))
    assert _count(m, pyo.Var, integer=True) == 18


def test_power_bounds_are_the_capacities(default_site):
    m = model.build(default_site, model.Structure(4))
    assert m.mining["s21-pro"].mw[0].bounds == (0.0, 80.0)
    assert m.gpu["h100"].mw[0].bounds == pytest.approx((0.0, 51.0 - 29.9625))
    assert pyo.value(m.gpu["h100"].committed_mw[0]) == pytest.approx(29.9625)


def test_set_data_loads_prices_hashprice_and_state_without_rebuilding(default_site):
    m = model.build(default_site, model.Structure(3))
    n_before = _count(m, pyo.Constraint)
    state = {"s19j-pro": UnitState(on=True, power_mw=20.0, hours_in_state=1)}
    model.set_data(m, default_site, Inputs(hourly([10.0, 20.0, 30.0]), 50.0, state))
    assert [pyo.value(m.price[t]) for t in m.T] == [10.0, 20.0, 30.0]
    # by hand from the site file: 50 USD/PH/day / 24 h x 1000 / (15 J/TH x 1.03 cooling) x (1 - 2% pool fee)
    assert pyo.value(m.mining["s21-pro"].value_usd_per_mwh) == pytest.approx(50 / 24 * 1000 / (15 * 1.03) * 0.98)
    b = m.mining["s19j-pro"]
    assert pyo.value(b.init_mw) == 20.0
    assert [pyo.value(b.must_on[t]) for t in m.T] == [1, 0, 0]           # min on 2 h, on for 1 h
    assert _count(m, pyo.Constraint) == n_before
    with pytest.raises(ValueError, match="3-interval model"):
        model.set_data(m, default_site, Inputs(hourly([1.0]), 50.0, state))


def test_a_long_horizon_compiles_without_deep_recursion(default_site):
    # the objective's constant (contract cost, committed revenue... of every interval) is a chain of sums as long as
    # the horizon; walking it by recursion failed beyond Python's 1,000 frames (a year's solve raised
    # RecursionError). 1,500 hours compile, and the constant equals Pyomo's own evaluation of it.
    import sys

    import numpy as np
    from pyomo.repn.standard_repn import generate_standard_repn

    from optimizer.compiled import Compiled

    n = 1500
    assert n > sys.getrecursionlimit()
    inputs = Inputs(hourly(np.full(n, 40.0)), 60.0)
    m = model.build(default_site, model.Structure.of(default_site, inputs))
    model.set_data(m, default_site, inputs)
    compiled = Compiled(m)
    offset = compiled.offset(compiled.param_vector(model.param_values(m, default_site, inputs)))
    objective = next(iter(m.component_data_objects(pyo.Objective, active=True)))
    assert offset == pytest.approx(generate_standard_repn(objective.expr, compute_values=True).constant, rel=1e-12)
