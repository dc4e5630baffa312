"""AI workloads as they run: hourly inference demand, GPU power capping and deferrable batch jobs.

This module only builds validated data; the optimisation model consumes it (formulations in
``docs/ai-workloads.md``). Three parts:

**Demand profiles.** ``hour_of_week_shape(name)`` gives 168 values, index ``day_of_week * 24 + hour`` in UTC
(Monday = 0), mean 1 (to float rounding). A shape is the product of a weekday hour-of-day shape and a day-of-week level,
because each real trace is too short to give every hour of the week its own value:

- ``"azure-llm-2024"``: Azure's LLM conversation service, 6 days (Sun 2024-05-12 .. Fri 05-17), UTC. The
  hour-of-day shape is the mean over the five weekdays of each day's requests divided by that day's mean; the
  level of each day is its mean requests. Saturday is missing and takes Sunday's level (the only weekend day).
- ``"burstgpt"``: BurstGPT's conversation log, 61 days on a local clock (UTC+8) with an inferred weekday. The
  hour-of-day shape is the mean over weekdays of each day's normalised profile; a day's level is its total over
  the centred 7-day mean of totals (the trace drifts down over its last two weeks), and the level of a weekday
  is the median over the trace of those ratios. The local shape is then turned to UTC (local hour-of-week
  ``k + 8`` is UTC hour-of-week ``k``).
- ``"flat"``: all ones.

``demand_fraction(times, profile, mean_utilization)`` gives, for each interval of a tz-aware hourly or 15-minute
index, the fraction of a cluster's spot (uncommitted) GPUs that customers want: ``mean_utilization x shape`` at
the interval's UTC hour of week, or the values of a user series (``read_demand_file``). It may exceed 1 at
peaks: what is served is capped by the GPUs powered, in the model.

**Power capping.** ``PowerCapCurve`` is throughput (fraction of full) as a concave, non-decreasing
piecewise-linear function of GPU power (fraction of the GPU's full draw), from a minimum power fraction up to
(1, 1). ``fit_from_zeus(gpu)`` fits one from the Zeus NSDI'23 measurements (training workloads at each power
limit): for every configuration (workload, batch size, optimizer) the measured relative throughput is
interpolated against its measured power relative to its power at the highest cap; at each power fraction
(0.05 steps) the median over the configurations that reach it is taken, where at least 4 of the 6 workloads do.
The curve starts at the most energy-efficient median point (highest throughput per power): below it, running
fewer GPUs at that point does more per MW, and the medians turn convex there. It is made non-decreasing and
then concave by lowering points only (never above the medians; the high-power end is kept as measured).
``SHIPPED_CURVES`` holds V100 and A40 fits and ``h100-default``, the pointwise minimum of the two, which is
**not measured on H100s** (no public A100/H100 power-cap sweep was found).

**Deferrable jobs.** ``Job`` is a batch job (training or batch inference) needing ``gpu_hours`` on up to ``gpus``
GPUs between ``release`` and ``deadline``; ``read_jobs`` / ``jobs_from_records`` validate a jobs CSV or a
site-file table, naming file, row, field and value in every error. A job whose GPU-hours cannot fit its window
is accepted and flagged (``Job.can_finish_on_time``). ``JobProgress`` and ``remaining_jobs`` carry progress
from one day to the next; ``job_intervals`` says which intervals a job may use and which count as on time;
``run_on_arrival`` is the no-flexibility baseline.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from optimizer.data import _parse_timestamps, resource_dir
from optimizer.errors import InputError

HOURS_PER_WEEK = 168

# ---------------------------------------------------------------------------------------------------------
# Demand profiles

AZURE_FILE = "ai_demand_azure2024_conv_hourly.csv"
BURSTGPT_FILE = "ai_demand_burstgpt_hourly.csv"
#: BurstGPT's clock is local time, taken as UTC+8 (the trace's authors are in China; its quietest hours,
#: 05-07 on that clock, are the small hours there).
BURSTGPT_UTC_OFFSET_HOURS = 8
PROFILE_NAMES = ("azure-llm-2024", "burstgpt", "flat")
#: Largest demand fraction a user file or series may hold: 5x the spot GPUs is a unit mistake (a percentage),
#: not a demand.
DEMAND_FRACTION_MAX = 5.0


@dataclass(frozen=True)
class ShapeParts:
    """How a shape is built: ``hour_of_day`` (24, mean 1) x ``day_level`` (7, Monday first, mean 1), on the
    trace's own clock, which is ``utc_offset_hours`` ahead of UTC."""

    hour_of_day: np.ndarray
    day_level: np.ndarray
    utc_offset_hours: int

    def __post_init__(self) -> None:
        for arr in (self.hour_of_day, self.day_level):
            arr.flags.writeable = False                    # shared by the cache: read-only


def shape_parts(name: str) -> ShapeParts:
    """The weekday hour-of-day shape and the day-of-week levels behind ``hour_of_week_shape(name)``."""
    if name == "azure-llm-2024":
        return _azure_parts()
    if name == "burstgpt":
        return _burstgpt_parts()
    if name == "flat":
        return ShapeParts(np.ones(24), np.ones(7), 0)
    raise InputError(f"unknown demand profile {name!r}; shipped: {', '.join(PROFILE_NAMES)}", field="profile")


def hour_of_week_shape(name: str) -> np.ndarray:
    """168 demand multipliers, index ``day_of_week * 24 + hour`` in UTC (Monday = 0), mean 1 (to rounding)."""
    return _shape(name).copy()


@functools.cache
def _shape(name: str) -> np.ndarray:
    parts = shape_parts(name)
    local = np.outer(parts.day_level, parts.hour_of_day).ravel()
    utc = np.roll(local, -parts.utc_offset_hours)          # utc[k] = local[k + offset]
    utc = utc / utc.mean()
    utc.flags.writeable = False
    return utc


def _normalised(x: np.ndarray) -> np.ndarray:
    return x / x.mean()


@functools.cache
def _azure_parts() -> ShapeParts:
    df = pd.read_csv(resource_dir("data") / AZURE_FILE, dtype={"timestamp_utc": str})
    ts = pd.DatetimeIndex(pd.to_datetime(df["timestamp_utc"], utc=True, format="ISO8601"))
    days = ts.normalize()
    if len(ts) % 24 or not (ts == pd.date_range(ts[0], periods=len(ts), freq="1h")).all():
        raise RuntimeError(f"{AZURE_FILE}: expected whole UTC days of consecutive hours")
    per_day = df["requests"].to_numpy(dtype=float).reshape(-1, 24)
    weekday = days[::24].day_of_week.to_numpy()
    profiles = per_day / per_day.mean(axis=1, keepdims=True)
    hour_of_day = _normalised(profiles[weekday < 5].mean(axis=0))
    level = np.full(7, np.nan)
    level[weekday] = per_day.mean(axis=1)
    level[5] = level[6]                                    # no Saturday in the trace: Sunday's level
    if np.isnan(level).any():
        raise RuntimeError(f"{AZURE_FILE}: a weekday is missing")
    return ShapeParts(hour_of_day, _normalised(level), 0)


@functools.cache
def _burstgpt_parts() -> ShapeParts:
    df = pd.read_csv(resource_dir("data") / BURSTGPT_FILE)
    if len(df) % 24 or not (df["trace_hour"].to_numpy() == np.arange(len(df))).all():
        raise RuntimeError(f"{BURSTGPT_FILE}: expected whole days of consecutive trace hours")
    per_day = df["requests_conversation"].to_numpy(dtype=float).reshape(-1, 24)
    weekday = df["day_of_week_inferred"].to_numpy()[::24]
    profiles = per_day / per_day.mean(axis=1, keepdims=True)
    hour_of_day = _normalised(profiles[weekday < 5].mean(axis=0))
    totals = per_day.sum(axis=1)
    ratio = totals / pd.Series(totals).rolling(7, center=True).mean().to_numpy()
    level = np.array([np.nanmedian(ratio[weekday == d]) for d in range(7)])
    return ShapeParts(hour_of_day, _normalised(level), BURSTGPT_UTC_OFFSET_HOURS)


def _step_hours(times: pd.DatetimeIndex, what: str) -> float:
    """Uniform spacing of ``times`` in hours, 1 or 0.25 (1 for fewer than two values)."""
    if len(times) < 2:
        return 1.0
    steps = np.unique(np.diff(times.as_unit("ns").asi8)) / 3.6e12
    if len(steps) != 1 or steps[0] not in (1.0, 0.25):
        raise InputError(f"{what} must be evenly spaced, hourly or 15-minute; found steps of "
                         f"{sorted(float(s) * 60 for s in steps)} minutes", field="times")
    return float(steps[0])


def _utc_index(times: Any) -> pd.DatetimeIndex:
    if not isinstance(times, pd.DatetimeIndex):
        raise InputError(f"times must be a pandas DatetimeIndex, got {type(times).__name__}", field="times")
    if times.tz is None:
        raise InputError("times have no time zone (expected a tz-aware index, e.g. UTC)", field="times")
    return times.tz_convert("UTC")


def demand_fraction(times: pd.DatetimeIndex, profile: str | pd.Series | Sequence[float] | np.ndarray,
                    mean_utilization: float | None = None) -> np.ndarray:
    """Fraction of a cluster's spot GPUs that customers want in each interval of ``times`` (may exceed 1).

    ``times`` is a tz-aware hourly or 15-minute index of interval starts (any time zone; DST days give their 23,
    25, 92 or 100 intervals). ``profile`` is

    - a shipped shape name (``PROFILE_NAMES``) or 168 hour-of-week values of your own (UTC, Monday 00:00 first;
      rescaled to mean 1): the result is ``mean_utilization x shape[UTC day_of_week * 24 + hour]``, so a
      15-minute interval takes its hour's value and the mean over a whole UTC week is ``mean_utilization``;
    - a demand series (``read_demand_file``, or a float Series with a tz-aware index, hourly or 15-minute):
      its values as given; a 15-minute interval takes the value of the hour holding it, an hour the mean of
      its four quarters. Every interval must be covered. ``mean_utilization`` must then be left out.
    """
    utc = _utc_index(times)
    step = _step_hours(utc, "times")
    if isinstance(profile, pd.Series):
        if mean_utilization is not None:
            raise InputError("a demand series already holds demand fractions; give mean_utilization only with a "
                             "shape", field="mean_utilization")
        return _series_fraction(utc, step, _checked_series(profile, str(profile.attrs.get("source", "<series>"))))
    mu = _mean_utilization(mean_utilization)
    shape = _shape(profile) if isinstance(profile, str) else _user_shape(profile)
    # hour of the UTC week (Monday 00:00 = 0) from the hours since the epoch, a Thursday (3 x 24 = 72): the same
    # as day_of_week * 24 + hour, without pandas' calendar fields (asked at every re-plan)
    hours = utc.as_unit("ns").asi8 // 3_600_000_000_000
    return mu * shape[(hours + 72) % 168]


def _mean_utilization(value: float | None) -> float:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) \
            or not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise InputError(f"expected a number in [0, 1] (mean share of spot GPUs wanted), got {value!r}",
                         field="mean_utilization")
    return float(value)


def _user_shape(values: Sequence[float] | np.ndarray) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"expected a shape name or {HOURS_PER_WEEK} numbers, got {type(values).__name__}",
                         field="profile") from None
    if arr.shape != (HOURS_PER_WEEK,):
        raise InputError(f"a user shape needs {HOURS_PER_WEEK} hour-of-week values, got shape {arr.shape}",
                         field="profile")
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any() or arr.sum() <= 0:
        i = int(np.flatnonzero(bad)[0]) if bad.any() else 0
        raise InputError(f"hour {i}: value {arr[i]!r}: shape values must be finite, >= 0 and not all 0",
                         field="profile")
    return arr / arr.mean()


def _checked_series(s: pd.Series, src: str) -> pd.Series:
    if not isinstance(s.index, pd.DatetimeIndex) or s.index.tz is None:
        raise InputError("a demand series needs a tz-aware DatetimeIndex", source=src, field="timestamp")
    values = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(values) | (values < 0) | (values > DEMAND_FRACTION_MAX)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"row {i + 1}: demand fraction {s.iloc[i]!r} at {s.index[i].isoformat()} is not a number "
                         f"in [0, {DEMAND_FRACTION_MAX:g}] (a fraction of the spot GPUs, not a percentage)",
                         source=src, field="demand_fraction")
    idx = s.index.tz_convert("UTC")
    dup = idx.duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise InputError(f"row {i + 1}: timestamp {idx[i].isoformat()} appears twice", source=src, field="timestamp")
    out = pd.Series(values, index=idx, name="demand_fraction").sort_index()
    out.index.name = "timestamp"
    _series_step(out.index, src)
    out.attrs["source"] = src
    return out


def _series_step(idx: pd.DatetimeIndex, src: str) -> pd.Timedelta:
    """Resolution of a demand series: its smallest step, 15 minutes or 1 hour, every timestamp on it."""
    step = pd.Timedelta(hours=1) if len(idx) < 2 else pd.Timedelta(np.diff(idx.as_unit("ns").asi8).min(), "ns")
    if step not in (pd.Timedelta(minutes=15), pd.Timedelta(hours=1)):
        raise InputError(f"demand series must be hourly or 15-minute; its smallest step is {step}", source=src,
                         field="timestamp")
    off = idx != idx.floor(step)
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise InputError(f"timestamp {idx[i].isoformat()} is not on the series' {step} grid", source=src,
                         field="timestamp")
    return step


def _series_fraction(utc: pd.DatetimeIndex, step_hours: float, s: pd.Series) -> np.ndarray:
    src = s.attrs["source"]
    res = _series_step(s.index, src)
    need = pd.Timedelta(hours=step_hours)
    if need == res:
        keys, parts = utc, 1
    elif need < res:                                   # 15-minute intervals from an hourly series
        keys, parts = utc.floor(res), 1
    else:                                              # hours from a 15-minute series: mean of the quarters
        starts = np.repeat(utc.as_unit("ns").asi8, 4) + np.tile(np.arange(4) * res.value, len(utc))
        keys = pd.DatetimeIndex(pd.to_datetime(starts, unit="ns", utc=True))
        parts = 4
    values = s.reindex(keys).to_numpy()
    missing = np.isnan(values)
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise InputError(f"the demand series has no value for {keys[i].isoformat()} (it covers "
                         f"{s.index[0].isoformat()} .. {s.index[-1].isoformat()})", source=src,
                         field="demand_fraction")
    return values.reshape(-1, parts).mean(axis=1)


def read_demand_file(path: str | Path) -> pd.Series:
    """Read a user demand file: CSV or Parquet with ``timestamp`` (ISO 8601 with UTC offset) and
    ``demand_fraction`` (share of the cluster's spot GPUs wanted, >= 0; may exceed 1 at peaks).

    Returns a float Series named ``demand_fraction`` with a sorted UTC index (hourly or 15-minute, gaps allowed)
    and ``attrs["source"]``. Errors name the file, the row (1-based data row) and the value.
    """
    from optimizer.data import read_user_table

    src = str(path)
    df = read_user_table(path, "demand", ("timestamp", "demand_fraction"))
    ts = _parse_timestamps(df["timestamp"], src)
    return _checked_series(pd.Series(df["demand_fraction"].to_numpy(), index=ts), src)


# ---------------------------------------------------------------------------------------------------------
# GPU power capping

ZEUS_FILE = "ai_gpu_power_cap_zeus.csv"
#: Power-fraction grid of the fits (measured basis) and the coverage a grid point needs.
ZEUS_GRID_STEP = 0.05
ZEUS_MIN_WORKLOADS = 4
_SLOPE_TOL = 1e-9


def _validate_points(raw: Any, source: str | None, field_name: str) -> tuple[tuple[float, float], ...]:
    """Check a curve's points; every failure names the field, the point index and the value."""
    if isinstance(raw, (str, bytes)) or not isinstance(raw, (Sequence, np.ndarray)) or len(raw) == 0:
        raise InputError(f"expected a list of [power_fraction, throughput_fraction] pairs, got {raw!r}",
                         source=source, field=field_name)
    points: list[tuple[float, float]] = []
    for i, p in enumerate(raw):
        where = f"{field_name}[{i}]"
        if isinstance(p, (str, bytes)) or not isinstance(p, (Sequence, np.ndarray)) or len(p) != 2:
            raise InputError(f"expected a [power_fraction, throughput_fraction] pair, got {p!r}", source=source,
                             field=where)
        for v in p:
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(v):
                raise InputError(f"expected finite numbers, got {p!r}", source=source, field=where)
        x, y = float(p[0]), float(p[1])
        if not (0.0 < x <= 1.0 and 0.0 < y <= 1.0):
            raise InputError(f"power and throughput fractions must be in (0, 1], got {p!r}", source=source,
                             field=where)
        if points and x <= points[-1][0]:
            raise InputError(f"power fractions must increase, got {x!r} after {points[-1][0]!r}", source=source,
                             field=where)
        if points and y < points[-1][1]:
            raise InputError(f"throughput must not fall as power rises, got {y!r} after {points[-1][1]!r}",
                             source=source, field=where)
        points.append((x, y))
    if points[-1] != (1.0, 1.0):
        raise InputError(f"the last point must be [1.0, 1.0] (full power, full throughput), got "
                         f"{list(points[-1])!r}", source=source, field=f"{field_name}[{len(points) - 1}]")
    slopes = [(y1 - y0) / (x1 - x0) for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False)]
    for k in range(1, len(slopes)):
        if slopes[k] > slopes[k - 1] + _SLOPE_TOL:
            raise InputError(f"the curve must be concave: slope {slopes[k]:.4g} after point {list(points[k])!r} is "
                             f"steeper than {slopes[k - 1]:.4g} before it", source=source,
                             field=f"{field_name}[{k}]")
    return tuple(points)


@dataclass(frozen=True)
class PowerCapCurve:
    """Throughput of a powered GPU (fraction of full) as a function of its power (fraction of its full draw).

    ``points`` are (power_fraction, throughput_fraction) breakpoints, power rising from the minimum a GPU can be
    capped to up to (1.0, 1.0); between them the curve is linear. It is concave and non-decreasing. A single
    point ``((1.0, 1.0),)`` is a GPU that cannot be capped.
    """

    points: tuple[tuple[float, float], ...]
    name: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "points", _validate_points(self.points, None,
                                                            f"power curve {self.name!r}" if self.name else "points"))

    @property
    def min_power_fraction(self) -> float:
        return self.points[0][0]

    @property
    def min_throughput_fraction(self) -> float:
        return self.points[0][1]

    def throughput(self, power_fraction: float | np.ndarray) -> float | np.ndarray:
        """Throughput fraction at a power fraction in [``min_power_fraction``, 1]."""
        p = np.asarray(power_fraction, dtype=float)
        if np.any(~np.isfinite(p)) or np.any(p < self.min_power_fraction - 1e-12) or np.any(p > 1 + 1e-12):
            raise ValueError(f"power fraction {power_fraction!r} outside [{self.min_power_fraction:g}, 1] of "
                             f"{self.name or 'the curve'}")
        xs, ys = zip(*self.points, strict=True)
        out = np.interp(p, xs, ys)
        return float(out) if out.ndim == 0 else out

    def min_power_for(self, throughput_fraction: float | np.ndarray) -> float | np.ndarray:
        """Least power fraction giving at least this throughput, in [``min_throughput_fraction``, 1]."""
        t = np.asarray(throughput_fraction, dtype=float)
        if np.any(~np.isfinite(t)) or np.any(t < self.min_throughput_fraction - 1e-12) or np.any(t > 1 + 1e-12):
            raise ValueError(f"throughput fraction {throughput_fraction!r} outside "
                             f"[{self.min_throughput_fraction:g}, 1] of {self.name or 'the curve'}")
        xs, ys = (np.array(v) for v in zip(*self.points, strict=True))
        # on a flat segment the least power is its left end: interpolate on the strictly rising part only
        keep = np.concatenate(([True], np.diff(ys) > 0))
        out = np.interp(t, ys[keep], xs[keep])
        return float(out) if out.ndim == 0 else out

    def cuts(self) -> tuple[tuple[float, float], ...]:
        """(slope, intercept) of each segment: ``throughput <= slope * power + intercept`` for every cut is the
        curve (its hypograph), and ``T <= slope * P + intercept * N`` its perspective for N GPUs on at P
        GPU-full-power units (with ``min_power_fraction * N <= P <= N``)."""
        if len(self.points) == 1:
            return ((0.0, 1.0),)
        out = []
        for (x0, y0), (x1, y1) in zip(self.points, self.points[1:], strict=False):
            slope = (y1 - y0) / (x1 - x0)
            out.append((slope, y1 - slope * x1))
        return tuple(out)


def curve_from_points(raw: Any, source: str | None, field: str) -> PowerCapCurve:
    """A site-file value: a shipped curve name (``SHIPPED_CURVES``) or a list of [power, throughput] pairs."""
    if isinstance(raw, str):
        if raw not in SHIPPED_CURVES:
            raise InputError(f"unknown power-cap curve {raw!r}; shipped: {', '.join(SHIPPED_CURVES)}", source=source,
                             field=field)
        return SHIPPED_CURVES[raw]
    points = _validate_points(raw, source, field)
    return PowerCapCurve(points, name=field, description=f"given in {source or 'the site'}")


@functools.cache
def _zeus() -> pd.DataFrame:
    return pd.read_csv(resource_dir("data") / ZEUS_FILE)


def zeus_gpus() -> tuple[str, ...]:
    return tuple(sorted(_zeus()["gpu"].unique()))


def _zeus_gpu(gpu: str) -> pd.DataFrame:
    z = _zeus()
    rows = z[z["gpu"].str.lower() == str(gpu).lower()]
    if rows.empty:
        raise InputError(f"no Zeus measurements for GPU {gpu!r}; measured: {', '.join(zeus_gpus())}", field="gpu")
    return rows


def zeus_medians(gpu: str, basis: str = "measured") -> pd.DataFrame:
    """Median relative throughput across Zeus configurations at each power fraction of one GPU.

    ``basis="measured"``: power fraction = measured average power / the configuration's power at its highest cap,
    on a 0.05 grid; a configuration counts at the grid points within its measured range; points reached by fewer
    than ``ZEUS_MIN_WORKLOADS`` workloads are dropped. ``basis="cap"``: power fraction = cap / highest cap, one
    point per cap, every configuration. Columns: ``power_fraction``, ``throughput_fraction``, ``configurations``,
    ``workloads``.
    """
    g = _zeus_gpu(gpu)
    key = ["workload", "batch_size", "optimizer"]
    if basis == "cap":
        frac = g["power_cap_w"] / g["max_cap_in_sweep_w"]
        grouped = g.assign(power_fraction=frac).groupby("power_fraction")
        return pd.DataFrame({"throughput_fraction": grouped["rel_throughput_vs_max_cap"].median(),
                             "configurations": grouped.size(),
                             "workloads": grouped["workload"].nunique()}).reset_index()
    if basis != "measured":
        raise InputError(f"unknown basis {basis!r} (expected 'measured' or 'cap')", field="basis")
    grid = np.round(np.arange(ZEUS_GRID_STEP, 1.0 + 1e-9, ZEUS_GRID_STEP), 10)
    values, workloads = [], []
    for (workload, *_), c in g.groupby(key):
        full = c.loc[c["power_cap_w"] == c["max_cap_in_sweep_w"], "avg_power_w"]
        if len(full) != 1:
            raise RuntimeError(f"{ZEUS_FILE}: {gpu} {workload}: expected one row at the highest cap")
        pf = (c["avg_power_w"] / float(full.iloc[0])).to_numpy()
        order = np.argsort(pf, kind="stable")
        pf, rel = pf[order], c["rel_throughput_vs_max_cap"].to_numpy()[order]
        inside = (grid >= pf[0] - 1e-12) & (grid <= pf[-1] + 1e-12)
        values.append(np.where(inside, np.interp(grid, pf, rel), np.nan))
        workloads.append(np.where(inside, workload, None))
    v, w = np.array(values), np.array(workloads, dtype=object)
    n_work = np.array([len({x for x in w[:, j] if x is not None}) for j in range(len(grid))])
    ok = n_work >= ZEUS_MIN_WORKLOADS
    with np.errstate(all="ignore"):
        med = np.array([np.median(v[~np.isnan(v[:, j]), j]) if ok[j] else np.nan for j in range(len(grid))])
    return pd.DataFrame({"power_fraction": grid[ok], "throughput_fraction": med[ok],
                         "configurations": (~np.isnan(v[:, ok])).sum(axis=0), "workloads": n_work[ok]})


def concave_minorant(xs: Sequence[float] | np.ndarray, ys: Sequence[float] | np.ndarray) -> list[tuple[float, float]]:
    """Points made non-decreasing and concave by lowering only, keeping the last (full-power) point.

    First each point is lowered to at most the point on its right (non-decreasing); then, from the right, a
    point lying above the leftward extension of the segment to its right (a convex kink) is lowered onto that
    extension. Collinear interior points are dropped.
    """
    x = np.asarray(xs, dtype=float)
    y = np.minimum.accumulate(np.asarray(ys, dtype=float)[::-1])[::-1]
    for i in range(len(x) - 2, 0, -1):
        right = (y[i + 1] - y[i]) / (x[i + 1] - x[i])
        y[i - 1] = min(y[i - 1], y[i] - right * (x[i] - x[i - 1]))
    keep = [0]
    for i in range(1, len(x) - 1):
        before = (y[i] - y[keep[-1]]) / (x[i] - x[keep[-1]])
        after = (y[i + 1] - y[i]) / (x[i + 1] - x[i])
        if before - after > _SLOPE_TOL:
            keep.append(i)
    keep.append(len(x) - 1)
    return [(float(x[i]), float(y[i])) for i in keep]


def fit_from_zeus(gpu: str, basis: str = "measured") -> PowerCapCurve:
    """Fit a power-cap curve to the Zeus measurements of one GPU (``V100``, ``A40``, ``P100``, ``RTX6000``).

    The medians of ``zeus_medians(gpu, basis)`` from the most energy-efficient one (highest throughput per
    power) up to full power, made non-decreasing and concave by ``concave_minorant`` (never above the medians).
    """
    med = zeus_medians(gpu, basis)
    x = med["power_fraction"].to_numpy(dtype=float, copy=True)
    y = med["throughput_fraction"].to_numpy(dtype=float, copy=True)
    if not math.isclose(x[-1], 1.0) or not math.isclose(y[-1], 1.0):
        raise RuntimeError(f"{gpu}: the median at full power is {y[-1]} at {x[-1]}, not (1, 1)")
    x[-1], y[-1] = 1.0, 1.0
    start = int(np.argmax(y / x))
    points = concave_minorant(x[start:], y[start:])
    description = _ZEUS_FIT.format(gpu=gpu) if basis == "measured" else \
        f"Zeus NSDI'23 {gpu} training sweeps: median throughput per cap fraction, concave minorant"
    return PowerCapCurve(tuple(points), name=str(gpu).lower(), description=description)


def lower_envelope(curves: Iterable[PowerCapCurve], name: str, description: str = "") -> PowerCapCurve:
    """The pointwise minimum of concave curves on the power range they share (concave again)."""
    curves = list(curves)
    lo = max(c.min_power_fraction for c in curves)
    xs = {lo, 1.0} | {x for c in curves for x, _ in c.points if x > lo}
    # segment crossings: where two cuts are equal
    for a in curves:
        for b in curves:
            for sa, ia in a.cuts():
                for sb, ib in b.cuts():
                    if abs(sa - sb) > 1e-12:
                        x = (ib - ia) / (sa - sb)
                        if lo < x < 1.0:
                            xs.add(float(x))
    grid = np.unique(np.round(np.array(sorted(xs)), 12))
    ys = np.min([np.asarray(c.throughput(grid)) for c in curves], axis=0)
    return PowerCapCurve(tuple(concave_minorant(grid, ys)), name=name, description=description)


_ZEUS_FIT = ("Zeus NSDI'23 {gpu} training sweeps: median throughput per measured power fraction, from the most "
             "energy-efficient point, concave minorant")
#: Named curves a site may refer to. Values are ``fit_from_zeus`` results rounded to 4 decimals (a test checks
#: they match the fit). ``h100-default`` is ``lower_envelope`` of the V100 and A40 fits: an assumption, not a
#: measurement on H100s.
SHIPPED_CURVES: Mapping[str, PowerCapCurve] = MappingProxyType({
    "v100": PowerCapCurve(((0.55, 0.759), (0.6, 0.8244), (0.65, 0.8701), (0.7, 0.9004), (0.75, 0.9237),
                           (0.8, 0.9439), (0.85, 0.9608), (0.9, 0.9744), (0.95, 0.9876), (1.0, 1.0)),
                          name="v100", description=_ZEUS_FIT.format(gpu="V100")),
    "a40": PowerCapCurve(((0.7, 0.8754), (0.75, 0.9212), (0.8, 0.9509), (0.85, 0.9716), (0.95, 0.9937),
                          (1.0, 1.0)),
                         name="a40", description=_ZEUS_FIT.format(gpu="A40")),
    "h100-default": PowerCapCurve(((0.7, 0.8754), (0.75, 0.9212), (0.7628, 0.9289), (0.8, 0.9439), (0.85, 0.9608),
                                   (0.9, 0.9744), (0.95, 0.9876), (1.0, 1.0)),
                                  name="h100-default",
                                  description="pointwise minimum of the V100 and A40 curves: an assumed default, "
                                              "NOT measured on H100s (no public A100/H100 sweep exists)"),
})
DEFAULT_CURVE = "h100-default"
#: Share of a GPU's all-in site draw (kw_per_gpu) that is the GPU board itself and falls with its power cap:
#: DGX H100, 8 x 700 W of 10.2 kW (../shared/domain.md). CPUs, memory, network and fans are taken as constant.
DEFAULT_GPU_POWER_SHARE = 0.55


def site_power_fraction(gpu_power_fraction: float | np.ndarray,
                        gpu_power_share: float = DEFAULT_GPU_POWER_SHARE) -> float | np.ndarray:
    """Site power per powered GPU (fraction of ``kw_per_gpu x pue``) when its GPU runs at ``gpu_power_fraction``:
    ``1 - share x (1 - gpu_power_fraction)``."""
    return 1.0 - gpu_power_share * (1.0 - np.asarray(gpu_power_fraction, dtype=float)) \
        if isinstance(gpu_power_fraction, np.ndarray) else 1.0 - gpu_power_share * (1.0 - float(gpu_power_fraction))


# ---------------------------------------------------------------------------------------------------------
# Deferrable jobs

JOB_COLUMNS = ("name", "gpus", "gpu_hours", "release", "deadline", "min_run_hours", "value_usd_per_gpu_hour",
               "late_penalty_usd_per_gpu_hour")
JOB_OPTIONAL_COLUMNS = ("cluster",)
_OFFSET = re.compile(r"(?:Z|[+-]\d\d:?\d\d)$")


@dataclass(frozen=True)
class Job:
    """A deferrable batch job: ``gpu_hours`` of full-throughput GPU time on at most ``gpus`` GPUs at once, from
    ``release`` to ``deadline`` (tz-aware UTC). Once started it runs at least ``min_run_hours`` (the time between
    checkpoints). Each GPU-hour delivered earns ``value_usd_per_gpu_hour``; each GPU-hour still missing at the
    deadline costs ``late_penalty_usd_per_gpu_hour``. ``cluster`` None: any cluster of the site."""

    name: str
    cluster: str | None
    gpus: int
    gpu_hours: float
    release: pd.Timestamp
    deadline: pd.Timestamp
    min_run_hours: float = 0.0
    value_usd_per_gpu_hour: float = 0.0
    late_penalty_usd_per_gpu_hour: float = 0.0

    def __post_init__(self) -> None:
        where = f"job {self.name!r}"
        for key in ("release", "deadline"):
            ts = getattr(self, key)
            if not isinstance(ts, pd.Timestamp) or ts.tz is None:
                raise InputError(f"{where}: expected a tz-aware pandas Timestamp, got {ts!r}", field=key)
            object.__setattr__(self, key, ts.tz_convert("UTC"))
        if self.deadline <= self.release:
            raise InputError(f"{where}: deadline {self.deadline.isoformat()} is not after release "
                             f"{self.release.isoformat()}", field="deadline")
        if isinstance(self.gpus, bool) or not isinstance(self.gpus, (int, np.integer)) or self.gpus < 1:
            raise InputError(f"{where}: expected a whole number >= 1, got {self.gpus!r}", field="gpus")
        for key, positive in (("gpu_hours", True), ("min_run_hours", False), ("value_usd_per_gpu_hour", False),
                              ("late_penalty_usd_per_gpu_hour", False)):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) or not math.isfinite(v) \
                    or v < 0 or (positive and v == 0):
                raise InputError(f"{where}: expected a finite number {'> 0' if positive else '>= 0'}, got {v!r}",
                                 field=key)

    @property
    def window_hours(self) -> float:
        return (self.deadline - self.release) / pd.Timedelta(hours=1)

    @property
    def max_gpu_hours_on_time(self) -> float:
        """Most GPU-hours the job can get by its deadline: all its GPUs for its whole window."""
        return self.gpus * self.window_hours

    @property
    def can_finish_on_time(self) -> bool:
        """False when ``gpu_hours`` exceeds ``gpus x (deadline - release)``: the job is late whatever the plan."""
        return self.gpu_hours <= self.max_gpu_hours_on_time * (1 + 1e-12)

    @property
    def unavoidable_late_gpu_hours(self) -> float:
        return max(0.0, self.gpu_hours - self.max_gpu_hours_on_time)


@dataclass(frozen=True)
class JobProgress:
    """GPU-hours of a job done so far (carried from one planning day to the next), and for how long its current
    run has lasted (0: not running; a rigid job must finish its minimum run)."""

    name: str
    gpu_hours_done: float
    running_hours: float = 0.0

    def __post_init__(self) -> None:
        for key in ("gpu_hours_done", "running_hours"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) or not math.isfinite(v) or v < 0:
                raise InputError(f"job {self.name!r}: expected a finite number >= 0, got {v!r}", field=key)


def remaining_jobs(jobs: Iterable[Job], progress: Iterable[JobProgress]) -> tuple[Job, ...]:
    """The jobs still to do: each one's ``gpu_hours`` less its progress; finished jobs are left out."""
    jobs = tuple(jobs)
    by_name = {j.name: j for j in jobs}
    done: dict[str, float] = {}
    for p in progress:
        if p.name not in by_name:
            raise InputError(f"progress for unknown job {p.name!r}", field="name")
        if p.name in done:
            raise InputError(f"progress for job {p.name!r} given twice", field="name")
        if p.gpu_hours_done > by_name[p.name].gpu_hours * (1 + 1e-9) + 1e-9:
            raise InputError(f"job {p.name!r}: {p.gpu_hours_done:g} GPU-hours done exceed the "
                             f"{by_name[p.name].gpu_hours:g} it needs", field="gpu_hours_done")
        done[p.name] = p.gpu_hours_done
    out = []
    for j in jobs:
        left = j.gpu_hours - done.get(j.name, 0.0)
        if left > 1e-9:
            out.append(replace(j, gpu_hours=left))
    return tuple(out)


def job_intervals(job: Job, times: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    """Which intervals of a tz-aware hourly or 15-minute index a job may use: ``available`` when the interval
    starts at or after its release, ``on_time`` when it also ends by its deadline (whole intervals only, so a
    release or deadline inside an interval is rounded inwards)."""
    utc = _utc_index(times)
    step = pd.Timedelta(hours=_step_hours(utc, "times"))
    available = np.asarray(utc >= job.release)
    return available, available & np.asarray(utc + step <= job.deadline)


def run_on_arrival(jobs: Iterable[Job], times: pd.DatetimeIndex) -> pd.DataFrame:
    """The no-flexibility baseline: every job runs on all its GPUs from its first available interval until its
    GPU-hours are done (the last interval partly), whatever the price. Full-throughput GPUs per interval, one
    column per job, indexed by ``times`` in UTC."""
    utc = _utc_index(times)
    dt_hours = _step_hours(utc, "times")
    out = {}
    for job in jobs:
        available, _ = job_intervals(job, utc)
        gpus = np.zeros(len(utc))
        left = job.gpu_hours
        for i in np.flatnonzero(available):
            if left <= 1e-9:
                break
            gpus[i] = min(job.gpus, left / dt_hours)
            left -= gpus[i] * dt_hours
        out[job.name] = gpus
    return pd.DataFrame(out, index=utc)


@dataclass(frozen=True)
class _Row:
    """Where a job came from, for messages: CSV (field is the column, label in the message) or a table."""

    source: str | None
    label: str            # "row 3 (line 5)" or "jobs[2]"
    table: bool = False
    values: dict = field(default_factory=dict)

    def fail(self, key: str, msg: str) -> InputError:
        if self.table:
            return InputError(msg, source=self.source, field=f"{self.label}.{key}")
        return InputError(f"{self.label}: {msg}", source=self.source, field=key)

    def value(self, key: str) -> Any:
        val = self.values.get(key)
        if val is None or (isinstance(val, str) and not val.strip()):
            raise self.fail(key, "missing (required)")
        return val.strip() if isinstance(val, str) else val

    def number(self, key: str, *, positive: bool = False) -> float:
        val = self.value(key)
        if isinstance(val, str):
            try:
                num = float(val)
            except ValueError:
                raise self.fail(key, f"expected a number, got {val!r}") from None
        elif isinstance(val, bool) or not isinstance(val, (int, float)):
            raise self.fail(key, f"expected a number, got {val!r}")
        else:
            num = float(val)
        if not math.isfinite(num):
            raise self.fail(key, f"expected a finite number, got {val!r}")
        if num < 0 or (positive and num == 0):
            raise self.fail(key, f"expected a number {'> 0' if positive else '>= 0'}, got {val!r}")
        return num

    def integer(self, key: str) -> int:
        val = self.value(key)
        if isinstance(val, str) and re.fullmatch(r"[+-]?\d+", val):
            num = int(val)
        elif isinstance(val, int) and not isinstance(val, bool):
            num = val
        else:
            raise self.fail(key, f"expected a whole number, got {val!r}")
        if num < 1:
            raise self.fail(key, f"expected a whole number >= 1, got {val!r}")
        return num

    def timestamp(self, key: str) -> pd.Timestamp:
        val = self.value(key)
        if isinstance(val, (dt.datetime, pd.Timestamp)):
            if val.tzinfo is None:
                raise self.fail(key, f"{val!s} has no UTC offset (expected e.g. 2023-07-25T05:00:00Z)")
            return pd.Timestamp(val).tz_convert("UTC")
        if not isinstance(val, str):
            raise self.fail(key, f"expected an ISO 8601 time with UTC offset, got {val!r}")
        if not _OFFSET.search(val):
            raise self.fail(key, f"{val!r} has no UTC offset (expected ISO 8601 with offset, e.g. "
                                 "2023-07-25T05:00:00Z)")
        try:
            return pd.Timestamp(val).tz_convert("UTC")
        except (ValueError, TypeError):
            raise self.fail(key, f"{val!r} is not ISO 8601") from None


def _clusters(cluster_names: Iterable[str] | Mapping[str, int]) -> dict[str, int | None]:
    if isinstance(cluster_names, Mapping):
        return {str(k): int(v) for k, v in cluster_names.items()}
    return dict.fromkeys(map(str, cluster_names))


def _job(row: _Row, clusters: dict[str, int | None]) -> Job:
    name = row.value("name")
    if not isinstance(name, str):
        raise row.fail("name", f"expected a non-empty string, got {name!r}")
    cluster = row.values.get("cluster")
    cluster = cluster.strip() or None if isinstance(cluster, str) else cluster
    if cluster is not None and (not isinstance(cluster, str) or cluster not in clusters):
        raise row.fail("cluster", f"unknown cluster {cluster!r}; the site's GPU clusters: "
                                  f"{', '.join(clusters) or '(none)'}")
    if not clusters:
        raise row.fail("cluster", "the site has no GPU cluster to run jobs on")
    gpus = row.integer("gpus")
    limit = clusters[cluster] if cluster else next(iter(clusters.values()))   # no cluster: the first one
    if limit is not None and gpus > limit:
        raise row.fail("gpus", f"{gpus} GPUs exceed the {limit} uncommitted GPUs of "
                               f"{'cluster ' + repr(cluster) if cluster else 'any cluster'}")
    release, deadline = row.timestamp("release"), row.timestamp("deadline")
    if deadline <= release:
        raise row.fail("deadline", f"deadline {deadline.isoformat()} is not after release {release.isoformat()}")
    return Job(name=name, cluster=cluster, gpus=gpus, gpu_hours=row.number("gpu_hours", positive=True),
               release=release, deadline=deadline, min_run_hours=row.number("min_run_hours"),
               value_usd_per_gpu_hour=row.number("value_usd_per_gpu_hour"),
               late_penalty_usd_per_gpu_hour=row.number("late_penalty_usd_per_gpu_hour"))


def _jobs(rows: Iterable[_Row], clusters: dict[str, int | None]) -> tuple[Job, ...]:
    jobs: list[Job] = []
    seen: dict[str, str] = {}
    for row in rows:
        job = _job(row, clusters)
        if job.name in seen:
            raise row.fail("name", f"job name {job.name!r} is used twice (first at {seen[job.name]})")
        seen[job.name] = row.label
        jobs.append(job)
    return tuple(jobs)


def jobs_from_records(records: Any, source: str | None, cluster_names: Iterable[str] | Mapping[str, int],
                      *, where: str = "jobs") -> tuple[Job, ...]:
    """Jobs from a site-file table (a list of dicts, TOML ``[[jobs]]``): keys as the CSV columns; times as
    TOML offset date-times or ISO 8601 strings with offset. Errors name ``where[i].key``.

    ``cluster_names``: the site's GPU clusters, or a mapping name -> GPUs jobs may use (then ``gpus`` is checked
    against it).
    """
    if not isinstance(records, list):
        raise InputError(f"expected an array of tables ([[{where}]]), got {records!r}", source=source, field=where)
    allowed = set(JOB_COLUMNS) | set(JOB_OPTIONAL_COLUMNS)
    rows = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise InputError(f"expected a table, got {rec!r}", source=source, field=f"{where}[{i}]")
        unknown = sorted(set(rec) - allowed)
        if unknown:
            raise InputError(f"unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(allowed))}",
                             source=source, field=f"{where}[{i}]")
        rows.append(_Row(source, f"{where}[{i}]", table=True, values=dict(rec)))
    return _jobs(rows, _clusters(cluster_names))


def read_jobs(path: str | Path, cluster_names: Iterable[str] | Mapping[str, int]) -> tuple[Job, ...]:
    """Read a jobs CSV: columns ``JOB_COLUMNS`` (and optionally ``cluster``), one job per row; lines starting
    with ``#`` are comments. Errors name the file, the row (1-based data row and file line), field and value."""
    path = Path(path)
    src = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("jobs file not found", source=src) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read jobs file ({type(exc).__name__}: {exc})", source=src) from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise InputError(f"empty jobs file (expected a header: {','.join(JOB_COLUMNS)})", source=src)
    reader = csv.reader(io.StringIO("\n".join(line for _, line in lines)))
    header = [h.strip() for h in next(reader)]
    missing = [c for c in JOB_COLUMNS if c not in header]
    unknown = [c for c in header if c not in JOB_COLUMNS + JOB_OPTIONAL_COLUMNS]
    if missing or unknown or len(set(header)) != len(header):
        raise InputError(f"columns must be {', '.join(JOB_COLUMNS)} (optional: cluster); missing: "
                         f"{', '.join(missing) or '-'}; unknown or repeated: "
                         f"{', '.join(unknown) or ('-' if len(set(header)) == len(header) else 'repeated')}",
                         source=src, field="header")
    rows = []
    for i, ((lineno, _), cells) in enumerate(zip(lines[1:], reader, strict=False), start=1):
        label = f"row {i} (line {lineno})"
        if len(cells) != len(header):
            raise InputError(f"{label}: expected {len(header)} fields, got {len(cells)}", source=src)
        rows.append(_Row(src, label, values=dict(zip(header, cells, strict=True))))
    return _jobs(rows, _clusters(cluster_names))


def with_jobs_file(site: Any, path: str | Path | None) -> Any:
    """``site`` with the jobs of a jobs CSV added to its own ``[[job]]`` tables (a name in both is bad input)."""
    if path is None:
        return site
    extra = read_jobs(path, {g.name: g.gpus - g.committed_gpus for g in site.gpu})
    clash = sorted({j.name for j in extra} & {j.name for j in site.jobs})
    if clash:
        raise InputError(f"job(s) {', '.join(map(repr, clash))} are also in the site file {site.source}",
                         source=str(path), field="name")
    return replace(site, jobs=site.jobs + extra)


def read_job_progress(path: str | Path, jobs: Iterable[Job]) -> dict[str, JobProgress]:
    """Each job's progress from a JSON object ``{job: gpu_hours_done}`` or ``{job: {"gpu_hours_done": h,
    "running_hours": r}}``; every name must be one of ``jobs``; errors name the file, the job and the value."""
    import json

    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read job progress JSON ({exc})", source=str(path)) from None
    if not isinstance(raw, dict):
        raise InputError("expected a JSON object {job: gpu_hours_done}", source=str(path))
    by_name = {j.name: j for j in jobs}
    out: dict[str, JobProgress] = {}
    for name, value in raw.items():
        if name not in by_name:
            raise InputError(f"unknown job {name!r}; the site's jobs: {', '.join(by_name) or '(none)'}",
                             source=str(path), field=name)
        entry = value if isinstance(value, dict) else {"gpu_hours_done": value}
        unknown = sorted(set(entry) - {"gpu_hours_done", "running_hours"})
        if unknown or "gpu_hours_done" not in entry:
            raise InputError(f"expected a number of GPU-hours or {{\"gpu_hours_done\", \"running_hours\"}}, got "
                             f"{value!r}", source=str(path), field=name)
        nums = {}
        for key in ("gpu_hours_done", "running_hours"):
            v = entry.get(key, 0.0)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise InputError(f"{key}: expected a finite number >= 0, got {v!r}", source=str(path), field=name)
            nums[key] = float(v)
        if nums["gpu_hours_done"] > by_name[name].gpu_hours * (1 + 1e-9):
            raise InputError(f"{nums['gpu_hours_done']:g} GPU-hours done exceed the {by_name[name].gpu_hours:g} "
                             "the job needs", source=str(path), field=name)
        out[name] = JobProgress(name, nums["gpu_hours_done"], nums["running_hours"])
    return out
