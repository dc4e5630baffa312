"""Solve a built model with HiGHS (through highspy, via Pyomo's persistent interface) and report how it went."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyomo.environ as pyo
from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition
from pyomo.contrib.solver.solvers.highs import Highs

from optimizer.errors import InputError

if TYPE_CHECKING:
    from optimizer.model import ParamValues

#: HiGHS options that are ours to set through :class:`SolverOptions`; anything else must be a real HiGHS option.
_OWN = {"time_limit", "mip_rel_gap", "threads", "random_seed"}


@dataclass(frozen=True)
class SolverOptions:
    """Options of one solve. ``mip_rel_gap`` is the relative gap at which HiGHS may stop (0 = proven optimal);
    ``accept_gap`` the largest gap of a solution kept when the time limit stops HiGHS early; ``highs`` passes
    further HiGHS options by name, each checked against HiGHS's own list."""

    time_limit_seconds: float = 60.0
    mip_rel_gap: float = 1e-6
    accept_gap: float = 0.01
    threads: int = 1
    highs: tuple[tuple[str, Any], ...] = field(default=())

    def __post_init__(self) -> None:
        if not (self.time_limit_seconds > 0 and math.isfinite(self.time_limit_seconds)):
            raise InputError(f"time limit must be a positive number of seconds, got {self.time_limit_seconds!r}",
                             field="time_limit_seconds")
        if not 0 <= self.mip_rel_gap < 1:
            raise InputError(f"mip_rel_gap must be in [0, 1), got {self.mip_rel_gap!r}", field="mip_rel_gap")
        if not 0 <= self.accept_gap < 1:
            raise InputError(f"accept_gap must be in [0, 1), got {self.accept_gap!r}", field="accept_gap")
        if not isinstance(self.threads, int) or self.threads < 1:
            raise InputError(f"threads must be a whole number >= 1, got {self.threads!r}", field="threads")
        probe = _probe()
        for name, value in self.highs:
            if name in _OWN:
                raise InputError(f"set {name!r} through its own option, not as a raw HiGHS option", field=name)
            try:
                status = probe.setOptionValue(name, value)
            except Exception as exc:  # noqa: BLE001 - highspy raises plain exceptions for bad types
                raise InputError(f"HiGHS rejected option {name}={value!r}: {exc}", field=name) from None
            if status != type(status).kOk:
                raise InputError(f"unknown HiGHS option or bad value: {name}={value!r}", field=name)


#: Between solves only mutable parameters change (the structure is fixed per model): tell Pyomo's persistent
#: interface to push parameter values and skip scanning for new or changed components (most of its overhead).
_DATA_ONLY = {"check_for_new_or_removed_constraints": False, "check_for_new_or_removed_vars": False,
              "check_for_new_or_removed_params": False, "check_for_new_objective": False,
              "update_constraints": False, "update_vars": False, "update_named_expressions": False,
              "update_objective": False, "update_parameters": True}


@functools.cache
def _probe():
    """A silent HiGHS instance for checking option names and values (HiGHS prints a banner when created)."""
    return _new_highs()


@dataclass(frozen=True)
class SolveReport:
    """How a solve went. ``status``: optimal, feasible (stopped with a solution), infeasible, no_solution."""

    status: str
    termination: str
    objective_usd: float | None
    bound_usd: float | None
    mip_gap: float | None
    solve_seconds: float          # wall time of the solver call, translation included
    highs_seconds: float          # time inside HiGHS, as HiGHS measures it
    nodes: int

    @property
    def has_solution(self) -> bool:
        return self.status in ("optimal", "feasible")

    def usable(self, accept_gap: float) -> bool:
        """A solution to keep: optimal, or stopped early with a gap within ``accept_gap``."""
        return self.status == "optimal" or (self.status == "feasible" and self.mip_gap is not None
                                            and self.mip_gap <= accept_gap)


class HighsSolver:
    """HiGHS bound to one built model, in matrix form (:mod:`optimizer.compiled`): the model is handed to HiGHS
    once; each :meth:`solve` pushes only the vectors its parameters touch (costs, row and column bounds) and runs
    HiGHS; the solution is read back as one array."""

    def __init__(self, model: pyo.ConcreteModel, options: SolverOptions | None = None):
        import highspy

        from optimizer.compiled import Compiled

        self.model = model
        self.options = options or SolverOptions()
        self.compiled = c = Compiled(model)
        self._highs = h = _new_highs()
        inf = highspy.kHighsInf
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = c.n_cols, c.n_rows
        lp.col_cost_ = c.costs(c.p0)
        lo, hi = c.col_bounds(c.p0)
        lp.col_lower_, lp.col_upper_ = np.maximum(lo, -inf), np.minimum(hi, inf)
        rlo, rhi = c.row_bounds(c.p0)
        lp.row_lower_, lp.row_upper_ = np.maximum(rlo, -inf), np.minimum(rhi, inf)
        lp.offset_ = c.offset(c.p0)
        lp.sense_ = highspy.ObjSense.kMaximize if c.maximize else highspy.ObjSense.kMinimize
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = c.n_cols, c.n_rows
        lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = c.a_start, c.a_index, c.a_value
        if c.integer.any():
            lp.integrality_ = [highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
                               for i in c.integer]
        h.passModel(lp)
        o = self.options
        for name, value in {"time_limit": float(o.time_limit_seconds), "mip_rel_gap": float(o.mip_rel_gap),
                            "threads": int(o.threads), "random_seed": 0,
                            "mip_heuristic_run_feasibility_jump": False, **dict(o.highs)}.items():
            h.setOptionValue(name, value)
        self._mip = bool(c.integer.any())
        self._x: np.ndarray | None = None
        self._pushed = {"rows": None, "cols": None}

    def solve(self, values: ParamValues) -> SolveReport:
        """Push the parameter values (``{Param component: values}``, see :func:`optimizer.model.param_values`) and
        run HiGHS."""
        import highspy

        c, h = self.compiled, self._highs
        p = c.param_vector(values)
        inf = highspy.kHighsInf
        if len(c.cost_cols):
            cost = c.costs(p)
            h.changeColsCost(len(c.cost_cols), c.cost_cols.astype(np.int32), cost[c.cost_cols])
        h.changeObjectiveOffset(c.offset(p))
        if len(c.bound_rows):
            lo, hi = c.row_bounds(p)
            r = c.bound_rows
            h.changeRowsBounds(len(r), r.astype(np.int32), np.maximum(lo[r], -inf), np.minimum(hi[r], inf))
        if len(c.bound_cols):
            lo, hi = c.col_bounds(p)
            j = c.bound_cols
            h.changeColsBounds(len(j), j.astype(np.int32), np.maximum(lo[j], -inf), np.minimum(hi[j], inf))
        for row, col, val in zip(*c.matrix_entries(p), strict=True):
            h.changeCoeff(int(row), int(col), float(val))
        _use_threads(int(self.options.threads))
        before = h.getRunTime()
        t0 = time.perf_counter()
        h.run()
        wall = time.perf_counter() - t0
        highs_s = h.getRunTime() - before
        status = h.getModelStatus()
        info = h.getInfo()
        S = highspy.HighsModelStatus
        has_sol = info.primal_solution_status == 2          # kSolutionStatusFeasible
        if status == S.kOptimal and has_sol:
            kind = "optimal"
        elif status in (S.kInfeasible, S.kUnboundedOrInfeasible):
            kind = "infeasible"
        elif has_sol:
            kind = "feasible"
        else:
            kind = "no_solution"
        self._x = np.asarray(h.getSolution().col_value, dtype=float) if has_sol else None
        gap = None
        if has_sol:
            gap = float(info.mip_gap) if self._mip else 0.0
            if not math.isfinite(gap):
                gap = None
        objective = float(info.objective_function_value) if has_sol else None
        bound = float(info.mip_dual_bound) if (self._mip and has_sol) else objective
        return SolveReport(status=kind, termination=h.modelStatusToString(status), objective_usd=objective,
                           bound_usd=bound, mip_gap=gap, solve_seconds=wall, highs_seconds=highs_s,
                           nodes=max(int(info.mip_node_count), 0) if self._mip else 0)

    def values(self, var: pyo.Var) -> np.ndarray:
        """The solution of a Var component as an array of its index shape."""
        if self._x is None:
            raise RuntimeError("no solution to read")
        return self._x[self.compiled.var_columns(var)]


class PyomoSolver:
    """The reference path: Pyomo's persistent HiGHS interface, parameters pushed through Pyomo. Slower than
    :class:`HighsSolver` (Pyomo walks its expressions on every update); kept to test the direct path against
    and for the elastic diagnosis models."""

    def __init__(self, model: pyo.ConcreteModel, options: SolverOptions | None = None):
        self.model = model
        self.options = options or SolverOptions()
        self._highs = Highs()
        self._highs.set_instance(model)

    def solve(self, values: ParamValues | None = None) -> SolveReport:
        from optimizer import model as model_pkg

        if values:
            model_pkg.apply(values)
        o = self.options
        opts = {"random_seed": 0, "mip_heuristic_run_feasibility_jump": False, **dict(o.highs)}
        before = self._highs._solver_model.getRunTime()  # noqa: SLF001 - HiGHS's clock runs on across solves
        t0 = time.perf_counter()
        res = self._highs.solve(self.model, time_limit=o.time_limit_seconds, rel_gap=o.mip_rel_gap,
                                threads=o.threads, solver_options=opts, load_solutions=False,
                                raise_exception_on_nonoptimal_result=False, tee=False, auto_updates=_DATA_ONLY)
        wall = time.perf_counter() - t0
        info = self._highs._solver_model.getInfo()  # noqa: SLF001 - gap and nodes are only on the HiGHS object
        tc = res.termination_condition
        has_sol = res.solution_status in (SolutionStatus.optimal, SolutionStatus.feasible)
        if has_sol:
            res.solution_loader.load_vars()
        if tc == TerminationCondition.convergenceCriteriaSatisfied and has_sol:
            status = "optimal"
        elif tc in (TerminationCondition.provenInfeasible, TerminationCondition.infeasibleOrUnbounded):
            status = "infeasible"
        elif has_sol:
            status = "feasible"
        else:
            status = "no_solution"
        mip = info.mip_node_count >= 0
        gap = float(info.mip_gap) if mip and has_sol else (0.0 if status == "optimal" else None)
        if gap is not None and not math.isfinite(gap):
            gap = None
        return SolveReport(
            status=status, termination=tc.name, objective_usd=res.incumbent_objective,
            bound_usd=res.objective_bound, mip_gap=gap, solve_seconds=wall,
            highs_seconds=float(res.timing_info.highs_time) - before, nodes=max(int(info.mip_node_count), 0))

    def values(self, var: pyo.Var) -> np.ndarray:
        from optimizer.compiled import _shape

        return np.array([np.nan if v.value is None else float(v.value) for v in var.values()]).reshape(_shape(var))


class Solver(Protocol):
    """A solver bound to one built model: :class:`HighsSolver`, :class:`PyomoSolver`, or a test's fake."""

    def solve(self, values: ParamValues) -> SolveReport:
        """Push the parameter values and solve."""
        ...

    def values(self, var: Any) -> np.ndarray:
        """The solution of a Var component (untyped in Pyomo) as an array of its index shape."""
        ...


#: Makes the solver of a built model: ``factory(model, options) -> solver`` with ``solve(values) -> SolveReport``
#: and ``values(var) -> array``. The default is :class:`HighsSolver`; tests inject fakes.
SolverFactory = Callable[[pyo.ConcreteModel, SolverOptions], Solver]


#: Threads of HiGHS's process-wide scheduler, fixed by its first run: a solve asking for another number resets it
#: first (else HiGHS refuses to run and returns no solution).
_SCHEDULER_THREADS: list[int] = []


def _use_threads(threads: int) -> None:
    import highspy

    if _SCHEDULER_THREADS and _SCHEDULER_THREADS[0] != threads:
        highspy.Highs.resetGlobalScheduler(True)
        _SCHEDULER_THREADS.clear()
    if not _SCHEDULER_THREADS:
        _SCHEDULER_THREADS.append(threads)


def _new_highs():
    """A silent HiGHS instance (HiGHS prints a banner when created)."""
    import highspy
    from pyomo.common.tee import capture_output

    with capture_output(capture_fd=True):
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
    return h


def export_model(model: pyo.ConcreteModel, path: str | Path) -> Path:
    """Write the model as .mps or .lp with readable names, so any solver can check it."""
    path = Path(path)
    fmt = {".mps": "mps", ".lp": "lp"}.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"model export format must be .mps or .lp, got {path.suffix!r}", source=str(path))
    if not path.parent.is_dir():
        raise InputError("model export folder does not exist", source=str(path.parent))
    model.write(str(path), format=fmt, io_options={"symbolic_solver_labels": True})
    return path
