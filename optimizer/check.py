"""Independent schedule checker: it trusts nothing in a written schedule except the decisions.

Method. A schedule table (:func:`optimizer.results.to_frame`, or a file read back) holds
- **decisions**: the timestamps, each unit's MW (``mining_mw__<fleet>``, ``ai_mw__<cluster>``), each cluster's SLA
  shortfall (``sla_shortfall_mw__<cluster>``) and committed GPUs' power (``committed_mw__<cluster>``), each job's
  work (``job_gpus__<job>``) and the reserve offers (``reserve_mw__<service>__<asset>``);
- **everything else**: totals, grid, sell-back, the limit, price and weight recorded per row, every money column and
  the profit. All of it is recomputed and compared; a difference is a violation.
What limits and money depend on (expected timestamps, prices, hashprice, initial state, emergency caps, 4CP
weights, reserve prices and deployments, SLA options, inference demand, job progress and how job penalties are
booked) comes from :class:`CheckInputs`, which the caller fills from the run's inputs, never from the table. The
arithmetic is the checker's own, written from the site's raw fields after docs/formulation.md ("Checker
derivations"): it calls no ``site.py`` method or property and nothing in ``optimizer/model``, so a modelling bug
cannot hide itself (tests show both derivations agree on every shipped site). The one exception is an input: the
default inference demand is the cluster's demand profile (``GpuCluster.demand_fraction``), as prices are the
price file. A non-finite value anywhere is a violation, and so is a missing, shifted or extra row. A ramp or
minimum-on breach is excused only for a trip to zero in an interval whose emergency cap (from the inputs) is below
the site's load of the interval before: firmware can trip under an emergency; nothing else excuses anything.
Reserve offers are checked against the checker's own copy of the ERCOT service rules (:data:`AS_SELLERS`: which
Load Resource kind may sell which service; :data:`AS_RESPONSE_MINUTES`), their revenue is recomputed from the
capacity prices the caller gives (required for a service paid hourly clearing prices), and, with deployment events,
the MW deployed in each row is re-derived from the events and the table's offers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from optimizer.errors import InputError
from optimizer.site import GpuCluster, MiningFleet, Site
from optimizer.state import UnitState

TOL_MW = 1e-4              # power, MW (HiGHS's feasibility tolerance is 1e-7 on MW-scaled rows)
TOL_USD = 0.01             # money, USD per interval, plus TOL_REL of the amount
TOL_REL = 1e-7
TOL_PRICE = 1e-4           # prices (USD/MWh, USD/MW/h) and 4CP weights as recorded (files keep 6 decimals)
ON_FLOOR_FRACTION = 1e-3   # copied from optimizer/model/commitment.py (docs/formulation.md, the on-floor rule):
ON_FLOOR_MIN_MW = 1e-3     # "on" means at least 0.1% of capacity and at least 1 kW (at most the capacity)
#: The checker's own copy of docs/ancillary.md's rules (not optimizer.ancillary's): the ERCOT services a load may
#: sell, each with the Load Resource kinds (``reserve_resource``) allowed to sell it and the longest response time it
#: allows (minutes). Any other name (Regulation Down: an increase of load; a name ERCOT does not have) may not be
#: offered at all.
AS_SELLERS = {"regup": ("clr",), "rrs": ("clr", "ufr"), "ecrs": ("clr", "ufr"), "nspin": ("clr",)}
AS_RESPONSE_MINUTES = {"regup": 5.0, "rrs": 10.0, "ecrs": 10.0, "nspin": 30.0}


@dataclass(frozen=True)
class Violation:
    rule: str
    asset: str           # a unit, a column or "site"
    row: int             # 0-based row of the schedule; -1 for the table as a whole
    amount: float        # by how much (MW, USD, h, as the detail says); nan where no size applies
    detail: str
    timestamp: str = ""  # the row's expected interval start (UTC)

    def __str__(self) -> str:
        by = f" by {self.amount:.6g}" if math.isfinite(self.amount) else ""
        where = self.timestamp or ("table" if self.row < 0 else f"row {self.row}")
        return f"{where} {self.asset} {self.rule}{by}: {self.detail}"


@dataclass(frozen=True, eq=False)
class CheckInputs:
    """What a schedule's limits and money depend on, taken from the run's inputs, never from the table. Per-row
    fields take one value per expected row, a scalar (repeated) or a ``pd.Series`` on a time index (aligned to
    ``timestamps``; it must cover them). Validated on creation: InputError naming the field and the row.
    ``sla_shortfall_before_mwh`` is the shortfall already used earlier in the SLA month per cluster: 0 (the default)
    means "100% availability so far"; the schedule owes the credit its own shortfall adds to that."""

    timestamps: pd.DatetimeIndex            # the interval starts the table must have (tz-aware); spacing = interval
    prices_usd_per_mwh: Any                 # the prices it is settled at
    hashprice_usd_per_ph_day: Any           # per row (a backtest settles each day at its own)
    initial_state: Mapping[str, UnitState] = field(default_factory=dict)   # missing unit: on at full power, long ago
    emergency_cap_mw: Any = None            # emergency events' caps (+inf where none): the only caps allowing a trip
    deployment_cap_mw: Any = None           # caps while reserves are deployed (+inf where none): never an excuse
    peak_weight: Any = None                 # 4CP weight: the plan's peak probability, or 1 in actual peak hours; 0
    peak_probability: Any = None            # what the 4CP curtailment threshold is compared with; default peak_weight
    #                                         (a backtest curtails on the plan's probability, settles on the peaks)
    reserve_prices_usd_per_mw_hour: Mapping[str, Any] = field(default_factory=dict)   # per service; default the site's
    #                                         constant price (a service paid hourly clearing prices must be given)
    reserve_deployed_mw: Any = None         # MW deployed per row; default 0 (or, with deployments, their sum)
    deployments: Any = ()                   # deployment events (start, end exclusive, service), UTC: the deployed MW
    #                                         of each row is re-derived from them and the table's offers
    deployed_given: bool = field(default=False, init=False, repr=False)   # reserve_deployed_mw given (set on creation)
    allow_sla_breach: bool = False          # committed GPU load may fall short (the SLA credit is then due)
    sla_shortfall_before_mwh: Mapping[str, float] = field(default_factory=dict)    # MWh per cluster, see above
    interval_hours: float = 0.0             # 1 or 0.25; 0 (default): the spacing of the timestamps (1 for one row)
    demand_gpus: Mapping[str, Any] | None = None    # inference demand per cluster per row, GPUs (an input, like
    #                                                 prices); None: each cluster's profile at the timestamps
    job_done_before: Mapping[str, float] = field(default_factory=dict)   # GPU-hours done per job before the table
    job_running_before: Mapping[str, float] = field(default_factory=dict)  # hours of a rigid job's current run
    job_penalty: str = "plan"               # "plan": the late GPU-hours the plan expects, booked in the first row
    #                                         (it assumes all the job's GPUs after the table until its deadline);
    #                                         "settle": the GPU-hours missing at a deadline, in the deadline's row
    da_award_mw: Any = None                 # day-ahead award per row (MW, net purchase; < 0 a sale); None: no
    #                                         day-ahead position, everything settles in real time
    da_prices_usd_per_mwh: Any = None       # the day-ahead prices the award settles at (given with an award)

    def __post_init__(self) -> None:
        ts = pd.DatetimeIndex(self.timestamps)
        if ts.tz is None or len(ts) == 0:
            raise InputError("expected timestamps must be tz-aware and not empty", field="timestamps")
        ts = ts.tz_convert("UTC")
        steps = set((ts[1:] - ts[:-1]).total_seconds() / 3600.0)
        dt_hours = self.interval_hours or (steps.pop() if len(steps) == 1 else 1.0 if not steps else math.nan)
        if dt_hours not in (1.0, 0.25) or steps - {dt_hours}:
            raise InputError(f"expected timestamps must be evenly 1 h or 15 min apart; got steps {sorted(steps)} h",
                             field="timestamps")
        done = {"timestamps": ts, "interval_hours": dt_hours}
        for name, default, lo, hi in (
                ("prices_usd_per_mwh", None, -math.inf, math.inf), ("hashprice_usd_per_ph_day", None, 1e-12, math.inf),
                ("emergency_cap_mw", math.inf, 0.0, None), ("deployment_cap_mw", math.inf, 0.0, None),
                ("peak_weight", 0.0, 0.0, 1.0), ("reserve_deployed_mw", 0.0, 0.0, math.inf)):
            done[name] = _per_row(ts, name, getattr(self, name), default, lo, hi)
        done["peak_probability"] = (done["peak_weight"] if self.peak_probability is None else
                                    _per_row(ts, "peak_probability", self.peak_probability, None, 0.0, 1.0))
        done["deployed_given"] = self.reserve_deployed_mw is not None
        done["deployments"] = _events(self.deployments)
        done["reserve_prices_usd_per_mw_hour"] = {
            k: _per_row(ts, f"reserve_prices_usd_per_mw_hour[{k}]", v, None, 0.0, math.inf)
            for k, v in (self.reserve_prices_usd_per_mw_hour or {}).items()}
        done["demand_gpus"] = None if self.demand_gpus is None else {
            k: _per_row(ts, f"demand_gpus[{k}]", v, None, 0.0, math.inf) for k, v in self.demand_gpus.items()}
        if self.job_penalty not in ("plan", "settle"):
            raise InputError(f"job_penalty must be 'plan' or 'settle', got {self.job_penalty!r}", field="job_penalty")
        if (self.da_award_mw is None) != (self.da_prices_usd_per_mwh is None):
            raise InputError("a day-ahead award and its day-ahead prices go together", field="da_award_mw")
        for name in ("da_award_mw", "da_prices_usd_per_mwh"):
            v = getattr(self, name)
            done[name] = None if v is None else _per_row(ts, name, v, None, -math.inf, math.inf)
        done["job_done_before"] = dict(self.job_done_before or {})
        done["job_running_before"] = dict(self.job_running_before or {})
        for name in ("job_done_before", "job_running_before"):
            bad = [k for k, v in done[name].items() if isinstance(v, bool) or not isinstance(
                v, (int, float, np.integer, np.floating)) or not (math.isfinite(v) and v >= 0)]
            if bad:
                raise InputError(f"job {bad[0]!r}: {_show(done[name][bad[0]])} is not a finite number >= 0 (hours)",
                                 field=name)
        done["initial_state"] = dict(self.initial_state or {})
        done["sla_shortfall_before_mwh"] = dict(self.sla_shortfall_before_mwh or {})
        if not all(math.isfinite(v) and v >= 0 for v in done["sla_shortfall_before_mwh"].values()):
            raise InputError("expected finite values >= 0 MWh", field="sla_shortfall_before_mwh")
        for name, value in done.items():
            object.__setattr__(self, name, value)



def _show(value: Any) -> str:
    """A value as a message shows it: numbers plainly (``1.5``, ``nan``, not ``np.float64(1.5)``), anything else
    as its repr (a string in quotes)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))               # the shortest text that reads back as the same number
    return repr(value)

def _events(events: Any) -> tuple[tuple[pd.Timestamp, pd.Timestamp, str], ...]:
    """Deployment events as (start, end, service), UTC; each an object with ``start``, ``end``, ``service`` or a
    triple. A start not before its end, or a time without a time zone, is an InputError."""
    out = []
    for i, e in enumerate(events or ()):
        start, end, service = (e.start, e.end, e.service) if hasattr(e, "service") else e
        start, end = pd.Timestamp(start), pd.Timestamp(end)
        if start.tz is None or end.tz is None or not start < end:
            raise InputError(f"event {i}: {start} .. {end} must be tz-aware with start < end", field="deployments")
        out.append((start.tz_convert("UTC"), end.tz_convert("UTC"), str(service)))
    return tuple(out)


def _per_row(times: pd.DatetimeIndex, name: str, value: Any, default: float | None, lo: float,
             hi: float | None) -> np.ndarray:
    """One float per expected row in [lo, hi] (``hi`` None: finite or +inf); else InputError naming the row."""
    n = len(times)
    if value is None and default is None:
        raise InputError("required", field=name)
    if isinstance(value, pd.Series) and isinstance(value.index, pd.DatetimeIndex):
        value = value.set_axis(value.index.tz_convert("UTC")).reindex(times)      # missing times become NaN
    arr = np.asarray(default if value is None else value, dtype=float).reshape(-1)
    if arr.size not in (1, n):
        raise InputError(f"expected {n} values (one per row), got {arr.size}", field=name)
    out = np.broadcast_to(arr, (n,)).astype(float)
    ok = (out >= lo) & (out <= (math.inf if hi is None else hi)) & (np.isfinite(out) | (hi is None))
    bad = np.flatnonzero(~ok)
    if len(bad):
        t = int(bad[0])
        raise InputError(f"row {t} ({times[t].isoformat()}): {_show(out[t])} is not a number in [{lo:g}, "
                         f"{'inf' if hi is None else f'{hi:g}'}]", field=name)
    return out


# ---------------------------------------------------------------------------------------------------------
# The checker's own derivations from the site's raw fields (docs/formulation.md, "Checker derivations").


def mw_per_gpu(g: GpuCluster) -> float:
    return g.kw_per_gpu * g.pue / 1000.0


def committed_mw(g: GpuCluster) -> float:
    return g.committed_gpus * mw_per_gpu(g)


def flexible_mw(g: GpuCluster) -> float:
    return (g.gpus - g.committed_gpus) * mw_per_gpu(g)


def mining_value_usd_per_mwh(f: MiningFleet, hashprice_usd_per_ph_day: Any) -> Any:
    """USD/(PH/s day) / 24 h x PH/s per MW of site power x the share the pool leaves."""
    return (hashprice_usd_per_ph_day / 24.0 * 1000.0 / (f.efficiency_j_per_th * (1.0 + f.cooling_overhead_fraction))
            * (1.0 - f.pool_fee_fraction))


def throughput_curve(g: GpuCluster) -> tuple[np.ndarray, np.ndarray]:
    """(spot MW, GPUs) breakpoints of the most throughput a spot load can give: with a power-cap curve, the upper
    concave hull of (0, 0) and, for each curve point (board fraction f, throughput y), all spot GPUs at f:
    (spot GPUs x MW per GPU x (1 - share + share x f), spot GPUs x y); without, a line to all GPUs at full power."""
    n, mu = g.gpus - g.committed_gpus, mw_per_gpu(g)
    if g.power_cap_curve is None or n == 0:
        return np.array([0.0, n * mu]), np.array([0.0, float(n)])
    pts = [(0.0, 0.0)] + [(n * mu * (1 - g.gpu_power_share + g.gpu_power_share * f), n * y)
                          for f, y in g.power_cap_curve.points]
    hull: list[tuple[float, float]] = []
    for x, y in sorted(pts):                   # keep a point only while the slopes fall (concave)
        while len(hull) >= 2 and (y - hull[-2][1]) * (hull[-1][0] - hull[-2][0]) >= \
                (hull[-1][1] - hull[-2][1]) * (x - hull[-2][0]):
            hull.pop()
        hull.append((x, y))
    xs, ys = zip(*hull, strict=True)
    return np.array(xs), np.array(ys)


def committed_min_mw(g: GpuCluster) -> float:
    """Least committed power meeting the SLA throughput: boards capped to the least power giving it."""
    curve = g.power_cap_curve
    if curve is None or g.sla_throughput_fraction >= 1.0:
        return committed_mw(g)
    fs, ys = zip(*curve.points, strict=True)
    keep = [0] + [i for i in range(1, len(ys)) if ys[i] > ys[i - 1]]
    board = float(np.interp(max(g.sla_throughput_fraction, ys[0]), [ys[i] for i in keep], [fs[i] for i in keep]))
    return committed_mw(g) * (1 - g.gpu_power_share + g.gpu_power_share * board)


def spot_value_usd_per_mwh(g: GpuCluster) -> float:
    """Spot price x GPUs per MW on the first (most efficient) segment of the throughput curve."""
    xs, ys = throughput_curve(g)
    return g.spot_price_usd_per_gpu_hour * (ys[1] / xs[1] if len(xs) > 1 and xs[1] > 0 else 0.0)


def capacity_mw(u: MiningFleet | GpuCluster) -> float:
    """Capacity of the switchable unit: a fleet's, or a cluster's flexible part."""
    return u.capacity_mw if isinstance(u, MiningFleet) else flexible_mw(u)


def reserve_limit_mw(u: MiningFleet | GpuCluster, response_minutes: float) -> float:
    """Most a unit may offer to a service: what it drops within the response time; without a drop rate a fleet
    offers all its capacity, a cluster nothing."""
    if u.reserve_drop_mw_per_minute is None:
        return u.capacity_mw if isinstance(u, MiningFleet) else 0.0
    return min(capacity_mw(u), u.reserve_drop_mw_per_minute * response_minutes)


def on_floor_mw(u: MiningFleet | GpuCluster) -> float:
    cap = capacity_mw(u)
    return min(max(u.min_load_fraction * cap, ON_FLOOR_FRACTION * cap, ON_FLOOR_MIN_MW), cap)


def switched(u: MiningFleet | GpuCluster, dt_hours: float) -> bool:
    """Has on/off decisions at this resolution (a minimum time of one interval or less binds nothing)."""
    return (u.min_load_fraction > 0 or u.min_on_hours > dt_hours or u.min_off_hours > dt_hours
            or u.restart_cost_usd > 0)


def sla_credit_usd(g: GpuCluster, shortfall_mwh: float) -> float:
    """Credit of the lowest tier whose availability level the month's availability falls below, x monthly bill."""
    c = committed_mw(g)
    if c <= 0 or shortfall_mwh <= 0:
        return 0.0
    availability = 1.0 - shortfall_mwh / (c * g.sla_month_hours)
    credit = max((k for level, k in g.sla_credit_tiers if availability < level), default=0.0)
    return credit * g.committed_gpus * g.committed_price_usd_per_gpu_hour * g.sla_month_hours


# ---------------------------------------------------------------------------------------------------------


def check_schedule(site: Site, frame: pd.DataFrame, inputs: CheckInputs) -> list[Violation]:
    """Every violated limit or accounting identity of ``frame`` (empty when valid). Bad ``inputs`` (an asset or
    service the site does not have, an initial power outside the unit's range) raise InputError."""
    ins, n, dt = inputs, len(inputs.timestamps), float(inputs.interval_hours)
    stamps = ins.timestamps.strftime("%Y-%m-%dT%H:%M:%SZ")
    out: list[Violation] = []

    def add(rule: str, asset: str, t: int | np.integer, amount: float, detail: str) -> None:
        out.append(Violation(rule, asset, int(t), float(amount), detail, stamps[t] if t >= 0 else ""))

    units = {f.name: f for f in site.mining} | {g.name: g for g in site.gpu}
    services = {r.name: r for r in site.reserves}
    _known(ins.initial_state, units, "initial_state")
    _known(ins.sla_shortfall_before_mwh, {g.name for g in site.gpu}, "sla_shortfall_before_mwh")
    _known(ins.reserve_prices_usd_per_mw_hour, services, "reserve_prices_usd_per_mw_hour")
    _known(dict.fromkeys(s for _, _, s in ins.deployments), services, "deployments")
    unpriced = [r.name for r in site.reserves if r.clearing_prices and r.name not in ins.reserve_prices_usd_per_mw_hour]
    if unpriced:
        raise InputError(f"service(s) {', '.join(unpriced)} are paid hourly clearing prices: give their prices per "
                         "row", field="reserve_prices_usd_per_mw_hour")
    _known(ins.demand_gpus or {}, {g.name for g in site.gpu}, "demand_gpus")
    jobs = {j.name: j for j in site.jobs}
    _known(ins.job_done_before, jobs, "job_done_before")
    _known(ins.job_running_before, jobs, "job_running_before")
    over = [k for k, v in ins.job_done_before.items() if v > jobs[k].gpu_hours * (1 + 1e-9) + 1e-9]
    if over:
        raise InputError(f"job {over[0]!r}: {ins.job_done_before[over[0]]:g} GPU-hours done exceed the "
                         f"{jobs[over[0]].gpu_hours:g} it needs", field="job_done_before")
    if not _timestamps(frame, ins.timestamps, stamps, add):
        return out
    num = {c: pd.to_numeric(frame[c], errors="coerce").to_numpy(float) for c in frame.columns if c != "timestamp"}
    for c, v in num.items():
        for t in np.flatnonzero(~np.isfinite(v)):
            add("finite", c, t, math.nan, f"value {_show(frame[c].iloc[t])} is not a finite number")
        num[c] = np.where(np.isfinite(v), v, np.nan)        # reported once; NaN then fails no other comparison
    known = ({f"mining_mw__{f.name}" for f in site.mining}
             | {f"{k}__{g.name}" for g in site.gpu for k in ("ai_mw", "sla_shortfall_mw", "committed_mw")}
             | {f"job_gpus__{j.name}" for j in site.jobs})
    offers = {f"reserve_mw__{s}__{u}" for s in services for u in units}
    derived = {f"served_gpus__{g.name}" for g in site.gpu}
    for c in num:
        kind = c.split("__")[0] if "__" in c else ""
        if (kind == "reserve_mw" and c not in offers) or (kind == "served_gpus" and c not in derived) or (
                kind in ("mining_mw", "ai_mw", "sla_shortfall_mw", "committed_mw", "job_gpus") and c not in known):
            add("columns", c, -1, math.nan, "names an asset or service the site does not have")
    for c in sorted(known - set(num)):
        add("columns", c, -1, math.nan, f"missing decision column {c!r}")
    if known - set(num):
        return out

    # the switchable part of each unit (a cluster's flexible load), the load and the limits in force
    short = {g.name: num[f"sla_shortfall_mw__{g.name}"] for g in site.gpu}
    cmw = {g.name: num[f"committed_mw__{g.name}"] for g in site.gpu}
    power = {f.name: num[f"mining_mw__{f.name}"] for f in site.mining}
    power |= {g.name: num[f"ai_mw__{g.name}"] - cmw[g.name] + short[g.name] for g in site.gpu}
    state = {name: ins.initial_state.get(name, UnitState()) for name in units}
    p0 = {name: _initial_mw(name, capacity_mw(u), state[name]) for name, u in units.items()}
    committed = sum(committed_mw(g) for g in site.gpu)
    mining = sum((power[f.name] for f in site.mining), np.zeros(n))
    ai = sum((num[f"ai_mw__{g.name}"] for g in site.gpu), np.zeros(n))
    load = mining + ai
    cap = np.minimum(np.minimum(site.grid.import_limit_mw, ins.emergency_cap_mw), ins.deployment_cap_mw)
    if site.fourcp.curtail_above_probability < 1.0:
        cap = np.where(ins.peak_probability >= site.fourcp.curtail_above_probability, np.minimum(cap, committed), cap)
    before = np.concatenate([[sum(p0.values()) + committed], load[:-1]])
    trip_ok = ins.emergency_cap_mw < before - TOL_MW          # an emergency cap below the load drawn just before

    restart = np.zeros(n)
    for name, u in units.items():
        restart += _unit(add, name, u, power[name], p0[name], state[name], dt, trip_ok)
    for g in site.gpu:
        c, d, lo = cmw[g.name], short[g.name], committed_min_mw(g)
        for t in np.flatnonzero((d < -TOL_MW) | (d > c + TOL_MW) | ((d > TOL_MW) & (not ins.allow_sla_breach))):
            add("sla_floor", g.name, t, abs(d[t]), f"shortfall {d[t]:.4f} MW (committed {c[t]:.4f} MW, breach "
                                                   f"{'allowed' if ins.allow_sla_breach else 'not allowed'})")
        for t in np.flatnonzero((c < lo - TOL_MW) | (c > committed_mw(g) + TOL_MW)):
            add("sla_floor", g.name, t, max(lo - c[t], c[t] - committed_mw(g)),
                f"committed power {c[t]:.4f} MW outside [{lo:.4f}, {committed_mw(g):.4f}] (the SLA throughput "
                f"{g.sla_throughput_fraction:g} with capped boards .. full power)")
    served, job_value, job_penalty = _gpus(add, site, ins, num, power, dt)
    for t in np.flatnonzero(load > cap + TOL_MW):
        add("import_limit", "site", t, load[t] - cap[t], f"load {load[t]:.4f} MW > limit in force {cap[t]:.4f} MW")

    grid = load - site.contract.block_mw
    sold = np.clip(-grid, 0.0, None) if site.contract.sellback else np.zeros(n)
    for col, want in (("mining_mw", mining), ("ai_mw", ai), ("load_mw", load), ("grid_mw", grid),
                      ("sellback_mw", sold), ("max_load_mw", cap)):
        _compare(add, "balance" if col != "max_load_mw" else "inputs", col, num, want, TOL_MW)
    rho = {s: ins.reserve_prices_usd_per_mw_hour.get(s, np.full(n, r.price_usd_per_mw_hour))
           for s, r in services.items()}
    deployed_mw = _deployed(add, site, ins, num, dt)
    recorded = {"price_usd_per_mwh": ins.prices_usd_per_mwh, "peak_weight": ins.peak_weight}
    if services:
        recorded |= {"reserve_deployed_mw": deployed_mw} | {f"reserve_price__{s}": rho[s] for s in rho}
    for col, want in recorded.items():
        _compare(add, "inputs", col, num, want, TOL_PRICE)

    price, hashprice = ins.prices_usd_per_mwh, ins.hashprice_usd_per_ph_day
    sla_credit = np.zeros(n)
    sla_credit[0] = sum(sla_credit_usd(g, ins.sla_shortfall_before_mwh.get(g.name, 0.0) + short[g.name].sum() * dt)
                        - sla_credit_usd(g, ins.sla_shortfall_before_mwh.get(g.name, 0.0)) for g in site.gpu)
    money = {
        "mining_revenue_usd": sum((mining_value_usd_per_mwh(f, hashprice) * power[f.name] * dt for f in site.mining),
                                  np.zeros(n)),
        "ai_revenue_usd": sum(((g.committed_gpus * g.committed_price_usd_per_gpu_hour * _delivered(g, short[g.name])
                                + g.spot_price_usd_per_gpu_hour * served[g.name]) * dt for g in site.gpu),
                              np.zeros(n)) + job_value,
        "energy_cost_usd": price * np.clip(grid, 0.0, None) * dt,     # without sell-back, B = 0 or B >= import limit
        "sellback_credit_usd": price * sold * dt,
        "contract_cost_usd": np.full(n, site.contract.block_mw * site.contract.price_usd_per_mwh * dt),
        "restart_cost_usd": restart,
        "sla_credit_usd": sla_credit,
        "fourcp_charge_usd": ins.peak_weight * load * site.fourcp.charge_usd_per_kw_year * 1000.0 / 4.0 * dt,
        "reserve_revenue_usd": _reserves(add, site, num, power, rho, deployed_mw, dt),
        "job_penalty_usd": job_penalty,
    }
    money["profit_usd"] = (money["mining_revenue_usd"] + money["ai_revenue_usd"] - money["energy_cost_usd"]
                           + money["sellback_credit_usd"] - money["contract_cost_usd"] - restart - sla_credit
                           - money["fourcp_charge_usd"] + money["reserve_revenue_usd"] - job_penalty)
    if ins.da_award_mw is not None:
        money |= _two_settlement(site, ins, grid, dt)
        money["profit_usd"] = money["profit_usd"] - money["da_settlement_usd"]
        for col, want in (("da_award_mw", ins.da_award_mw), ("da_price_usd_per_mwh", ins.da_prices_usd_per_mwh)):
            _compare(add, "inputs", col, num, want, TOL_PRICE)
    for col, want in money.items():
        _compare(add, "accounting", col, num, want, TOL_USD, TOL_REL)
    return out


def _two_settlement(site: Site, ins: CheckInputs, grid: np.ndarray, dt: float) -> dict[str, np.ndarray]:
    """Two-settlement (docs/bidding.md): the award at the day-ahead price, the deviation of the grid position from it
    at the real-time price, and what the award adds to settling the whole position in real time (taken off the
    profit). Only a position settled at the market (sell-back, or no block) can hold an award."""
    award, da, rt = ins.da_award_mw, ins.da_prices_usd_per_mwh, ins.prices_usd_per_mwh
    if not (site.contract.sellback or site.contract.block_mw == 0) and np.abs(award).max(initial=0.0) > 0:
        raise InputError("the site's position is not settled at the market: it can hold no day-ahead award",
                         field="da_award_mw")
    return {"da_cost_usd": award * da * dt, "rt_deviation_cost_usd": (grid - award) * rt * dt,
            "da_settlement_usd": award * (da - rt) * dt}


def _unit(add: Callable, name: str, u: MiningFleet | GpuCluster, p: np.ndarray, p0: float, s: UnitState,
          dt: float, trip_ok: np.ndarray) -> np.ndarray:
    """Capacity, minimum load, ramps and minimum on/off times of one switchable unit; its restart cost per row."""
    cap, gpu = capacity_mw(u), isinstance(u, GpuCluster)
    for t in np.flatnonzero((p < -TOL_MW) | (p > cap + TOL_MW)):
        add("sla_floor" if gpu and p[t] < 0 else "capacity", name, t, max(-p[t], p[t] - cap),
            f"{'flexible ' if gpu else ''}power {p[t]:.4f} MW outside [0, {cap:.4f}]")
    on = p > TOL_MW
    floor = on_floor_mw(u) if switched(u, dt) else 0.0
    for t in np.flatnonzero(on & (p < floor - TOL_MW)):
        add("min_load", name, t, floor - p[t], f"{p[t]:.4f} MW on but below its minimum {floor:.4f} MW")
    # a step is at most the ramp; a start (from 0) or a stop (to 0) at most max(ramp, on-floor)
    ramp = min(u.ramp_mw_per_hour * dt, cap)
    was_on = np.concatenate([[p0 > TOL_MW], on[:-1]])
    step = p - np.concatenate([[p0], p[:-1]])
    limit = np.where(on != was_on, max(ramp, floor), ramp)
    tripped = trip_ok & ~on                                    # a trip: to zero under a binding emergency cap
    for t in np.flatnonzero((np.abs(step) > limit + TOL_MW) & ~tripped):
        add("ramp", name, t, abs(step[t]) - limit[t], f"change {step[t]:+.4f} MW exceeds {limit[t]:.4f} MW per "
                                                      f"{dt:g} h")
    # minimum times: every run that ends inside the table, the initial state's run included
    states = np.concatenate([[p0 > TOL_MW], on])
    edges = np.flatnonzero(states[1:] != states[:-1])          # a run ends just before row t = edge
    starts = np.concatenate([[-1], edges])
    for k, t in enumerate(edges):
        hours = (t - starts[k]) * dt - (dt if k == 0 else 0.0) + (s.hours_in_state if k == 0 else 0.0)
        need, running = (u.min_on_hours, True) if states[t] else (u.min_off_hours, False)
        if hours < need - 1e-9 and not tripped[t]:
            add("min_on" if running else "min_off", name, t, need - hours,
                f"{'on' if running else 'off'} for {hours:g} h < {need} h, ending here")
    return u.restart_cost_usd * (on & ~was_on)


def _gpus(add: Callable, site: Site, ins: CheckInputs, num: dict[str, np.ndarray], power: dict[str, np.ndarray],
          dt: float) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Jobs within their GPUs, windows, rigid runs and remaining work; job work and inference within each cluster's
    spot throughput; inference served within demand. Returns (served GPUs per cluster, job value per row, job
    penalty per row)."""
    n = len(ins.timestamps)
    start, end = ins.timestamps, ins.timestamps + pd.Timedelta(hours=dt)
    work = {g.name: np.zeros(n) for g in site.gpu}
    value, penalty = np.zeros(n), np.zeros(n)
    for j in site.jobs:
        x = num[f"job_gpus__{j.name}"]
        cluster = j.cluster or site.gpu[0].name
        work[cluster] = work[cluster] + x
        value += j.value_usd_per_gpu_hour * x * dt
        done = ins.job_done_before.get(j.name, 0.0)
        before_release = np.asarray(start < j.release)
        excess = np.maximum(np.maximum(-x, x - j.gpus), np.where(before_release, np.abs(x), 0.0))
        for t in np.flatnonzero(excess > TOL_MW):
            add("job", j.name, t, excess[t], f"{x[t]:.4f} GPUs (at most {j.gpus}, none before release "
                                             f"{j.release.isoformat()})")
        if j.min_run_hours > dt + 1e-9:                          # a rigid job: all its GPUs or none, whole runs
            finishing = done + np.cumsum(x) * dt >= j.gpu_hours - 1e-6      # its last, partial interval is fine
            for t in np.flatnonzero((np.abs(x) > TOL_MW) & (np.abs(x - j.gpus) > TOL_MW) & ~finishing):
                add("job", j.name, t, min(abs(x[t]), abs(x[t] - j.gpus)), f"{x[t]:.4f} GPUs: a rigid job runs on "
                                                                           f"all {j.gpus} or none")
            running = np.concatenate([[ins.job_running_before.get(j.name, 0.0) > 0], x > TOL_MW])
            edges = np.flatnonzero(running[1:] != running[:-1])
            first = np.concatenate([[-1], edges])
            for k, t in enumerate(edges):
                if running[t]:                                   # a run that ends just before row t
                    hours = (t - first[k] - (1 if k == 0 else 0)) * dt + (ins.job_running_before.get(j.name, 0.0)
                                                                          if k == 0 else 0.0)
                    if hours < j.min_run_hours - 1e-9 and done + x[:t].sum() * dt < j.gpu_hours - 1e-6:
                        add("job", j.name, t, j.min_run_hours - hours, f"ran {hours:g} h < its minimum run "
                                                                        f"{j.min_run_hours:g} h")
        total = x.sum() * dt
        left = j.gpu_hours - done
        if total > left + 1e-6 * max(1.0, left):
            add("job", j.name, -1, total - left, f"{total:.4f} GPU-hours given, {left:.4f} left to do")
        on_time = np.asarray(end <= j.deadline)
        if ins.job_penalty == "plan":
            if j.release < end[-1] and left > 1e-9:
                after = j.gpus * max(0.0, (j.deadline - max(end[-1], j.release)) / pd.Timedelta(hours=1))
                penalty[0] += j.late_penalty_usd_per_gpu_hour * max(0.0, left - (x * on_time).sum() * dt - after)
        elif start[0] < j.deadline <= end[-1]:
            row = int(np.flatnonzero(np.asarray(start < j.deadline))[-1])
            missing = max(0.0, left - (x * on_time).sum() * dt)
            penalty[row] += j.late_penalty_usd_per_gpu_hour * missing
    served = {}
    given = ins.demand_gpus or {}                # a cluster not given: its profile x its spot GPUs
    demand = {g.name: given[g.name] if g.name in given else
              g.demand_fraction(ins.timestamps) * (g.gpus - g.committed_gpus) for g in site.gpu}
    for g in site.gpu:
        xs, ys = throughput_curve(g)
        theta = np.interp(power[g.name], xs, ys)
        # GPUs are compared within what TOL_MW of spot power gives (MW written to 6 decimals move it by 1e-3)
        tol = TOL_MW * max(1.0, ys[1] / xs[1] if len(xs) > 1 and xs[1] > 0 else 0.0)
        for t in np.flatnonzero(work[g.name] > theta + tol):
            add("throughput", g.name, t, work[g.name][t] - theta[t], f"jobs take {work[g.name][t]:.3f} GPUs, the spot "
                                                                    f"power gives {theta[t]:.3f}")
        served[g.name] = np.clip(np.minimum(demand[g.name], theta - work[g.name]), 0.0, None)
        _compare(add, "balance", f"served_gpus__{g.name}", num, served[g.name], tol)
    return served, value, penalty


def _reserves(add: Callable, site: Site, num: dict[str, np.ndarray], power: dict[str, np.ndarray],
              rho: dict[str, np.ndarray], deployed_mw: np.ndarray, dt: float) -> np.ndarray:
    """Offers only of a service the unit's Load Resource kind may sell, within what it drops in the service's
    response time (the site's, at most the rule's) and within the load it consumes (except while deployed); their
    revenue at the prices given."""
    n = len(deployed_mw)
    units = {f.name: f for f in site.mining} | {g.name: g for g in site.gpu}
    total = {name: np.zeros(n) for name in units}
    revenue = np.zeros(n)
    for r in site.reserves:
        minutes = min(r.response_minutes, AS_RESPONSE_MINUTES.get(r.name, r.response_minutes))
        for name, u in units.items():
            q = num.get(f"reserve_mw__{r.name}__{name}", np.zeros(n))
            allowed = u.reserve_resource in AS_SELLERS.get(r.name, ())
            limit = reserve_limit_mw(u, minutes) if allowed else 0.0
            why = "" if allowed else (f" ({name} is a {u.reserve_resource!r} Load Resource; {r.name} may be sold by "
                                      f"{', '.join(AS_SELLERS.get(r.name, ())) or 'no load'})")
            for t in np.flatnonzero((q < -TOL_MW) | (q > limit + TOL_MW)):
                add("reserve", name, t, max(-q[t], q[t] - limit), f"{r.name} offer {q[t]:.4f} MW outside "
                                                                  f"[0, {limit:.4f}]{why}")
            total[name] += q
            revenue += rho[r.name] * q * dt
    deployed = deployed_mw > TOL_MW
    for name in units:
        for t in np.flatnonzero((total[name] > power[name] + TOL_MW) & ~deployed):
            add("reserve", name, t, total[name][t] - power[name][t],
                f"offers {total[name][t]:.4f} MW above the {power[name][t]:.4f} MW it consumes")
    offered, backing = sum(total.values(), np.zeros(n)), sum(power.values(), np.zeros(n))
    for t in np.flatnonzero(offered > backing + deployed_mw + TOL_MW):
        add("reserve", "site", t, offered[t] - backing[t] - deployed_mw[t],
            f"offers {offered[t]:.4f} MW above switchable load {backing[t]:.4f} MW + deployed {deployed_mw[t]:.4f} MW")
    return revenue


def _deployed(add: Callable, site: Site, ins: CheckInputs, num: dict[str, np.ndarray], dt: float) -> np.ndarray:
    """MW deployed per row: with deployment events, the offers (from the table) of each row to every service deployed
    in it (an event covers every row it overlaps, whole: the drop is held for the event), compared with any
    deployed MW the caller gives; without events, the caller's (default 0)."""
    if not ins.deployments:
        return ins.reserve_deployed_mw
    n = len(ins.timestamps)
    start, end = ins.timestamps, ins.timestamps + pd.Timedelta(hours=dt)
    units = [f.name for f in site.mining] + [g.name for g in site.gpu]
    out = np.zeros(n)
    for t0, t1, s in ins.deployments:
        hit = np.asarray((start < t1) & (end > t0))
        offered = sum((num.get(f"reserve_mw__{s}__{u}", np.zeros(n)) for u in units), np.zeros(n))
        out[hit] += np.nan_to_num(offered[hit])
    if ins.deployed_given:
        for t in np.flatnonzero(np.abs(ins.reserve_deployed_mw - out) > TOL_MW):
            add("deployment", "site", t, abs(ins.reserve_deployed_mw[t] - out[t]),
                f"deployed {ins.reserve_deployed_mw[t]:.4f} MW given, the events and the offers give {out[t]:.4f} MW")
    return out


def _delivered(g: GpuCluster, shortfall_mw: np.ndarray) -> np.ndarray | float:
    """Share of the committed GPU-hours delivered (committed revenue is earned only for those)."""
    return 1.0 - shortfall_mw / committed_mw(g) if committed_mw(g) > 0 else 1.0


def _initial_mw(name: str, cap: float, s: UnitState) -> float:
    p = (cap if s.power_mw is None else float(s.power_mw)) if s.on else 0.0
    if not (-TOL_MW <= p <= cap + TOL_MW) or s.hours_in_state < 0:
        raise InputError(f"{name}: initial power {p:g} MW outside [0, {cap:g}] or hours_in_state "
                         f"{s.hours_in_state:g} < 0", field="initial_state")
    return p


def _known(given: Mapping, names: Any, what: str) -> None:
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise InputError(f"names unknown to the site: {', '.join(unknown)}", field=what)


def _timestamps(frame: pd.DataFrame, expected: pd.DatetimeIndex, stamps: Any, add: Callable) -> bool:
    """Rows at exactly the expected interval starts; False when the rows cannot be aligned at all."""
    if "timestamp" not in frame.columns:
        add("columns", "timestamp", -1, math.nan, "missing column 'timestamp'")
        return False
    got = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601", errors="coerce"))
    if len(got) != len(expected):
        add("timestamps", "site", -1, abs(len(got) - len(expected)),
            f"{len(got)} rows written, {len(expected)} expected ({stamps[0]} .. {stamps[-1]})")
        return False
    off = (got - expected).total_seconds().to_numpy() / 3600.0
    for t in np.flatnonzero(off != 0):
        add("timestamps", "site", t, abs(off[t]), f"written {frame['timestamp'].iloc[t]!r}, expected {stamps[t]} "
                                                  "(hours off)")
    return True


def _compare(add: Callable, rule: str, col: str, num: dict[str, np.ndarray], want: np.ndarray, tol: float,
             rel: float = 0.0) -> None:
    if col not in num:
        add("columns", col, -1, math.nan, f"missing column {col!r}")
        return
    diff = np.abs(num[col] - want)
    for t in np.flatnonzero(diff > tol + rel * np.abs(want)):
        add(rule, col, t, diff[t], f"written {num[col][t]:.6f}, recomputed {want[t]:.6f}")
