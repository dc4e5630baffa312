"""Read a solved model back into an ``xarray.Dataset``, turn it into a flat table, and write it out.

Dataset layout (dims ``time``: UTC interval starts, hourly or 15-minute; ``asset``: fleet and cluster names;
``attrs["interval_hours"]``: the interval length). Money variables are USD per interval.

| variable | dims | unit |
|---|---|---|
| ``price_usd_per_mwh`` | time | USD/MWh |
| ``power_mw``, ``on``, ``start`` | time, asset | MW, -, - |
| ``sla_shortfall_mw`` | time, asset | MW of committed GPU load not delivered (0 unless SLA breach is allowed) |
| ``mining_mw``, ``ai_mw``, ``load_mw``, ``grid_mw``, ``sellback_mw`` | time | MW |
| ``mining_revenue_usd``, ``ai_revenue_usd``, ``energy_cost_usd``, ``sellback_credit_usd``, ``contract_cost_usd``, ``restart_cost_usd``, ``profit_usd`` | time | USD |

``energy_cost_usd`` is what is bought above the block at the market price; ``sellback_credit_usd`` what unused
block power earns (negative when the price is negative); ``sla_credit_usd`` the SLA credit owed for committed GPU
load not delivered (only with SLA breach allowed; booked in the first hour); ``fourcp_charge_usd`` the 4CP
transmission charge (expected in a plan; on the actual peaks in a backtest). ``profit_usd`` = mining + AI revenue
- energy cost + sell-back credit - contract cost - restart cost - SLA credit - 4CP charge + reserve capacity
revenue (``reserve_revenue_usd``). ``max_load_mw`` is the load cap in force each interval, ``peak_weight`` the 4CP
peak probability; ``reserve_offer_mw`` (time, asset, service) the capacity offered, at
``reserve_price_usd_per_mw_hour`` (time, service).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import pandas as pd
import xarray as xr

from optimizer.errors import InputError, LockedError
from optimizer.inputs import Inputs
from optimizer.site import Site

MONEY = ("mining_revenue_usd", "ai_revenue_usd", "energy_cost_usd", "sellback_credit_usd", "contract_cost_usd",
         "restart_cost_usd", "sla_credit_usd", "fourcp_charge_usd", "reserve_revenue_usd", "job_penalty_usd",
         "profit_usd")
UNITS = {"price_usd_per_mwh": "USD/MWh", "power_mw": "MW", "sla_shortfall_mw": "MW", "max_load_mw": "MW",
         "committed_mw": "MW", "demand_gpus": "GPU", "served_gpus": "GPU", "job_gpus": "GPU",
         "reserve_deployed_mw": "MW",
         "peak_weight": "1", "reserve_offer_mw": "MW", "reserve_price_usd_per_mw_hour": "USD/MW/h", "on": "1",
         "start": "1", "mining_mw": "MW", "ai_mw": "MW", "load_mw": "MW", "grid_mw": "MW",
         "sellback_mw": "MW"} | {k: "USD" for k in MONEY}
OUTPUT_SUFFIXES = (".csv", ".parquet", ".json", ".nc")


class Decisions(TypedDict):
    """A plan's decisions as arrays in site order: the decision keyword arguments of :func:`assemble`."""

    power: np.ndarray
    on: np.ndarray
    start: np.ndarray
    shortfall: np.ndarray
    sla_credit: np.ndarray | None
    reserve_offer: np.ndarray
    committed_mw: np.ndarray
    job_gpus: np.ndarray
    job_penalty: np.ndarray


class Context(TypedDict):
    """What settles a plan besides its decisions: the other keyword arguments of :func:`assemble`."""

    price: np.ndarray
    hashprice_usd_per_ph_day: float
    dt_hours: float
    max_load_mw: np.ndarray
    peak_weight: np.ndarray | None
    reserve_price: np.ndarray
    demand_gpus: np.ndarray | None


def read(m, site: Site, inputs: Inputs, values) -> xr.Dataset:
    """The solution of a solved model over its whole horizon, as the result dataset: every part's arrays
    (:func:`optimizer.model.read`, ``values(var)`` reads a Var component) settled by :func:`assemble`."""
    return assemble(site, inputs.times, **plan_arrays(m, site, inputs, values), **context(site, inputs))


def plan_arrays(m, site: Site, inputs: Inputs, values) -> Decisions:
    """A solved model's decisions as arrays in site order (the keyword arguments of :func:`assemble`)."""
    from optimizer import model

    parts = model.read(m, site, inputs, values)
    names = site.asset_names
    n = inputs.n

    def stack(key: str, keys, default) -> np.ndarray:
        per = parts.get(key, {})
        return (np.stack([per.get(a, default(a)) for a in keys], axis=1) if keys else np.zeros((n, 0)))

    offers = parts.get("reserve_offer_mw", {})
    offer = (np.stack([offers[a] for a in names], axis=1) if offers
             else np.zeros((n, len(names), len(site.reserves))))
    zero = lambda _: np.zeros(n)  # noqa: E731
    penalty = np.zeros(n)
    active = {job.name: job for job, _, _ in inputs.active_jobs(site)}
    penalty[0] = sum(active[name].late_penalty_usd_per_gpu_hour * late
                     for name, late in parts.get("job_late_gpu_hours", {}).items())
    return {"power": np.clip(stack("power_mw", names, zero), 0.0, None), "on": stack("on", names, zero),
            "start": stack("start", names, zero), "shortfall": stack("sla_shortfall_mw", names, zero),
            "sla_credit": parts.get("sla_credit_usd", {}).get("site"), "reserve_offer": offer,
            "committed_mw": stack("committed_mw", [g.name for g in site.gpu], zero),
            "job_gpus": stack("job_gpus", [j.name for j in site.jobs], zero), "job_penalty": penalty}


def arrays_of(ds: xr.Dataset, site: Site) -> Decisions:
    """A result dataset's decisions as arrays (the inverse of :func:`assemble` for its decision arguments)."""
    n = ds.sizes["time"]
    penalty = ds["job_penalty_usd"].to_numpy() if "job_penalty_usd" in ds else np.zeros(n)
    return {"power": ds["power_mw"].to_numpy(), "on": ds["on"].to_numpy().astype(float),
            "start": ds["start"].to_numpy().astype(float), "shortfall": ds["sla_shortfall_mw"].to_numpy(),
            "sla_credit": ds["sla_credit_usd"].to_numpy(), "reserve_offer": ds["reserve_offer_mw"].to_numpy(),
            "committed_mw": ds["committed_mw"].to_numpy().reshape(n, len(site.gpu)),
            "job_gpus": ds["job_gpus"].to_numpy().reshape(n, len(site.jobs)), "job_penalty": penalty}


def context(site: Site, inputs: Inputs) -> Context:
    """What settles a plan besides its decisions, from its inputs (the keyword arguments of :func:`assemble`)."""
    demand = inputs.demand(site)
    return {"price": inputs.price_array, "hashprice_usd_per_ph_day": inputs.hashprice_usd_per_ph_day,
            "dt_hours": inputs.dt_hours, "max_load_mw": inputs.caps(site), "peak_weight": inputs.peak_probability,
            "reserve_price": inputs.reserve_price(site),
            "demand_gpus": np.stack([demand[g.name] for g in site.gpu], axis=1) if site.gpu else None}


def assemble(site: Site, times: pd.DatetimeIndex, price: np.ndarray, power: np.ndarray, on: np.ndarray,
             start: np.ndarray, *, hashprice_usd_per_ph_day: float | np.ndarray, dt_hours: float = 1.0,
             shortfall: np.ndarray | None = None, sla_credit: np.ndarray | None = None,
             max_load_mw: np.ndarray | None = None, peak_weight: np.ndarray | None = None,
             reserve_offer: np.ndarray | None = None, reserve_price: np.ndarray | None = None,
             reserve_deployed_mw: np.ndarray | None = None, committed_mw: np.ndarray | None = None,
             job_gpus: np.ndarray | None = None, demand_gpus: np.ndarray | None = None,
             job_penalty: np.ndarray | None = None) -> xr.Dataset:
    """Build the result dataset from per-interval decisions (MW per asset in ``site.asset_names`` order; GPU
    clusters' committed power; job work per job in ``site.jobs`` order) and prices; every derived quantity
    (balance, service, revenue, settlement, USD per interval of ``dt_hours``) is computed here once. Used for
    solved schedules, fallback schedules and backtest settlement alike.

    ``max_load_mw``: the load cap in force (default the import limit); ``peak_weight``: 4CP peak probability of the
    interval's hour (plans) or 1 inside an actual monthly peak hour (settlement). The 4CP charge is
    ``peak_weight x load x charge per MW-peak x dt``. A GPU cluster's spot MW is its power less its committed
    power (plus any shortfall); the inference it serves is ``min(demand, throughput(spot MW) - job work)``
    (``demand_gpus``: default the cluster's profile), earning the spot price; job work earns each job's value;
    ``job_penalty`` (USD per interval) is charged as given. ``reserve_offer`` (interval, asset, service; MW) is
    kept only as far as the unit's load backs it, except in intervals where capacity is being deployed
    (``reserve_deployed_mw`` > 0: the load has already dropped)."""
    n, n_mining = len(price), len(site.mining)
    services = [r.name for r in site.reserves]
    k = len(site.asset_names)
    reserve_offer = np.zeros((n, k, len(services))) if reserve_offer is None else reserve_offer
    if reserve_price is None:
        reserve_price = np.tile([r.price_usd_per_mw_hour for r in site.reserves], (n, 1)).reshape(n, len(services))
    max_load_mw = np.full(n, site.grid.import_limit_mw) if max_load_mw is None else max_load_mw
    peak_weight = np.zeros(n) if peak_weight is None else peak_weight
    shortfall = np.zeros_like(power) if shortfall is None else shortfall
    sla_credit = np.zeros(n) if sla_credit is None else sla_credit
    job_penalty = np.zeros(n) if job_penalty is None else job_penalty
    if committed_mw is None:
        committed_mw = np.tile([g.committed_mw for g in site.gpu], (n, 1)).reshape(n, len(site.gpu))
    job_gpus = np.zeros((n, len(site.jobs))) if job_gpus is None else job_gpus
    if demand_gpus is None:
        demand_gpus = (np.stack([g.demand_fraction(pd.DatetimeIndex(times)) * g.spot_gpus for g in site.gpu], axis=1)
                       if site.gpu else np.zeros((n, 0)))
    hp = np.broadcast_to(np.asarray(hashprice_usd_per_ph_day, dtype=float), (n,))
    mining_rev = sum((power[:, j] * f.value_usd_per_mwh(hp)
                      for j, f in enumerate(site.mining)), np.zeros(n)) * dt_hours
    ai_rev = np.zeros(n)
    spot_mw = np.zeros((n, len(site.gpu)))
    served = np.zeros((n, len(site.gpu)))
    for j, g in enumerate(site.gpu):
        short = shortfall[:, n_mining + j]
        spot_mw[:, j] = power[:, n_mining + j] - committed_mw[:, j] + short
        work = sum((job_gpus[:, i] for i, job in enumerate(site.jobs) if (job.cluster or site.gpu[0].name) == g.name),
                   np.zeros(n))
        served[:, j] = np.clip(np.minimum(demand_gpus[:, j], g.spot_throughput_gpus(spot_mw[:, j]) - work), 0.0, None)
        delivered = 1.0 - short / g.committed_mw if g.committed_mw > 0 else 1.0
        ai_rev += ((g.committed_revenue_usd_per_hour * delivered + g.spot_price_usd_per_gpu_hour * served[:, j])
                   * dt_hours)
    job_value = job_gpus @ np.array([job.value_usd_per_gpu_hour for job in site.jobs]) * dt_hours if site.jobs \
        else np.zeros(n)
    ai_rev = ai_rev + job_value
    restart_cost = start @ np.array([u.restart_cost_usd for u in (*site.mining, *site.gpu)])
    switchable = np.concatenate([power[:, :n_mining], spot_mw], axis=1)
    offered = reserve_offer.sum(axis=2)
    deployed = np.zeros(n) if reserve_deployed_mw is None else reserve_deployed_mw
    scale = np.where(offered > 1e-9, np.minimum(1.0, np.clip(switchable, 0, None) / np.maximum(offered, 1e-12)), 1.0)
    scale[deployed > 1e-9] = 1.0
    reserve_offer = reserve_offer * scale[:, :, None]
    reserve_revenue = np.einsum("tas,ts->t", reserve_offer, reserve_price) * dt_hours
    load = power.sum(axis=1)
    grid_mw = load - site.contract.block_mw
    exposed = site.contract.market_exposed
    bought = np.clip(grid_mw, 0.0, None) if exposed else np.zeros_like(load)
    sold = np.clip(-grid_mw, 0.0, None) if site.contract.sellback else np.zeros_like(load)
    energy_cost = price * bought * dt_hours
    credit = price * sold * dt_hours
    contract = np.full(n, site.contract.block_mw * site.contract.price_usd_per_mwh * dt_hours)
    fourcp = peak_weight * load * site.fourcp.usd_per_mw_peak * dt_hours
    profit = (mining_rev + ai_rev - energy_cost + credit - contract - restart_cost - sla_credit - fourcp
              + reserve_revenue - job_penalty)
    time = pd.DatetimeIndex(times).tz_convert("UTC").tz_localize(None)
    th, ta, tc = ("time",), ("time", "asset"), ("time", "cluster")
    ds = xr.Dataset(
        {
            "price_usd_per_mwh": (th, price),
            "power_mw": (ta, power),
            "sla_shortfall_mw": (ta, shortfall),
            "on": (ta, on.astype("int8")),
            "start": (ta, start.astype("int8")),
            "committed_mw": (tc, committed_mw),
            "demand_gpus": (tc, demand_gpus),
            "served_gpus": (tc, served),
            "job_gpus": (("time", "job"), job_gpus),
            "mining_mw": (th, power[:, :n_mining].sum(axis=1)),
            "ai_mw": (th, power[:, n_mining:].sum(axis=1)),
            "load_mw": (th, load),
            "grid_mw": (th, grid_mw),
            "sellback_mw": (th, sold),
            "mining_revenue_usd": (th, mining_rev),
            "ai_revenue_usd": (th, ai_rev),
            "energy_cost_usd": (th, energy_cost),
            "sellback_credit_usd": (th, credit),
            "contract_cost_usd": (th, contract),
            "restart_cost_usd": (th, restart_cost),
            "sla_credit_usd": (th, sla_credit),
            "fourcp_charge_usd": (th, fourcp),
            "reserve_revenue_usd": (th, reserve_revenue),
            "job_penalty_usd": (th, job_penalty),
            "reserve_offer_mw": (("time", "asset", "service"), reserve_offer),
            "reserve_price_usd_per_mw_hour": (("time", "service"), reserve_price),
            "reserve_deployed_mw": (th, deployed),
            "profit_usd": (th, profit),
            "max_load_mw": (th, max_load_mw),
            "peak_weight": (th, peak_weight),
        },
        coords={"time": time, "asset": list(site.asset_names), "service": services,
                "cluster": [g.name for g in site.gpu], "job": [j.name for j in site.jobs],
                "asset_kind": ("asset", ["mining"] * n_mining + ["gpu"] * len(site.gpu))},
    )
    for name, unit in UNITS.items():
        ds[name].attrs["units"] = unit
    ds["time"].attrs["timezone"] = "UTC"
    ds["time"].attrs["meaning"] = "interval start"
    ds.attrs["interval_hours"] = float(dt_hours)
    return ds


def resettle_sla_credit(ds: xr.Dataset, site: Site, shortfall_before_mwh: dict | None = None) -> xr.Dataset:
    """The SLA credit of a (trimmed) schedule recomputed from its own shortfall (on top of the month's shortfall
    before it), booked in its first interval, with ``profit_usd`` adjusted to match."""
    if not float(ds["sla_shortfall_mw"].sum()) and not float(ds["sla_credit_usd"].sum()):
        return ds
    dt_hours = float(ds.attrs.get("interval_hours", 1.0))
    before = shortfall_before_mwh or {}
    credit = np.zeros(ds.sizes["time"])
    credit[0] = sum(g.sla_credit_usd(float(ds["sla_shortfall_mw"].sel(asset=g.name).sum()) * dt_hours,
                                     float(before.get(g.name, 0.0))) for g in site.gpu)
    ds = ds.copy()
    ds["profit_usd"] = ds["profit_usd"] + ds["sla_credit_usd"] - credit
    ds["sla_credit_usd"] = (("time",), credit)
    ds["sla_credit_usd"].attrs["units"] = "USD"
    ds["profit_usd"].attrs["units"] = "USD"
    return ds


def resettle_day(ds: xr.Dataset, site: Site, inputs: Inputs) -> xr.Dataset:
    """A plan trimmed to its first ``inputs.n`` intervals (the operating day without the lookahead), with the
    amounts booked for the whole horizon (SLA credit, expected late-job penalty) recomputed for those intervals."""
    day = ds.isel(time=slice(0, inputs.n))
    day = resettle_sla_credit(day, site, dict(inputs.sla_shortfall_before_mwh or {}))
    return resettle_job_penalty(day, site, inputs)


def resettle_job_penalty(ds: xr.Dataset, site: Site, inputs: Inputs) -> xr.Dataset:
    """The late-job penalty of a (trimmed) schedule recomputed for its own intervals (``inputs``: the trimmed
    inputs), booked in its first interval, with ``profit_usd`` adjusted to match."""
    from optimizer.model.jobs import expected_late_gpu_hours

    active = inputs.active_jobs(site)
    if not site.jobs:
        return ds
    penalty = np.zeros(ds.sizes["time"])
    penalty[0] = sum(job.late_penalty_usd_per_gpu_hour * expected_late_gpu_hours(
        job, left, ds["job_gpus"].sel(job=job.name).to_numpy(), inputs.times, inputs.dt_hours)
        for job, left, _ in active)
    ds = ds.copy()
    ds["profit_usd"] = ds["profit_usd"] + ds["job_penalty_usd"] - penalty
    ds["job_penalty_usd"] = (("time",), penalty)
    ds["job_penalty_usd"].attrs["units"] = "USD"
    ds["profit_usd"].attrs["units"] = "USD"
    return ds


def energy_mwh(ds: xr.Dataset, name: str) -> float:
    """Energy of a power variable over the dataset (MWh)."""
    return float(ds[name].sum()) * float(ds.attrs.get("interval_hours", 1.0))


# ---------------------------------------------------------------------------------------------------------
# Flat table and files


def to_frame(ds: xr.Dataset) -> pd.DataFrame:
    """One row per interval (hour or 15 minutes): ``timestamp`` (ISO 8601 UTC), totals, money, ``mining_mw__<fleet>`` /
    ``ai_mw__<cluster>`` per asset; per GPU cluster ``sla_shortfall_mw__``, ``committed_mw__`` (its committed GPUs'
    power) and ``served_gpus__`` (inference served); ``job_gpus__<job>`` per job of the site."""
    times = pd.DatetimeIndex(ds["time"].values).tz_localize("UTC")
    df = pd.DataFrame({"timestamp": times.strftime("%Y-%m-%dT%H:%M:%SZ")})
    for name in ("price_usd_per_mwh", "mining_mw", "ai_mw", "load_mw", "grid_mw", "sellback_mw", "max_load_mw",
                 "peak_weight", *MONEY):
        df[name] = ds[name].values
    for asset, kind in zip(ds["asset"].values, ds["asset_kind"].values, strict=True):
        prefix = "mining_mw" if kind == "mining" else "ai_mw"
        df[f"{prefix}__{asset}"] = ds["power_mw"].sel(asset=asset).values
    if "strike_usd_per_mwh" in ds:
        for asset in ds["asset"].values:
            df[f"strike_usd_per_mwh__{asset}"] = ds["strike_usd_per_mwh"].sel(asset=asset).values
    for asset in ds["asset"].values[ds["asset_kind"].values == "gpu"]:
        df[f"sla_shortfall_mw__{asset}"] = ds["sla_shortfall_mw"].sel(asset=asset).values
        df[f"committed_mw__{asset}"] = ds["committed_mw"].sel(cluster=asset).values
        df[f"served_gpus__{asset}"] = ds["served_gpus"].sel(cluster=asset).values
    for job in ds["job"].values if "job" in ds.dims else ():
        df[f"job_gpus__{job}"] = ds["job_gpus"].sel(job=job).values
    if "service" in ds.dims and ds.sizes["service"]:
        df["reserve_deployed_mw"] = ds["reserve_deployed_mw"].values
        for s in ds["service"].values:
            df[f"reserve_price__{s}"] = ds["reserve_price_usd_per_mw_hour"].sel(service=s).values
            for asset in ds["asset"].values:
                offer = ds["reserve_offer_mw"].sel(service=s, asset=asset).values
                if offer.any():
                    df[f"reserve_mw__{s}__{asset}"] = offer
    return df


def summary(ds: xr.Dataset) -> dict[str, Any]:
    """The run's summary: the dataset's attributes (JSON-decoded where stored as JSON)."""
    out: dict[str, Any] = {}
    for k, v in ds.attrs.items():
        if k.endswith("_json"):
            out[k[: -len("_json")]] = json.loads(v)
        else:
            v = v.item() if isinstance(v, np.generic) else v
            out[k] = None if isinstance(v, float) and not np.isfinite(v) else v
    return out


def check_output_path(path: str | Path) -> Path:
    """Fail early (before solving) on an output path that cannot be written."""
    path = Path(path)
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise InputError(f"unsupported output format {path.suffix!r} (expected one of {', '.join(OUTPUT_SUFFIXES)})",
                         source=str(path))
    if not path.parent.is_dir():
        raise InputError("output folder does not exist", source=str(path.parent))
    if path.is_dir():
        raise InputError("output path is a folder, not a file", source=str(path))
    return path


#: Summary keys that change from run to run (timings); kept out of the CSV and Parquet files so that the same
#: inputs give the same bytes there (set SOURCE_DATE_EPOCH to fix ``created_at`` too).
RUN_DEPENDENT = ("build_seconds", "translate_seconds", "solve_seconds", "highs_seconds", "read_seconds",
                 "total_seconds")


def provenance(ds: xr.Dataset) -> dict[str, Any]:
    """The summary without run-dependent timings: what a written CSV or Parquet file carries."""
    return {k: v for k, v in summary(ds).items() if k not in RUN_DEPENDENT}


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def output_lock(path: str | Path) -> Iterator[None]:
    """Hold ``<path>.lock`` for the duration (non-blocking): a second run on the same output fails at once."""
    lock = Path(f"{path}.lock")
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(f"{path}: another curtail run holds {lock}; not writing") from None
        yield
    finally:
        os.close(fd)


def write(ds: xr.Dataset, path: str | Path) -> Path:
    """Write a schedule by suffix (.csv, .parquet, .json, .nc), atomically: a temporary file in the same
    folder, then a rename, so a reader never sees half a file and a failed write leaves the old one intact.

    A CSV file is a plain table (``pandas.read_csv(path)`` and spreadsheets open it with no options); its
    provenance goes to the sidecar ``<path>.meta.json`` (:func:`sidecar_path`), written the same way just before
    the CSV is renamed into place and carrying the CSV's sha256, so a sidecar that does not belong to the CSV
    beside it (a run killed between the two renames) is detected by :func:`read_summary`. Parquet files carry the
    provenance as ``curtail`` schema metadata; JSON as ``summary``; NetCDF as attributes.

    An output that cannot be written (``PermissionError``: read-only, or held open by another program; or any
    other OS error) is an :class:`~optimizer.errors.InputError` naming the file (exit 2), never a traceback.
    """
    path = check_output_path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            _write_csv(ds, path)
            return path
        with atomic_path(path) as tmp:
            frame = to_frame(ds)
            if suffix == ".parquet":
                import pyarrow as pa
                import pyarrow.parquet as pq

                table = pa.Table.from_pandas(frame, preserve_index=False)
                meta = {**(table.schema.metadata or {}),
                        b"curtail": json.dumps(provenance(ds), sort_keys=True, default=str).encode()}
                pq.write_table(table.replace_schema_metadata(meta), tmp)
            elif suffix == ".json":
                payload = {"summary": summary(ds), "schedule": frame.to_dict(orient="records")}
                Path(tmp).write_text(json.dumps(payload, indent=1, default=_json_default) + "\n")
            else:
                ds.to_netcdf(tmp)
    except OSError as exc:
        raise output_error(exc, path) from None
    return path


#: Suffix of the provenance sidecar of a CSV output: ``schedule.csv`` -> ``schedule.csv.meta.json``.
SIDECAR_SUFFIX = ".meta.json"


def sidecar_path(path: str | Path) -> Path:
    """The provenance sidecar of a CSV output (``<path>.meta.json``)."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _write_csv(ds: xr.Dataset, path: Path) -> None:
    """The plain CSV and its sidecar: both temporary files written first, then the sidecar renamed, then the CSV
    (the sidecar names the CSV's sha256, so a pair split by a kill is detected, never silently trusted). If the
    CSV cannot be renamed, the previous sidecar is put back (or the new one removed)."""
    frame = to_frame(ds)
    side = sidecar_path(path)
    previous = side.read_bytes() if side.exists() else None
    renamed = False
    try:
        with atomic_path(path) as tmp_csv:
            frame.to_csv(tmp_csv, index=False, float_format="%.6f", lineterminator="\n")
            meta = {"format": "curtail-schedule-csv", "version": 1, "csv": path.name,
                    "csv_sha256": file_sha256(tmp_csv), "provenance": provenance(ds)}
            with atomic_path(side) as tmp_meta:
                Path(tmp_meta).write_text(json.dumps(meta, indent=1, sort_keys=True, default=_json_default) + "\n")
            renamed = True
    except BaseException:
        if renamed:
            with contextlib.suppress(OSError):
                if previous is None:
                    side.unlink()
                else:
                    with atomic_path(side) as tmp_meta:
                        Path(tmp_meta).write_bytes(previous)
        raise


def output_error(exc: OSError, path: str | Path) -> InputError:
    """An output that cannot be written, as a named :class:`~optimizer.errors.InputError` (exit 2)."""
    target = exc.filename or path
    if isinstance(exc, PermissionError):
        why = ("permission denied: the file or its folder is read-only, or another program holds it open (a "
               "notebook with the previous file open, a spreadsheet); close it or choose another output")
    else:
        why = f"{type(exc).__name__}: {exc.strerror or exc}"
    return InputError(f"cannot write {Path(str(target)).name} ({why}); nothing was replaced", source=str(path))


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[str]:
    """A temporary file beside ``path`` to write into; renamed onto ``path`` only when the block succeeds (keeping
    the replaced file's mode), removed otherwise: a reader never sees half a file, a failure leaves the old one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, _mode_for(path))
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _mode_for(path: Path) -> int:
    """The replaced file's permissions, or those a plain new file gets under the umask (mkstemp uses 0600)."""
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _json_default(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else str(x)


def read_summary(path: str | Path) -> dict[str, Any]:
    """The summary / provenance a written schedule carries (empty if it carries none).

    A CSV's comes from its sidecar ``<path>.meta.json``, which must name the CSV's sha256 (else the pair was split,
    e.g. by a run killed between the two renames: an :class:`~optimizer.errors.InputError`); a CSV in the layout
    of curtail <= 0.1 (``# key: value`` lines before the header) is still read, for one release."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            return json.loads(path.read_text()).get("summary", {})
        if suffix == ".csv":
            return _csv_summary(path)
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            meta = pq.read_schema(path).metadata or {}
            return json.loads(meta.get(b"curtail", b"{}"))
        if suffix == ".nc":
            with xr.open_dataset(path) as ds:
                return summary(ds)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"cannot read schedule summary ({type(exc).__name__}: {exc})", source=str(path)) from None
    return {}


def _csv_summary(path: Path) -> dict[str, Any]:
    if _legacy_csv(path):
        out = {}
        with open(path) as f:
            for line in f:
                if not line.startswith("# "):
                    break
                key, _, value = line[2:].partition(": ")
                out[key] = json.loads(value)
        return out
    side = sidecar_path(path)
    if not side.exists():
        return {}
    meta = json.loads(side.read_text())
    if meta.get("csv_sha256") != file_sha256(path):
        raise InputError(f"the sidecar {side.name} does not belong to this CSV (its csv_sha256 differs: a run "
                         "was stopped between writing the two, or one was edited); rerun the schedule",
                         source=str(path))
    return meta.get("provenance", {})


def _legacy_csv(path: Path) -> bool:
    """Whether a CSV is in the old layout (``# key: value`` provenance lines before the header)."""
    with open(path, "rb") as f:
        return f.read(2) == b"# "


def read_schedule(path: str | Path) -> pd.DataFrame:
    """Read a schedule written by :func:`write` back as its flat table."""
    path = Path(path)
    try:
        suffix = path.suffix.lower()
        if suffix == ".csv":
            return pd.read_csv(path, comment="#") if _legacy_csv(path) else pd.read_csv(path)
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".json":
            return pd.DataFrame(json.loads(path.read_text())["schedule"])
        if suffix == ".nc":
            with xr.open_dataset(path) as ds:
                return to_frame(ds.load())
    except FileNotFoundError:
        raise InputError("schedule file not found", source=str(path)) from None
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"cannot read schedule ({type(exc).__name__}: {exc})", source=str(path)) from None
    raise InputError(f"unsupported schedule format {path.suffix!r}", source=str(path))
