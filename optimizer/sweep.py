"""Scenario sweeps on Dask: sites x hashprice levels x periods x forecast methods, each a whole backtest.

The unit of work, :func:`run_scenario`, is a pure function of plain data (the site model's TOML text, numbers and
strings in, a dict of numbers out): no model object crosses a process. Each worker solves with one HiGHS thread
and one scikit-learn thread, so two workers use two cores. :func:`sweep` runs on a ``dask.distributed`` cluster
(a LocalCluster by default, or an existing scheduler) and returns one ``xarray.Dataset`` with a ``scenario``
dimension (and ``policy`` for the per-policy figures).
"""

from __future__ import annotations

import datetime as dt
import itertools
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
           "restart_cost_usd", "mined_mwh", "sold_back_mwh", "curtailment_hours", "restarts")


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
    t0 = time.perf_counter()
    result = run(site, dt.date.fromisoformat(s.start), dt.date.fromisoformat(s.end),
                 _market(site.settlement_point),
                 Settings(forecast_method=s.forecast, hashprice_usd_per_ph_day=s.hashprice, policies=tuple(policies)))
    summ = result.summary
    return {
        "metrics": {p: {m: float(summ["policies"][p][m]) for m in METRICS} for p in policies},
        "value_capture": np.nan if summ["value_capture"] is None else float(summ["value_capture"]),
        "best_policy": str(summ["policy"]),
        "days": int(summ["days"]),
        "wall_seconds": time.perf_counter() - t0,
        "solver_seconds": float(summ["solver_seconds"]),
        "forecast_mae_usd_per_mwh": float(summ["forecast_mae_usd_per_mwh"]),
    }


_MARKETS: dict[str, Market] = {}


def _market(settlement_point: str) -> Market:
    """Shipped market data, loaded once per worker process."""
    if settlement_point not in _MARKETS:
        _MARKETS[settlement_point] = Market.shipped(settlement_point)
    return _MARKETS[settlement_point]


def sweep(scenarios: Sequence[Scenario], *, scheduler: str | None = None, workers: int = 2,
          policies: Sequence[str] = POLICIES, serial: bool = False) -> xr.Dataset:
    """Run every scenario on Dask (``scheduler``: an existing ``tcp://host:port``; None: a LocalCluster with
    ``workers`` single-threaded worker processes), or in this process when ``serial``; one Dataset back."""
    t0 = time.perf_counter()
    plain = [asdict(s) for s in scenarios]
    if serial:
        outs = [run_scenario(p, policies) for p in plain]
    else:
        outs = _on_dask(plain, policies, scheduler, workers)
    ds = to_dataset(scenarios, outs, policies)
    ds.attrs.update({"wall_seconds": time.perf_counter() - t0, "workers": 1 if serial else workers,
                     "scheduler": scheduler or ("serial" if serial else "LocalCluster")})
    return ds


def _on_dask(plain: list[dict], policies: Sequence[str], scheduler: str | None, workers: int) -> list[dict]:
    from dask.distributed import Client, LocalCluster

    if scheduler:
        client, cluster = Client(scheduler), None
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        futures = client.map(run_scenario, plain, policies=list(policies), pure=False)
        return client.gather(futures)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def to_dataset(scenarios: Sequence[Scenario], outs: Sequence[dict], policies: Sequence[str]) -> xr.Dataset:
    """Results as a Dataset: dims ``scenario`` (coords site, hashprice, period, forecast) and ``policy``."""
    n = len(scenarios)
    data = {m: (("scenario", "policy"), np.array([[o["metrics"][p][m] for p in policies] for o in outs]))
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
