"""Scenario sweeps on Dask: sites x hashprice levels x periods x forecast methods, each a whole backtest.

The unit of work, :func:`run_scenario`, is a pure function of plain data (the site model's TOML text, numbers and
strings in, a dict of numbers out): no model object crosses a process. Each worker solves with one HiGHS thread
and one scikit-learn thread, so two workers use two cores. :func:`sweep` runs on a ``dask.distributed`` cluster
(a LocalCluster by default, an existing scheduler, or a :class:`Pool` kept warm across sweeps) and returns one
``xarray.Dataset`` with a ``scenario`` dimension (and ``policy`` for the per-policy figures).

How the work is spread (why two workers come close to twice as fast): every worker is warmed first, all at once
(:func:`warm`: the modules a backtest needs and the shipped market data of the sweep's settlement points, loaded
once per process), so no scenario pays a worker's start-up while another worker waits; each scenario is one task
(a backtest of days to months: far longer than Dask's per-task overhead of milliseconds), and the tasks are
handed out longest first (days x policies), so that the last tasks to finish are short ones and the workers end
together. A :class:`Pool` keeps its workers (warm) between sweeps.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import socket
import time
import tomllib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from optimizer.backtest import POLICIES, Market, Settings, run
from optimizer.errors import InputError
from optimizer.site import load_site, site_from_dict

METRICS = ("profit_usd", "mining_revenue_usd", "ai_revenue_usd", "power_credits_usd", "energy_cost_usd",
           "restart_cost_usd", "reserve_revenue_usd", "mined_mwh", "sold_back_mwh", "curtailment_hours", "restarts")


@dataclass(frozen=True)
class Scenario:
    """One backtest: a site (TOML text), a hashprice level (USD/PH/day, or None for the shipped daily series),
    a period (first and last local day), a forecast method."""

    site_name: str
    site_toml: str
    hashprice: float | None
    start: str
    end: str
    forecast: str

    @property
    def period(self) -> str:
        return self.start[:4] if self.start.endswith("-01-01") and self.end == f"{self.start[:4]}-12-31" \
            else f"{self.start}:{self.end}"


def period_bounds(text: str) -> tuple[str, str]:
    """'2022' -> the whole year; 'YYYY-MM-DD:YYYY-MM-DD' -> that range (inclusive)."""
    try:
        if ":" in text:
            a, b = text.split(":")
            return dt.date.fromisoformat(a).isoformat(), dt.date.fromisoformat(b).isoformat()
        year = int(text)
        if not 2000 <= year <= 2100:
            raise ValueError(text)
        return f"{year}-01-01", f"{year}-12-31"
    except ValueError:
        raise InputError(f"period {text!r} is not a year (2022) or a range (2022-07-01:2022-07-07)",
                         field="--periods") from None


def grid(sites: Sequence[str | Path], hashprices: Sequence[float | None], periods: Sequence[str],
         forecasts: Sequence[str]) -> list[Scenario]:
    """The full cross product, validated here (a bad site file fails before any work is sent)."""
    texts = []
    for p in sites:
        site = load_site(p)
        texts.append((site.name, Path(p).read_text()))
    return [Scenario(name, text, hp, *period_bounds(per), fc)
            for (name, text), hp, per, fc in itertools.product(texts, hashprices, periods, forecasts)]


def run_scenario(scenario: dict, policies: Sequence[str] = POLICIES) -> dict:
    """Run one scenario (given as a plain dict, see :class:`Scenario`) and return plain numbers."""
    s = Scenario(**scenario)
    site = site_from_dict(tomllib.loads(s.site_toml), source=s.site_name)
    t0, cpu0, started = time.perf_counter(), time.process_time(), time.time()
    result = run(site, dt.date.fromisoformat(s.start), dt.date.fromisoformat(s.end),
                 _market(site.settlement_point),
                 Settings(forecast_method=s.forecast, hashprice_usd_per_ph_day=s.hashprice, policies=tuple(policies)))
    summ = result.summary          # a site's [[reserve]] without a price is paid the shipped MCPCs (Market.shipped)
    return {
        "metrics": {p: {m: float(summ["policies"][p][m]) for m in METRICS} for p in policies},
        "value_capture": np.nan if summ["value_capture"] is None else float(summ["value_capture"]),
        "best_policy": max((p for p in policies if p != "perfect"),      # perfect foresight is the yardstick
                           key=lambda p: float(summ["policies"][p]["profit_usd"]), default=""),
        "days": int(summ["days"]),
        "wall_seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - cpu0,
        "solver_seconds": float(summ["solver_seconds"]),
        "forecast_mae_usd_per_mwh": float(summ["forecast_mae_usd_per_mwh"]),
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "started_at": started,
    }


_MARKETS: dict[str, Market] = {}


def _market(settlement_point: str) -> Market:
    """Shipped market data, loaded once per worker process."""
    if settlement_point not in _MARKETS:
        _MARKETS[settlement_point] = Market.shipped(settlement_point)
    return _MARKETS[settlement_point]


def warm(settlement_points: Sequence[str], learner: bool = False) -> list[str]:
    """Make this process ready to run scenarios: import what a backtest needs (the engine, the 4CP model, the
    solver; scikit-learn too with ``learner``, for the gbm forecasts) and load the shipped market data of
    ``settlement_points`` (kept for the process's later scenarios). Run on every worker at the start of a sweep;
    returns the settlement points loaded."""
    import highspy  # noqa: F401 - imported for its import time, not used here

    from optimizer import fourcp  # noqa: F401
    from optimizer.backtest import engine  # noqa: F401

    if learner:
        import sklearn.ensemble  # noqa: F401
    for sp in settlement_points:
        _market(sp)
    return list(settlement_points)


def cost(scenario: Scenario, policies: Sequence[str]) -> float:
    """A scenario's expected work, for handing out the longest first: its days times its policies (the rolling
    ``mpc`` policy solves every hour: it counts as 24)."""
    days = (dt.date.fromisoformat(scenario.end) - dt.date.fromisoformat(scenario.start)).days + 1
    return days * sum(24.0 if p == "mpc" else 1.0 for p in policies)


class Pool:
    """Dask workers kept between sweeps (``with Pool(2) as pool: sweep(a, pool=pool); sweep(b, pool=pool)``):
    a LocalCluster of ``workers`` single-threaded worker processes, or the workers of an existing
    ``scheduler``; each worker stays warm (modules imported, market data loaded) from one sweep to the next."""

    def __init__(self, workers: int = 2, scheduler: str | None = None):
        from dask.distributed import Client, LocalCluster

        if not isinstance(workers, int) or workers < 1:
            raise InputError(f"workers must be a whole number >= 1, got {workers!r}", field="--workers")
        self.scheduler = scheduler
        self.cluster = None if scheduler else LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                           dashboard_address=None)
        self.client = Client(scheduler) if scheduler else Client(self.cluster)
        self.workers = len(self.client.scheduler_info()["workers"]) if scheduler else workers

    def run(self, plain: list[dict], costs: Sequence[float], policies: Sequence[str]) -> list[dict]:
        """Every scenario (plain dicts) on the workers, warmed first, longest first; results in the given order."""
        sps = sorted({site_from_dict(tomllib.loads(p["site_toml"])).settlement_point for p in plain})
        learner = any(p["forecast"] in ("auto", "gbm", "da+gbm") for p in plain)
        self.client.run(warm, sps, learner)              # on every worker at once
        order = sorted(range(len(plain)), key=lambda i: -costs[i])
        futures = self.client.map(run_scenario, [plain[i] for i in order], policies=list(policies), pure=False)
        done = self.client.gather(futures)
        out: list[dict] = [{}] * len(plain)
        for i, r in zip(order, done, strict=True):
            out[i] = r
        return out

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sweep(scenarios: Sequence[Scenario], *, scheduler: str | None = None, workers: int = 2,
          policies: Sequence[str] = POLICIES, serial: bool = False, pool: Pool | None = None) -> xr.Dataset:
    """Run every scenario on Dask, or in this process when ``serial``; one Dataset back. The workers: ``pool``
    (kept warm by the caller across sweeps), else those of ``scheduler`` (an existing ``tcp://host:port``), else a
    LocalCluster of ``workers`` single-threaded worker processes made for this sweep."""
    t0, epoch = time.perf_counter(), time.time()
    plain = [asdict(s) for s in scenarios]
    costs = [cost(s, policies) for s in scenarios]
    if serial:
        outs = [run_scenario(p, policies) for p in plain]
        where, n = "serial", 1
    elif pool is not None:
        outs = pool.run(plain, costs, policies)
        where, n = pool.scheduler or "LocalCluster (pool)", pool.workers
    else:
        with Pool(workers, scheduler) as own:
            outs = own.run(plain, costs, policies)
            where, n = scheduler or "LocalCluster", own.workers
    ds = to_dataset(scenarios, outs, policies)
    ds["start_seconds"] = ("scenario", np.array([o["started_at"] - epoch for o in outs]))
    ds["start_seconds"].attrs.update({"units": "s", "meaning": "when the scenario started, after the sweep did"})
    ds["worker"] = ("scenario", np.array([o["worker"] for o in outs]))
    ds["cpu_seconds"] = ("scenario", np.array([o["cpu_seconds"] for o in outs]))
    ds["cpu_seconds"].attrs.update({"units": "s", "meaning": "CPU time of the worker process on the scenario"})
    ds.attrs.update({"wall_seconds": time.perf_counter() - t0, "workers": n, "scheduler": where})
    return ds


def to_dataset(scenarios: Sequence[Scenario], outs: Sequence[dict], policies: Sequence[str]) -> xr.Dataset:
    """Results as a Dataset: dims ``scenario`` (coords site, hashprice, period, forecast) and ``policy``."""
    n = len(scenarios)
    data: dict[str, tuple[tuple[str, ...], np.ndarray]] = {
        m: (("scenario", "policy"), np.array([[o["metrics"][p][m] for p in policies] for o in outs]))
        for m in METRICS}
    for k in ("value_capture", "wall_seconds", "solver_seconds", "forecast_mae_usd_per_mwh", "days"):
        data[k] = (("scenario",), np.array([o[k] for o in outs]))
    data["best_policy"] = (("scenario",), np.array([o["best_policy"] for o in outs]))
    ds = xr.Dataset(data, coords={
        "scenario": np.arange(n), "policy": list(policies),
        "site": ("scenario", [s.site_name for s in scenarios]),
        "hashprice_usd_per_ph_day": ("scenario", [np.nan if s.hashprice is None else s.hashprice for s in scenarios]),
        "period": ("scenario", [s.period for s in scenarios]),
        "forecast": ("scenario", [s.forecast for s in scenarios]),
    })
    for m in METRICS:
        ds[m].attrs["units"] = "USD" if m.endswith("_usd") else ("MWh" if m.endswith("_mwh") else "1")
    return ds


def write(ds: xr.Dataset, path: str | Path) -> Path:
    """NetCDF (.nc) or Zarr (.zarr, needs the zarr package)."""
    path = Path(path)
    if path.suffix == ".nc":
        ds.to_netcdf(path)
    elif path.suffix == ".zarr":
        ds.to_zarr(path, mode="w")
    else:
        raise InputError(f"sweep output must be .nc or .zarr, got {path.suffix!r}", source=str(path))
    return path
