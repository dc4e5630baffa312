"""Solve many horizons of one site, building each model structure once.

:class:`ModelCache` keeps one Pyomo model and one solver per structure (number and length of intervals, and for
two-stage models the number of scenarios); a solve only pushes new parameter values. :class:`Planner` (one
deterministic horizon) and :class:`optimizer.stochastic.ScenarioPlanner` (two-stage) share it. The default
solver hands each structure to HiGHS once in matrix form and pushes data as vectors
(:class:`optimizer.solve.HighsSolver`); results equal a fresh build's (tested).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pyomo.environ as pyo
import xarray as xr

from optimizer import diagnose, model, results, solve
from optimizer.errors import InfeasibleError, InputError, InternalError, NoSolutionError
from optimizer.inputs import Inputs
from optimizer.model import ParamValues
from optimizer.site import Site
from optimizer.state import state_to_json


@dataclass(frozen=True)
class Solved:
    """One solve through the cache: the model, its solver (for reading values; ``None`` when making it raised,
    reported with status ``error``), how it went, and timings."""

    model: pyo.ConcreteModel
    solver: solve.Solver | None
    report: solve.SolveReport
    build_seconds: float
    translate_seconds: float

    def values(self, var: Any) -> np.ndarray:
        """The solution of a Var component as an array of its index shape (read by the solver)."""
        if self.solver is None:
            raise InternalError(f"no solver to read a solution from: the solve failed ({self.report.termination})")
        return self.solver.values(var)


class ModelCache:
    """One built model and one solver per structure key. ``solver_factory(model, options)`` makes the solver
    (default :class:`optimizer.solve.HighsSolver`); a solver that raises is dropped and reported as an error."""

    def __init__(self, options: solve.SolverOptions, solver_factory: solve.SolverFactory | None = None):
        self.options = options
        self.solver_factory = solver_factory or solve.HighsSolver
        self._entries: dict[Hashable, tuple[pyo.ConcreteModel, solve.Solver | None]] = {}
        self.builds = 0
        self.highs_seconds = 0.0          # time inside HiGHS over all solves, as HiGHS measures it

    def model(self, key: Hashable, build: Callable[[], pyo.ConcreteModel]) -> pyo.ConcreteModel:
        if key not in self._entries:
            self._entries[key] = (build(), None)
            self.builds += 1
        return self._entries[key][0]

    def solve(self, key: Hashable, build: Callable[[], pyo.ConcreteModel],
              values: Callable[[pyo.ConcreteModel], ParamValues]) -> Solved:
        t0 = time.perf_counter()
        m = self.model(key, build)
        vals = values(m)
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        solver = self._entries[key][1]
        try:
            if solver is None:
                solver = self.solver_factory(m, self.options)
                self._entries[key] = (m, solver)
            translate_s = time.perf_counter() - t0
            report = solver.solve(vals)
        except (MemoryError, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - a solver crash is reported like "no solution", and recorded
            self._entries.pop(key, None)
            translate_s = time.perf_counter() - t0
            report = solve.SolveReport("error", f"{type(exc).__name__}: {exc}", None, None, None, 0.0, 0.0, 0)
        self.highs_seconds += report.highs_seconds
        return Solved(m, solver, report, build_s, translate_s)


class Planner:
    """A site's deterministic planner: ``solve`` one horizon after another; each call returns a dataset."""

    def __init__(self, site: Site, options: solve.SolverOptions | None = None, *, allow_sla_breach: bool = False,
                 solver_factory: solve.SolverFactory | None = None):
        self.site = site
        self.options = options or solve.SolverOptions()
        self.allow_sla_breach = allow_sla_breach
        self._refuse_unmodelled()
        self.cache = ModelCache(self.options, solver_factory)

    @property
    def builds(self) -> int:
        return self.cache.builds

    @property
    def highs_seconds(self) -> float:
        return self.cache.highs_seconds

    def _refuse_unmodelled(self) -> None:
        capped = [g.name for g in self.site.gpu if g.committed_min_mw < g.committed_mw]
        if self.allow_sla_breach and capped:
            raise InputError(f"SLA breach cannot be allowed for a cluster whose committed GPUs may be capped "
                             f"({', '.join(capped)}: sla_throughput_fraction < 1 with a power-cap curve): a shortfall "
                             "of capped committed load is not modelled", field="allow_sla_breach")

    def structure(self, inputs: Inputs) -> model.Structure:
        return model.Structure.of(self.site, inputs, allow_sla_breach=self.allow_sla_breach)

    def plan(self, inputs: Inputs, *, fallback: bool = False, export_model: str | Path | None = None) -> Plan:
        """Solve the horizon of ``inputs`` (hourly or 15-minute) and return its decisions as arrays (no dataset:
        the rolling loops use this). Raises ``InfeasibleError`` naming the conflicting limits; with no usable
        solution, returns the strike-rule fallback's decisions (``fallback_reason`` set) when ``fallback``, else
        raises ``NoSolutionError``."""
        from optimizer.fallback import strike_schedule

        site, options = self.site, self.options
        structure = self.structure(inputs)
        solved = self.cache.solve(structure, lambda: model.build(site, structure),
                                  lambda m: model.param_values(m, site, inputs))
        if export_model is not None:
            model.apply(model.param_values(solved.model, site, inputs))
            solve.export_model(solved.model, export_model)
        report = solved.report
        if report.status == "infeasible":
            found = diagnose.conflicts(site, inputs)
            raise InfeasibleError(diagnose.describe(site, inputs.resolved_state(site), found))
        t0 = time.perf_counter()
        if report.usable(options.accept_gap):
            return Plan(inputs, results.plan_arrays(solved.model, site, inputs, solved.values), report, "",
                        solved.build_seconds, solved.translate_seconds, time.perf_counter() - t0)
        gap = f", gap {report.mip_gap:.3g} above the accepted {options.accept_gap:g}" if report.mip_gap else ""
        reason = (f"HiGHS returned no usable solution ({report.status}, {report.termination}{gap}) after "
                  f"{report.solve_seconds:.2f} s; time limit {options.time_limit_seconds:g} s")
        if not fallback:
            raise NoSolutionError(reason)
        ds = strike_schedule(site, inputs)
        return Plan(inputs, results.arrays_of(ds, site), report, reason, solved.build_seconds,
                    solved.translate_seconds, time.perf_counter() - t0)

    def solve(self, inputs: Inputs, *, fallback: bool = False, export_model: str | Path | None = None) -> xr.Dataset:
        """Solve the horizon of ``inputs`` and return the schedule dataset (``attrs``: solver facts; ``fallback``
        1 with ``fallback_reason`` when the strike rule stood in). Raises as :meth:`plan` does."""
        site, options = self.site, self.options
        from optimizer.realtime import strike_table

        plan = self.plan(inputs, fallback=fallback, export_model=export_model)
        t0 = time.perf_counter()
        ds = plan.dataset(site)
        strikes = strike_table(site, plan).for_plan(plan.arrays["on"])
        ds["strike_usd_per_mwh"] = (("time", "asset"), strikes)
        ds["strike_usd_per_mwh"].attrs.update({"units": "USD/MWh", "meaning": "a site controller curtails the unit "
                                               "in a real-time interval whose price is above it"})
        report = plan.report
        ds.attrs.update({
            "site": site.name,
            "site_source": site.source,
            "site_sha256": site.sha256,
            "settlement_point": site.settlement_point,
            "hashprice_usd_per_ph_day": float(inputs.hashprice_usd_per_ph_day),
            "status": "fallback" if plan.fallback_reason else report.status,
            "fallback": int(bool(plan.fallback_reason)),
            "fallback_reason": plan.fallback_reason,
            "allow_sla_breach": int(self.allow_sla_breach),
            "termination": report.termination,
            "objective_usd": _num(report.objective_usd),
            "bound_usd": _num(report.bound_usd),
            "mip_gap": _num(report.mip_gap),
            "mip_rel_gap_option": options.mip_rel_gap,
            "accept_gap_option": options.accept_gap,
            "threads_option": options.threads,
            "time_limit_seconds": options.time_limit_seconds,
            "nodes": report.nodes,
            "build_seconds": plan.build_seconds,
            "translate_seconds": plan.translate_seconds,
            "solve_seconds": report.solve_seconds,
            "highs_seconds": report.highs_seconds,
            "read_seconds": plan.read_seconds + time.perf_counter() - t0,
            "initial_state_json": state_to_json(inputs.resolved_state(site)),
            "curtail_version": package_version(),
        })
        return ds


@dataclass(frozen=True)
class Plan:
    """One solve's decisions as arrays (the keyword arguments of :func:`optimizer.results.assemble`: a
    :class:`~optimizer.results.Decisions`, or the part of it a stored re-plan keeps), with the inputs it was made
    from and how the solve went; ``fallback_reason`` is set when the strike rule stood in."""

    inputs: Inputs
    arrays: Mapping[str, Any]
    report: solve.SolveReport
    fallback_reason: str
    build_seconds: float
    translate_seconds: float
    read_seconds: float

    @property
    def status(self) -> str:
        return "fallback" if self.fallback_reason else self.report.status

    def dataset(self, site: Site) -> xr.Dataset:
        return results.assemble(site, self.inputs.times, **self.arrays, **results.context(site, self.inputs))


def _num(x: float | None) -> float:
    return float(x) if x is not None else float("nan")


@functools.cache
def package_version() -> str:
    try:
        return version("curtail")
    except PackageNotFoundError:
        return "unknown"
