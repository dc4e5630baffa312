"""The nightly job as library logic: lock the output, read and validate inputs, schedule, check, write.

``curtail schedule`` only parses options into a :class:`NightlyJob`, calls :func:`run_day` and prints. The job
always leaves a valid schedule or a clear failure behind: bad input raises ``InputError`` (exit 2) before anything
is solved; a schedule is written only after the independent checker passed (inside
:func:`optimizer.scheduling.schedule` / ``schedule_scenarios``); the output is locked for the run and replaced
atomically, so a failure or a kill leaves the previous good file intact. Every option is either honoured on
every path (deterministic or scenario schedule) or refused with a named message: none is silently dropped.

With a ledger (:mod:`optimizer.ledger`, ``NightlyJob.ledger``), every run is recorded there once its output is
written (inputs with sha256, the plan, status, gap, fallback), and a run that fails is recorded with its message and
exit code; and the month's SLA shortfall so far (realised where recorded, else planned) is read from it before the
solve and fed to the schedule (``Inputs.sla_shortfall_before_mwh``): the credit tiers count from there.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict
from zoneinfo import ZoneInfo

import pandas as pd
import xarray as xr

from optimizer import data, fourcp, market, results, scheduling
from optimizer.errors import FALLBACK_EXIT_CODE, CurtailError, InputError
from optimizer.events import read_events
from optimizer.scheduling import DEFAULT_DAY, schedule, schedule_scenarios
from optimizer.site import load_site
from optimizer.solve import SolverOptions
from optimizer.state import read_state_file
from optimizer.workloads import read_job_progress, with_jobs_file

if TYPE_CHECKING:
    from optimizer.ancillary import AsPrices
    from optimizer.events import Event
    from optimizer.forecast import MarketHistory
    from optimizer.state import UnitState
    from optimizer.workloads import JobProgress


@dataclass(frozen=True)
class NightlyJob:
    """One run of ``curtail schedule``: every option, as given (paths are read by :func:`run_day`)."""

    site: Path | None = None                  # None: the embedded default site
    day: str | None = None                    # YYYY-MM-DD, "today", "tomorrow"; None: DEFAULT_DAY
    prices: Path | None = None
    hashprice: float | None = None
    out: Path | None = None
    export_model: Path | None = None
    initial_state: Path | None = None
    lookahead_hours: int = 24
    options: SolverOptions = field(default_factory=SolverOptions)
    allow_sla_breach: bool = False
    emergency: Path | None = None
    scenarios: Path | None = None
    weights: tuple[float, ...] | None = None
    cvar_weight: float | None = None
    load: Path | None = None                  # the user's ERCOT system load (4CP), over the shipped
    load_forecast: Path | None = None         # the user's day-ahead system load forecast (4CP), over the shipped
    peaks: Path | None = None                 # the monthly 4CP intervals: settle the written day's actual charge
    ledger: Path | None = None                # SQLite ledger: record the run, read the month's SLA shortfall
    jobs: Path | None = None                  # a jobs CSV, added to the site file's [[job]] tables
    job_progress: Path | None = None          # JSON: each job's GPU-hours done so far
    as_prices: Path | None = None             # hourly AS clearing prices (CSV/Parquet); None: shipped ERCOT MCPC
    reserve: str | None = None                # --reserve NAME[:PRICE[:MINUTES]],...: replaces the site's [[reserve]]

    def refuse_unhonoured(self) -> None:
        """Options that cannot be honoured together are refused, never ignored."""
        if self.peaks is not None and self.scenarios is not None:
            raise InputError("--peaks settles one schedule's load in the actual 4CP intervals; not available with "
                             "--scenarios", field="--peaks")
        if self.scenarios is None:
            if self.weights is not None or self.cvar_weight is not None:
                raise InputError("--weights and --cvar-weight only apply with --scenarios", field="--weights")
            return
        if self.prices is not None:
            raise InputError("--prices and --scenarios both give the prices; give one", field="--prices")
        if self.export_model is not None:
            raise InputError("--export-model is not available with --scenarios (export one scenario's "
                             "deterministic model instead)", field="--export-model")
        if self.out is not None and self.out.suffix.lower() not in (".nc", ".csv"):
            raise InputError("a scenario schedule is written as .nc or .csv", source=str(self.out))


def parse_day(day: str | None, timezone: str, now: dt.datetime | None = None) -> tuple[dt.date, pd.Timestamp | None]:
    """(operating day, decision time): ``today`` / ``tomorrow`` are decided NOW (the decision time is now); a
    date is a day in the past or future, decided as a nightly run would have (10:00 local on the day before)."""
    if day is None:
        return DEFAULT_DAY, None
    now = now or dt.datetime.now(dt.UTC)
    today = now.astimezone(ZoneInfo(timezone)).date()
    named = {"today": today, "tomorrow": today + dt.timedelta(days=1)}
    if day in named:
        return named[day], pd.Timestamp(now)
    try:
        return dt.date.fromisoformat(day), None
    except ValueError:
        raise InputError(f"{day!r} is not a day (expected YYYY-MM-DD, 'today' or 'tomorrow')", field="--day") from None


def run_day(job: NightlyJob) -> tuple[dict, xr.Dataset]:
    """Run the nightly job; returns (summary, dataset). Raises a :class:`~optimizer.errors.CurtailError`."""
    job.refuse_unhonoured()
    site = with_jobs_file(load_site(job.site or data.default_site_path()), job.jobs)
    if job.reserve is not None:
        import dataclasses

        from optimizer.ancillary import parse_reserve_option

        site = dataclasses.replace(site, reserves=parse_reserve_option(job.reserve))
    if job.job_progress is not None and not site.jobs:
        raise InputError("--job-progress needs jobs (the site file's [[job]] tables or --jobs)", field="--job-progress")
    progress = read_job_progress(job.job_progress, site.jobs) if job.job_progress is not None else None
    the_day, decision = parse_day(job.day, site.timezone)
    if job.out is not None:
        results.check_output_path(job.out)
    if job.ledger is not None and not Path(job.ledger).parent.is_dir():
        raise InputError("ledger folder does not exist", source=str(Path(job.ledger).parent))
    with results.output_lock(job.out) if job.out is not None else nullcontext():
        try:
            ds = _solve_and_write(job, site, the_day, decision, progress)
        except CurtailError as exc:
            if job.ledger is not None:
                _record_failure(job, job.ledger, site, the_day, exc)
            raise
        if job.ledger is not None:
            from optimizer import ledger

            ledger.record_schedule(job.ledger, ds, output=job.out,
                                   exit_code=FALLBACK_EXIT_CODE if ds.attrs.get("fallback") else 0)
    return results.summary(ds), ds


class _DayOptions(TypedDict, total=False):
    """The keyword arguments :func:`schedule` and :func:`schedule_scenarios` both take, as a nightly job gives
    them (``as_prices`` and ``sla_shortfall_before_mwh`` only when there are some)."""

    day: dt.date
    hashprice: float | None
    lookahead_hours: int
    initial_state: dict[str, UnitState] | None
    options: SolverOptions
    allow_sla_breach: bool
    events: list[Event] | None
    decision_time: pd.Timestamp | None
    history: MarketHistory | None
    job_progress: dict[str, JobProgress] | None
    as_prices: AsPrices
    sla_shortfall_before_mwh: dict[str, float]


def _solve_and_write(job: NightlyJob, site, the_day: dt.date, decision: pd.Timestamp | None,
                     progress: dict[str, JobProgress] | None) -> xr.Dataset:
    state = (read_state_file(job.initial_state, site, market.operating_hours(the_day, site.timezone)[0])
             if job.initial_state else None)
    events = read_events(job.emergency, site) if job.emergency else None
    user, history = fourcp_inputs(job, site)
    common: _DayOptions = {"day": the_day, "hashprice": job.hashprice, "lookahead_hours": job.lookahead_hours,
                           "initial_state": state, "options": job.options, "allow_sla_breach": job.allow_sla_breach,
                           "events": events, "decision_time": decision, "history": history, "job_progress": progress}
    if job.as_prices is not None:
        from optimizer.ancillary import AsPrices

        common["as_prices"] = AsPrices.read(job.as_prices)
    before = _sla_before(job, site, the_day)
    if before:
        common["sla_shortfall_before_mwh"] = before
    if job.scenarios is not None:
        from optimizer.stochastic import read_scenarios_file

        frame = read_scenarios_file(job.scenarios)
        ds = schedule_scenarios(site, frame, list(job.weights) if job.weights else None,
                                cvar_weight=job.cvar_weight or 0.0, **common)
    else:
        prices = data.read_price_file(job.prices) if job.prices else None
        ds = schedule(site, prices, export_model=job.export_model, fallback=True, **common)
    if user is not None and history is not None:
        ds.attrs["fourcp_source"] = f"{ds.attrs.get('fourcp_source', '')} (with {', '.join(user.sources)})"
    if user is not None and user.peaks is not None:
        ds.attrs["fourcp_settled_json"] = json.dumps(_settle_peaks(site, ds, user.peaks))
    if job.ledger is not None:
        ds.attrs["sla_shortfall_before_json"] = json.dumps(before, sort_keys=True)
    ds.attrs["inputs_json"] = json.dumps(_inputs(site, job), sort_keys=True)
    ds.attrs["created_at"] = created_at()
    if job.out is not None:
        if job.scenarios is not None:
            _write_scenarios(ds, job.out)
        else:
            results.write(ds, job.out)
    return ds


def _sla_before(job: NightlyJob, site, day: dt.date) -> dict[str, float]:
    """The month's committed MWh missed before ``day``, per cluster, from the ledger (empty without one)."""
    if job.ledger is None:
        return {}
    from optimizer import ledger

    return ledger.sla_shortfall_before(job.ledger, site, day)


def _record_failure(job: NightlyJob, ledger_path: Path, site, the_day: dt.date, exc: CurtailError) -> None:
    from optimizer import ledger

    ledger.record_failure_or_warn(ledger_path, kind="schedule", site=site, error=exc,
                                  inputs=lambda: _inputs(site, job), day=the_day.isoformat())


def _write_scenarios(ds: xr.Dataset, out: Path) -> None:
    with results.atomic_path(out) as tmp:
        if out.suffix.lower() == ".nc":
            ds.to_netcdf(tmp)
        else:
            long = pd.concat([results.to_frame(ds.sel(scenario=s)).assign(scenario=str(s))
                              for s in ds["scenario"].values])
            long.to_csv(tmp, index=False, float_format="%.6f")


def fourcp_inputs(job, site) -> tuple[fourcp.UserData | None, MarketHistory | None]:
    """The user's 4CP files (``job.load``, ``job.load_forecast``, ``job.peaks``: a NightlyJob or a BidJob), read
    and validated (exit 2 on a bad one, before anything is solved), and, when they
    hold load or a load forecast, the history the 4CP chances are estimated from: theirs merged over the shipped
    data. Refused for a site without 4CP, where they would be ignored."""
    if job.load is None and job.load_forecast is None and job.peaks is None:
        return None, None
    if not site.fourcp.active:
        raise InputError(f"--load, --load-forecast and --peaks are 4CP inputs, and site {site.name!r} has no 4CP "
                         "charge (set [fourcp] in the site model, or leave them out)", field="--load")
    user = fourcp.UserData.read(job.load, job.load_forecast, job.peaks, site.timezone)
    if user.load is None and user.load_forecast is None:
        return user, None
    return user, user.history(scheduling._load_history())


def _settle_peaks(site, ds: xr.Dataset, peaks: pd.DatetimeIndex) -> dict:
    """The written day's load in the actual 4CP intervals it holds (``peaks``, mapped to their hours) and the
    charge that load sets: ``MW x charge_usd_per_kw_year x 1000 / 4`` per interval."""
    times = pd.DatetimeIndex(ds["time"].values).tz_localize("UTC")
    hours = pd.DatetimeIndex(peaks).floor("h")
    inside = times.isin(hours)
    load = ds["load_mw"].values[inside]
    return {"peak_hours": [t.isoformat() for t in times[inside]], "load_mw": [float(x) for x in load],
            "charge_usd": float(load.sum() * site.fourcp.usd_per_mw_peak)}


def _inputs(site, job: NightlyJob) -> dict:
    out = {"site": {"path": site.source, "sha256": site.sha256}}
    for name in ("prices", "initial_state", "emergency", "scenarios", "load", "load_forecast", "peaks", "jobs",
                 "job_progress", "as_prices"):
        path = getattr(job, name)
        if path is not None:
            out[name] = {"path": str(path), "sha256": results.file_sha256(path)}
    return out


def created_at() -> str:
    """Now, or SOURCE_DATE_EPOCH (the reproducible-builds convention) when set: same inputs, same bytes."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = dt.datetime.fromtimestamp(int(epoch), dt.UTC) if epoch else dt.datetime.now(dt.UTC)
    return when.replace(microsecond=0).isoformat()
