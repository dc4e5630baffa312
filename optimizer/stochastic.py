"""Scheduling under price uncertainty: a two-stage model over N price scenarios.

The day's commitment decisions (which fleets and clusters are on in each interval) are shared by every scenario;
power levels adapt per scenario; the objective is the expected profit, optionally blended with the CVaR of the
profit (see :func:`optimizer.model.build_scenarios`). Scenarios come from the forecaster's quantiles
(:func:`quantile_scenarios`) or from the caller (any hourly price paths, e.g. historical analogue days).
Results carry a ``scenario`` dimension.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pyomo.environ as pyo
import xarray as xr

from optimizer import data, model, results, solve
from optimizer.errors import InfeasibleError, InputError, NoSolutionError
from optimizer.site import Site
from optimizer.state import UnitState, resolve, state_to_json


def quantile_scenarios(quantile_prices: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Scenarios from forecast quantiles (columns = quantile levels in (0, 1), rows = intervals): each quantile
    path is a scenario, weighted by the probability mass nearest to it (midpoints between levels)."""
    q = np.array(sorted(float(c) for c in quantile_prices.columns))
    edges = np.concatenate([[0.0], (q[1:] + q[:-1]) / 2, [1.0]])
    weights = np.diff(edges)
    frame = quantile_prices[[c for c in sorted(quantile_prices.columns, key=float)]]
    frame.columns = [f"q{c:g}" for c in q]
    return frame, weights


class ScenarioPlanner:
    """Two-stage solves of one site; one model per (intervals, scenarios, resolution), data updated in place."""

    def __init__(self, site: Site, options: solve.SolverOptions | None = None):
        self.site = site
        self.options = options or solve.SolverOptions()
        self._cache: dict[tuple[int, int, float], tuple[pyo.ConcreteModel, solve.Solver | None]] = {}
        self.highs_seconds = 0.0

    def solve(self, scenario_prices: pd.DataFrame, weights: Sequence[float], hashprice: float,
              initial_state: Mapping[str, UnitState] | None = None, *, cvar_weight: float = 0.0,
              alpha: float = 0.9, load_cap_mw: np.ndarray | None = None,
              peak_probability: np.ndarray | None = None) -> xr.Dataset:
        """Solve; ``scenario_prices``: one column per scenario (USD/MWh), rows the horizon's intervals."""
        site = self.site
        w = np.asarray(weights, dtype=float)
        k = scenario_prices.shape[1]
        if len(w) != k or k < 1 or (w < 0).any() or not np.isclose(w.sum(), 1.0):
            raise InputError(f"need one non-negative weight per scenario summing to 1; got {list(w)}",
                             field="weights")
        if not 0 <= cvar_weight <= 1 or not 0 < alpha < 1:
            raise InputError(f"cvar_weight must be in [0, 1] and alpha in (0, 1); got {cvar_weight}, {alpha}",
                             field="cvar_weight")
        state = resolve(site, initial_state)
        times = pd.DatetimeIndex(scenario_prices.index)
        key = (len(times), k, data.interval_hours(times))
        t0 = time.perf_counter()
        if key not in self._cache:
            self._cache[key] = (model.build_scenarios(site, key[0], k, dt_hours=key[2]), None)
        m, solver = self._cache[key]
        for s in m.S:
            model.set_data(m.scen[s], site, model.Inputs(scenario_prices.iloc[:, s].to_numpy(dtype=float), hashprice,
                                                         state, load_cap_mw, peak_probability))
            m.weight[s].set_value(float(w[s]))
        m.cvar_weight.set_value(float(cvar_weight))
        m.alpha.set_value(float(alpha))
        build_s = time.perf_counter() - t0
        if solver is None:
            solver = solve.Solver(m, self.options)
            self._cache[key] = (m, solver)
        report = solver.solve()
        self.highs_seconds += report.highs_seconds
        if report.status == "infeasible":
            raise InfeasibleError("the two-stage model is infeasible: some scenario cannot meet the hard limits "
                                  "with commitments shared across scenarios (solve one scenario alone for a "
                                  "diagnosis)")
        if not report.usable(self.options.accept_gap):
            raise NoSolutionError(f"HiGHS returned no usable two-stage solution ({report.status}, "
                                  f"{report.termination})")
        per = [results.read(m.scen[s], site, times, hashprice) for s in m.S]
        ds = xr.concat(per, dim="scenario", combine_attrs="drop")
        ds = ds.assign_coords(scenario=list(scenario_prices.columns), weight=("scenario", w))
        profits = np.array([float(p["profit_usd"].sum()) for p in per])
        ds.attrs.update({
            "site": site.name, "hashprice_usd_per_ph_day": float(hashprice), "status": report.status,
            "objective_usd": float(report.objective_usd), "mip_gap": float(report.mip_gap or 0.0),
            "expected_profit_usd": float(w @ profits), "cvar_usd": _cvar(profits, w, alpha),
            "cvar_weight": float(cvar_weight), "alpha": float(alpha), "build_seconds": build_s,
            "solve_seconds": report.solve_seconds, "highs_seconds": report.highs_seconds,
            "interval_hours": key[2], "initial_state_json": state_to_json(state),
        })
        return ds


def _cvar(profits: np.ndarray, weights: np.ndarray, alpha: float) -> float:
    """Mean profit over the worst (1 - alpha) probability mass of the scenarios (USD)."""
    order = np.argsort(profits)
    p, w = profits[order], weights[order]
    tail, acc, total = 1.0 - alpha, 0.0, 0.0
    for pk, wk in zip(p, w, strict=True):
        take = min(wk, tail - acc)
        if take <= 0:
            break
        total += take * pk
        acc += take
    return float(total / tail)
