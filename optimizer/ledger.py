"""The ledger: every decision curtail made and, once real-time prices are known, what it earned (SQLite).

One SQLite file (stdlib :mod:`sqlite3`, WAL journal, ``synchronous=FULL``) holds, per run, one row in ``runs``
(kind ``schedule`` or ``operate``, site and its sha256, operating day or interval, status, MIP gap, fallback and
its reason, exit code, output file and its sha256, the full summary as JSON), its input files with their sha256
(``inputs``) and what it decided: a schedule's plan (``plan``: one row per hour with the money parts; ``plan_assets``:
MW, on, start, committed MW and SLA shortfall per fleet and cluster), an operate call's setpoints (``setpoints``)
and the interval it saw realised (``realised``: what each unit really drew in the previous 15 minutes).
``settlement`` holds the realised settlement of each 15-minute interval once its real-time price is in the store
(:mod:`optimizer.live`).

**One transaction per run.** Every write is one ``BEGIN IMMEDIATE`` .. ``COMMIT``: a run killed at any moment
(SIGKILL included) is either fully recorded or not at all, and SQLite's WAL keeps the file consistent
(``PRAGMA integrity_check``). Concurrent writers (two cron jobs) wait for each other (``busy_timeout`` 60 s).

**Realised settlement** (:func:`settle`): an interval is settled on what the site really drew, taken from
``operate``'s realised interval where one was recorded, else from the latest successful schedule of its operating
day (assumed followed: the basis is kept per interval and shown), at the real-time settlement point price of the
interval and the hashprice the decision used, through the one settlement routine
(:func:`optimizer.results.assemble`). Left out of the realised money and shown apart instead: the 4CP charge
(unknown until ERCOT's month peak is known: shown as exposure), the SLA credit (shown against the month's budget)
and reserve capacity payments.

**The SLA month and its budget.** A cluster's availability is ``1 - missed committed MWh / (committed MW x
sla_month_hours)`` over the site's local calendar month; missed MWh are the realised shortfall where recorded,
else the planned one. The budget is the downtime the first credit tier allows (``(1 - level) x sla_month_hours``
committed-equivalent hours: 4.4 minutes at 99.99%, 43.8 minutes at 99.9%). :func:`sla_shortfall_before` gives the
nightly job the month's missed MWh before a day, so the plan prices a breach with the credit tiers counted from
there (``Inputs.sla_shortfall_before_mwh``) instead of assuming 100% so far.

**4CP exposure.** In a 4CP month (June .. September local) the riskiest intervals so far are the hours of highest
ERCOT system load in the store (else the hours of highest planned peak probability); the report shows the site's
load in them and the charge each would cost if it turns out to be the month's peak.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from optimizer.errors import CurtailError, InputError, InternalError
from optimizer.site import Site

#: Default ledger file name, created beside the schedule output.
DEFAULT_NAME = "curtail-ledger.sqlite"
SCHEMA_VERSION = 1
#: Seconds a writer waits for another writer's transaction before giving up.
BUSY_TIMEOUT_SECONDS = 60.0
#: Settlement resolution (hours): ERCOT real-time settlement intervals.
SETTLE_HOURS = 0.25

MONEY = ("mining_revenue_usd", "ai_revenue_usd", "energy_cost_usd", "sellback_credit_usd", "contract_cost_usd",
         "restart_cost_usd", "sla_credit_usd", "fourcp_charge_usd", "reserve_revenue_usd", "job_penalty_usd",
         "profit_usd")
_MONEY_COLS = ", ".join(f"{m} REAL NOT NULL" for m in MONEY)

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('schedule', 'operate')),
    created_at TEXT NOT NULL,
    site TEXT NOT NULL,
    site_sha256 TEXT,
    day TEXT,
    interval_start TEXT,
    month TEXT NOT NULL,
    status TEXT NOT NULL,
    mip_gap REAL,
    fallback INTEGER NOT NULL DEFAULT 0,
    fallback_reason TEXT NOT NULL DEFAULT '',
    exit_code INTEGER NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    output TEXT,
    output_sha256 TEXT,
    hashprice_usd_per_ph_day REAL,
    scenarios INTEGER NOT NULL DEFAULT 0,
    plan_rows INTEGER NOT NULL DEFAULT 0,
    summary_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_day ON runs (site, kind, day);
CREATE TABLE IF NOT EXISTS inputs (
    run_id INTEGER NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    name TEXT NOT NULL, path TEXT, sha256 TEXT,
    PRIMARY KEY (run_id, name)
);
CREATE TABLE IF NOT EXISTS plan (
    run_id INTEGER NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    timestamp TEXT NOT NULL,
    interval_hours REAL NOT NULL,
    price_usd_per_mwh REAL NOT NULL, load_mw REAL NOT NULL, mining_mw REAL NOT NULL, ai_mw REAL NOT NULL,
    sellback_mw REAL NOT NULL, peak_weight REAL NOT NULL,
    {_MONEY_COLS},
    PRIMARY KEY (run_id, timestamp)
);
CREATE TABLE IF NOT EXISTS plan_assets (
    run_id INTEGER NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    timestamp TEXT NOT NULL, asset TEXT NOT NULL,
    mw REAL NOT NULL, is_on INTEGER NOT NULL, started INTEGER NOT NULL,
    committed_mw REAL NOT NULL, sla_shortfall_mw REAL NOT NULL,
    PRIMARY KEY (run_id, timestamp, asset)
);
CREATE TABLE IF NOT EXISTS setpoints (
    run_id INTEGER NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    interval_start TEXT NOT NULL, unit TEXT NOT NULL,
    strike_usd_per_mwh REAL, strike_applies TEXT,
    run_mw REAL, run_on INTEGER, curtail_mw REAL, curtail_on INTEGER,
    PRIMARY KEY (run_id, unit)
);
CREATE TABLE IF NOT EXISTS realised (
    interval_start TEXT NOT NULL, asset TEXT NOT NULL,
    site TEXT NOT NULL,
    interval_hours REAL NOT NULL,
    mw REAL NOT NULL, is_on INTEGER NOT NULL, started INTEGER NOT NULL,
    committed_mw REAL NOT NULL, sla_shortfall_mw REAL NOT NULL,
    hashprice_usd_per_ph_day REAL NOT NULL,
    run_id INTEGER NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    PRIMARY KEY (site, interval_start, asset)
);
CREATE TABLE IF NOT EXISTS settlement (
    site TEXT NOT NULL,
    interval_start TEXT NOT NULL,
    interval_hours REAL NOT NULL,
    basis TEXT NOT NULL CHECK (basis IN ('operate', 'plan')),
    source_run_id INTEGER NOT NULL,
    price_usd_per_mwh REAL NOT NULL,
    price_source TEXT NOT NULL,
    load_mw REAL NOT NULL, mining_mw REAL NOT NULL, sellback_mw REAL NOT NULL,
    {_MONEY_COLS},
    settled_at TEXT NOT NULL,
    PRIMARY KEY (site, interval_start)
);
"""


def default_path(out: str | Path) -> Path:
    """The default ledger of a run writing ``out``: :data:`DEFAULT_NAME` in the same folder."""
    return Path(out).parent / DEFAULT_NAME


# ----------------------------------------------------------------------------------------------------------------
# connection and transactions


def _setup(con: sqlite3.Connection, write: bool) -> None:
    """WAL, full sync, foreign keys, then the transaction. Switching a new file to WAL takes an exclusive lock that
    SQLite does not wait for (no busy handler), so a second writer starting at the same moment gets "database is
    locked" at once: that step is retried until the busy timeout, as every other lock is waited for."""
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            if str(con.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                con.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    con.execute("PRAGMA synchronous=FULL")
    con.execute("PRAGMA foreign_keys=ON")
    con.execute("BEGIN IMMEDIATE" if write else "BEGIN")


@contextlib.contextmanager
def transaction(path: str | Path, *, write: bool = True) -> Iterator[sqlite3.Connection]:
    """A connection inside one transaction (``BEGIN IMMEDIATE`` to write, a deferred snapshot to read),
    committed when the block succeeds and rolled back otherwise; the schema is created on first write. Errors are
    :class:`~optimizer.errors.InputError` naming the file (a folder that does not exist, a file that is not a
    curtail ledger, a lock held past the timeout)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError("ledger folder does not exist", source=str(path.parent))
    try:
        con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    except sqlite3.Error as exc:
        raise InputError(f"cannot open the ledger ({exc})", source=str(path)) from None
    try:
        try:
            _setup(con, write)
        except sqlite3.Error as exc:
            raise InputError(f"cannot use the ledger ({exc}); is it a curtail ledger?", source=str(path)) from None
        try:
            if write:
                _ensure_schema(con, path)
            else:
                _check_schema(con, path)
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        try:
            con.execute("COMMIT")
        except sqlite3.Error as exc:
            raise InputError(f"cannot write the ledger ({exc})", source=str(path)) from None
    finally:
        con.close()


def _ensure_schema(con: sqlite3.Connection, path: Path) -> None:
    for statement in filter(str.strip, SCHEMA.split(";")):
        con.execute(statement)
    if con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() is None:
        con.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    _check_schema(con, path)


def _check_schema(con: sqlite3.Connection, path: Path) -> None:
    try:
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.Error:
        row = None
    if row is None or int(row[0]) != SCHEMA_VERSION:
        raise InputError(f"not a curtail ledger of schema version {SCHEMA_VERSION} (found "
                         f"{'none' if row is None else row[0]})", source=str(path))


def _read(path: str | Path) -> contextlib.AbstractContextManager[sqlite3.Connection]:
    """A read transaction (a consistent snapshot); a missing ledger is an input error."""
    if not Path(path).exists():
        raise InputError("ledger not found (a schedule run with --ledger, or with --out, creates it)",
                         source=str(path))
    return transaction(path, write=False)


# ----------------------------------------------------------------------------------------------------------------
# recording runs


def record_schedule(path: str | Path, ds, *, output: str | Path | None = None, exit_code: int = 0) -> int:
    """Record one ``curtail schedule`` run (its dataset as :func:`optimizer.nightly.run_day` returns it: the
    operating day, summary and provenance in ``attrs``) in ONE transaction: the run, its inputs with sha256, and
    its plan (deterministic schedules; a scenario schedule records its run and summary only). Returns the run id."""
    from optimizer import results

    s = results.summary(ds)
    scenarios = int(ds.sizes.get("scenario", 0))
    out = Path(output) if output is not None else None
    row = {"kind": "schedule", "created_at": str(s.get("created_at") or _now()), "site": str(s["site"]),
           "site_sha256": s.get("site_sha256"), "day": str(s["day"]), "interval_start": None,
           "month": str(s["day"])[:7], "status": str(s.get("status", "")), "mip_gap": s.get("mip_gap"),
           "fallback": int(bool(s.get("fallback"))), "fallback_reason": str(s.get("fallback_reason") or ""),
           "exit_code": int(exit_code), "error": "",
           "output": None if out is None else str(out),
           "output_sha256": results.file_sha256(out) if out is not None and out.exists() else None,
           "hashprice_usd_per_ph_day": s.get("hashprice_usd_per_ph_day"), "scenarios": scenarios,
           "summary_json": json.dumps(s, sort_keys=True, default=str)}
    plan, assets = ([], []) if scenarios else _plan_rows(ds)
    row["plan_rows"] = len(plan)
    with transaction(path) as con:
        run_id = _insert_run(con, row)
        _insert_inputs(con, run_id, s.get("inputs") or {})
        con.executemany(f"INSERT INTO plan VALUES (?, {', '.join('?' * (8 + len(MONEY)))})",
                        [(run_id, *r) for r in plan])
        con.executemany("INSERT INTO plan_assets VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [(run_id, *r) for r in assets])
    return run_id


def record_failure_or_warn(path: str | Path, *, kind: str, site: Site, error: CurtailError,
                           inputs: Callable[[], Mapping[str, Mapping]], day: str | None = None,
                           interval_start: str | None = None) -> None:
    """Record a failed run of a command (its own error is the one the command raises). ``inputs`` is called for
    the input files' digests; files that cannot be read leave the site's alone. A ledger that cannot take the
    record is reported as a :class:`LedgerWarning`, never raised over the command's error."""
    try:
        files = inputs()
    except OSError:
        files = {"site": {"path": site.source, "sha256": site.sha256}}
    try:
        record_failure(path, kind=kind, site=site, error=error, exit_code=error.exit_code, day=day,
                       interval_start=interval_start, inputs=files)
    except CurtailError as again:
        warnings.warn(f"the failed {kind} run could not be recorded in the ledger: {again}", LedgerWarning,
                      stacklevel=3)


def record_failure(path: str | Path, *, kind: str, site: Site, error: BaseException, exit_code: int,
                   day: str | None = None, interval_start: str | None = None,
                   inputs: Mapping[str, Mapping] | None = None) -> int:
    """Record a run that failed (bad input, infeasible, no solution...) with its message and exit code."""
    when = day or (interval_start or "")[:10] or _now()[:10]
    row = {"kind": kind, "created_at": _now(), "site": site.name, "site_sha256": site.sha256, "day": day,
           "interval_start": interval_start, "month": when[:7], "status": "failed", "mip_gap": None, "fallback": 0,
           "fallback_reason": "", "exit_code": int(exit_code), "error": str(error), "output": None,
           "output_sha256": None, "hashprice_usd_per_ph_day": None, "scenarios": 0, "plan_rows": 0,
           "summary_json": "{}"}
    with transaction(path) as con:
        run_id = _insert_run(con, row)
        _insert_inputs(con, run_id, inputs or {})
    return run_id


def record_operate(path: str | Path, payload: Mapping[str, Any], site: Site, *, exit_code: int = 0,
                   sla_shortfall_mw: Mapping[str, float] | None = None) -> int:
    """Record one ``curtail operate`` call in ONE transaction: ``payload`` is the setpoints document
    :func:`optimizer.operating.run_operate` returns (and writes): the run (status, fallback, inputs with sha256),
    each unit's setpoints, and ``previous_interval`` (what each unit really drew in the interval before, at the
    price it settled at) as a realised interval. ``sla_shortfall_mw``: committed MW per cluster NOT delivered in
    that previous interval (measured outages); default none (the real-time layer never sheds committed load).
    A realised interval recorded again (a re-run) replaces the earlier record. Returns the run id."""
    start = str(payload["interval_start"])
    plan = payload.get("plan") or {}
    local = pd.Timestamp(start).tz_convert(site.timezone)
    row = {"kind": "operate", "created_at": str(payload.get("created_at") or _now()), "site": site.name,
           "site_sha256": site.sha256, "day": local.date().isoformat(), "interval_start": start,
           "month": f"{local:%Y-%m}", "status": str(plan.get("status", "")), "mip_gap": None,
           "fallback": int(bool(plan.get("fallback"))), "fallback_reason": str(plan.get("fallback_reason") or ""),
           "exit_code": int(exit_code), "error": "", "output": None, "output_sha256": None,
           "hashprice_usd_per_ph_day": payload.get("hashprice_usd_per_ph_day"), "scenarios": 0, "plan_rows": 0,
           "summary_json": json.dumps(payload, sort_keys=True, default=str)}
    units = list(payload.get("units") or [])
    with transaction(path) as con:
        run_id = _insert_run(con, row)
        _insert_inputs(con, run_id, payload.get("inputs") or {})
        con.executemany("INSERT INTO setpoints VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [
            (run_id, start, u["name"], u.get("strike_usd_per_mwh"), u.get("strike_applies"),
             u["if_price_below_strike"]["mw"], int(u["if_price_below_strike"]["on"]),
             u["if_price_at_or_above_strike"]["mw"], int(u["if_price_at_or_above_strike"]["on"])) for u in units])
        previous = payload.get("previous_interval")
        if previous:
            _insert_realised(con, run_id, site, previous, float(payload.get("hashprice_usd_per_ph_day") or 0.0),
                             dict(sla_shortfall_mw or {}))
    return run_id


def _insert_realised(con: sqlite3.Connection, run_id: int, site: Site, previous: Mapping, hashprice: float,
                     shortfall: Mapping[str, float]) -> None:
    unknown = sorted(set(shortfall) - {g.name for g in site.gpu})
    if unknown:
        raise InputError(f"SLA shortfall for unknown cluster(s) {', '.join(unknown)}", field="sla_shortfall_mw")
    started = set(previous.get("started") or ())
    committed = dict(previous.get("committed_mw") or {})
    rows = []
    for asset in site.asset_names:
        rows.append((str(previous["interval_start"]), asset, site.name, SETTLE_HOURS,
                     float(previous["mw"][asset]), int(bool(previous["on"][asset])), int(asset in started),
                     float(committed.get(asset, 0.0)), float(shortfall.get(asset, 0.0)), hashprice, run_id))
    con.executemany("INSERT OR REPLACE INTO realised VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


def _insert_run(con: sqlite3.Connection, row: Mapping[str, Any]) -> int:
    cols = ", ".join(row)
    cur = con.execute(f"INSERT INTO runs ({cols}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))
    if cur.lastrowid is None:                  # sqlite3 sets it on every INSERT
        raise InternalError("the ledger's INSERT of a run returned no row id")
    return int(cur.lastrowid)


def _insert_inputs(con: sqlite3.Connection, run_id: int, inputs: Mapping[str, Any]) -> None:
    rows = []
    for name, v in inputs.items():
        if isinstance(v, Mapping):
            rows.append((run_id, name, v.get("path"), v.get("sha256")))
    con.executemany("INSERT INTO inputs VALUES (?, ?, ?, ?)", rows)


def _plan_rows(ds) -> tuple[list[tuple], list[tuple]]:
    times = pd.DatetimeIndex(ds["time"].values).tz_localize("UTC")
    stamps = [_iso(t) for t in times]
    dt_h = float(ds.attrs.get("interval_hours", 1.0))
    cols = ["price_usd_per_mwh", "load_mw", "mining_mw", "ai_mw", "sellback_mw", "peak_weight", *MONEY]
    values = np.stack([np.asarray(ds[c].values, dtype=float) for c in cols], axis=1)
    plan = [(stamps[i], dt_h, *map(float, values[i])) for i in range(len(stamps))]
    assets = []
    kinds = dict(zip(ds["asset"].values, ds["asset_kind"].values, strict=True))
    power, on, start = ds["power_mw"].to_numpy(), ds["on"].to_numpy(), ds["start"].to_numpy()
    short = ds["sla_shortfall_mw"].to_numpy()
    committed = {c: ds["committed_mw"].sel(cluster=c).to_numpy() for c in ds["cluster"].values}
    for k, asset in enumerate(ds["asset"].values):
        c = committed.get(asset) if kinds[asset] == "gpu" else None
        for i in range(len(stamps)):
            assets.append((stamps[i], str(asset), float(power[i, k]), int(on[i, k]), int(start[i, k]),
                           0.0 if c is None else float(c[i]), float(short[i, k])))
    return plan, assets


# ----------------------------------------------------------------------------------------------------------------
# what the site did: realised where recorded, else the latest plan of the day


@dataclass(frozen=True)
class Drawn:
    """Per 15-minute interval of a period: what each asset drew (site order), its basis and source run."""

    times: pd.DatetimeIndex          # UTC interval starts
    power_mw: np.ndarray             # (interval, asset)
    on: np.ndarray
    start: np.ndarray
    committed_mw: np.ndarray         # (interval, cluster)
    shortfall_mw: np.ndarray         # (interval, asset): 0 for fleets
    hashprice_usd_per_ph_day: np.ndarray
    basis: np.ndarray                # "operate" | "plan"
    run_id: np.ndarray


def latest_plans(con: sqlite3.Connection, site: str, month: str | None = None) -> pd.DataFrame:
    """The latest successful deterministic schedule run of each operating day (``day``, ``run_id``)."""
    q = ("SELECT day, MAX(run_id) AS run_id FROM runs WHERE site = ? AND kind = 'schedule' AND status != 'failed' "
         "AND scenarios = 0 AND plan_rows > 0" + (" AND month = ?" if month else "") + " GROUP BY day ORDER BY day")
    return pd.read_sql_query(q, con, params=(site, month) if month else (site,))


def drawn(con: sqlite3.Connection, site: Site, month: str | None = None) -> Drawn:
    """What the site drew in every 15-minute interval the ledger knows of (of a local ``month``, YYYY-MM, or all):
    operate's realised intervals where recorded, else the latest plan of the interval's day (each plan hour split
    into its four quarters; a start counts in the first)."""
    names = list(site.asset_names)
    clusters = [g.name for g in site.gpu]
    frames = []
    plans = latest_plans(con, site.name, month)
    if len(plans):
        marks = ",".join("?" * len(plans))
        pa = pd.read_sql_query(f"SELECT a.run_id, a.timestamp, a.asset, a.mw, a.is_on, a.started, a.committed_mw, "
                               f"a.sla_shortfall_mw, p.interval_hours, r.hashprice_usd_per_ph_day FROM plan_assets a "
                               f"JOIN plan p USING (run_id, timestamp) JOIN runs r USING (run_id) "
                               f"WHERE a.run_id IN ({marks})", con, params=[int(x) for x in plans["run_id"]])
        frames.append(_quarters(pa).assign(basis="plan"))
    real = pd.read_sql_query("SELECT run_id, interval_start AS timestamp, asset, mw, is_on, started, committed_mw, "
                             "sla_shortfall_mw, interval_hours, hashprice_usd_per_ph_day FROM realised WHERE site = ?",
                             con, params=(site.name,))
    if len(real):
        real["timestamp"] = pd.to_datetime(real["timestamp"], utc=True, format="ISO8601")
        frames.append(real.assign(basis="operate"))
    if not frames:
        return _empty_drawn(len(names), len(clusters))
    both = pd.concat(frames, ignore_index=True)
    if month:
        local = pd.DatetimeIndex(both["timestamp"]).tz_convert(site.timezone)
        both = both[np.asarray(local.strftime("%Y-%m") == month)]
    if not len(both):
        return _empty_drawn(len(names), len(clusters))
    # operate wins over plan for an interval it recorded
    rank = (both["basis"] == "operate").astype(int)
    both = both[rank == rank.groupby(both["timestamp"]).transform("max")]
    wide = (both.drop_duplicates(["timestamp", "asset"], keep="last").set_index(["timestamp", "asset"])
            [["mw", "is_on", "started", "committed_mw", "sla_shortfall_mw"]].astype(float).unstack("asset"))
    meta = both.groupby("timestamp").agg(basis=("basis", "first"), run_id=("run_id", "first"),
                                         hp=("hashprice_usd_per_ph_day", "first"))
    wide = wide.sort_index()
    meta = meta.reindex(wide.index)

    def grid(name: str, cols: list[str]) -> np.ndarray:
        return wide[name].reindex(columns=cols).fillna(0.0).to_numpy(dtype=float) if cols else np.zeros((len(wide), 0))

    shortfall = grid("sla_shortfall_mw", names)
    return Drawn(pd.DatetimeIndex(wide.index), grid("mw", names), grid("is_on", names), grid("started", names),
                 grid("committed_mw", clusters), shortfall, meta["hp"].fillna(0.0).to_numpy(dtype=float),
                 meta["basis"].to_numpy(), meta["run_id"].to_numpy(dtype=int))


def _quarters(pa: pd.DataFrame) -> pd.DataFrame:
    """Plan rows (hourly or 15-minute) as 15-minute rows (a start in the first quarter only)."""
    pa = pa.copy()
    pa["timestamp"] = pd.to_datetime(pa["timestamp"], utc=True, format="ISO8601")
    parts = []
    n = np.maximum(1, np.round(pa["interval_hours"].to_numpy() / SETTLE_HOURS).astype(int))
    for k in range(int(n.max()) if len(n) else 0):
        sub = pa[n > k].copy()
        sub["timestamp"] = sub["timestamp"] + pd.Timedelta(hours=SETTLE_HOURS * k)
        if k:
            sub["started"] = 0
        parts.append(sub)
    out = pd.concat(parts, ignore_index=True)
    out["interval_hours"] = SETTLE_HOURS
    return out


def _empty_drawn(k: int, c: int) -> Drawn:
    z = np.zeros((0, k))
    return Drawn(pd.DatetimeIndex([], tz="UTC"), z, z, z, np.zeros((0, c)), z, np.zeros(0), np.array([], dtype=object),
                 np.zeros(0, dtype=int))


# ----------------------------------------------------------------------------------------------------------------
# settlement


def settle(path: str | Path, site: Site, rt_prices: pd.Series, *, price_source: str, month: str | None = None) -> int:
    """Settle every interval the ledger knows of (of ``month`` or all) whose real-time price is in ``rt_prices``
    (15-minute USD/MWh on a UTC interval-start index, the site's settlement point): one transaction; an interval
    settled before is settled again (a newer plan or operate record, or a corrected price). Returns the number of
    intervals settled."""
    prices = pd.Series(rt_prices.to_numpy(dtype=float), index=pd.DatetimeIndex(rt_prices.index).tz_convert("UTC"))
    with transaction(path) as con:
        d = drawn(con, site, month)
        if not len(d.times):
            return 0
        price = prices.reindex(d.times).to_numpy()
        known = np.isfinite(price)
        if not known.any():
            return 0
        from optimizer import results

        idx = np.flatnonzero(known)
        ds = results.assemble(site, d.times[idx], price[idx], d.power_mw[idx], d.on[idx], d.start[idx],
                              hashprice_usd_per_ph_day=d.hashprice_usd_per_ph_day[idx], dt_hours=SETTLE_HOURS,
                              shortfall=d.shortfall_mw[idx], committed_mw=d.committed_mw[idx])
        money = {m: np.asarray(ds[m].values, dtype=float) for m in MONEY}
        now = _now()
        rows = []
        for j, i in enumerate(idx):
            rows.append((site.name, _iso(d.times[i]), SETTLE_HOURS, str(d.basis[i]), int(d.run_id[i]), float(price[i]),
                         price_source, float(ds["load_mw"].values[j]), float(ds["mining_mw"].values[j]),
                         float(ds["sellback_mw"].values[j]), *(float(money[m][j]) for m in MONEY), now))
        con.executemany(f"INSERT OR REPLACE INTO settlement VALUES ({', '.join('?' * (11 + len(MONEY)))})", rows)
    return len(rows)


# ----------------------------------------------------------------------------------------------------------------
# the SLA month


def sla_shortfall_before(path: str | Path, site: Site, day: dt.date) -> dict[str, float]:
    """Committed MWh each GPU cluster missed earlier in ``day``'s SLA month (the site's local calendar month),
    before ``day`` starts: realised where recorded, else planned. Clusters with nothing missed are left out; a
    missing ledger means nothing recorded (empty)."""
    if not Path(path).exists() or not site.gpu:
        return {}
    from optimizer.market import local_midnight

    start = local_midnight(day, site.timezone)
    with transaction(path, write=False) as con:
        d = drawn(con, site, f"{day:%Y-%m}")
    before = d.times < start
    n_mining = len(site.mining)
    out = {}
    for j, g in enumerate(site.gpu):
        mwh = float(d.shortfall_mw[before, n_mining + j].sum()) * SETTLE_HOURS
        if mwh > 0:
            out[g.name] = mwh
    return out


@dataclass(frozen=True)
class SlaStatus:
    """One GPU cluster's SLA month so far."""

    cluster: str
    committed_mw: float
    month_hours: float
    missed_mwh: float
    availability: float              # 1 - missed / (committed MW x month hours)
    budget_level: float              # availability below which the first credit tier applies
    budget_minutes: float            # downtime (committed-equivalent) the budget allows in the month
    used_minutes: float
    credit_usd: float                # credit owed for the month so far (tier reached x monthly bill)
    tiers: tuple[tuple[float, float], ...]

    @property
    def left_minutes(self) -> float:
        return self.budget_minutes - self.used_minutes


def sla_status(site: Site, missed_mwh: Mapping[str, float]) -> list[SlaStatus]:
    out = []
    for g in site.gpu:
        if g.committed_mw <= 0:
            continue
        missed = float(missed_mwh.get(g.name, 0.0))
        level = max(level for level, _ in g.sla_credit_tiers) if g.sla_credit_tiers else 1.0
        out.append(SlaStatus(g.name, g.committed_mw, g.sla_month_hours, missed,
                             1.0 - missed / (g.committed_mw * g.sla_month_hours), level,
                             (1.0 - level) * g.sla_month_hours * 60.0, missed / g.committed_mw * 60.0,
                             g.sla_credit_usd(missed), tuple(g.sla_credit_tiers)))
    return out


# ----------------------------------------------------------------------------------------------------------------
# month to date


@dataclass(frozen=True)
class PeakExposure:
    """One of the riskiest intervals so far in a 4CP month."""

    hour: pd.Timestamp               # UTC hour start
    risk: float                      # ERCOT system load (MW) or planned peak probability
    risk_unit: str                   # "MW" (system load) or "probability"
    site_load_mw: float              # NaN: the ledger holds nothing for that hour
    basis: str
    charge_if_peak_usd: float


@dataclass(frozen=True)
class MonthReport:
    """``curtail ledger``: one site's month to date."""

    site: str
    month: str
    runs: dict[str, int]                          # per kind and status
    plan_days: list[str]
    planned: dict[str, float]                     # money parts, MWh, curtailment hours of the latest plans
    planned_on_settled: dict[str, float]          # the same plans on the settled intervals only
    realised: dict[str, float]
    settled_intervals: int
    settled_basis: dict[str, int]
    price_sources: list[str]
    sla: list[SlaStatus]
    sla_basis: str
    fourcp_month: bool
    fourcp_usd_per_mw_peak: float
    exposure: list[PeakExposure] = field(default_factory=list)
    exposure_basis: str = ""


def month_report(path: str | Path, site: Site, month: str, *, system_load: pd.Series | None = None,
                 system_load_source: str = "the store", top: int = 3) -> MonthReport:
    """Month to date of ``site`` in local ``month`` (YYYY-MM): planned vs realised profit and parts (realised:
    settled intervals, see :func:`settle`), sell-back credits, curtailment hours, 4CP exposure (``system_load``:
    hourly ERCOT system load, e.g. from the store; else the plans' peak probabilities rank the hours) and each GPU
    cluster's SLA availability against its budget."""
    _check_month(month)
    with _read(path) as con:
        counts = con.execute("SELECT kind, status, COUNT(*) FROM runs WHERE site = ? AND month = ? "
                             "GROUP BY kind, status", (site.name, month)).fetchall()
        plans = latest_plans(con, site.name, month)
        plan = _plan_table(con, plans)
        settled = pd.read_sql_query("SELECT * FROM settlement WHERE site = ?", con, params=(site.name,))
        d = drawn(con, site, month)
    settled["timestamp"] = pd.to_datetime(settled["interval_start"], utc=True, format="ISO8601")
    settled = settled[_in_month(settled["timestamp"], site, month)]
    mining_cap = sum(f.capacity_mw for f in site.mining)
    planned = _parts(plan, mining_cap)
    on_settled = _parts(_plan_on(plan, pd.DatetimeIndex(settled["timestamp"])), mining_cap)
    realised = _parts(settled, mining_cap)
    n_mining = len(site.mining)
    missed = {g.name: float(d.shortfall_mw[:, n_mining + j].sum()) * SETTLE_HOURS for j, g in enumerate(site.gpu)}
    basis = pd.Series(d.basis).value_counts().to_dict() if len(d.basis) else {}
    fourcp_month = site.fourcp.active and int(month[5:]) in (6, 7, 8, 9)
    exposure, how = (_exposure(site, plan, d, system_load, system_load_source, month, top) if fourcp_month
                     else ([], ""))
    return MonthReport(
        site=site.name, month=month, runs={f"{k} {s}": int(c) for k, s, c in counts},
        plan_days=[str(x) for x in plans["day"]], planned=planned, planned_on_settled=on_settled, realised=realised,
        settled_intervals=len(settled), settled_basis=settled["basis"].value_counts().to_dict(),
        price_sources=sorted(settled["price_source"].unique()), sla=sla_status(site, missed),
        sla_basis=", ".join(f"{v} intervals from {k}" for k, v in sorted(basis.items())) or "nothing recorded",
        fourcp_month=fourcp_month, fourcp_usd_per_mw_peak=site.fourcp.usd_per_mw_peak, exposure=exposure,
        exposure_basis=how)


def _plan_table(con: sqlite3.Connection, plans: pd.DataFrame) -> pd.DataFrame:
    if not len(plans):
        return pd.DataFrame(columns=["timestamp", "interval_hours", "load_mw", "mining_mw", "sellback_mw",
                                     "peak_weight", *MONEY])
    marks = ",".join("?" * len(plans))
    df = pd.read_sql_query(f"SELECT * FROM plan WHERE run_id IN ({marks}) ORDER BY timestamp", con,
                           params=[int(x) for x in plans["run_id"]])
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True, format="ISO8601")
    return df


def _plan_on(plan: pd.DataFrame, quarters: pd.DatetimeIndex) -> pd.DataFrame:
    """The plans' money and energy on exactly the given 15-minute intervals (hourly rows split in four equal
    parts)."""
    if not len(plan) or not len(quarters):
        return plan.iloc[:0]
    q = _quarter_rows(plan)
    return q[q["timestamp"].isin(quarters)]


def _quarter_rows(plan: pd.DataFrame) -> pd.DataFrame:
    parts = []
    n = np.maximum(1, np.round(plan["interval_hours"].to_numpy() / SETTLE_HOURS).astype(int))
    for k in range(int(n.max())):
        sub = plan[n > k].copy()
        share = 1.0 / n[n > k]
        sub["timestamp"] = sub["timestamp"] + pd.Timedelta(hours=SETTLE_HOURS * k)
        for m in MONEY:
            sub[m] = sub[m] * share
        parts.append(sub)
    out = pd.concat(parts, ignore_index=True)
    out["interval_hours"] = SETTLE_HOURS
    return out


def _parts(df: pd.DataFrame, mining_cap_mw: float) -> dict[str, float]:
    """Money parts (USD), energy (MWh) and curtailment hours (mining below its capacity) of plan or settlement
    rows."""
    if not len(df):
        return {}
    h = df["interval_hours"].to_numpy(dtype=float)
    out = {m: float(df[m].sum()) for m in MONEY}
    out["load_mwh"] = float((df["load_mw"] * h).sum())
    out["mining_mwh"] = float((df["mining_mw"] * h).sum())
    out["sellback_mwh"] = float((df["sellback_mw"] * h).sum())
    out["curtailment_hours"] = float(h[(df["mining_mw"] < mining_cap_mw - 1e-6).to_numpy()].sum())
    out["hours"] = float(h.sum())
    return out


def _exposure(site: Site, plan: pd.DataFrame, d: Drawn, system_load: pd.Series | None, load_source: str,
              month: str, top: int) -> tuple[list[PeakExposure], str]:
    """The ``top`` riskiest hours of the month so far (highest ERCOT system load; without any for the month, highest
    planned peak probability) and the site's load in each (hourly mean of what it drew; NaN where nothing is
    recorded)."""
    load = pd.Series(d.power_mw.sum(axis=1), index=d.times)
    hourly = load.groupby(load.index.floor("h")).mean()
    basis = pd.Series(d.basis, index=d.times).groupby(d.times.floor("h")).agg(lambda b: ",".join(sorted(set(b))))
    risk, unit, how = None, "MW", ""
    if system_load is not None and len(system_load):
        s = system_load.copy()
        s.index = pd.DatetimeIndex(s.index).tz_convert("UTC")
        s = s[_in_month(pd.Series(s.index), site, month).to_numpy()]
        if len(hourly):
            s = s[s.index <= hourly.index.max()]           # so far: up to the last interval the ledger knows
        if len(s):
            risk, how = s, f"hours of highest ERCOT system load so far, from {load_source}"
    if risk is None:
        if not len(plan):
            return [], "no system load for the month and no plan"
        p = plan.set_index("timestamp")["peak_weight"]
        risk, unit = p[p > 0], "probability"
        how = "hours of highest planned 4CP probability (no ERCOT system load for the month)"
    risk = risk.sort_values(ascending=False).head(top)
    per_mw = site.fourcp.usd_per_mw_peak
    out = []
    for t, v in risk.items():
        mw = float(hourly.get(t, np.nan))
        out.append(PeakExposure(t, float(v), unit, mw, str(basis.get(t, "not recorded")), mw * per_mw))
    return out, how


def _in_month(times: pd.Series, site: Site, month: str) -> pd.Series:
    if not len(times):
        return pd.Series([], dtype=bool)
    local = pd.DatetimeIndex(times).tz_convert(site.timezone)
    return pd.Series(np.asarray(local.strftime("%Y-%m") == month), index=times.index)


def _check_month(month: str) -> None:
    try:
        dt.datetime.strptime(month, "%Y-%m")
    except ValueError:
        raise InputError(f"{month!r} is not a month (expected YYYY-MM)", field="--month") from None


def runs(path: str | Path, site: str | None = None) -> pd.DataFrame:
    """Every recorded run (newest last): id, kind, day or interval, status, gap, fallback, exit code, output."""
    with _read(path) as con:
        q = ("SELECT run_id, kind, created_at, site, day, interval_start, status, mip_gap, fallback, "
             "fallback_reason, exit_code, error, output, output_sha256, plan_rows FROM runs")
        return pd.read_sql_query(q + (" WHERE site = ?" if site else "") + " ORDER BY run_id", con,
                                 params=(site,) if site else ())


def integrity(path: str | Path) -> str:
    """``PRAGMA integrity_check`` of the ledger (``"ok"`` when consistent)."""
    con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS)
    try:
        return "; ".join(r[0] for r in con.execute("PRAGMA integrity_check").fetchall())
    finally:
        con.close()


def _now() -> str:
    from optimizer.nightly import created_at

    return created_at()


def _iso(t: pd.Timestamp) -> str:
    return pd.Timestamp(t).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


class LedgerWarning(UserWarning):
    """The ledger could not record something that does not stop the run (a failed run's record)."""
