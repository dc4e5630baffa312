"""Scheduling under price uncertainty: a two-stage model over N price scenarios.

The day's commitment decisions (which fleets and clusters are on in each interval) are shared by every scenario;
power levels adapt per scenario; the objective is the expected profit, optionally blended with the CVaR of the
profit (see :func:`optimizer.model.build_scenarios`). Scenarios come from the forecaster's quantiles
(:func:`quantile_scenarios`) or from the caller (any hourly price paths, e.g. historical analogue days).
Results carry a ``scenario`` dimension.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from optimizer import model, results, solve
from optimizer.errors import InfeasibleError, InputError, NoSolutionError
from optimizer.inputs import Inputs
from optimizer.site import Site
from optimizer.state import state_to_json


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
    """Two-stage solves of one site; one model per (intervals, scenarios, resolution), data updated in place
    (shares :class:`optimizer.planner.ModelCache` with the deterministic planner)."""

    def __init__(self, site: Site, options: solve.SolverOptions | None = None, *, allow_sla_breach: bool = False,
                 solver_factory: solve.SolverFactory | None = None):
        from optimizer.planner import ModelCache

        self.site = site
        self.allow_sla_breach = allow_sla_breach
        self.options = options or solve.SolverOptions()
        self.cache = ModelCache(self.options, solver_factory)

    @property
    def highs_seconds(self) -> float:
        return self.cache.highs_seconds

    def solve(self, inputs: Inputs, scenario_prices: pd.DataFrame, weights: Sequence[float] | np.ndarray, *,
              cvar_weight: float = 0.0, alpha: float = 0.9) -> xr.Dataset:
        """Solve; ``inputs`` holds everything shared by the scenarios (its prices are ignored),
        ``scenario_prices`` one column per scenario (USD/MWh) on the horizon's intervals."""
        site = self.site
        w = np.asarray(weights, dtype=float)
        k = scenario_prices.shape[1]
        if len(w) != k or k < 1 or (w < 0).any() or not np.isclose(w.sum(), 1.0):
            raise InputError(f"need one non-negative weight per scenario summing to 1; got {list(w)}",
                             field="weights")
        if not 0 <= cvar_weight <= 1 or not 0 < alpha < 1:
            raise InputError(f"cvar_weight must be in [0, 1] and alpha in (0, 1); got {cvar_weight}, {alpha}",
                             field="cvar_weight")
        per_scenario = [inputs.replace(prices=scenario_prices.iloc[:, j]) for j in range(k)]
        first = per_scenario[0]
        structure = model.Structure.of(site, first, allow_sla_breach=self.allow_sla_breach)
        solved = self.cache.solve((structure, k), lambda: model.build_scenarios(site, structure, k),
                                  lambda m: model.scenario_param_values(m, site, per_scenario, w, cvar_weight, alpha))
        report = solved.report
        if report.status == "infeasible":
            raise InfeasibleError("the two-stage model is infeasible: some scenario cannot meet the hard limits "
                                  "with commitments shared across scenarios (solve one scenario alone for a "
                                  "diagnosis)")
        if not report.usable(self.options.accept_gap) or report.objective_usd is None:
            raise NoSolutionError(f"HiGHS returned no usable two-stage solution ({report.status}, "
                                  f"{report.termination})")
        m = solved.model
        per = [results.read(m.scen[j], site, inp, solved.values) for j, inp in zip(m.S, per_scenario,
                                                                                          strict=True)]
        ds = xr.concat(per, dim="scenario", combine_attrs="drop")
        ds = ds.assign_coords(scenario=list(scenario_prices.columns), weight=("scenario", w))
        profits = np.array([float(p["profit_usd"].sum()) for p in per])
        ds.attrs.update({
            "site": site.name, "hashprice_usd_per_ph_day": float(inputs.hashprice_usd_per_ph_day),
            "status": report.status, "objective_usd": float(report.objective_usd),
            "mip_gap": float(report.mip_gap or 0.0), "expected_profit_usd": float(w @ profits),
            "cvar_usd": _cvar(profits, w, alpha), "cvar_weight": float(cvar_weight), "alpha": float(alpha),
            "build_seconds": solved.build_seconds, "solve_seconds": report.solve_seconds,
            "highs_seconds": report.highs_seconds, "interval_hours": first.dt_hours,
            "initial_state_json": state_to_json(inputs.resolved_state(site)),
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


def read_scenarios_file(path: str | Path) -> pd.DataFrame:
    """Price scenarios: CSV with ``timestamp`` (ISO 8601 with offset) and one column of USD/MWh per scenario."""
    from optimizer.data import parse_timestamps

    try:
        df = pd.read_csv(path, dtype={"timestamp": str})
    except FileNotFoundError:
        raise InputError("scenario file not found", source=str(path)) from None
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file
        raise InputError(f"cannot read scenarios ({type(exc).__name__}: {exc})", source=str(path)) from None
    if "timestamp" not in df.columns or df.shape[1] < 2:
        raise InputError("expected a timestamp column and one column per scenario", source=str(path))
    idx = parse_timestamps(df["timestamp"], str(path))
    out = df.drop(columns="timestamp")
    for c in out.columns:
        vals = pd.to_numeric(out[c], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(vals)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"row {i + 1}: price {out[c].iloc[i]!r} is not a finite number", source=str(path),
                             field=str(c))
        out[c] = vals
    return out.set_axis(idx)
