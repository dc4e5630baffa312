"""Site models: typed, frozen descriptions of a site loaded from TOML and validated once, on load.

A site has a grid connection, an optional fixed-price contract block, mining fleets and GPU clusters.
Units are in the field names. Every key is checked: an unknown key, a wrong type or an out-of-range value
raises :class:`~optimizer.errors.InputError` naming the file, the field and the value.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import tomllib
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from optimizer.errors import InputError
from optimizer.workloads import DEFAULT_GPU_POWER_SHARE, Job, PowerCapCurve, curve_from_points, jobs_from_records

UNLIMITED = math.inf


@dataclass(frozen=True)
class Grid:
    """The connection: the most the site may draw in any hour."""

    import_limit_mw: float


@dataclass(frozen=True)
class Contract:
    """A take-or-pay fixed-price block. Unused block power is settled (sold back) at the market price when
    ``sellback`` is true, and forfeited when false; load above the block is bought at the market price."""

    block_mw: float = 0.0
    price_usd_per_mwh: float = 0.0
    sellback: bool = True

    @property
    def market_exposed(self) -> bool:
        """True when the site's grid position (load minus block) is settled at the market price."""
        return self.sellback or self.block_mw == 0


@dataclass(frozen=True)
class Reserve:
    """An ERCOT ancillary service the site's curtailable load can offer (``name``: ``regup``, ``rrs``, ``ecrs``,
    ``nspin``; rules in :mod:`optimizer.ancillary`), paid per MW per hour whether or not deployed;
    ``response_minutes`` bounds what a unit can drop in time. ``clearing_prices``: paid ERCOT's hourly clearing
    prices (the site file sets no ``price_usd_per_mw_hour``); else the constant ``price_usd_per_mw_hour``."""

    name: str
    price_usd_per_mw_hour: float = 0.0
    response_minutes: float = 10.0
    clearing_prices: bool = False


@dataclass(frozen=True)
class FourCP:
    """ERCOT 4CP transmission charge: the site's MW in each June-September system peak, times
    ``charge_usd_per_kw_year`` x 1000 / 4. 0 leaves 4CP out. Hours whose peak probability reaches
    ``curtail_above_probability`` are curtailed to the committed GPU load (a hard limit); 1.0 never."""

    charge_usd_per_kw_year: float = 0.0
    curtail_above_probability: float = 1.0

    @property
    def usd_per_mw_peak(self) -> float:
        """Charge of one MW drawn in one monthly peak (USD)."""
        return self.charge_usd_per_kw_year * 1000.0 / 4.0

    @property
    def active(self) -> bool:
        return self.charge_usd_per_kw_year > 0 or self.curtail_above_probability < 1.0


@dataclass(frozen=True)
class Commitment:
    """On/off limits shared by every switchable unit (mining fleet, flexible GPU load)."""

    min_load_fraction: float = 0.0
    ramp_mw_per_hour: float = UNLIMITED
    min_on_hours: int = 0
    min_off_hours: int = 0
    restart_cost_usd: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Switchable:
    """The on/off limits of a unit (see :class:`Commitment`) and how fast it can drop load for a reserve."""

    min_load_fraction: float = 0.0
    ramp_mw_per_hour: float = UNLIMITED
    min_on_hours: int = 0
    min_off_hours: int = 0
    restart_cost_usd: float = 0.0
    reserve_drop_mw_per_minute: float | None = None
    reserve_resource: str = "clr"            # ERCOT Load Resource kind: clr, ufr or none (optimizer.ancillary)

    @property
    def commitment(self) -> Commitment:
        return Commitment(self.min_load_fraction, self.ramp_mw_per_hour, self.min_on_hours,
                          self.min_off_hours, self.restart_cost_usd)


@dataclass(frozen=True, kw_only=True)
class MiningFleet(Switchable):
    """A fleet of ASICs. ``capacity_mw`` is site power at full load, cooling included."""

    name: str
    capacity_mw: float
    efficiency_j_per_th: float
    cooling_overhead_fraction: float = 0.0
    pool_fee_fraction: float = 0.0

    def reserve_limit_mw(self, response_minutes: float) -> float:
        """Most it can drop within a service's response time (MW); ASICs cut power in seconds: by default all."""
        if self.reserve_drop_mw_per_minute is None:
            return self.capacity_mw
        return min(self.capacity_mw, self.reserve_drop_mw_per_minute * response_minutes)

    def hashrate_ph_per_mw(self) -> float:
        """PH/s delivered per MW of site power: 1 MW -> 1e6 W / (1 + overhead) / (J/TH) TH/s."""
        return 1e3 / (self.efficiency_j_per_th * (1.0 + self.cooling_overhead_fraction))

    def value_usd_per_mwh(self, hashprice_usd_per_ph_day: float | np.ndarray) -> float | np.ndarray:
        """Mining revenue of one MWh at this hashprice, after pool fees (USD/MWh); elementwise for an array of
        hashprices (one per interval)."""
        return hashprice_usd_per_ph_day / 24.0 * self.hashrate_ph_per_mw() * (1.0 - self.pool_fee_fraction)


@dataclass(frozen=True, kw_only=True)
class GpuCluster(Switchable):
    """A GPU cluster: committed GPUs are powered every hour (SLA); the rest (spot GPUs) serve hourly inference
    demand and deferrable jobs.

    Spot demand: in each interval customers want ``demand_fraction x spot GPUs`` GPU-hours per hour, where the
    fraction follows ``demand_profile`` (a shipped hour-of-week shape, ``"flat"``, or a file) scaled to a mean of
    ``spot_utilization``; GPUs powered beyond demand plus jobs earn nothing. Power capping (``power_cap_curve``,
    optional): a GPU's throughput as a concave function of its board power; the board is ``gpu_power_share`` of a
    GPU's site power. Committed GPUs may be capped down to ``sla_throughput_fraction`` of full throughput, never
    below (1.0: never capped)."""

    name: str
    gpus: int
    kw_per_gpu: float
    pue: float = 1.0
    committed_gpus: int = 0
    committed_price_usd_per_gpu_hour: float = 0.0
    spot_price_usd_per_gpu_hour: float = 0.0
    spot_utilization: float = 1.0
    demand_profile: str = "flat"
    power_cap_curve: PowerCapCurve | None = None
    gpu_power_share: float = DEFAULT_GPU_POWER_SHARE
    sla_throughput_fraction: float = 1.0
    sla_credit_tiers: tuple[tuple[float, float], ...] = ((0.9999, 0.10), (0.99, 0.30), (0.95, 1.00))
    sla_month_hours: float = 730.0

    def reserve_limit_mw(self, response_minutes: float) -> float:
        """Most of the flexible load it can drop within a response time (MW); by default none is offered."""
        if self.reserve_drop_mw_per_minute is None:
            return 0.0
        return min(self.flexible_mw, self.reserve_drop_mw_per_minute * response_minutes)

    @property
    def mw_per_gpu(self) -> float:
        """Site MW per powered GPU at full power: kW per GPU x PUE / 1000."""
        return self.kw_per_gpu * self.pue / 1e3

    @property
    def spot_gpus(self) -> int:
        """GPUs not committed to the SLA customer: spot inference and jobs."""
        return self.gpus - self.committed_gpus

    @property
    def committed_mw(self) -> float:
        """Site power of the committed GPUs at full power (MW)."""
        return self.committed_gpus * self.mw_per_gpu

    @property
    def committed_min_mw(self) -> float:
        """Least site power of the committed GPUs that still gives the SLA throughput (MW): capped boards with a
        power-cap curve and an SLA below full throughput, else :attr:`committed_mw`."""
        curve = self.power_cap_curve
        if curve is None or self.sla_throughput_fraction >= 1.0:
            return self.committed_mw
        board = float(curve.min_power_for(max(self.sla_throughput_fraction, curve.min_throughput_fraction)))
        return self.committed_mw * (1.0 - self.gpu_power_share + self.gpu_power_share * board)

    @property
    def flexible_mw(self) -> float:
        """Most site power the spot GPUs can draw (MW)."""
        return self.spot_gpus * self.mw_per_gpu

    @functools.cached_property
    def throughput_points(self) -> tuple[tuple[float, float], ...]:
        """The most spot throughput (full-GPU equivalents) a given flexible MW can give, as the breakpoints
        (MW, GPUs) of a concave piecewise-linear function from (0, 0) to (flexible MW, spot GPUs): GPUs powered
        at the most efficient cap first, then all GPUs raised along the curve (any mix of caps is allowed, so the
        function is the upper concave hull of those points). Without a curve: a straight line, 1 GPU per
        ``mw_per_gpu``."""
        n, mu = self.spot_gpus, self.mw_per_gpu
        if n == 0:
            return ((0.0, 0.0),)
        if self.power_cap_curve is None:
            return ((0.0, 0.0), (n * mu, float(n)))
        share = self.gpu_power_share
        pts = [(0.0, 0.0)] + [(n * mu * (1.0 - share + share * f), n * g) for f, g in self.power_cap_curve.points]
        return tuple(_upper_hull(pts))

    def throughput_cuts(self) -> tuple[tuple[float, float], ...]:
        """(GPUs per MW, GPUs) of each segment of :attr:`throughput_points`: throughput <= slope x MW + intercept
        for every cut is exactly the function's hypograph."""
        pts = self.throughput_points
        out = []
        for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False):
            slope = (y1 - y0) / (x1 - x0)
            out.append((slope, y1 - slope * x1))
        return tuple(out)

    def spot_throughput_gpus(self, mw: float | np.ndarray) -> np.ndarray:
        """Most spot throughput (full-GPU equivalents) of a flexible load of ``mw`` MW."""
        xs, ys = zip(*self.throughput_points, strict=True)
        return np.interp(np.asarray(mw, dtype=float), xs, ys)

    def spot_mw_for(self, throughput_gpus: float | np.ndarray) -> np.ndarray:
        """Least flexible MW giving a spot throughput (full-GPU equivalents), capped at the flexible MW."""
        xs, ys = zip(*self.throughput_points, strict=True)
        return np.interp(np.asarray(throughput_gpus, dtype=float), ys, xs)

    def demand_fraction(self, times: pd.DatetimeIndex) -> np.ndarray:
        """Spot demand in each interval as a fraction of the spot GPUs (may exceed 1 at peaks)."""
        from optimizer import workloads

        profile = _profile(self.demand_profile)
        if isinstance(profile, str):               # a shape, scaled to the mean utilisation
            return workloads.demand_fraction(times, profile, self.spot_utilization)
        return workloads.demand_fraction(times, profile)          # a file of fractions, used as given

    @property
    def committed_revenue_usd_per_hour(self) -> float:
        return self.committed_gpus * self.committed_price_usd_per_gpu_hour

    @property
    def monthly_bill_usd(self) -> float:
        """Committed GPUs x committed price x hours in a month: the base of SLA credits (USD)."""
        return self.committed_gpus * self.committed_price_usd_per_gpu_hour * self.sla_month_hours

    def sla_credit_usd(self, shortfall_mwh: float, shortfall_before_mwh: float = 0.0) -> float:
        """Credit owed for ``shortfall_mwh`` of committed load not delivered, on top of ``shortfall_before_mwh``
        already missed earlier in the month: the tier of the availability reached, times the monthly bill, minus
        the tier already reached before."""
        if self.committed_mw <= 0 or shortfall_mwh <= 0:
            return 0.0

        def tier(missed: float) -> float:
            availability = 1.0 - missed / (self.committed_mw * self.sla_month_hours)
            return max((credit for level, credit in self.sla_credit_tiers if availability < level), default=0.0)

        return (tier(shortfall_before_mwh + shortfall_mwh) - tier(shortfall_before_mwh)) * self.monthly_bill_usd

    @property
    def spot_value_usd_per_mwh(self) -> float:
        """Spot revenue of one MWh of flexible load at its most efficient use, while demand lasts: spot price x
        GPUs per MW of the first throughput segment."""
        cuts = self.throughput_cuts()
        return self.spot_price_usd_per_gpu_hour * (cuts[0][0] if cuts else 0.0)


def _upper_hull(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Upper concave hull of points sorted by x (Andrew's monotone chain, upper half)."""
    hull: list[tuple[float, float]] = []
    for p in sorted(points):
        while len(hull) >= 2 and ((hull[-1][0] - hull[-2][0]) * (p[1] - hull[-2][1])
                                  - (hull[-1][1] - hull[-2][1]) * (p[0] - hull[-2][0])) >= 0:
            hull.pop()
        hull.append(p)
    return hull


@functools.cache
def _profile(spec: str):
    """A demand profile spec: a shipped name, or a path to a demand file (read once)."""
    from optimizer import workloads

    if spec in workloads.PROFILE_NAMES:
        return spec
    return workloads.read_demand_file(spec)


@dataclass(frozen=True)
class Site:
    """A whole site. ``source`` is where it was loaded from and ``sha256`` the hash of that file's bytes."""

    name: str
    timezone: str
    settlement_point: str
    grid: Grid
    contract: Contract = field(default_factory=Contract)
    mining: tuple[MiningFleet, ...] = ()
    gpu: tuple[GpuCluster, ...] = ()
    fourcp: FourCP = field(default_factory=FourCP)
    reserves: tuple[Reserve, ...] = ()
    jobs: tuple[Job, ...] = ()
    source: str = "<memory>"
    sha256: str = ""

    @property
    def asset_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.mining) + tuple(g.name for g in self.gpu)

    @property
    def committed_mw(self) -> float:
        return sum(g.committed_mw for g in self.gpu)


# ---------------------------------------------------------------------------------------------------------
# Loading and validation


def load_site(path: str | Path) -> Site:
    """Load and validate a site model from a TOML file."""
    path = Path(path)
    src = str(path)
    try:
        raw_bytes = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read site model ({exc.strerror})", source=src) from None
    try:
        raw = tomllib.loads(raw_bytes.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid TOML: {exc}", source=src) from None
    site = site_from_dict(raw, source=src)
    return dataclasses.replace(site, sha256=hashlib.sha256(raw_bytes).hexdigest())


def site_from_dict(raw: dict[str, Any], *, source: str = "<memory>") -> Site:
    """Build a validated :class:`Site` from the parsed TOML structure."""
    v = _Validator(source)
    top = v.table(raw, "", {"name", "timezone", "settlement_point", "grid", "contract", "mining", "gpu", "fourcp",
                            "reserve", "job"})
    name = v.string(top, "", "name", required=True)
    tz = v.string(top, "", "timezone", required=True)
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise InputError(f"unknown time zone {tz!r} (expected an IANA name such as 'America/Chicago')",
                         source=source, field="timezone") from None
    sp = v.string(top, "", "settlement_point", required=True)

    g = v.table(top.get("grid"), "grid", {"import_limit_mw"}, required=True)
    grid = Grid(import_limit_mw=v.number(g, "grid", "import_limit_mw", required=True, positive=True))

    c = v.table(top.get("contract", {}), "contract", {"block_mw", "price_usd_per_mwh", "sellback"})
    contract = Contract(
        block_mw=v.number(c, "contract", "block_mw", default=0.0, minimum=0.0),
        price_usd_per_mwh=v.number(c, "contract", "price_usd_per_mwh", default=0.0),
        sellback=v.boolean(c, "contract", "sellback", default=True),
    )
    if not contract.sellback and 0 < contract.block_mw < grid.import_limit_mw:
        raise InputError(
            f"sellback = false needs block_mw = 0 or block_mw >= grid.import_limit_mw "
            f"({grid.import_limit_mw:g}); got {contract.block_mw:g}: a site that cannot sell unused block power "
            "but buys above it at the market price is not modelled", source=source, field="contract.block_mw")

    mining = tuple(_fleet(v, t, f"mining[{i}]") for i, t in enumerate(v.array(top, "mining")))
    gpus = tuple(_cluster(v, t, f"gpu[{i}]") for i, t in enumerate(v.array(top, "gpu")))
    jobs = (jobs_from_records(v.array(top, "job"), source, {g.name: g.spot_gpus for g in gpus}, where="job")
            if top.get("job") else ())

    names = [f.name for f in mining] + [g.name for g in gpus]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"asset names must be unique; repeated: {', '.join(dup)}", source=source, field="name")
    if not names:
        raise InputError("a site needs at least one [[mining]] fleet or [[gpu]] cluster", source=source)
    committed = sum(c.committed_mw for c in gpus)
    if committed > grid.import_limit_mw:
        raise InputError(
            f"committed GPU load {committed:.3f} MW exceeds the import limit {grid.import_limit_mw:g} MW: "
            "the SLA can never be met", source=source, field="gpu.committed_gpus")
    f = v.table(top.get("fourcp", {}), "fourcp", {"charge_usd_per_kw_year", "curtail_above_probability"})
    fourcp = FourCP(
        charge_usd_per_kw_year=v.number(f, "fourcp", "charge_usd_per_kw_year", default=0.0, minimum=0.0,
                                        maximum=1000.0),
        curtail_above_probability=v.number(f, "fourcp", "curtail_above_probability", default=1.0, positive=True,
                                           maximum=1.0),
    )
    reserves = tuple(_reserve(v, t, f"reserve[{i}]") for i, t in enumerate(v.array(top, "reserve")))
    rnames = [r.name for r in reserves]
    if len(set(rnames)) != len(rnames):
        raise InputError(f"reserve names must be unique; got {', '.join(rnames)}", source=source, field="reserve")
    return Site(name=name, timezone=tz, settlement_point=sp, grid=grid, contract=contract,
                mining=mining, gpu=gpus, fourcp=fourcp, reserves=reserves, jobs=jobs, source=source)


def _reserve(v: _Validator, raw: Any, where: str) -> Reserve:
    from optimizer import ancillary

    t = v.table(raw, where, {"name", "price_usd_per_mw_hour", "response_minutes"}, required=True)
    name = v.string(t, where, "name", required=True)
    response = v.number(t, where, "response_minutes", default=ancillary.default_response_minutes(name),
                        positive=True, maximum=240.0)
    ancillary.validate_reserve(name, response, source=v.source, where=where)
    return Reserve(name=name,
                   price_usd_per_mw_hour=v.number(t, where, "price_usd_per_mw_hour", default=0.0, minimum=0.0,
                                                  maximum=10_000.0),
                   response_minutes=response, clearing_prices="price_usd_per_mw_hour" not in t)


_COMMITMENT_KEYS = {"min_load_fraction", "ramp_mw_per_hour", "min_on_hours", "min_off_hours", "restart_cost_usd",
                    "reserve_drop_mw_per_minute", "reserve_resource"}


def _commitment_kwargs(v: _Validator, t: dict, where: str) -> dict[str, Any]:
    return {
        "min_load_fraction": v.number(t, where, "min_load_fraction", default=0.0, minimum=0.0, maximum=1.0),
        "ramp_mw_per_hour": v.number(t, where, "ramp_mw_per_hour", default=UNLIMITED, positive=True),
        "min_on_hours": v.integer(t, where, "min_on_hours", default=0, minimum=0, maximum=168),
        "min_off_hours": v.integer(t, where, "min_off_hours", default=0, minimum=0, maximum=168),
        "restart_cost_usd": v.number(t, where, "restart_cost_usd", default=0.0, minimum=0.0),
        "reserve_drop_mw_per_minute": (v.number(t, where, "reserve_drop_mw_per_minute", minimum=0.0)
                                       if "reserve_drop_mw_per_minute" in t else None),
        "reserve_resource": _reserve_resource(v, t, where),
    }


def _reserve_resource(v: _Validator, t: dict, where: str) -> str:
    """What kind of ERCOT Load Resource the unit is registered as (what it may sell: optimizer.ancillary)."""
    from optimizer import ancillary

    value = v.string(t, where, "reserve_resource") or ancillary.DEFAULT_RESOURCE
    if value not in ancillary.RESOURCES:
        raise v.fail(where, "reserve_resource", f"expected one of {', '.join(ancillary.RESOURCES)} (clr: Controllable "
                                                "Load Resource; ufr: under-frequency relay load; none), got "
                                                f"{value!r}")
    return value


def _fleet(v: _Validator, raw: Any, where: str) -> MiningFleet:
    keys = {"name", "capacity_mw", "efficiency_j_per_th", "cooling_overhead_fraction", "pool_fee_fraction"}
    t = v.table(raw, where, keys | _COMMITMENT_KEYS, required=True)
    return MiningFleet(
        name=v.string(t, where, "name", required=True),
        capacity_mw=v.number(t, where, "capacity_mw", required=True, positive=True),
        efficiency_j_per_th=v.number(t, where, "efficiency_j_per_th", required=True, positive=True),
        cooling_overhead_fraction=v.number(t, where, "cooling_overhead_fraction", default=0.0, minimum=0.0,
                                           maximum=1.0),
        pool_fee_fraction=v.number(t, where, "pool_fee_fraction", default=0.0, minimum=0.0, maximum=0.5),
        **_commitment_kwargs(v, t, where),
    )


def _cluster(v: _Validator, raw: Any, where: str) -> GpuCluster:
    keys = {"name", "gpus", "kw_per_gpu", "pue", "committed_gpus", "committed_price_usd_per_gpu_hour",
            "spot_price_usd_per_gpu_hour", "spot_utilization", "sla_credit_tiers", "sla_month_hours",
            "demand_profile", "power_cap_curve", "gpu_power_share", "sla_throughput_fraction"}
    t = v.table(raw, where, keys | _COMMITMENT_KEYS, required=True)
    gpus = v.integer(t, where, "gpus", required=True, minimum=1)
    committed = v.integer(t, where, "committed_gpus", default=0, minimum=0)
    if committed > gpus:
        raise InputError(f"{committed} committed GPUs exceed the cluster's {gpus} GPUs (expected <= gpus)",
                         source=v.source, field=f"{where}.committed_gpus")
    return GpuCluster(
        name=v.string(t, where, "name", required=True),
        gpus=gpus,
        kw_per_gpu=v.number(t, where, "kw_per_gpu", required=True, positive=True, maximum=200.0),
        pue=v.number(t, where, "pue", default=1.0, minimum=1.0, maximum=3.0),
        committed_gpus=committed,
        committed_price_usd_per_gpu_hour=v.number(t, where, "committed_price_usd_per_gpu_hour", default=0.0,
                                                  minimum=0.0),
        spot_price_usd_per_gpu_hour=v.number(t, where, "spot_price_usd_per_gpu_hour", default=0.0, minimum=0.0),
        spot_utilization=v.number(t, where, "spot_utilization", default=1.0, minimum=0.0, maximum=1.0),
        demand_profile=_demand_profile(v, t, where),
        power_cap_curve=(curve_from_points(t["power_cap_curve"], v.source, f"{where}.power_cap_curve")
                         if "power_cap_curve" in t else None),
        gpu_power_share=v.number(t, where, "gpu_power_share", default=DEFAULT_GPU_POWER_SHARE, positive=True,
                                 maximum=1.0),
        sla_throughput_fraction=v.number(t, where, "sla_throughput_fraction", default=1.0, positive=True,
                                         maximum=1.0),
        sla_credit_tiers=_tiers(v, t, where),
        sla_month_hours=v.number(t, where, "sla_month_hours", default=730.0, minimum=672.0, maximum=744.0),
        **_commitment_kwargs(v, t, where),
    )


def _demand_profile(v: _Validator, t: dict, where: str) -> str:
    """A shipped profile name, or a demand file (path relative to the site file), read once here to fail early."""
    from optimizer import workloads

    spec = v.string(t, where, "demand_profile") or "flat"
    if spec in workloads.PROFILE_NAMES:
        return spec
    path = Path(spec)
    if not path.is_absolute() and v.source not in ("<memory>", ""):
        path = Path(v.source).parent / path
    if not path.is_file():
        raise v.fail(where, "demand_profile", f"{spec!r} is neither a shipped profile "
                                              f"({', '.join(workloads.PROFILE_NAMES)}) nor a file")
    workloads.read_demand_file(path)
    return str(path)


def _tiers(v: _Validator, t: dict, where: str) -> tuple[tuple[float, float], ...]:
    default = GpuCluster.__dataclass_fields__["sla_credit_tiers"].default
    raw = t.get("sla_credit_tiers", default)
    field_name = f"{where}.sla_credit_tiers"
    ok = isinstance(raw, (list, tuple)) and len(raw) > 0 and all(
        isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                             for x in p) for p in raw)
    if not ok:
        raise InputError(f"expected a list of [availability, credit_fraction] pairs, got {raw!r}",
                         source=v.source, field=field_name)
    tiers = tuple((float(a), float(c)) for a, c in raw)
    levels, credits = [a for a, _ in tiers], [c for _, c in tiers]
    if not all(0 < a <= 1 for a in levels) or not all(0 <= c <= 1 for c in credits) \
            or levels != sorted(levels, reverse=True) or credits != sorted(credits):
        raise InputError(f"tiers must have availability in (0, 1] falling and credit in [0, 1] rising, got {raw!r}",
                         source=v.source, field=field_name)
    return tiers


class _Validator:
    """Typed access to a parsed TOML table; every failure names the file, the dotted field and the value."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, key: str, msg: str) -> InputError:
        return InputError(msg, source=self.source, field=f"{where}.{key}" if where else key)

    def table(self, raw: Any, where: str, allowed: set[str], required: bool = False) -> dict:
        if raw is None:
            if required:
                raise InputError("missing table", source=self.source, field=where)
            return {}
        if not isinstance(raw, dict):
            raise InputError(f"expected a table, got {raw!r}", source=self.source, field=where)
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise InputError(f"unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(allowed))}",
                             source=self.source, field=where or "<top level>")
        return raw

    def array(self, t: dict, key: str) -> list:
        val = t.get(key, [])
        if not isinstance(val, list):
            raise self.fail("", key, f"expected an array of tables ([[{key}]]), got {val!r}")
        return val

    def string(self, t: dict, where: str, key: str, required: bool = False) -> str:
        if key not in t:
            if required:
                raise self.fail(where, key, "missing (required)")
            return ""
        val = t[key]
        if not isinstance(val, str) or not val.strip():
            raise self.fail(where, key, f"expected a non-empty string, got {val!r}")
        return val

    def boolean(self, t: dict, where: str, key: str, default: bool) -> bool:
        val = t.get(key, default)
        if not isinstance(val, bool):
            raise self.fail(where, key, f"expected true or false, got {val!r}")
        return val

    def number(self, t: dict, where: str, key: str, *, required: bool = False, default: float = 0.0,
               minimum: float | None = None, maximum: float | None = None, positive: bool = False) -> float:
        if key not in t:
            if required:
                raise self.fail(where, key, "missing (required)")
            return default
        val = t[key]
        if isinstance(val, bool) or not isinstance(val, (int, float)) or not math.isfinite(val):
            raise self.fail(where, key, f"expected a finite number, got {val!r}")
        val = float(val)
        if positive and val <= 0:
            raise self.fail(where, key, f"expected a positive number, got {val!r}")
        if minimum is not None and val < minimum:
            raise self.fail(where, key, f"expected >= {minimum:g}, got {val!r}")
        if maximum is not None and val > maximum:
            raise self.fail(where, key, f"expected <= {maximum:g}, got {val!r}")
        return val

    def integer(self, t: dict, where: str, key: str, *, required: bool = False, default: int = 0,
                minimum: int | None = None, maximum: int | None = None) -> int:
        if key not in t:
            if required:
                raise self.fail(where, key, "missing (required)")
            return default
        val = t[key]
        if isinstance(val, bool) or not isinstance(val, int):
            raise self.fail(where, key, f"expected a whole number, got {val!r}")
        if minimum is not None and val < minimum:
            raise self.fail(where, key, f"expected >= {minimum}, got {val!r}")
        if maximum is not None and val > maximum:
            raise self.fail(where, key, f"expected <= {maximum}, got {val!r}")
        return val
