"""Helpers for tests: small sites from dictionaries, hourly price series, and a checked solve."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

import optimizer
import optimizer.scheduling as schedule_module
from optimizer.inputs import Inputs

START = "2022-07-20T05:00:00Z"      # local midnight (CDT) of a real day


def hourly(values, start: str = START) -> pd.Series:
    """An hourly UTC price series (USD/MWh) starting at ``start``."""
    idx = pd.date_range(pd.Timestamp(start), periods=len(values), freq="1h", name="timestamp")
    return pd.Series(np.asarray(values, dtype=float), index=idx, name="price_usd_per_mwh")


def make_site(mining: list[dict] | None = None, gpu: list[dict] | None = None, *, import_limit_mw: float = 1000.0,
              block_mw: float = 0.0, contract_price: float = 0.0, sellback: bool = True) -> optimizer.Site:
    raw: dict[str, Any] = {"name": "test-site", "timezone": "America/Chicago", "settlement_point": "HB_WEST",
                           "grid": {"import_limit_mw": import_limit_mw},
                           "contract": {"block_mw": block_mw, "price_usd_per_mwh": contract_price,
                                        "sellback": sellback}}
    if mining:
        raw["mining"] = mining
    if gpu:
        raw["gpu"] = gpu
    return optimizer.site_from_dict(raw)


def fleet(name: str = "f", capacity_mw: float = 10.0, efficiency_j_per_th: float = 24.0, **kw) -> dict:
    """A fleet; at hashprice 100 USD/PH/day and 24 J/TH, one MWh mines 100/24*1000/24 = 173.61 USD."""
    return {"name": name, "capacity_mw": capacity_mw, "efficiency_j_per_th": efficiency_j_per_th, **kw}


INPUT_FIELDS = {"initial_state": "state", "load_cap_mw": "load_cap_mw", "peak_probability": "peak_probability",
                "reserve_prices": "reserve_prices", "job_progress": "job_progress",
                "demand_fraction": "demand_fraction", "sla_shortfall_before_mwh": "sla_shortfall_before_mwh"}


def inputs(prices: pd.Series, hashprice: float = 100.0, **kw) -> Inputs:
    """The Inputs of a solve: ``initial_state``, ``load_cap_mw``, ``peak_probability``, ``reserve_prices``."""
    return Inputs(prices, hashprice, **{INPUT_FIELDS[k]: v for k, v in kw.items()})


def solve(site: optimizer.Site, prices: pd.Series, hashprice: float = 100.0, **kw):
    """Solve exactly the intervals of ``prices`` (checked at run time and by the conftest wrapper) and return the
    dataset. Keywords: the Inputs fields of :func:`inputs`, and ``optimize``'s options."""
    data = {k: kw.pop(k) for k in list(kw) if k in INPUT_FIELDS}
    return schedule_module.optimize(site, inputs(prices, hashprice, **data), **kw)


def power(ds, asset: str) -> np.ndarray:
    return ds["power_mw"].sel(asset=asset).to_numpy()


# ----------------------------------------------------------------------------------------------------------------
# A fake solver, for orchestration tests that must not wait for HiGHS


def var_shape(var) -> tuple[int, ...]:
    """Index shape of a Pyomo Var component: () scalar, (n,) one set, (n1, n2) a product of two sets."""
    if not var.is_indexed():
        return ()
    return tuple(len(s) for s in var.index_set().subsets())


def all_off(var) -> np.ndarray:
    """Every variable at 0: every unit off, nothing served (committed GPU load is a constant, not a variable)."""
    return np.zeros(var_shape(var))


def full_power(var) -> np.ndarray:
    """Every unit on at full power with no start or stop in the horizon (``mw`` and ``committed_mw`` at their
    upper bounds, ``on`` 1), every other variable 0."""
    name = var.local_name
    if name in ("mw", "committed_mw"):
        return np.array([v.ub for v in var.values()], dtype=float).reshape(var_shape(var))
    return np.full(var_shape(var), 1.0 if name == "on" else 0.0)


def units_off(*names: str, base=full_power):
    """``base`` (default :func:`full_power`) except the named units (mining fleets or GPU clusters' flexible part),
    which are off at 0 MW in every interval."""
    def solution(var) -> np.ndarray:
        block = var.parent_block()
        if block is not None and block.parent_component().local_name in ("mining", "gpu") and block.index() in names:
            return np.zeros(var_shape(var))
        return base(var)
    return solution


class FakeSolver:
    """Stands in for :class:`optimizer.solve.HighsSolver` behind ``Planner(site, solver_factory=...)``: HiGHS is
    never called. ``solve`` records the parameter values it is given (``pushed``: one ``ComponentMap`` per solve)
    and returns a report with the configured ``status`` ("optimal", "feasible", "infeasible", "no_solution");
    ``values(var)`` gives ``solution(var)`` (default :func:`all_off`) when the status has a solution, else raises
    like the real solver. ``error``: an exception raised by ``solve`` (a solver crash). Use
    :meth:`factory` to configure it and to see every solver a cache made."""

    def __init__(self, model, options=None, *, status: str = "optimal", solution=None, objective_usd: float = 0.0,
                 mip_gap: float | None = None, error: BaseException | None = None):
        self.model, self.options = model, options
        self.status, self.solution, self.error = status, solution or all_off, error
        self.objective_usd, self.mip_gap = objective_usd, mip_gap
        self.pushed: list = []

    def solve(self, values):
        from optimizer.solve import SolveReport

        self.pushed.append(values)
        if self.error is not None:
            raise self.error
        has = self.status in ("optimal", "feasible")
        gap = self.mip_gap if self.mip_gap is not None else (0.0 if self.status == "optimal" else None)
        return SolveReport(status=self.status, termination=f"fake {self.status}",
                           objective_usd=self.objective_usd if has else None,
                           bound_usd=self.objective_usd if has else None, mip_gap=gap if has else None,
                           solve_seconds=0.0, highs_seconds=0.0, nodes=0)

    def values(self, var) -> np.ndarray:
        if self.status not in ("optimal", "feasible") or self.error is not None:
            raise RuntimeError("no solution to read")
        out = np.asarray(self.solution(var), dtype=float)
        return np.broadcast_to(out, var_shape(var)).copy()

    @classmethod
    def factory(cls, **config) -> FakeSolverFactory:
        """A ``solver_factory`` making FakeSolvers with ``config`` (the keyword arguments of the constructor)."""
        return FakeSolverFactory(cls, config)


class FakeSolverFactory:
    """``factory(model, options) -> FakeSolver``; keeps every solver it made (``solvers``), so a test can see how
    many a cache needed and what each solve was given (``pushed``: every solve's parameter values, in order).
    ``error_on_create``: raised when a solver is made (a solver that cannot load the model)."""

    def __init__(self, cls=FakeSolver, config: dict | None = None, *, error_on_create: BaseException | None = None):
        self.cls, self.config, self.error_on_create = cls, dict(config or {}), error_on_create
        self.solvers: list[FakeSolver] = []

    def __call__(self, model, options=None) -> FakeSolver:
        if self.error_on_create is not None:
            raise self.error_on_create
        s = self.cls(model, options, **self.config)
        self.solvers.append(s)
        return s

    @property
    def pushed(self) -> list:
        return [v for s in self.solvers for v in s.pushed]
