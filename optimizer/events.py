"""Emergency curtailment events (Texas SB 6: loads of 75 MW or more must be curtailable in emergencies).

An events file is CSV with one row per event: ``start`` and ``end`` (ISO 8601 with UTC offset; end exclusive) and
either ``max_load_mw`` (the most the site may draw) or ``shed_mw`` (MW to shed from the site's full connected
load: every fleet and cluster at capacity). Events are hard limits: a schedule that cannot honour one is
infeasible (exit 3), unless committed GPU load may fall short (``--allow-sla-breach``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from optimizer.errors import InputError
from optimizer.site import Site


@dataclass(frozen=True)
class Event:
    start: pd.Timestamp          # UTC
    end: pd.Timestamp            # UTC, exclusive
    max_load_mw: float


def full_load_mw(site: Site) -> float:
    """Every fleet and cluster at capacity (MW)."""
    return sum(f.capacity_mw for f in site.mining) + sum(g.gpus * g.mw_per_gpu for g in site.gpu)


def read_events(path: str | Path, site: Site) -> list[Event]:
    """Read and validate an events file; errors name the file, row, field and value."""
    src = str(path)
    try:
        df = pd.read_csv(path, dtype=str)
    except FileNotFoundError:
        raise InputError("events file not found", source=src) from None
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file
        raise InputError(f"cannot read events file ({type(exc).__name__}: {exc})", source=src) from None
    cols = set(df.columns)
    if not {"start", "end"} <= cols or not ({"max_load_mw", "shed_mw"} & cols):
        raise InputError(f"expected columns start, end and max_load_mw or shed_mw; found {', '.join(df.columns)}",
                         source=src)
    events = []
    for i, row in enumerate(df.to_dict(orient="records"), start=1):
        try:
            start, end = (pd.Timestamp(row[k]) for k in ("start", "end"))
        except (ValueError, TypeError):
            raise InputError(f"row {i}: start/end {row['start']!r}/{row['end']!r} are not ISO 8601 times",
                             source=src, field="start") from None
        if start.tz is None or end.tz is None:
            raise InputError(f"row {i}: start/end need a UTC offset", source=src, field="start")
        if end <= start:
            raise InputError(f"row {i}: end {end} is not after start {start}", source=src, field="end")
        raw = row.get("max_load_mw")
        field = "max_load_mw" if isinstance(raw, str) and raw.strip() else "shed_mw"
        try:
            value = float(row[field])
        except (TypeError, ValueError):
            raise InputError(f"row {i}: {field} {row.get(field)!r} is not a number", source=src, field=field) from None
        if not np.isfinite(value) or value < 0:
            raise InputError(f"row {i}: {field} {value} must be a non-negative number", source=src, field=field)
        cap = value if field == "max_load_mw" else max(full_load_mw(site) - value, 0.0)
        events.append(Event(start.tz_convert("UTC"), end.tz_convert("UTC"), cap))
    return events


def load_caps(site: Site, events: list[Event] | None, times: pd.DatetimeIndex, dt_hours: float) -> np.ndarray:
    """Load cap of every interval (MW): the import limit, lowered wherever an interval overlaps an event."""
    cap = np.full(len(times), site.grid.import_limit_mw)
    t0 = pd.DatetimeIndex(times).tz_convert("UTC")
    t1 = t0 + pd.Timedelta(hours=dt_hours)
    for e in events or ():
        hit = (t0 < e.end) & (t1 > e.start)
        cap[hit] = np.minimum(cap[hit], e.max_load_mw)
    return cap
