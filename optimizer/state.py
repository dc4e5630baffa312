"""Initial state of the switchable units at the start of an operating day, and how to carry it over."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from optimizer.errors import InputError
from optimizer.site import Site

#: Hours in state that mean "long enough that no minimum on/off time binds".
LONG_AGO_HOURS = 10_000
#: Power (MW) at or below which a unit counts as off when reading a schedule.
OFF_TOL_MW = 1e-4


@dataclass(frozen=True)
class UnitState:
    """State of one unit just before the first interval: on or off, its power (MW; for a GPU cluster the flexible
    part only; None = full), and for how many hours it has been in that on/off state."""

    on: bool = True
    power_mw: float | None = None
    hours_in_state: float = LONG_AGO_HOURS


def default_state(site: Site) -> dict[str, UnitState]:
    """Everything on at full power for a long time."""
    return {name: UnitState() for name in site.asset_names}


def resolve(site: Site, state: Mapping[str, UnitState] | None) -> dict[str, UnitState]:
    """Complete and check a state against a site: missing units default to on at full power."""
    state = dict(state or {})
    unknown = sorted(set(state) - set(site.asset_names))
    if unknown:
        raise InputError(f"initial state names unknown asset(s): {', '.join(unknown)}", field="initial_state")
    out = {}
    caps = {f.name: f.capacity_mw for f in site.mining} | {g.name: g.flexible_mw for g in site.gpu}
    for name in site.asset_names:
        s = state.get(name, UnitState())
        cap = caps[name]
        p = cap if s.power_mw is None else float(s.power_mw)
        if not s.on:
            p = 0.0
        if not (-OFF_TOL_MW <= p <= cap + OFF_TOL_MW):
            raise InputError(f"{name}: initial power {p:g} MW outside [0, {cap:g}]", field="initial_state")
        if s.hours_in_state < 0:
            raise InputError(f"{name}: hours_in_state {s.hours_in_state} < 0", field="initial_state")
        if s.on and p <= OFF_TOL_MW and cap > 0:
            s = UnitState(on=False, power_mw=0.0, hours_in_state=s.hours_in_state)
        out[name] = UnitState(on=bool(s.on), power_mw=float(min(max(p, 0.0), cap)),
                              hours_in_state=float(s.hours_in_state))
    return out


def state_from_schedule(site: Site, frame: pd.DataFrame, dt_hours: float = 1.0,
                        before: Mapping[str, UnitState] | None = None) -> dict[str, UnitState]:
    """The state at the end of a written schedule (its last interval), read from its per-asset columns.

    ``before``: the state the schedule started from; a unit in the same on/off state all along adds its
    earlier hours (exact carry-over across days)."""
    out = {}
    for f in site.mining:
        out[f.name] = _tail_state(frame, f"mining_mw__{f.name}", 0.0, dt_hours, (before or {}).get(f.name))
    for g in site.gpu:
        committed = (frame[f"committed_mw__{g.name}"].to_numpy(dtype=float) if f"committed_mw__{g.name}" in frame
                     else g.committed_mw)                       # the committed GPUs' power as written (capped or full)
        flex = frame[f"ai_mw__{g.name}"].to_numpy(dtype=float) - committed if f"ai_mw__{g.name}" in frame else None
        short = f"sla_shortfall_mw__{g.name}"
        if flex is not None and short in frame.columns:
            flex = flex + frame[short].to_numpy(dtype=float)
        out[g.name] = _tail_state(frame, f"ai_mw__{g.name}", g.committed_mw, dt_hours, (before or {}).get(g.name),
                                  flex)
    return out


def _tail_state(frame: pd.DataFrame, column: str, floor_mw: float, dt_hours: float, before: UnitState | None,
                values: np.ndarray | None = None) -> UnitState:
    if column not in frame.columns:
        raise InputError(f"previous schedule has no column {column!r}", field=column)
    p = frame[column].to_numpy(dtype=float) - floor_mw if values is None else values
    on = p > OFF_TOL_MW
    last = bool(on[-1])
    changed = np.flatnonzero(on != last)
    run = (len(on) - changed[-1] - 1) * dt_hours if len(changed) else len(on) * dt_hours
    if not len(changed) and before is not None and before.on == last:
        run += before.hours_in_state
    return UnitState(on=last, power_mw=float(max(p[-1], 0.0)) if last else 0.0,
                     hours_in_state=float(min(run, LONG_AGO_HOURS)))


def state_to_json(state: Mapping[str, UnitState]) -> str:
    return json.dumps({k: asdict(v) for k, v in state.items()}, sort_keys=True)


def state_from_json(text: str, source: str = "<state>") -> dict[str, UnitState]:
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise InputError(f"not valid JSON ({exc})", source=source) from None
    return state_from_dict(raw, source)


def state_from_dict(raw: Mapping, source: str = "<state>") -> dict[str, UnitState]:
    """A state from its JSON form: ``{asset: {"on": ..., "power_mw": ..., "hours_in_state": ...}}``."""
    try:
        return {k: UnitState(on=bool(v["on"]), power_mw=v.get("power_mw"), hours_in_state=float(v["hours_in_state"]))
                for k, v in raw.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"not a valid state ({exc})", source=source) from None


def read_state_file(path: str | Path, site: Site, day_start_utc: pd.Timestamp) -> dict[str, UnitState]:
    """State from a state JSON (``{asset: {"on", "power_mw", "hours_in_state"}}``), or from the end of the previous
    schedule (any format :func:`optimizer.results.read_schedule` reads), which must end exactly at
    ``day_start_utc``: a stale or future schedule is an input error, not a silent wrong start."""
    from optimizer import results

    path = Path(path)
    if path.suffix.lower() == ".json":
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read state ({exc})", source=str(path)) from None
        if isinstance(raw, dict) and "schedule" not in raw:
            return resolve(site, state_from_dict(raw, source=str(path)))
    frame = results.read_schedule(path)
    if frame.empty or "timestamp" not in frame.columns:
        raise InputError("previous schedule has no rows or no timestamp column", source=str(path))
    stamps = pd.to_datetime(frame["timestamp"], utc=True)
    step = stamps.iloc[-1] - stamps.iloc[-2] if len(stamps) > 1 else pd.Timedelta(hours=1)
    end = stamps.iloc[-1] + step
    if end != day_start_utc:
        raise InputError(f"previous schedule ends at {end.isoformat()}, but the day starts at "
                         f"{day_start_utc.isoformat()}; give the schedule of the day before", source=str(path),
                         field="timestamp")
    before = results.read_summary(path).get("initial_state") or {}
    try:
        before_state = {k: UnitState(**v) for k, v in before.items()}
    except TypeError:
        before_state = {}
    return state_from_schedule(site, frame, step / pd.Timedelta(hours=1), before=before_state)
