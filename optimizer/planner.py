"""Solve many horizons of one site, rebuilding the model only when its structure changes.

Structure is (number of intervals, interval length): a rolling backtest or a sweep reuses one Pyomo model and one
persistent HiGHS instance per structure and only pushes new prices, hashprice and initial state into mutable
parameters; results are the same as a fresh build (tested).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd
import pyomo.environ as pyo
import xarray as xr

from optimizer import data, diagnose, model, results, solve
from optimizer.errors import InfeasibleError, InputError, NoSolutionError
from optimizer.fallback import strike_schedule
from optimizer.site import Site
from optimizer.state import UnitState, resolve, state_to_json


class Planner:
    """A site's model cache: ``solve`` one horizon after another; each call returns a checked-ready dataset."""

    def __init__(self, site: Site, options: solve.SolverOptions | None = None, *, allow_sla_breach: bool = False):
        self.site = site
        self.options = options or solve.SolverOptions()
        self.allow_sla_breach = allow_sla_breach
        self._cache: dict[tuple[int, float], tuple[pyo.ConcreteModel, solve.Solver | None]] = {}
        self.builds = 0
        self.highs_seconds = 0.0          # time inside HiGHS over all solves, as HiGHS measures it

    def solve(self, prices: pd.Series, hashprice: float, initial_state: Mapping[str, UnitState] | None = None, *,
              fallback: bool = False, export_model: str | Path | None = None,
              load_cap_mw: np.ndarray | None = None, peak_probability: np.ndarray | None = None,
              reserve_prices: Mapping[str, np.ndarray] | None = None) -> xr.Dataset:
        """Solve the horizon of ``prices`` (hourly or 15-minute, tz-aware index) from ``initial_state``.

        ``load_cap_mw`` (per interval, MW): emergency caps; ``peak_probability`` (per interval): 4CP peak chances.
        Raises ``InfeasibleError`` naming the conflicting limits; with no usable solution, returns the strike-rule
        fallback (``attrs["fallback"] = 1``) when ``fallback``, else raises ``NoSolutionError``.
        """
        site, options = self.site, self.options
        if not (np.isfinite(hashprice) and hashprice > 0):
            raise InputError(f"hashprice must be a positive number of USD/PH/day, got {hashprice!r}",
                             field="hashprice")
        state = resolve(site, initial_state)
        key = (len(prices), data.interval_hours(pd.DatetimeIndex(prices.index)))
        t0 = time.perf_counter()
        if key not in self._cache:
            self._cache[key] = (model.build(site, key[0], dt_hours=key[1], allow_sla_breach=self.allow_sla_breach),
                                None)
            self.builds += 1
        m, solver = self._cache[key]
        inputs = model.Inputs(prices.to_numpy(dtype=float), float(hashprice), state, load_cap_mw, peak_probability,
                              reserve_prices)
        model.set_data(m, site, inputs)
        build_s = time.perf_counter() - t0
        if export_model is not None:
            solve.export_model(m, export_model)
        t0 = time.perf_counter()
        try:
            if solver is None:
                solver = solve.Solver(m, options)
                self._cache[key] = (m, solver)
            translate_s = time.perf_counter() - t0
            report = solver.solve()
        except Exception as exc:  # noqa: BLE001 - a solver crash is handled like "no solution"
            self._cache.pop(key, None)
            translate_s = time.perf_counter() - t0
            report = solve.SolveReport("error", f"{type(exc).__name__}: {exc}", None, None, None, 0.0, 0.0, 0)
        self.highs_seconds += report.highs_seconds
        if report.status == "infeasible":
            found = diagnose.conflicts(site, prices, hashprice, state, inputs)
            raise InfeasibleError(diagnose.describe(site, state, found))
        fell_back = ""
        t0 = time.perf_counter()
        if report.usable(options.accept_gap):
            ds = results.read(m, site, pd.DatetimeIndex(prices.index), hashprice)
        else:
            gap = f", gap {report.mip_gap:.3g} above the accepted {options.accept_gap:g}" if report.mip_gap else ""
            fell_back = (f"HiGHS returned no usable solution ({report.status}, {report.termination}{gap}) after "
                         f"{report.solve_seconds:.2f} s; time limit {options.time_limit_seconds:g} s")
            if not fallback:
                raise NoSolutionError(fell_back)
            ds = strike_schedule(site, prices, hashprice, state, inputs.caps(site), peak_probability)
        read_s = time.perf_counter() - t0
        ds.attrs.update({
            "site": site.name,
            "site_source": site.source,
            "site_sha256": site.sha256,
            "settlement_point": site.settlement_point,
            "hashprice_usd_per_ph_day": float(hashprice),
            "status": "fallback" if fell_back else report.status,
            "fallback": int(bool(fell_back)),
            "fallback_reason": fell_back,
            "allow_sla_breach": int(self.allow_sla_breach),
            "termination": report.termination,
            "objective_usd": _num(report.objective_usd),
            "bound_usd": _num(report.bound_usd),
            "mip_gap": _num(report.mip_gap),
            "mip_rel_gap_option": options.mip_rel_gap,
            "time_limit_seconds": options.time_limit_seconds,
            "nodes": report.nodes,
            "build_seconds": build_s,
            "translate_seconds": translate_s,
            "solve_seconds": report.solve_seconds,
            "highs_seconds": report.highs_seconds,
            "read_seconds": read_s,
            "initial_state_json": state_to_json(state),
            "curtail_version": package_version(),
        })
        return ds


def _num(x: float | None) -> float:
    return float(x) if x is not None else float("nan")


@functools.cache
def package_version() -> str:
    try:
        return version("curtail")
    except PackageNotFoundError:
        return "unknown"
