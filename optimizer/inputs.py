"""The data of one solve, in one frozen object that travels from the caller to the model.

:class:`Inputs` replaces the keyword arguments that used to travel separately (prices, hashprice, state, load caps,
4CP probabilities, reserve prices ...). Every model part reads what it needs from it in its ``set_data``; the
fallback, the real-time controller and the checker read the same object. It is validated on creation, so a bad
value fails with its name before any model is touched.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from optimizer.errors import InputError
from optimizer.site import Site
from optimizer.state import UnitState
from optimizer.workloads import Job, JobProgress


@dataclass(frozen=True, eq=False)
class Inputs:
    """Everything a solve depends on besides the site and the model's structure.

    ``prices``: USD/MWh on a tz-aware index of interval starts (hourly or 15-minute); its index IS the horizon.
    ``hashprice_usd_per_ph_day``: the hashprice the plan values mining at. ``state``: each unit just before the
    first interval (missing units: on at full power, long ago). ``load_cap_mw``: emergency caps per interval (MW;
    ``None``: none). ``peak_probability``: the 4CP chance of each interval (``None``: 4CP left out).
    ``reserve_prices``: USD/MW/h per service and interval (a service not given keeps the site's constant price; one
    paid ERCOT's hourly clearing prices must be given: :mod:`optimizer.ancillary`).
    ``demand_fraction``: spot inference demand per GPU cluster and interval, as a fraction of its spot GPUs
    (a cluster not given follows its site profile). ``job_progress``: per job, GPU-hours done and the current
    run's length (a job not given: nothing done). ``sla_shortfall_before_mwh``: per cluster, committed MWh
    already missed earlier in the SLA month (the credit tiers count from there; default 0: "100% so far").
    """

    prices: pd.Series
    hashprice_usd_per_ph_day: float
    state: Mapping[str, UnitState] | None = None
    load_cap_mw: np.ndarray | None = None
    peak_probability: np.ndarray | None = None
    reserve_prices: Mapping[str, np.ndarray] | None = None
    demand_fraction: Mapping[str, np.ndarray] | None = None
    job_progress: Mapping[str, JobProgress] | None = None
    sla_shortfall_before_mwh: Mapping[str, float] | None = None
    # derived views per site (demand, active jobs), computed once; not an argument, a fresh one for every copy
    _memo: dict[tuple[str, int], Any] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        from optimizer.data import interval_hours

        idx = pd.DatetimeIndex(self.prices.index)
        if idx.tz is None:
            raise InputError("price timestamps have no time zone", field="prices")
        if len(idx) == 0:
            raise InputError("the horizon is empty (no prices)", field="prices")
        interval_hours(idx)                                   # evenly 1 h or 15 min, else a named error
        price = self.prices.to_numpy(dtype=float)
        if not np.isfinite(price).all():
            bad = idx[~np.isfinite(price)][0]
            raise InputError(f"price at {bad.isoformat()} is not a finite number", field="prices")
        hp = self.hashprice_usd_per_ph_day
        if not (isinstance(hp, (int, float, np.floating)) and np.isfinite(hp) and hp > 0):
            raise InputError(f"hashprice must be a positive number of USD/PH/day, got {hp!r}", field="hashprice")
        n = len(idx)
        for name in ("load_cap_mw", "peak_probability"):
            v = getattr(self, name)
            if v is None:
                continue
            a = np.asarray(v, dtype=float)
            if a.shape != (n,) or not np.isfinite(a).all():
                raise InputError(f"{name} must be {n} finite numbers, one per interval", field=name)
            if name == "peak_probability" and ((a < 0) | (a > 1)).any():
                raise InputError("peak_probability must lie in [0, 1]", field=name)
            if name == "load_cap_mw" and (a < 0).any():
                raise InputError("load caps must be >= 0 MW", field=name)
            object.__setattr__(self, name, a)
        for service, v in (self.reserve_prices or {}).items():
            a = np.asarray(v, dtype=float)
            if a.shape != (n,) or not np.isfinite(a).all() or (a < 0).any():
                raise InputError(f"reserve prices of {service!r} must be {n} finite numbers >= 0", field=service)
        for cluster, v in (self.demand_fraction or {}).items():
            a = np.asarray(v, dtype=float)
            if a.shape != (n,) or not np.isfinite(a).all() or (a < 0).any():
                raise InputError(f"demand of {cluster!r} must be {n} finite fractions >= 0", field="demand_fraction")
        for cluster, v in (self.sla_shortfall_before_mwh or {}).items():
            if not (np.isfinite(v) and v >= 0):
                raise InputError(f"SLA shortfall before of {cluster!r} must be >= 0 MWh, got {v!r}",
                                 field="sla_shortfall_before_mwh")

    # -- derived views ---------------------------------------------------------------------------------------------

    @functools.cached_property
    def times(self) -> pd.DatetimeIndex:
        """UTC interval starts of the horizon."""
        return pd.DatetimeIndex(self.prices.index).tz_convert("UTC")

    @functools.cached_property
    def dt_hours(self) -> float:
        from optimizer.data import interval_hours

        return interval_hours(self.times)

    @property
    def n(self) -> int:
        return len(self.prices)

    @functools.cached_property
    def price_array(self) -> np.ndarray:
        return self.prices.to_numpy(dtype=float)

    def resolved_state(self, site: Site) -> dict[str, UnitState]:
        from optimizer.state import resolve

        return resolve(site, self.state)

    def emergency_caps(self, site: Site) -> np.ndarray:
        """Emergency caps of every interval (MW; the import limit where none)."""
        cap = np.full(self.n, site.grid.import_limit_mw)
        return cap if self.load_cap_mw is None else np.minimum(cap, self.load_cap_mw)

    def caps(self, site: Site) -> np.ndarray:
        """The load cap of every interval: the import limit, lowered by emergency caps and, where the 4CP
        probability reaches the site's threshold, to the committed GPU load. The one owner of that rule."""
        cap = self.emergency_caps(site)
        if self.peak_probability is not None and site.fourcp.curtail_above_probability < 1.0:
            hot = self.peak_probability >= site.fourcp.curtail_above_probability
            cap = np.where(hot, np.minimum(cap, site.committed_mw), cap)
        return cap

    def reserve_price(self, site: Site) -> np.ndarray:
        """(interval, service) capacity prices, USD/MW/h: given series, else the site's constant price; a service
        paid hourly clearing prices must be given (:func:`optimizer.ancillary.price_matrix`)."""
        from optimizer.ancillary import price_matrix

        return price_matrix(site, self.reserve_prices, self.n)

    def demand(self, site: Site) -> dict[str, np.ndarray]:
        """Spot demand of every cluster per interval, in GPUs (fraction x spot GPUs)."""
        key = ("demand", id(site))
        if key not in self._memo:
            given = self.demand_fraction or {}
            unknown = sorted(set(given) - {g.name for g in site.gpu})
            if unknown:
                raise InputError(f"demand for unknown GPU cluster(s) {', '.join(unknown)}", field="demand_fraction")
            self._memo[key] = {g.name: (np.asarray(given[g.name], dtype=float) if g.name in given
                                        else g.demand_fraction(self.times)) * g.spot_gpus for g in site.gpu}
        return self._memo[key]

    def active_jobs(self, site: Site) -> tuple[tuple[Job, float, float], ...]:
        """(job, GPU-hours left, hours of its current run) for every job of the site with work left that is
        released before the horizon ends, in site order."""
        key = ("jobs", id(site))
        if key not in self._memo:
            progress = dict(self.job_progress or {})
            unknown = sorted(set(progress) - {j.name for j in site.jobs})
            if unknown:
                raise InputError(f"progress for unknown job(s) {', '.join(unknown)}", field="job_progress")
            end = self.times[-1] + pd.Timedelta(hours=self.dt_hours)
            out = []
            for job in site.jobs:
                p = progress.get(job.name)
                left = job.gpu_hours - (p.gpu_hours_done if p else 0.0)
                if left > 1e-9 and job.release < end:
                    out.append((job, left, p.running_hours if p else 0.0))
            self._memo[key] = tuple(out)
        return self._memo[key]

    def replace(self, **changes: Any) -> Inputs:
        """A copy with the given fields changed (validated again, as any new Inputs)."""
        return dataclasses.replace(self, **changes)

    def head(self, n: int) -> Inputs:
        """The first ``n`` intervals."""
        def cut(mapping):
            return None if mapping is None else {k: np.asarray(v)[:n] for k, v in mapping.items()}

        return Inputs(self.prices.iloc[:n], self.hashprice_usd_per_ph_day, self.state,
                      None if self.load_cap_mw is None else self.load_cap_mw[:n],
                      None if self.peak_probability is None else self.peak_probability[:n],
                      cut(self.reserve_prices), cut(self.demand_fraction), self.job_progress,
                      self.sla_shortfall_before_mwh)
