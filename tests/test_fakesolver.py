"""Orchestration with a fake solver (``tests.support.FakeSolver``): the fallback path, a solver that crashes, exit 5
through the CLI, and the backtest loop's state carry-over, without waiting for HiGHS.

The fake is injected where the code makes its solvers: ``Planner(site, solver_factory=...)``, or, for the CLI and
the backtest (which make their own planners), by replacing ``optimizer.solve.HighsSolver``, the default factory
that :class:`optimizer.planner.ModelCache` looks up when it is created. Real shipped data throughout; the 4CP
charge is switched off where it is not the subject (its peak model takes seconds to fit).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from support import FakeSolver, FakeSolverFactory, full_power, units_off
from typer.testing import CliRunner

import optimizer
from optimizer import model, solve
from optimizer.backtest import Market, Settings, run
from optimizer.cli import app
from optimizer.errors import InternalError, NoSolutionError
from optimizer.inputs import Inputs
from optimizer.model.commitment import intervals
from optimizer.planner import Planner
from optimizer.scheduling import horizon_prices, verify
from optimizer.site import FourCP

DAY = dt.date(2022, 7, 20)
HASHPRICE = 60.0


@pytest.fixture(scope="module")
def site(default_site) -> optimizer.Site:
    """The default site without 4CP."""
    return dataclasses.replace(default_site, fourcp=FourCP())


@pytest.fixture(scope="module")
def prices(site) -> pd.Series:
    return horizon_prices(site, DAY, None, 24).prices          # ERCOT day-ahead HB_WEST, 48 hours


def test_fake_plan_is_read_back_as_the_plan_it_gives(site, prices):
    fake = FakeSolver.factory(solution=units_off("s19j-pro"), objective_usd=123.0)
    ds = Planner(site, solver_factory=fake).solve(Inputs(prices, HASHPRICE))
    power = ds["power_mw"].to_pandas()
    assert (power["s21-pro"] == 80.0).all() and (power["s19j-pro"] == 0.0).all()
    assert np.allclose(power["h100"], site.gpu[0].committed_mw + site.gpu[0].flexible_mw)
    assert ds.attrs["status"] == "optimal" and ds.attrs["objective_usd"] == 123.0 and ds.attrs["fallback"] == 0
    assert len(fake.solvers) == 1 and len(fake.pushed) == 1
    # what the solver was given: the mining value of this hashprice, the prices, the default state (all on)
    m = fake.solvers[0].model
    pushed = fake.pushed[0]
    assert pushed[m.mining["s21-pro"].value_usd_per_mwh] == pytest.approx(site.mining[0].value_usd_per_mwh(HASHPRICE))
    np.testing.assert_array_equal(pushed[m.price], prices.to_numpy())
    assert pushed[m.mining["s19j-pro"].init_on] == 1 and pushed[m.mining["s19j-pro"].init_mw] == 40.0


@pytest.mark.parametrize(("status", "gap"), [("no_solution", None), ("feasible", 0.05)])
def test_no_usable_solution_gives_the_flagged_strike_rule_fallback(site, prices, status, gap):
    fake = FakeSolver.factory(status=status, mip_gap=gap, solution=full_power)
    inputs = Inputs(prices, HASHPRICE)
    planner = Planner(site, solve.SolverOptions(accept_gap=0.01), solver_factory=fake)
    ds = planner.solve(inputs, fallback=True)
    assert ds.attrs["fallback"] == 1 and ds.attrs["status"] == "fallback"
    reason = ds.attrs["fallback_reason"]
    assert f"({status}, fake {status}" in reason
    assert ("gap 0.05 above the accepted 0.01" in reason) == (gap is not None)
    verify(site, ds, inputs)                         # the fallback holds every hard limit (independent checker)
    # the strike rule, not the fake's full-power plan: at 60 USD/PH/day the S19j Pro is worth 80.6 USD/MWh; it is
    # off in every hour priced above that (103-687 USD/MWh from 12:00 on the day) and full in the cheap morning
    value = site.mining[1].value_usd_per_mwh(HASHPRICE)
    s19 = ds["power_mw"].sel(asset="s19j-pro").to_numpy()
    dear = prices.to_numpy() > value
    assert value == pytest.approx(80.63, abs=0.01) and dear.sum() == 19
    assert (s19[dear] == 0.0).all() and (s19[:11] == 40.0).all()
    with pytest.raises(NoSolutionError, match=f"HiGHS returned no usable solution \\({status}"):
        planner.solve(inputs, fallback=False)
    assert len(fake.solvers) == 1                    # a solver that answers is kept across solves


def test_a_solver_that_raises_is_dropped_reported_and_replaced(site, prices):
    crash = FakeSolver.factory(error=RuntimeError("boom"))
    planner = Planner(site, solver_factory=crash)
    inputs = Inputs(prices, HASHPRICE)
    plan = planner.plan(inputs, fallback=True)
    assert plan.status == "fallback" and plan.report.status == "error"
    assert "RuntimeError: boom" in plan.fallback_reason
    with pytest.raises(NoSolutionError, match="RuntimeError: boom"):
        planner.plan(inputs)
    assert len(crash.solvers) == 2 and planner.builds == 2      # dropped after the crash, made afresh for the next
    refused = FakeSolverFactory(error_on_create=MemoryError())
    with pytest.raises(MemoryError):                 # running out of memory is not a solver failure to paper over
        Planner(site, solver_factory=refused).plan(inputs, fallback=True)


def test_a_solver_that_cannot_be_made_leaves_no_solution_to_read(site, prices):
    """A solver factory that raises: the solve is reported as an error with no solver, and reading a solution from
    it is a named internal error (a caller that reads values without checking the report), not an AttributeError."""
    planner = Planner(site, solver_factory=FakeSolverFactory(error_on_create=RuntimeError("cannot load")))
    inputs = Inputs(prices, HASHPRICE)
    structure = planner.structure(inputs)
    solved = planner.cache.solve(structure, lambda: model.build(site, structure),
                                 lambda m: model.param_values(m, site, inputs))
    assert solved.report.status == "error" and solved.solver is None
    assert solved.report.termination == "RuntimeError: cannot load"
    with pytest.raises(InternalError, match=r"the solve failed \(RuntimeError: cannot load\)"):
        solved.values(solved.model.mining["s19j-pro"].mw)
    assert planner.plan(inputs, fallback=True).status == "fallback"     # the planner checks the report first


def test_cli_writes_the_fallback_and_exits_5_when_the_solver_gives_nothing(tmp_path, monkeypatch, site):
    fake = FakeSolver.factory(status="no_solution")
    monkeypatch.setattr(solve, "HighsSolver", fake)
    site_file = tmp_path / "no-4cp.toml"
    text = optimizer.default_site_path().read_text()
    assert "charge_usd_per_kw_year = 100.0" in text
    site_file.write_text(text.replace("charge_usd_per_kw_year = 100.0", "charge_usd_per_kw_year = 0.0"))
    out = tmp_path / "s.json"
    r = CliRunner().invoke(app, ["schedule", "--site", str(site_file), "--day", DAY.isoformat(), "--out", str(out)])
    assert r.exit_code == 5, r.output
    assert "FALLBACK" in r.output and len(fake.solvers) == 1
    doc = json.loads(out.read_text())
    assert doc["summary"]["fallback"] == 1 and "no_solution" in doc["summary"]["fallback_reason"]
    assert len(doc["schedule"]) == 24


@pytest.fixture(scope="module")
def market() -> Market:
    return Market.shipped("HB_WEST")


def _three_days(solves: dict):
    """The fake's plans, one per day of a three-day run (the solution follows the number of solves so far): day 1,
    the S19j Pro off from 20:00; day 2, off until 23:00 and on at full power in the last hour; day 3, every unit at
    full power. Every other unit is at full power throughout."""
    def solution(var):
        out = full_power(var)
        block = var.parent_block()
        if block.parent_component().local_name != "mining" or block.index() != "s19j-pro":
            return out
        out = out.copy()
        if solves["n"] == 1:
            out[..., 20:] = 0.0
        elif solves["n"] == 2:
            out[..., :23] = 0.0
            out[..., 24:] = 0.0
        return out
    return solution


def test_backtest_carries_each_day_end_state_into_the_next_plan(site, market, monkeypatch):
    count = {"n": 0}

    class Counting(FakeSolver):
        def solve(self, values):
            count["n"] += 1
            return super().solve(values)

    fake = FakeSolverFactory(Counting, {"solution": _three_days(count)})
    monkeypatch.setattr(solve, "HighsSolver", fake)
    start = dt.date(2023, 8, 14)
    r = run(site, start, start + dt.timedelta(days=2), market,
            Settings(policies=("schedule",), forecast_method="naive"))
    assert count["n"] == 3 and len(fake.solvers) == 1          # one 48-hour structure, one plan per day
    ds = r.intervals.sel(policy="schedule")
    times = pd.DatetimeIndex(ds["time"].values).tz_localize("UTC")
    local_day = times.tz_convert(site.timezone).date
    flex = ds["power_mw"].to_pandas()
    flex["h100"] = flex["h100"] - ds["committed_mw"].to_numpy()[:, 0]      # the cluster's switchable part
    on = ds["on"].to_pandas()
    m = fake.solvers[0].model
    dt_h = float(ds.attrs["interval_hours"])
    for k in (1, 2):                                  # day k+1's plan starts where day k really ended
        pushed = fake.pushed[k]
        last = np.flatnonzero(local_day == start + dt.timedelta(days=k - 1))[-1]
        for unit in site.mining:
            b = m.mining[unit.name]
            was_on = bool(on[unit.name].iloc[last])
            assert pushed[b.init_on] == int(was_on), (k, unit.name)
            assert pushed[b.init_mw] == pytest.approx(flex[unit.name].iloc[last] if was_on else 0.0, abs=1e-9)
            # hours in state: the run of equal on/off values that ends the day, counted by hand
            run_len = 0
            while run_len <= last and bool(on[unit.name].iloc[last - run_len]) == was_on:
                run_len += 1
            hours = run_len * dt_h
            c = unit.commitment
            hold = intervals((c.min_on_hours if was_on else c.min_off_hours) - hours, 1.0)
            want_on, want_off = (hold, 0) if was_on else (0, hold)
            assert pushed[b.must_on][:4].tolist() == [1.0 if i < want_on else 0.0 for i in range(4)], (k, unit.name)
            assert pushed[b.must_off][:4].tolist() == [1.0 if i < want_off else 0.0 for i in range(4)], (k, unit.name)
        g = m.gpu["h100"]
        assert pushed[g.init_mw] == pytest.approx(flex["h100"].iloc[last], abs=1e-9)
    # by hand: day 1 ends with the S19j Pro off since 20:00 (4 h, past its 1-hour minimum off time); day 2 ends
    # with it switched on at 23:00, running for at most 1 h of its 2-hour minimum on time: day 3 must keep it on in
    # its first hour; it then runs all of day 3 and ends on for 1 + 24 hours
    s19 = m.mining["s19j-pro"]
    assert fake.pushed[1][s19.init_on] == 0 and fake.pushed[1][s19.init_mw] == 0.0
    assert fake.pushed[1][s19.must_off].sum() == 0
    assert fake.pushed[2][s19.init_on] == 1 and fake.pushed[2][s19.init_mw] > 0.0
    assert fake.pushed[2][s19.must_on].tolist()[:3] == [1.0, 0.0, 0.0]
    end = r.end_states["schedule"]["s19j-pro"]
    assert end.on and end.power_mw == pytest.approx(40.0) and end.hours_in_state == pytest.approx(25.0)


# ----------------------------------------------------------------------------------------------------------------
# start-up: what a process imports (the orchestration around the first solve), and xarray's Dask stand-in

HEAVY = ("dask", "dask.array", "scipy", "scipy.stats", "sklearn", "matplotlib", "netCDF4", "h5netcdf", "distributed")


def _imported_after(code: str, modules: tuple[str, ...] = HEAVY) -> set[str]:
    import subprocess
    import sys

    probe = f"{code}\nimport sys\nprint('LOADED:' + ' '.join(m for m in {modules!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    return set(out.rsplit("LOADED:", 1)[1].split())


def test_import_optimizer_and_the_cli_load_no_heavy_module():
    assert _imported_after("import optimizer") == set()
    assert _imported_after("import optimizer.cli") == set()
    # curtail --help builds every command's help (policy names, default day) without the data stack either
    core = ("pandas", "pyomo", "xarray", "numpy", "highspy")
    help_probe = ("import sys\nfrom optimizer.cli import main\nsys.argv = ['curtail', '--help']\n"
                  "try:\n    main()\nexcept SystemExit:\n    pass\n")
    assert _imported_after(help_probe, core) == set()
    # a whole schedule, read back into a dataset and checked: still no Dask, SciPy, scikit-learn or plotting
    assert _imported_after("import optimizer\nds = optimizer.schedule(optimizer.default_site_path())\n"
                           "assert ds.attrs['status'] == 'optimal'") == set()


def test_xarray_still_recognises_dask_arrays_after_import_optimizer():
    """The stand-in answers "not a Dask array" only while dask.array is not imported (when nothing can be one)."""
    code = """
import numpy as np, xarray as xr
import optimizer
ds = xr.Dataset({"x": ("t", np.arange(4.0))})
import dask.array as da
lazy = xr.DataArray(da.arange(4.0, chunks=2), dims="t")
assert lazy.chunks == ((2, 2),), lazy.chunks
assert float((lazy * 2).sum().compute()) == 12.0
both = xr.Dataset({"lazy": lazy, "eager": ds["x"]})
assert both.chunks == {"t": (2, 2)} and both["eager"].chunks is None
assert float(both.compute()["lazy"].sum()) == 6.0
assert "dask.array<chunksize=(2,)" in repr(both)          # xarray's repr asks isinstance(data, dask Array type)
"""
    assert "dask.array" in _imported_after(code)
