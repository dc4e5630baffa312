"""A built Pyomo model in matrix form, with the affine maps from its mutable parameters to HiGHS's vectors.

Pyomo stays the single definition of the model (parts in :mod:`optimizer.model`, export to .mps/.lp, the docs);
this module turns one built structure into HiGHS's matrix form ONCE and then pushes each new horizon's data as
a few vector calls, without walking Pyomo expressions again.

Every mutable parameter of the model enters only (a) objective coefficients, (b) the objective constant, (c) row
bounds (a constraint's bounds or the constant terms of its body) or (d) column bounds, and it enters them
affinely: ``c(p) = c0 + C p``, ``row_lo(p) = l0 + L p`` and so on, with sparse ``C, L, ...``. :class:`Compiled`
finds those maps by walking each coefficient's parameter expression once (sums, products with a constant,
division by a constant, negation). A parameter multiplying a variable inside a constraint would be a matrix
coefficient: that is supported too (``A(p) = A0 + ...``, pushed with ``changeCoeff``; :attr:`Compiled.matrix_params`
lists them): a GPU cluster's demand (``served <= demand x on``), a job's on-time mask and a rigid job's GPUs, and a
two-stage model's scenario prices (its ``profit_def`` rows) enter that way. Anything that is not affine in the
parameters (a product of two parameters, a parameter in a denominator) is refused with :class:`CompileError`.

The parameter vector ``p`` holds every mutable ``ParamData`` of the model, component after component, each in its
index order (:meth:`Compiled.param_vector` assembles it from ``{Param component: values}``).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyomo.environ as pyo
from pyomo.core.base.param import ParamData
from pyomo.core.expr import numeric_expr as ne
from pyomo.repn.standard_repn import generate_standard_repn

if TYPE_CHECKING:
    from optimizer.model import IndexedComponent, ParamValues


class CompileError(ValueError):
    """The model uses a parameter in a way the matrix form cannot update (not affine)."""


@dataclass(frozen=True)
class _Affine:
    """``const + sum(coef[k] * p[idx[k]])``."""

    const: float
    idx: tuple[int, ...] = ()
    coef: tuple[float, ...] = ()

    def scaled(self, k: float) -> _Affine:
        return _Affine(self.const * k, self.idx, tuple(c * k for c in self.coef))

    @property
    def is_constant(self) -> bool:
        return not self.idx


_SUMS = (ne.NPV_SumExpression, ne.SumExpression, ne.LinearExpression)


def _add(a: _Affine, b: _Affine) -> _Affine:
    return _Affine(a.const + b.const, a.idx + b.idx, a.coef + b.coef)


class _Sparse:
    """Accumulates entries ``(out, param, coef)`` of an affine map ``out += coef * p[param]``."""

    def __init__(self) -> None:                 # typed arrays: 8 bytes an entry, not a Python object each
        self.out = array("q")
        self.par = array("q")
        self.coef = array("d")

    def add(self, out: int, a: _Affine, sign: float = 1.0) -> None:
        for i, c in zip(a.idx, a.coef, strict=True):
            self.out.append(out)
            self.par.append(i)
            self.coef.append(sign * c)

    def freeze(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (np.asarray(self.out, dtype=np.int64), np.asarray(self.par, dtype=np.int64),
                np.asarray(self.coef, dtype=float))


def _apply(m: tuple[np.ndarray, np.ndarray, np.ndarray], p: np.ndarray, n: int) -> np.ndarray:
    out, par, coef = m
    return np.bincount(out, weights=coef * p[par], minlength=n)


class Compiled:
    """One built model as HiGHS vectors: columns, rows, constraint matrix, costs, and their parameter maps.

    ``var_columns(component)`` gives the column index of each index of a Var component (in its index order), so a
    part can read its solution as an array.
    """

    def __init__(self, m: pyo.ConcreteModel):
        self._param_pos: dict[int, int] = {}
        self.param_slices: dict[int, slice] = {}
        self.param_shapes: dict[int, tuple[int, ...]] = {}
        params: list[ParamData] = []          # references (names are built only for the few a matrix uses)
        p0: list[float] = []
        for comp in m.component_objects(pyo.Param, descend_into=True, sort=False):
            if not comp.mutable:
                continue
            start = len(p0)
            for pd_ in comp.values():
                self._param_pos[id(pd_)] = len(p0)
                p0.append(float(pd_.value))
                params.append(pd_)
            self.param_slices[id(comp)] = slice(start, len(p0))
            self.param_shapes[id(comp)] = _shape(comp)
        self.p0 = np.asarray(p0)
        self.n_params = len(p0)

        cols: list[pyo.Var] = []
        col_of: dict[int, int] = {}
        self._var_cols: dict[int, np.ndarray] = {}
        for comp in m.component_objects(pyo.Var, descend_into=True, active=True, sort=False):
            idx = []
            for v in comp.values():
                col_of[id(v)] = len(cols)
                idx.append(len(cols))
                cols.append(v)
            self._var_cols[id(comp)] = np.asarray(idx, dtype=np.int64).reshape(_shape(comp))
        n = self.n_cols = len(cols)
        self.integer = np.array([v.is_integer() or v.is_binary() for v in cols], dtype=bool)
        lo0, hi0, lo_map, hi_map = np.empty(n), np.empty(n), _Sparse(), _Sparse()
        for j, v in enumerate(cols):
            if v.fixed:
                a = self._affine(v.value)
                lo0[j] = hi0[j] = a.const
                lo_map.add(j, a)
                hi_map.add(j, a)
                continue
            for bound, store, smap, inf in ((v.lower, lo0, lo_map, -np.inf), (v.upper, hi0, hi_map, np.inf)):
                if bound is None:
                    store[j] = inf
                else:
                    a = self._affine(bound)
                    store[j] = a.const
                    smap.add(j, a)
        self.col_lo0, self.col_hi0 = lo0, hi0
        self.col_lo_map, self.col_hi_map = lo_map.freeze(), hi_map.freeze()

        objs = list(m.component_data_objects(pyo.Objective, active=True, descend_into=True))
        if len(objs) != 1:
            raise CompileError(f"expected one active objective, found {len(objs)}")
        obj = objs[0]
        self.maximize = obj.sense == pyo.maximize
        repn = generate_standard_repn(obj.expr, compute_values=False, quadratic=False)
        if repn.nonlinear_expr is not None or repn.quadratic_vars:
            raise CompileError("the objective is not linear")
        cost0 = np.zeros(n)
        cost_map = _Sparse()
        for v, c in zip(repn.linear_vars, repn.linear_coefs, strict=True):
            a = self._affine(c)
            j = col_of[id(v)]
            cost0[j] += a.const
            cost_map.add(j, a)
        off = self._affine(repn.constant)
        self.cost0, self.cost_map = cost0, cost_map.freeze()
        self.offset0, self.offset_map = off.const, (np.asarray(off.idx, dtype=np.int64),
                                                     np.asarray(off.coef, dtype=float))

        a_rows, a_cols, a_vals = array("q"), array("q"), array("d")     # millions of entries in a year's model
        coef_map = _Sparse()           # out = position in (a_rows, a_cols): matrix entries that depend on p
        rl0, ru0 = array("d"), array("d")
        rl_map, ru_map = _Sparse(), _Sparse()
        for con in m.component_data_objects(pyo.Constraint, active=True, descend_into=True):
            repn = generate_standard_repn(con.body, compute_values=False, quadratic=False)
            if repn.nonlinear_expr is not None or repn.quadratic_vars:
                raise CompileError(f"constraint {con.name} is not linear")
            r = len(rl0)
            for v, c in zip(repn.linear_vars, repn.linear_coefs, strict=True):
                a = self._affine(c)
                coef_map.add(len(a_vals), a)
                a_rows.append(r)
                a_cols.append(col_of[id(v)])
                a_vals.append(a.const)
            const = self._affine(repn.constant)
            for bound, base, smap, inf in ((con.lower, rl0, rl_map, -np.inf), (con.upper, ru0, ru_map, np.inf)):
                if bound is None:
                    base.append(inf)
                    continue
                b = _add(self._affine(bound), const.scaled(-1.0))
                base.append(b.const)
                smap.add(r, b)
        self.n_rows = len(rl0)
        self.row_lo0, self.row_hi0 = np.asarray(rl0), np.asarray(ru0)
        self.row_lo_map, self.row_hi_map = rl_map.freeze(), ru_map.freeze()
        rows, colsa, vals = (np.asarray(a_rows, dtype=np.int64), np.asarray(a_cols, dtype=np.int64),
                             np.asarray(a_vals, dtype=float))
        self._a_const = vals
        self.coef_map = coef_map.freeze()
        self.matrix_params = sorted({params[i].name for i in set(self.coef_map[1].tolist())})
        # column-wise (CSC) order for HiGHS
        order = np.lexsort((rows, colsa))
        self.a_index, self.a_value = rows[order], vals[order]
        self.a_start = np.searchsorted(colsa[order], np.arange(n + 1)).astype(np.int64)
        self._a_rows, self._a_cols = rows, colsa           # entry k -> (row, col), for changeCoeff
        # what a new p touches: only these are pushed
        self.cost_cols = np.unique(self.cost_map[0])
        self.bound_rows = np.unique(np.concatenate([self.row_lo_map[0], self.row_hi_map[0]]))
        self.bound_cols = np.unique(np.concatenate([self.col_lo_map[0], self.col_hi_map[0]]))

    # -- parameters ---------------------------------------------------------------------------------------------

    def _affine(self, e: Any) -> _Affine:
        """``e`` (a number or a parameter expression; Pyomo's expressions are untyped) as an affine function of
        the parameter vector."""
        if e is None:
            return _Affine(0.0)
        if isinstance(e, (int, float)):
            return _Affine(float(e))
        if isinstance(e, ParamData):
            pos = self._param_pos.get(id(e))
            return _Affine(float(pyo.value(e))) if pos is None else _Affine(0.0, (pos,), (1.0,))
        if not getattr(e, "is_expression_type", lambda: False)():
            return _Affine(float(pyo.value(e)))
        t = type(e)
        args = e.args
        if t in _SUMS:
            # nested sums (a year's objective constant is a chain of 8,760) walked with a stack, not recursion,
            # and merged once (pairwise merging would copy the terms quadratically)
            const = 0.0
            idx: list[int] = []
            coef: list[float] = []
            stack = list(args)
            while stack:
                a = stack.pop()
                if type(a) in _SUMS:
                    stack.extend(a.args)
                    continue
                part = self._affine(a)
                const += part.const
                idx.extend(part.idx)
                coef.extend(part.coef)
            return _Affine(const, tuple(idx), tuple(coef))
        if t in (ne.NPV_NegationExpression, ne.NegationExpression):
            return self._affine(args[0]).scaled(-1.0)
        if t in (ne.NPV_ProductExpression, ne.ProductExpression, ne.MonomialTermExpression):
            a, b = self._affine(args[0]), self._affine(args[1])
            if a.is_constant:
                return b.scaled(a.const)
            if b.is_constant:
                return a.scaled(b.const)
            raise CompileError(f"a product of two parameters is not affine: {e}")
        if t in (ne.NPV_DivisionExpression, ne.DivisionExpression):
            a, b = self._affine(args[0]), self._affine(args[1])
            if not b.is_constant:
                raise CompileError(f"a parameter in a denominator is not affine: {e}")
            return a.scaled(1.0 / b.const)
        if not _has_mutable(e):
            return _Affine(float(pyo.value(e)))
        raise CompileError(f"parameter expression of type {t.__name__} not supported: {e}")

    def param_vector(self, values: ParamValues) -> np.ndarray:
        """The parameter vector from ``{Param component: values}`` (an array in the component's index order, of
        its index shape, or a scalar); components not given keep their build-time values."""
        p = self.p0.copy()
        for comp, v in values.items():
            sl = self.param_slices[id(comp)]
            arr = np.asarray(v, dtype=float).reshape(-1)
            if arr.size == 1 and sl.stop - sl.start != 1:
                arr = np.full(sl.stop - sl.start, float(arr[0]))
            if arr.size != sl.stop - sl.start:
                raise ValueError(f"{comp.name}: {arr.size} values for {sl.stop - sl.start} parameters")
            p[sl] = arr
        return p

    # -- the vectors for one p ----------------------------------------------------------------------------------

    def costs(self, p: np.ndarray) -> np.ndarray:
        return self.cost0 + _apply(self.cost_map, p, self.n_cols)

    def offset(self, p: np.ndarray) -> float:
        idx, coef = self.offset_map
        return float(self.offset0 + coef @ p[idx])

    def row_bounds(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (self.row_lo0 + _apply(self.row_lo_map, p, self.n_rows),
                self.row_hi0 + _apply(self.row_hi_map, p, self.n_rows))

    def col_bounds(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (self.col_lo0 + _apply(self.col_lo_map, p, self.n_cols),
                self.col_hi0 + _apply(self.col_hi_map, p, self.n_cols))

    def matrix_entries(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, cols, values) of the matrix entries that depend on the parameters."""
        k = np.unique(self.coef_map[0])
        vals = self._a_const + _apply(self.coef_map, p, len(self._a_const))
        return self._a_rows[k], self._a_cols[k], vals[k]

    def var_columns(self, var: object) -> np.ndarray:
        """Column index of each index of a Var component, in its index order and shape."""
        return self._var_cols[id(var)]


def _has_mutable(e: object) -> bool:
    from pyomo.core.expr.visitor import identify_mutable_parameters

    return any(True for _ in identify_mutable_parameters(e))


def _shape(comp: IndexedComponent) -> tuple[int, ...]:
    """Index shape of a component: () scalar, (n,) one set, (n1, n2) a product of two sets."""
    if not comp.is_indexed():
        return ()
    return tuple(len(s) for s in comp.index_set().subsets())


def iter_param_components(m: pyo.Block) -> Iterable[pyo.Param]:
    return (c for c in m.component_objects(pyo.Param, descend_into=True) if c.mutable)
