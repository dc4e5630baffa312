"""Day-ahead energy bid curves for a flexible load, and the two-settlement accounting of their awards.

Method (the justification, with sources, is in docs/bidding.md):

1. **Price scenarios for day D** (:func:`price_scenarios`), made at the bid deadline (10:00 local on D-1, when
   ERCOT's day-ahead market closes) from the day-ahead prices published by then
   (:func:`optimizer.forecast.available`: D-1's prices are out since 13:30 on D-2). A seasonal-naive centre (per
   local hour, the median of the last ``lag_days`` published days at that hour) plus the empirical quantiles of
   that same centre's errors over the trailing ``window_days`` published days (errors pooled over the hour and its
   ``pool_hours`` neighbours): scenario ``k`` of ``K`` is the ``(k - 0.5)/K`` quantile in every hour, so the
   scenarios are equally likely and ordered the same way in every hour. Prices are clipped to the market's floor
   and cap, rounded to cents and made strictly increasing across scenarios (1 cent apart at least).
2. **One solve** of the two-stage model (:func:`optimizer.model.build_scenarios`, one copy of the site per
   scenario) with the commitment shared across scenarios switched OFF (the award is known before the day, so the
   units may be committed differently in each price outcome) and the bidding constraints of IDAES's ``Bidder``
   added: for every pair of scenarios ``s, s'`` and every delivery hour ``t``,
   ``(load[s, t] - load[s', t]) x (price[s', t] - price[s, t]) >= 0``, i.e. at a higher price the site buys less
   or the same. Every scenario is a complete copy of the site model, so every commitment limit (ramps, minimum
   on/off times, SLA floor, load caps, 4CP, jobs) holds in every scenario. The prices are parameters that enter
   the constraint matrix, so the model is built once per structure and only data change (as in the planners).
   Objective: the expected profit over the scenarios, each scenario's energy priced at its own price (the site
   expects real time to settle, on average, at the day-ahead price it bids against: IDAES's two-settlement
   objective with ``pi_RT = pi_DA`` in each scenario, where the day-ahead quantity equals the dispatch).
3. **Curves** (:func:`build_curves`): each hour's points (scenario price, scenario net purchase) form a
   non-increasing step curve; equal quantities merge; when more than ``segments`` levels remain they are reduced
   to ``segments`` by an exact dynamic programme (contiguous groups minimising the probability-weighted squared
   MW error; each group bids its weighted mean MW up to its highest price). The last segment's price is the
   market's offer cap, so every clearing price has a quantity.

The quantity bid is the site's **net market position**, load minus the fixed-price block (``grid_mw``): the
take-or-pay block costs the same whatever happens, so only ``load - block`` is settled at market prices. A
positive MW buys, a negative MW sells the unused block (a site whose block covers its load only ever sells).

Curve semantics (:meth:`Curves.award_mw`): points ``(price_1, mw_1) .. (price_n, mw_n)`` with strictly increasing
prices and non-increasing MW; at a day-ahead price ``P`` the award is ``mw_i`` for the first ``i`` with
``P <= price_i`` (``mw_n`` above ``price_n``, which is the cap).

Two-settlement (:func:`two_settlement`): ``DA award x DA price + (grid position - award) x RT price`` per interval
(the hourly award holds in each of the hour's 15-minute intervals); relative to settling everything in real time it
adds ``award x (DA price - RT price)``. The fixed-price block is unchanged (``block x contract price``).

The CSV an operator loads (:func:`write_bids`, :func:`read_bids`): ``delivery_date``, ``hour_ending`` (ERCOT's
1-24), ``repeated_hour_flag`` (``Y`` on the second HE 2 of the November fall-back day, else ``N``; the spring-forward
day has no HE 3), then ``price_1, mw_1 .. price_N, mw_N`` (unused pairs empty).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from optimizer import market as mk
from optimizer.errors import InfeasibleError, InputError, NoSolutionError

if TYPE_CHECKING:
    import xarray as xr

    from optimizer.forecast import MarketHistory
    from optimizer.inputs import Inputs
    from optimizer.site import Site
    from optimizer.solve import SolverOptions

BID_DEADLINE_LOCAL = mk.DA_BID_DEADLINE_LOCAL          # the market's rule lives in optimizer.market
#: Decimals of the written curves: MW to 0.1 MW, prices to the cent.
MW_DECIMALS, PRICE_DECIMALS = 1, 2
#: Smallest gap between two scenarios' prices in one hour (USD/MWh): keeps every pair ordered.
PRICE_STEP_USD_PER_MWH = 0.01


@dataclass(frozen=True)
class BidSettings:
    """How bids are built: the segment limit, the number of generated price scenarios and how they are drawn."""

    segments: int = 10            # price-quantity pairs per hour (ERCOT's default limit for a bid curve: 10)
    scenarios: int = 20           # generated price scenarios (quantile levels (k - 0.5) / K)
    window_days: int = 56         # trailing published days whose errors make the spread
    lag_days: int = 7             # days in the seasonal-naive centre
    pool_hours: int = 1           # an hour's errors pooled with this many neighbours on each side
    lookahead_hours: int = 24     # hours after the day the model sees (they shape the day's end, are not bid)

    def __post_init__(self) -> None:
        for name, lo, hi in (("segments", 1, 100), ("scenarios", 2, 100), ("window_days", 14, 366),
                             ("lag_days", 1, 28), ("pool_hours", 0, 6), ("lookahead_hours", 0, 168)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
                raise InputError(f"{name} must be an integer in {lo}..{hi}, got {v!r}", field=name)


def bid_deadline(day: dt.date, timezone: str = mk.TIMEZONE) -> pd.Timestamp:
    """UTC time at which bids for operating day ``day`` close (10:00 local on the day before)."""
    return mk.decision_time_for(day, timezone, BID_DEADLINE_LOCAL.hour, BID_DEADLINE_LOCAL.minute)


# ----------------------------------------------------------------------------------------------------------------
# curves


@dataclass(frozen=True, eq=False)
class Curves:
    """Each delivery hour's bid: ``price_usd_per_mwh`` and ``mw`` of shape (hour, segment), the used segments
    first (prices strictly increasing, MW non-increasing), NaN after. ``hours``: UTC hour starts of the delivery
    day (23, 24 or 25); ``mw`` is the net purchase (negative: a sale)."""

    hours: pd.DatetimeIndex
    price_usd_per_mwh: np.ndarray
    mw: np.ndarray
    timezone: str = mk.TIMEZONE

    def __post_init__(self) -> None:
        p, q = np.asarray(self.price_usd_per_mwh, dtype=float), np.asarray(self.mw, dtype=float)
        if p.ndim != 2 or p.shape != q.shape or p.shape[0] != len(self.hours):
            raise ValueError(f"prices {p.shape} and MW {q.shape} must both be (hour, segment) for "
                             f"{len(self.hours)} hours")
        object.__setattr__(self, "price_usd_per_mwh", p)
        object.__setattr__(self, "mw", q)
        object.__setattr__(self, "hours", pd.DatetimeIndex(self.hours).tz_convert("UTC"))

    @property
    def used(self) -> np.ndarray:
        """Segments used in each hour."""
        return np.isfinite(self.price_usd_per_mwh).sum(axis=1)

    def problems(self, segments: int | None = None) -> list[str]:
        """What makes these curves invalid (empty when valid): a row with no segment, a gap, a non-finite value,
        prices not strictly increasing, MW increasing with price, more than ``segments`` segments."""
        out = []
        for h, (p, q) in enumerate(zip(self.price_usd_per_mwh, self.mw, strict=True)):
            used = np.isfinite(p)
            k = int(used.sum())
            where = f"hour {h} ({self.hours[h].isoformat()})"
            if k == 0:
                out.append(f"{where}: no segment")
                continue
            if not used[:k].all() or np.isfinite(p[k:]).any() or np.isfinite(q[k:]).any():
                out.append(f"{where}: a gap between segments")
            if not np.isfinite(q[:k]).all():
                out.append(f"{where}: a MW value is not a finite number")
            if (np.diff(p[:k]) <= 0).any():
                out.append(f"{where}: prices {list(p[:k])} are not strictly increasing")
            if (np.diff(q[:k]) > 1e-9).any():
                out.append(f"{where}: MW {list(q[:k])} rise with the price (a bid must buy less or the same)")
            if segments is not None and k > segments:
                out.append(f"{where}: {k} segments, more than the limit {segments}")
        return out

    def award_mw(self, da_price: Sequence[float] | np.ndarray) -> np.ndarray:
        """The MW each hour's curve buys at that hour's day-ahead price: ``mw_i`` of the first segment whose
        price is at or above it (the last segment's MW above every price)."""
        da = np.asarray(da_price, dtype=float)
        if da.shape != (len(self.hours),) or not np.isfinite(da).all():
            raise InputError(f"need {len(self.hours)} finite day-ahead prices, one per delivery hour", field="da_price")
        out = np.empty(len(da))
        for h, (p, q) in enumerate(zip(self.price_usd_per_mwh, self.mw, strict=True)):
            k = int(np.isfinite(p).sum())
            i = min(int(np.searchsorted(p[:k], da[h], side="left")), k - 1)
            out[h] = q[i]
        return out

    def to_frame(self, segments: int | None = None) -> pd.DataFrame:
        """The operator's table: delivery_date, hour_ending, repeated_hour_flag, price_1, mw_1, ... (unused pairs
        empty); ``segments`` columns pairs (default: this object's width)."""
        n = self.price_usd_per_mwh.shape[1] if segments is None else segments
        if n < int(self.used.max(initial=0)):
            raise ValueError(f"{int(self.used.max())} segments do not fit in {n} column pairs")
        frame = hour_labels(self.hours, self.timezone)
        for i in range(n):
            has = i < self.price_usd_per_mwh.shape[1]
            frame[f"price_{i + 1}"] = self.price_usd_per_mwh[:, i] if has else np.nan
            frame[f"mw_{i + 1}"] = self.mw[:, i] if has else np.nan
        return frame


def hour_labels(hours: pd.DatetimeIndex, timezone: str) -> pd.DataFrame:
    """ERCOT's labels of UTC hour starts: local delivery date, hour ending 1-24, repeated hour flag (``Y`` on the
    second pass of an hour ending the fall-back day repeats)."""
    local = pd.DatetimeIndex(hours).tz_convert(timezone)
    frame = pd.DataFrame({"delivery_date": [t.date().isoformat() for t in local],
                          "hour_ending": (local.hour + 1).astype(int)})
    frame["repeated_hour_flag"] = np.where(frame.duplicated(["delivery_date", "hour_ending"]), "Y", "N")
    return frame


def step_points(prices: np.ndarray, mw: np.ndarray, weights: np.ndarray, segments: int,
                top_price: float) -> tuple[np.ndarray, np.ndarray]:
    """One hour's curve from its scenario points (any order): ties in price averaged (weighted), runs of equal MW
    merged (the run bids up to its highest price), reduced to ``segments`` levels by :func:`_reduce`, rounded, the
    last price set to ``top_price``. Returns (prices, MW) of the used segments."""
    order = np.argsort(prices, kind="stable")
    p = np.minimum(np.round(np.asarray(prices, dtype=float)[order], PRICE_DECIMALS), top_price - 0.01)
    q, w = np.asarray(mw, dtype=float)[order], np.asarray(weights, dtype=float)[order]
    groups = np.concatenate([[0], np.flatnonzero(np.diff(p) > 0) + 1])
    wsum = np.add.reduceat(w, groups)
    q = np.add.reduceat(w * q, groups) / np.maximum(wsum, 1e-300)
    p, w = p[groups], wsum
    q = np.minimum.accumulate(q)        # a solve's tolerance may leave a 1e-9 MW rise: never bid one
    p, q, w = _merge_equal(p, q, w)
    if len(p) > segments:
        p, q, w = _reduce(p, q, w, segments)
    q = np.round(q, MW_DECIMALS)
    p, q, w = _merge_equal(p, q, w)
    p = p.copy()
    p[-1] = max(top_price, p[-1])
    return p, q


def _merge_equal(p: np.ndarray, q: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Consecutive points with the same MW become one, at the highest price of the run."""
    last = np.concatenate([np.abs(np.diff(q)) > 1e-9, [True]])
    starts = np.concatenate([[0], np.flatnonzero(last)[:-1] + 1])
    return p[last], q[last], np.add.reduceat(w, starts)


def _reduce(p: np.ndarray, q: np.ndarray, w: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The best ``k`` contiguous groups of the points (sorted by price, MW non-increasing): least weighted squared
    error to each group's weighted mean MW (exact dynamic programme). Groups' means stay non-increasing."""
    n = len(p)
    cw, cwq, cwq2 = (np.concatenate([[0.0], np.cumsum(x)]) for x in (w, w * q, w * q * q))

    def cost(i: int, j: int) -> float:           # points i..j-1 as one group
        ws = cw[j] - cw[i]
        return 0.0 if ws <= 0 else (cwq2[j] - cwq2[i]) - (cwq[j] - cwq[i]) ** 2 / ws

    best = np.full((k + 1, n + 1), np.inf)
    cut = np.zeros((k + 1, n + 1), dtype=int)
    best[0, 0] = 0.0
    for g in range(1, k + 1):
        for j in range(g, n + 1):
            for i in range(g - 1, j):
                c = best[g - 1, i] + cost(i, j)
                if c < best[g, j]:
                    best[g, j], cut[g, j] = c, i
    ends, j = [], n
    for g in range(k, 0, -1):
        ends.append(j)
        j = cut[g, j]
    ends = ends[::-1]
    starts = [0, *ends[:-1]]
    ws = np.array([cw[e] - cw[s] for s, e in zip(starts, ends, strict=True)])
    qs = np.array([(cwq[e] - cwq[s]) / max(cw[e] - cw[s], 1e-300) for s, e in zip(starts, ends, strict=True)])
    return p[np.array(ends) - 1], qs, ws


def build_curves(hours: pd.DatetimeIndex, point_prices: np.ndarray, point_mw: np.ndarray,
                 weights: Sequence[float] | np.ndarray,
                 segments: int, timezone: str = mk.TIMEZONE) -> Curves:
    """Curves from scenario points: ``point_prices`` and ``point_mw`` of shape (hour, scenario), one weight per
    scenario; at most ``segments`` segments per hour, the last at the hour's offer cap."""
    caps = mk.price_caps_at(pd.DatetimeIndex(hours))
    w = np.asarray(weights, dtype=float)
    rows = [step_points(point_prices[h], point_mw[h], w, segments, float(caps[h])) for h in range(len(hours))]
    width = max(len(p) for p, _ in rows)
    price, mw = np.full((len(hours), width), np.nan), np.full((len(hours), width), np.nan)
    for h, (p, q) in enumerate(rows):
        price[h, : len(p)], mw[h, : len(q)] = p, q
    return Curves(hours, price, mw, timezone)


def strike_curves(site: Site, hours: pd.DatetimeIndex, hashprice_usd_per_ph_day: float, useful_mw: np.ndarray,
                  segments: int | None = None) -> Curves:
    """The operators' strike rule as a bid: each unit's useful MW (``useful_mw``: (hour, unit) in site order) bid
    at one price, its value (mining value at the hashprice; a cluster's spot value), the committed GPU load at any
    price; net of the block and within the import limit. Units with the same value share a segment; more units
    than ``segments - 1`` are reduced like scenario points."""
    from optimizer import operate

    values = operate.values_usd_per_mwh(site, hashprice_usd_per_ph_day)
    caps = mk.price_caps_at(pd.DatetimeIndex(hours))
    block, limit, committed = site.contract.block_mw, site.grid.import_limit_mw, site.committed_mw
    rows = []
    for h in range(len(hours)):
        v = np.minimum(values, caps[h])
        levels = np.unique(v)
        on_mw = np.array([committed + useful_mw[h][v >= x].sum() for x in levels] + [committed + useful_mw[h][
            v >= caps[h]].sum()])
        p = np.concatenate([levels, [caps[h]]])
        q = np.minimum(on_mw, limit) - block
        keep = np.concatenate([p[:-1] < caps[h], [True]])
        p, q = p[keep], q[keep]
        w = np.ones(len(p))
        if segments is not None and len(p) > segments:
            p, q, w = _reduce(p, q, w, segments)
        q = np.round(q, MW_DECIMALS)
        p, q, _ = _merge_equal(np.round(p, PRICE_DECIMALS), q, w)
        p[-1] = caps[h]
        rows.append((p, q))
    width = max(len(p) for p, _ in rows)
    price, mw = np.full((len(hours), width), np.nan), np.full((len(hours), width), np.nan)
    for h, (p, q) in enumerate(rows):
        price[h, : len(p)], mw[h, : len(q)] = p, q
    return Curves(hours, price, mw, site.timezone)


# ----------------------------------------------------------------------------------------------------------------
# price scenarios


def price_scenarios(history: MarketHistory, decision: pd.Timestamp, horizon: pd.DatetimeIndex,
                    settings: BidSettings | None = None) -> pd.DataFrame:
    """Equally likely day-ahead price scenarios over ``horizon`` (hourly, UTC), from the day-ahead prices known at
    ``decision`` (:func:`optimizer.forecast.available`): seasonal-naive centre plus the empirical quantiles of its
    errors (module docstring, step 1). One column per scenario (``q0.025`` ...), strictly increasing across
    columns in every hour. InputError when too little day-ahead history is published by then."""
    from optimizer.forecast import available

    s = settings or BidSettings()
    tz = history.timezone
    da = available(history, decision).da
    need = s.window_days + s.lag_days
    matrix = _by_local_hour(da, tz) if da is not None and len(da) else None
    if matrix is None or len(matrix) < need or matrix.iloc[-need:].isna().all(axis=1).any():
        have = 0 if matrix is None else len(matrix)
        raise InputError(f"day-ahead bid scenarios need {need} days of day-ahead prices published before "
                         f"{pd.Timestamp(decision).isoformat()} (window {s.window_days} + centre {s.lag_days}); "
                         f"{have} found", field="da_prices")
    last = matrix.index[-1]
    first_day = pd.DatetimeIndex(horizon[:1]).tz_convert(tz)[0].date()
    if (first_day - last).days > 2:
        raise InputError(f"the latest day-ahead prices published by {pd.Timestamp(decision).isoformat()} are of "
                         f"{last}, {(first_day - last).days} days before {first_day}: the history is stale",
                         field="da_prices")
    m = matrix.to_numpy()
    centre_rows = np.stack([np.nanmedian(m[d - s.lag_days: d], axis=0) for d in range(len(m) - s.window_days,
                                                                                        len(m) + 1)])
    errors = m[-s.window_days:] - centre_rows[:-1]        # each past day against the centre made the day before
    centre = centre_rows[-1]                              # for every day after the last published one
    levels = (np.arange(s.scenarios) + 0.5) / s.scenarios
    local_hour = pd.DatetimeIndex(horizon).tz_convert(tz).hour.to_numpy()
    pooled = {h: _pooled(errors, h, s.pool_hours) for h in np.unique(local_hour)}
    values = np.stack([centre[h] + np.quantile(pooled[h], levels) for h in local_hour])
    cap = mk.price_caps_at(pd.DatetimeIndex(horizon))[:, None]
    values = np.round(np.clip(values, mk.PRICE_FLOOR_USD_PER_MWH, cap - 1.0), PRICE_DECIMALS)
    for k in range(1, s.scenarios):
        values[:, k] = np.maximum(values[:, k], values[:, k - 1] + PRICE_STEP_USD_PER_MWH)
    index = pd.DatetimeIndex(horizon).tz_convert("UTC").rename(None)
    frame = pd.DataFrame(np.round(values, PRICE_DECIMALS), index=index, columns=[f"q{lv:.4g}" for lv in levels])
    frame.attrs["source"] = (f"day-ahead prices published by {pd.Timestamp(decision).isoformat()}: median of the last "
                             f"{s.lag_days} days per local hour + error quantiles over {s.window_days} days")
    return frame


def _by_local_hour(da: pd.Series, timezone: str) -> pd.DataFrame:
    """Day-ahead prices as (local day, local hour 0-23): the fall-back day's repeated hour averaged, the missing
    spring-forward hour NaN, days without data as NaN rows (a calendar without gaps)."""
    local = da.index.tz_convert(timezone)
    frame = pd.DataFrame({"day": local.date, "hour": local.hour, "p": da.to_numpy()})
    table = frame.pivot_table(index="day", columns="hour", values="p", aggfunc="mean")
    days = pd.date_range(min(table.index), max(table.index), freq="D").date
    return table.reindex(index=days, columns=range(24))


def _pooled(errors: np.ndarray, hour: int, pool: int) -> np.ndarray:
    cols = [(hour + d) % 24 for d in range(-pool, pool + 1)]
    out = errors[:, cols].reshape(-1)
    out = out[np.isfinite(out)]
    if len(out) == 0:
        raise InputError(f"no day-ahead price errors known for local hour {hour}", field="da_prices")
    return out


# ----------------------------------------------------------------------------------------------------------------
# the scenario model


class Bidder:
    """The bidding model of one site: :func:`optimizer.model.build_scenarios` without shared commitments, plus the
    IDAES bidding constraints over the delivery hours; one build per (structure, scenarios, delivery hours), data
    pushed as parameters (a :class:`optimizer.planner.ModelCache`)."""

    def __init__(self, site: Site, options: SolverOptions | None = None, *, solver_factory=None,
                 allow_sla_breach: bool = False):
        from optimizer import solve
        from optimizer.planner import ModelCache

        if not site.contract.market_exposed:
            raise InputError(f"site {site.name!r} has no market position to bid: its block ({site.contract.block_mw:g} "
                             "MW) covers the import limit and unused power is not sold back", source=site.source,
                             field="contract")
        self.site, self.allow_sla_breach = site, allow_sla_breach
        self.options = options or solve.SolverOptions()
        self.cache = ModelCache(self.options, solver_factory)

    def solve(self, inputs: Inputs, scenario_prices: pd.DataFrame, weights: Sequence[float] | np.ndarray, n_bid: int,
              *, datasets: bool = False) -> BidSolution:
        """Solve over the horizon of ``inputs`` (its prices are ignored; ``scenario_prices`` has one column per
        scenario on the same hours); the first ``n_bid`` hours are the delivery day."""
        from optimizer import model, results

        site = self.site
        w = np.asarray(weights, dtype=float)
        k = scenario_prices.shape[1]
        if len(w) != k or k < 2 or (w < 0).any() or not np.isclose(w.sum(), 1.0):
            raise InputError(f"need two or more scenarios with one weight >= 0 each, summing to 1; got {list(w)}",
                             field="weights")
        if inputs.dt_hours != 1.0 or not 1 <= n_bid <= inputs.n:
            raise InputError("bids are made on an hourly horizon that covers the delivery day", field="horizon")
        per = [inputs.replace(prices=scenario_prices.iloc[:, j]) for j in range(k)]
        structure = model.Structure.of(site, per[0], allow_sla_breach=self.allow_sla_breach)
        t0 = time.perf_counter()
        solved = self.cache.solve(("bid", structure, k, n_bid), lambda: _build(site, structure, k, n_bid),
                                  lambda m: model.scenario_param_values(m, site, per, w, 0.0, 0.9))
        report = solved.report
        if report.status == "infeasible":
            raise InfeasibleError("the bidding model is infeasible: some price scenario cannot meet the hard limits "
                                  "(schedule the day with one scenario's prices for a diagnosis)")
        if not report.usable(self.options.accept_gap):
            raise NoSolutionError(f"HiGHS returned no usable bidding solution ({report.status}, {report.termination})")
        assert solved.solver is not None            # a usable report comes from a solver
        m, values = solved.model, solved.solver.values
        arrays = [results.plan_arrays(m.scen[j], site, inp, values) for j, inp in zip(m.S, per, strict=True)]
        load = np.stack([a["power"].sum(axis=1) for a in arrays], axis=1)          # (hour, scenario)
        sets = ([results.assemble(site, inp.times, **a, **results.context(site, inp)) for a, inp in
                 zip(arrays, per, strict=True)] if datasets else None)
        return BidSolution(scenario_prices.iloc[:n_bid], load[:n_bid] - site.contract.block_mw, w, report,
                           time.perf_counter() - t0, per, sets)


def _build(site: Site, structure, n_scenarios: int, n_bid: int):
    import itertools

    import pyomo.environ as pyo

    from optimizer import model

    m = model.build_scenarios(site, structure, n_scenarios)
    m.nonanticipative.deactivate()        # the award is known before the day: commit per price outcome
    pairs = [(a, b, t) for a, b in itertools.combinations(range(n_scenarios), 2) for t in range(n_bid)]
    m.BID = pyo.Set(initialize=pairs, dimen=3, doc="scenario pairs x delivery hours")
    m.bid_monotone = pyo.Constraint(m.BID, rule=lambda m, a, b, t: (m.scen[a].load_mw[t] - m.scen[b].load_mw[t])
                                    * (m.scen[b].price[t] - m.scen[a].price[t]) >= 0,
                                    doc="at a higher price the site buys less or the same (IDAES Bidder)")
    return m


@dataclass(frozen=True, eq=False)
class BidSolution:
    """A bidding solve: each delivery hour's scenario prices and net purchases (hour, scenario), the weights,
    how the solve went, and (when asked) each scenario's inputs and schedule dataset over the horizon."""

    prices: pd.DataFrame
    net_mw: np.ndarray
    weights: np.ndarray
    report: Any
    seconds: float
    inputs: list = field(default_factory=list)
    datasets: list | None = None

    def curves(self, segments: int, timezone: str) -> Curves:
        return build_curves(pd.DatetimeIndex(self.prices.index), self.prices.to_numpy(), self.net_mw, self.weights,
                            segments, timezone)


# ----------------------------------------------------------------------------------------------------------------
# one day's bid (the library form of `curtail bid`)


@dataclass(frozen=True, eq=False)
class Bid:
    """One operating day's bid: the curves, the solve they came from, and a summary (site, day, decision time,
    sources, status, gap, times)."""

    curves: Curves
    solution: BidSolution
    summary: dict


def bid_day(site: Site, day: dt.date, *, settings: BidSettings | None = None, da_history: pd.Series | None = None,
            scenarios: pd.DataFrame | None = None, weights: Sequence[float] | None = None,
            hashprice: float | None = None, initial_state=None, events=None, decision_time: pd.Timestamp | None = None,
            options: SolverOptions | None = None, verify: bool = True, history=None) -> Bid:
    """Bid curves for operating day ``day``. Price scenarios: ``scenarios`` (hourly, one column per scenario, covering
    the day and lookahead; ``weights`` default equal), else generated from ``da_history`` (default: the shipped
    day-ahead prices of the site's settlement point) as known at the decision time. ``decision_time``: default the
    bid deadline (10:00 local on D-1); a later one is refused (the market has closed). Hashprice, initial state,
    emergency events and 4CP come in as for ``schedule`` (:func:`optimizer.scheduling.day_inputs`; ``history``: the
    system load and load forecast the 4CP chances are estimated from, default the shipped). With ``verify``, every
    scenario's schedule passes the independent checker first."""
    from optimizer import scheduling
    from optimizer.forecast import MarketHistory

    s = settings or BidSettings()
    deadline = bid_deadline(day, site.timezone)
    decision = deadline if decision_time is None else pd.Timestamp(decision_time)
    if decision.tz is None:
        raise InputError(f"decision time {decision} has no time zone", field="decision_time")
    if decision > deadline:
        raise InputError(f"bids for {day} closed at {deadline.isoformat()} (10:00 local the day before); it is "
                         f"{decision.isoformat()}", field="--day")
    horizon = mk.horizon_for(day, site.timezone, s.lookahead_hours).rename(None)   # an index name would become a
    #                                                                               dimension of the result datasets
    if scenarios is None:
        da = da_history if da_history is not None else _shipped_da(site)
        frame = price_scenarios(MarketHistory(rt=da, da=da, timezone=site.timezone), decision, horizon, s)
        w = np.full(frame.shape[1], 1.0 / frame.shape[1])
        source = frame.attrs["source"]
    else:
        frame = _cover(scenarios, horizon)
        w = np.full(frame.shape[1], 1.0 / frame.shape[1]) if weights is None else np.asarray(weights, dtype=float)
        source = str(scenarios.attrs.get("source", "scenarios given"))
    req = scheduling.DayRequest(day, frame.iloc[:, 0], hashprice, s.lookahead_hours, initial_state,
                                tuple(events or ()), None, decision, history)
    inputs, sources = scheduling.day_inputs(site, req)
    n_bid = len(mk.operating_hours(day, site.timezone))
    bidder = Bidder(site, options)
    sol = bidder.solve(inputs, frame, w, n_bid, datasets=verify)
    if verify:
        _verify(site, sol, n_bid)
    curves = sol.curves(s.segments, site.timezone)
    bad = curves.problems(s.segments)
    if bad:
        raise NoSolutionError("the bid curves fail their own check (a bug: please report); nothing written:\n  "
                              + "\n  ".join(bad[:10]))
    summary = {"site": site.name, "settlement_point": site.settlement_point, "day": day.isoformat(),
               "hours": n_bid, "decision_time": decision.isoformat(), "bid_deadline": deadline.isoformat(),
               "scenarios": int(frame.shape[1]), "scenario_source": source, "segments_limit": s.segments,
               "segments_used_max": int(curves.used.max()), "status": sol.report.status,
               "mip_gap": sol.report.mip_gap, "objective_usd": sol.report.objective_usd,
               "solve_seconds": sol.seconds, "hashprice_usd_per_ph_day": float(inputs.hashprice_usd_per_ph_day),
               "hashprice_source": sources["hashprice_source"], "fourcp_source": sources["fourcp_source"],
               "lookahead_hours": s.lookahead_hours, "weights": [float(x) for x in w],
               "mip_rel_gap_option": bidder.options.mip_rel_gap,
               "time_limit_seconds": bidder.options.time_limit_seconds}
    return Bid(curves, sol, summary)


def _shipped_da(site: Site) -> pd.Series:
    from optimizer import data

    try:
        return data.ercot_prices(site.settlement_point, "da")
    except InputError:
        raise InputError(f"no shipped day-ahead prices for {site.settlement_point!r}: give --da-prices (a history "
                         "of day-ahead prices) or --scenarios", source=site.source, field="settlement_point") from None


def _cover(scenarios: pd.DataFrame, horizon: pd.DatetimeIndex) -> pd.DataFrame:
    idx = pd.DatetimeIndex(scenarios.index)
    if idx.tz is None:
        raise InputError("scenario timestamps have no time zone", field="timestamp")
    frame = scenarios.set_axis(idx.tz_convert("UTC"))
    missing = horizon[~horizon.isin(frame.index)]
    if len(missing):
        raise InputError(f"the scenarios have no price for {len(missing)} hour(s) of the day and lookahead, first "
                         f"{missing[0].isoformat()}; shorten --lookahead-hours or extend the file", field="timestamp")
    if frame.shape[1] < 2:
        raise InputError("a bid needs two or more price scenarios", field="scenarios")
    return frame.reindex(horizon)


def _verify(site: Site, sol: BidSolution, n_bid: int) -> None:
    """Each scenario's schedule of the delivery day passes the independent checker."""
    from optimizer import results
    from optimizer.scheduling import verify

    for j, (ds, inp) in enumerate(zip(sol.datasets or [], sol.inputs, strict=True)):
        head = inp.head(n_bid)
        try:
            verify(site, results.resettle_day(ds, site, head), head)
        except NoSolutionError as exc:
            raise NoSolutionError(f"bid scenario {sol.prices.columns[j]}: {exc}") from None


# ----------------------------------------------------------------------------------------------------------------
# two-settlement


def two_settlement(award_mw: np.ndarray, da_price: np.ndarray, rt_price: np.ndarray, grid_mw: np.ndarray,
                   dt_hours: float) -> dict[str, np.ndarray]:
    """Per interval (USD): ``da_cost_usd`` = award x DA price x dt, ``rt_deviation_cost_usd`` = (grid position -
    award) x RT price x dt, and ``da_settlement_usd`` = award x (DA - RT) x dt, what the day-ahead position adds
    to settling the whole position in real time (their sum equals ``grid x RT x dt`` plus it)."""
    a, da, rt, g = (np.asarray(x, dtype=float) for x in (award_mw, da_price, rt_price, grid_mw))
    return {"da_cost_usd": a * da * dt_hours, "rt_deviation_cost_usd": (g - a) * rt * dt_hours,
            "da_settlement_usd": a * (da - rt) * dt_hours}


#: Variables :func:`with_two_settlement` adds to a result dataset (besides ``da_award_mw`` and ``da_price``).
DA_MONEY = ("da_cost_usd", "rt_deviation_cost_usd", "da_settlement_usd")


def with_two_settlement(ds: xr.Dataset, site: Site, award_mw: np.ndarray, da_price: np.ndarray) -> xr.Dataset:
    """A settled result dataset (real-time settlement of the whole grid position) with a day-ahead award per
    interval: adds ``da_award_mw``, ``da_price_usd_per_mwh`` and :data:`DA_MONEY`, and takes ``da_settlement_usd``
    off ``profit_usd``. An award on a site without a market position is an error."""
    award = np.asarray(award_mw, dtype=float)
    if not site.contract.market_exposed and np.abs(award).max(initial=0.0) > 0:
        raise InputError(f"site {site.name!r} has no market position; a day-ahead award cannot settle", field="award")
    dt_hours = float(ds.attrs["interval_hours"])
    money = two_settlement(award, da_price, ds["price_usd_per_mwh"].to_numpy(), ds["grid_mw"].to_numpy(), dt_hours)
    ds = ds.copy()
    ds["da_award_mw"] = (("time",), award)
    ds["da_price_usd_per_mwh"] = (("time",), np.asarray(da_price, dtype=float))
    for name, v in money.items():
        ds[name] = (("time",), v)
        ds[name].attrs["units"] = "USD"
    ds["da_award_mw"].attrs["units"] = "MW"
    ds["da_price_usd_per_mwh"].attrs["units"] = "USD/MWh"
    ds["profit_usd"] = ds["profit_usd"] - ds["da_settlement_usd"]
    ds["profit_usd"].attrs["units"] = "USD"
    return ds


def da_frame_columns(ds: xr.Dataset) -> dict[str, np.ndarray]:
    """The two-settlement columns of a dataset, for the flat table the checker reads."""
    return {name: ds[name].to_numpy() for name in ("da_award_mw", "da_price_usd_per_mwh", *DA_MONEY) if name in ds}


# ----------------------------------------------------------------------------------------------------------------
# the operator's file


def write_bids(curves: Curves, path: str | Path, *, segments: int, provenance: Mapping[str, Any] | None = None) -> Path:
    """Write the curves as the operator's CSV (module docstring) with a provenance sidecar ``<path>.meta.json``
    (carrying the CSV's sha256), each atomically; under the output's lock. Curves that fail :meth:`Curves.problems`
    are never written (NoSolutionError: the previous file stays)."""
    from optimizer import results

    path = Path(path)
    check_bid_path(path)
    bad = curves.problems(segments)
    if bad:
        raise NoSolutionError("the bid curves fail their own check; nothing written:\n  " + "\n  ".join(bad[:10]))
    frame = curves.to_frame(segments)
    side = results.sidecar_path(path)
    try:
        with results.atomic_path(path) as tmp_csv:
            frame.to_csv(tmp_csv, index=False, float_format="%.2f", lineterminator="\n")
            meta = {"format": "curtail-bid-csv", "version": 1, "csv": path.name,
                    "csv_sha256": results.file_sha256(tmp_csv), "provenance": dict(provenance or {})}
            with results.atomic_path(side) as tmp_meta:
                Path(tmp_meta).write_text(json.dumps(meta, indent=1, sort_keys=True, default=str) + "\n")
    except OSError as exc:
        raise results.output_error(exc, path) from None
    return path


def check_bid_path(path: str | Path) -> Path:
    """Fail early on a bid output that cannot be written: not ``.csv``, no folder, a folder."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        raise InputError(f"bids are written as .csv, not {path.suffix!r}", source=str(path))
    if not path.parent.is_dir():
        raise InputError("output folder does not exist", source=str(path.parent))
    if path.is_dir():
        raise InputError("output path is a folder, not a file", source=str(path))
    return path


def read_bids(path: str | Path, timezone: str = mk.TIMEZONE, segments: int | None = None) -> Curves:
    """Read an operator's bid CSV back (any number of pairs); InputError naming the row and field when it is not a
    valid bid: unknown or missing columns, a bad date, hour ending or flag, a non-number, non-monotone pairs."""
    src = str(path)
    try:
        df = pd.read_csv(path, dtype={"delivery_date": str, "repeated_hour_flag": str})
    except FileNotFoundError:
        raise InputError("bid file not found", source=src) from None
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file
        raise InputError(f"cannot read bid file ({type(exc).__name__}: {exc})", source=src) from None
    head = ["delivery_date", "hour_ending", "repeated_hour_flag"]
    n = (len(df.columns) - 3) // 2
    want = head + [c for i in range(1, n + 1) for c in (f"price_{i}", f"mw_{i}")]
    if list(df.columns) != want or n < 1:
        raise InputError(f"expected columns {', '.join(want[:5])}, ... (price_i, mw_i pairs); got "
                         f"{', '.join(map(str, df.columns))}", source=src)
    hours = _hours_of(df, timezone, src)
    values = {}
    for c in want[3:]:
        v = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(df[c].notna().to_numpy() & ~np.isfinite(v))
        if len(bad):
            raise InputError(f"row {bad[0] + 1}: {df[c].iloc[bad[0]]!r} is not a number", source=src, field=c)
        values[c] = v
    price = np.stack([values[f"price_{i}"] for i in range(1, n + 1)], axis=1)
    mw = np.stack([values[f"mw_{i}"] for i in range(1, n + 1)], axis=1)
    curves = Curves(hours, price, mw, timezone)
    problems = curves.problems(segments)
    if problems:
        raise InputError(f"not a valid bid: {problems[0]}", source=src)
    return curves


def _hours_of(df: pd.DataFrame, timezone: str, src: str) -> pd.DatetimeIndex:
    """UTC hour starts of the rows' (delivery date, hour ending, repeated hour flag)."""
    out = []
    for i, (d, he, flag) in enumerate(zip(df["delivery_date"], df["hour_ending"], df["repeated_hour_flag"],
                                          strict=True)):
        t = _hour_start(d, he, flag, timezone)
        if t is None:
            raise InputError(f"row {i + 1}: delivery_date {d!r}, hour_ending {he!r}, repeated_hour_flag {flag!r} is "
                             "not an hour of that day (HE 1-24, none on the spring-forward day's HE 3; flag Y only on "
                             "the second pass of the fall-back day's HE 2)", source=src, field="hour_ending")
        out.append(t)
    idx = pd.DatetimeIndex(out)
    if idx.has_duplicates or not idx.is_monotonic_increasing:
        raise InputError("rows are not distinct hours in time order", source=src, field="hour_ending")
    return idx


def _hour_start(day: Any, hour_ending: Any, flag: Any, timezone: str) -> pd.Timestamp | None:
    """The UTC start of an ERCOT (delivery date, hour ending, repeated hour flag), or None if there is no such hour."""
    try:
        d = dt.date.fromisoformat(str(day))
        he = float(hour_ending)
    except (TypeError, ValueError):
        return None
    if not he.is_integer() or not 1 <= he <= 24 or flag not in ("N", "Y"):
        return None
    local = pd.DatetimeIndex([pd.Timestamp(d) + pd.Timedelta(hours=int(he) - 1)])
    try:
        t = local.tz_localize(timezone, ambiguous="raise", nonexistent="raise")[0]
    except Exception:  # noqa: BLE001 - pytz/zoneinfo raise different classes for ambiguous and missing times
        try:
            t = local.tz_localize(timezone, ambiguous=np.array([flag == "N"]), nonexistent="raise")[0]
        except Exception:  # noqa: BLE001 - a missing (spring-forward) hour
            return None
        return t.tz_convert("UTC")
    return None if flag == "Y" else t.tz_convert("UTC")


# ----------------------------------------------------------------------------------------------------------------
# the command as library logic


@dataclass(frozen=True)
class BidJob:
    """One run of ``curtail bid``: every option as given (paths are read by :func:`run_job`)."""

    site: Path | None = None
    day: str | None = None                    # YYYY-MM-DD or "tomorrow"; None: 2022-07-20
    settings: BidSettings = field(default_factory=BidSettings)
    scenarios: Path | None = None             # CSV: timestamp + one column of day-ahead prices per scenario
    scenario_count_given: bool = False        # --scenario-count was given (refused with --scenarios)
    weights: tuple[float, ...] | None = None
    da_prices: Path | None = None             # a history of day-ahead prices (CSV/Parquet) instead of the shipped
    hashprice: float | None = None
    initial_state: Path | None = None
    emergency: Path | None = None
    options: SolverOptions | None = None
    out: Path | None = None
    load: Path | None = None                  # 4CP: hourly system load, merged over the shipped (as schedule --load)
    load_forecast: Path | None = None         # 4CP: day-ahead system load forecast (as schedule --load-forecast)
    peaks: None = None                        # the 4CP reader's third input: a bid settles nothing

    def refuse_unhonoured(self) -> None:
        """Options that cannot be honoured together are refused, never ignored."""
        if self.scenarios is None and self.weights is not None:
            raise InputError("--weights only applies with --scenarios", field="--weights")
        if self.scenarios is not None and self.scenario_count_given:
            raise InputError("--scenario-count sets how many scenarios are generated; --scenarios gives them",
                             field="--scenario-count")
        if self.scenarios is not None and self.da_prices is not None:
            raise InputError("--da-prices is the history scenarios are generated from; --scenarios gives them",
                             field="--da-prices")


def run_job(job: BidJob) -> Bid:
    """Read and validate every input (InputError, exit 2, before anything is solved), lock the output, bid, check,
    write atomically (a failure leaves the previous file). Returns the bid."""
    from contextlib import nullcontext

    from optimizer import data, results
    from optimizer.events import read_events
    from optimizer.nightly import created_at, fourcp_inputs, parse_day
    from optimizer.site import load_site
    from optimizer.state import read_state_file
    from optimizer.stochastic import read_scenarios_file

    job.refuse_unhonoured()
    site = load_site(job.site or data.default_site_path())
    the_day, now = parse_day(job.day, site.timezone)
    if job.out is not None:
        check_bid_path(job.out)
    state = (read_state_file(job.initial_state, site, mk.operating_hours(the_day, site.timezone)[0])
             if job.initial_state else None)
    events = read_events(job.emergency, site) if job.emergency else None
    scenarios = read_scenarios_file(job.scenarios) if job.scenarios else None
    if scenarios is not None:
        scenarios.attrs["source"] = str(job.scenarios)
    history = data.read_price_file(job.da_prices) if job.da_prices else None
    _, load_history = fourcp_inputs(job, site)                 # the 4CP reader of curtail schedule
    with results.output_lock(job.out) if job.out is not None else nullcontext():
        b = bid_day(site, the_day, settings=job.settings, da_history=history, scenarios=scenarios,
                    weights=job.weights, hashprice=job.hashprice, initial_state=state, events=events,
                    decision_time=now, options=job.options, history=load_history)
        b.summary["created_at"] = created_at()
        b.summary["inputs"] = {name: {"path": str(p), "sha256": results.file_sha256(p)} for name, p in (
            ("site", Path(site.source)), ("scenarios", job.scenarios), ("da_prices", job.da_prices),
            ("initial_state", job.initial_state), ("emergency", job.emergency), ("load", job.load),
            ("load_forecast", job.load_forecast)) if p is not None and Path(p).is_file()}
        if job.out is not None:
            write_bids(b.curves, job.out, segments=job.settings.segments, provenance=b.summary)
    return b
