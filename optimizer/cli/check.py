"""``curtail check``: verify a written schedule against the site model and the inputs, trusting only its decisions.

Everything the limits and money depend on comes from files, read with the readers ``curtail schedule`` uses:
- the expected rows: every interval of the local days the schedule's rows fall on (site time zone), at the price
  file's resolution; a missing, extra or shifted row is a violation;
- prices: ``--prices`` (must cover every expected interval);
- hashprice: ``--hashprice`` for every row; without it, per operating day D, the shipped daily value known at
  10:00 local on D-1 (the latest UTC day that had ended by then, the backtest's rule), which must be at most
  ``data.HASHPRICE_STALE_DAYS`` days old, else exit 2 asking for ``--hashprice``. The value recorded in the
  schedule's own summary is never used: it is what is being checked;
- initial state: ``--initial-state`` (state JSON: ``{asset: {"on", "power_mw", "hours_in_state"}}``); default
  every unit on at full power for a long time, the default of ``curtail schedule``;
- emergency caps: ``--emergency`` (the events CSV of ``curtail schedule``);
- 4CP: ``--peaks``, a CSV with a ``timestamp`` column (ISO 8601 with offset) of the actual peak hour starts: weight
  1 in those hours, 0 elsewhere, and the site's curtailment rule applied there. Without ``--peaks`` the weight is
  0 everywhere and the curtailment rule is not checked; a schedule that carries 4CP charges is then refused (exit
  2): a plan priced with peak *probabilities* cannot be verified by this command.
- inference demand: each GPU cluster's own ``demand_profile`` scaled to its ``spot_utilization``, times its spot
  (uncommitted) GPUs, at the expected timestamps: what ``curtail schedule`` plans with. ``served_gpus__<cluster>``
  and the spot revenue are recomputed from it; a schedule planned with other demand (a library caller's
  ``Inputs.demand_fraction``) does not verify here;
- deferrable jobs: the site file's ``[[job]]`` tables plus ``--jobs`` (a jobs CSV, read by
  ``optimizer.workloads.read_jobs``; a name in both is bad input). ``--job-progress``: a JSON object
  ``{job: gpu_hours_done}`` (or ``{job: {"gpu_hours_done": h, "running_hours": r}}`` for a rigid job already running
  r hours) of the GPU-hours done before the first row; default nothing done, nothing running. ``--job-penalty``:
  ``plan`` (default; the late GPU-hours the plan expects, booked in the first row, assuming every GPU of the job
  after the schedule until its deadline) or ``settle`` (the GPU-hours missing at a deadline inside the schedule,
  in the deadline's row);
- ancillary capacity prices: a ``[[reserve]]`` with ``price_usd_per_mw_hour`` at that constant; one paid ERCOT's
  hourly clearing prices at ``--as-prices`` (the schema of ``curtail schedule --as-prices``), default the shipped
  ERCOT day-ahead MCPC (2022-2024; an hour without a price is bad input);
- no SLA shortfall earlier in the month, nothing deployed.

Exit 0: valid. Exit 1: violations, one line each on stdout (interval, unit, rule, by how much, detail).
Exit 2: bad input, with a message naming the file, field and value.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from optimizer.errors import CurtailError, InputError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from optimizer.check import CheckInputs
    from optimizer.site import Site

_OFFSET = re.compile(r"(?:Z|[+-]\d\d:?\d\d)$")


def check(
    site: Annotated[Path, typer.Option(help="Site model (TOML) the schedule was made for.")],
    schedule: Annotated[Path, typer.Option(help="Schedule to verify (.csv .parquet .json .nc).")],
    prices: Annotated[Path, typer.Option(help="Prices it is settled at (CSV/Parquet: timestamp, "
                                         "price_usd_per_mwh).")],
    hashprice: Annotated[float | None, typer.Option(help="USD per PH/s per day for every row. Default: the shipped "
                                                    "value known at 10:00 local the day before each day.")] = None,
    initial_state: Annotated[Path | None, typer.Option(help="State JSON before the first row. Default: all on at "
                                                       "full power, long ago.")] = None,
    emergency: Annotated[Path | None, typer.Option(help="Emergency events CSV (start, end, max_load_mw or "
                                                   "shed_mw).")] = None,
    peaks: Annotated[Path | None, typer.Option(help="CSV of actual 4CP peak hour starts (timestamp): weight 1 "
                                               "there. Without it a schedule with 4CP charges is refused.")] = None,
    allow_sla_breach: Annotated[bool, typer.Option(help="Committed GPU load may fall short (SLA credit due).")]
    = False,
    jobs: Annotated[Path | None, typer.Option(help="Jobs CSV (name, cluster, gpus, gpu_hours, release, deadline, "
                                              "min_run_hours, value and late penalty per GPU-hour), added to the "
                                              "site file's jobs.")] = None,
    job_progress: Annotated[Path | None, typer.Option(help="JSON {job: gpu_hours_done} (or {job: {gpu_hours_done, "
                                                      "running_hours}}) before the first row. Default: nothing "
                                                      "done, nothing running.")] = None,
    job_penalty: Annotated[str, typer.Option(help="How late-job penalties are booked: plan (expected late "
                                             "GPU-hours, first row) or settle (missing at the deadline, its "
                                             "row).")] = "plan",
    as_prices: Annotated[Path | None, typer.Option(help="Hourly ancillary-service clearing prices (CSV/Parquet: "
                                                   "timestamp, service, price_usd_per_mw_hour) for the services "
                                                   "paid them. Default: shipped ERCOT day-ahead MCPC 2022-2024.")]
    = None,
) -> None:
    """Verify a schedule: every limit and money column recomputed from the site and the inputs."""
    from optimizer import data
    from optimizer.check import check_schedule
    from optimizer.results import read_schedule
    from optimizer.site import load_site

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", data.PriceWarning)
            the_site = _with_jobs(load_site(site), jobs)
            frame = read_schedule(schedule)
            inputs = _inputs(the_site, frame, schedule, prices, hashprice, initial_state, emergency, peaks,
                             allow_sla_breach, job_progress, job_penalty, as_prices)
        for w in caught:
            typer.echo(f"curtail check: warning: {w.message}", err=True)
        violations = check_schedule(the_site, frame, inputs)
    except CurtailError as exc:
        typer.echo(f"curtail check: error: {exc}", err=True)
        raise typer.Exit(2) from None
    if violations:
        for v in violations:
            typer.echo(str(v))
        typer.echo(f"curtail check: {schedule}: {len(violations)} violation(s)", err=True)
        raise typer.Exit(1)
    typer.echo(f"curtail check: {schedule}: valid ({len(frame)} intervals of {the_site.name}; every limit and money "
               "column recomputed from the site and the inputs)")


def _inputs(site: Site, frame: pd.DataFrame, schedule: Path, prices: Path, hashprice: float | None,
            initial_state: Path | None, emergency: Path | None, peaks: Path | None,
            allow_sla_breach: bool, job_progress: Path | None = None, job_penalty: str = "plan",
            as_prices: Path | None = None) -> CheckInputs:
    import numpy as np
    import pandas as pd

    from optimizer import data
    from optimizer.check import CheckInputs
    from optimizer.events import load_caps, read_events

    if job_penalty not in ("plan", "settle"):
        raise InputError(f"expected plan or settle, got {job_penalty!r}", field="--job-penalty")
    done, running = _read_progress(job_progress, site) if job_progress is not None else ({}, {})
    price = data.read_price_file(prices)
    dt_hours = data.interval_hours(pd.DatetimeIndex(price.index))
    times = _expected_times(frame, site.timezone, dt_hours, str(schedule))
    missing = times.difference(price.index)
    if len(missing):
        raise InputError(f"no price for {len(missing)} interval(s) of the schedule, first {missing[0].isoformat()}",
                         source=str(prices), field="timestamp")
    if hashprice is not None and not (np.isfinite(hashprice) and hashprice > 0):
        raise InputError(f"expected a positive number of USD/PH/day, got {hashprice!r}", field="--hashprice")
    weight = np.zeros(len(times))
    if peaks is not None:
        weight = times.floor("h").isin(_read_peaks(peaks)).astype(float)
    elif "fourcp_charge_usd" in frame.columns and pd.to_numeric(frame["fourcp_charge_usd"], errors="coerce").any():
        raise InputError("the schedule carries 4CP charges; give the actual peak hours with --peaks to verify them "
                         "(a plan priced with peak probabilities cannot be verified)", source=str(schedule),
                         field="fourcp_charge_usd")
    elif site.fourcp.curtail_above_probability < 1.0:
        typer.echo("curtail check: note: no --peaks: the site's 4CP curtailment rule is not checked", err=True)
    events = read_events(emergency, site) if emergency is not None else None
    from optimizer import ancillary

    if as_prices is not None and not ancillary.clearing_priced(site):
        raise InputError(f"site {site.name!r} has no service paid clearing prices (every [[reserve]] sets "
                         "price_usd_per_mw_hour, or there is none)", field="--as-prices")
    reserve_prices = ((ancillary.AsPrices.read(as_prices) if as_prices is not None
                       else ancillary.AsPrices.shipped()).actual(site, times)
                      if ancillary.clearing_priced(site) else {})
    return CheckInputs(
        timestamps=times, prices_usd_per_mwh=price.reindex(times),
        hashprice_usd_per_ph_day=hashprice if hashprice is not None else _hashprices(times, site.timezone),
        initial_state=_read_state(initial_state) if initial_state is not None else {},
        emergency_cap_mw=load_caps(site, events, times, dt_hours) if events else None,
        peak_weight=weight, allow_sla_breach=allow_sla_breach, interval_hours=dt_hours,
        job_done_before=done, job_running_before=running, job_penalty=job_penalty,
        reserve_prices_usd_per_mw_hour=reserve_prices)


def _with_jobs(site: Site, path: Path | None) -> Site:
    from optimizer.workloads import with_jobs_file

    return with_jobs_file(site, path)


def _read_progress(path: Path, site: Site) -> tuple[dict[str, float], dict[str, float]]:
    """GPU-hours done and hours of the current run per job (:func:`optimizer.workloads.read_job_progress`)."""
    from optimizer.workloads import read_job_progress

    progress = read_job_progress(path, site.jobs)
    return ({k: p.gpu_hours_done for k, p in progress.items()},
            {k: p.running_hours for k, p in progress.items() if p.running_hours > 0})


def _expected_times(frame: pd.DataFrame, tz: str, dt_hours: float, src: str) -> pd.DatetimeIndex:
    """Every interval of the local days the schedule's rows fall on."""
    import pandas as pd

    stamps = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601", errors="coerce") \
        if "timestamp" in frame.columns else pd.Series(dtype="datetime64[ns, UTC]")
    local = pd.DatetimeIndex(stamps.dropna()).tz_convert(tz)
    if local.empty:
        raise InputError("no rows with a readable timestamp", source=src, field="timestamp")
    start = pd.Timestamp(local.min().date()).tz_localize(tz)                     # local midnights
    end = pd.Timestamp(local.max().date() + dt.timedelta(days=1)).tz_localize(tz)
    return pd.date_range(start, end, freq=pd.Timedelta(hours=dt_hours), inclusive="left").tz_convert("UTC")


def _hashprices(times: pd.DatetimeIndex, tz: str) -> np.ndarray:
    """Per row: the latest shipped daily value whose UTC day had ended by 10:00 local on the day before."""
    import numpy as np
    import pandas as pd

    from optimizer import data

    s = data.hashprice_series()
    days = times.tz_convert(tz).date
    value = {}
    for day in sorted(set(days)):
        decision = pd.Timestamp(dt.datetime.combine(day - dt.timedelta(days=1), dt.time(10))).tz_localize(tz)
        ended = s[s.index + pd.Timedelta(days=1) <= decision.tz_convert("UTC").tz_localize(None)]
        if ended.empty or (day - ended.index[-1].date()).days > data.HASHPRICE_STALE_DAYS:
            raise InputError(f"no shipped hashprice known at 10:00 local on {day - dt.timedelta(days=1)} (within "
                             f"{data.HASHPRICE_STALE_DAYS} days); give --hashprice", field="--hashprice")
        value[day] = float(ended.iloc[-1])
    return np.array([value[d] for d in days])


def _read_state(path: Path) -> dict:
    from optimizer.state import state_from_dict

    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read state JSON ({exc})", source=str(path)) from None
    if not isinstance(raw, dict):
        raise InputError("expected a JSON object {asset: {on, power_mw, hours_in_state}}", source=str(path))
    return state_from_dict(raw, source=str(path))


def _read_peaks(path: Path) -> pd.DatetimeIndex:
    """The peak hour starts of a ``timestamp`` CSV (ISO 8601 with a UTC offset, on the hour)."""
    import pandas as pd

    try:
        text = pd.read_csv(path, dtype=str)
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file
        raise InputError(f"cannot read peaks file ({type(exc).__name__}: {exc})", source=str(path)) from None
    if "timestamp" not in text.columns:
        raise InputError(f"expected a timestamp column; found {', '.join(text.columns)}", source=str(path))
    for i, raw in enumerate(text["timestamp"].fillna(""), start=1):
        when = pd.to_datetime(raw, utc=True, format="ISO8601", errors="coerce") if _OFFSET.search(raw) else pd.NaT
        if pd.isna(when) or when != when.floor("h"):
            raise InputError(f"row {i}: {raw!r} is not an hour start in ISO 8601 with a UTC offset", source=str(path),
                             field="timestamp")
    return pd.DatetimeIndex(pd.to_datetime(text["timestamp"], utc=True, format="ISO8601"))
