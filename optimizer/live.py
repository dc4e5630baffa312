"""Live ERCOT market data through gridstatus, kept in a local store of Parquet files in the shipped schema.

The shipped data ends in 2024. ``curtail data update`` (``pip install "curtail[live]"`` adds gridstatus) fetches
newer data with **gridstatus** (``gridstatus.Ercot``), the Python package ERCOT analysts use, converts each
gridstatus table to the schema of the matching shipped file and appends it to the store:

| ``--what`` | gridstatus call (``gridstatus.Ercot``) | store folder: columns (UTC interval starts) |
|---|---|---|
| ``rt`` | ``get_spp(date, end, market="REAL_TIME_15_MIN", locations=[location])``; ``--archive``: ``get_rtm_spp(year)`` | ``rt/``: ``interval_start_utc``, one column per settlement point (as ``ercot_rt_15min.parquet``) |
| ``dam`` | ``get_spp(..., market="DAY_AHEAD_HOURLY", ...)``; ``--archive``: ``get_dam_spp(year)`` | ``dam/``: ``timestamp_utc``, ``settlement_point``, ``price_usd_per_mwh`` (as ``ercot_da_hourly.parquet``) |
| ``load`` | ``get_load(date, end)`` (ERCOT keeps 14 days); ``--archive``: ``get_hourly_load_post_settlements(date)`` | ``load/``: ``timestamp_utc``, ``ercot_native_load_mw`` (hourly means) |
| ``load-forecast`` | ``get_load_forecast(date, end)``: every hourly vintage published in the window | ``load_forecast/``: ``timestamp_utc``, ``published_utc``, ``da_demand_forecast_mw`` (all vintages) |
| ``as`` | ``get_as_prices(date, end)`` | ``as/``: ``timestamp_utc``, ``regup``, ``regdn``, ``rrs``, ``nspin``, ``ecrs`` |

**The store** is a folder (default :func:`default_store`: ``$CURTAIL_STORE``, else
``$XDG_DATA_HOME/curtail/market``, else ``~/.local/share/curtail/market``) with one Parquet file per dataset and UTC
month (``rt/2026-11.parquet``). An update merges its rows into each month file and rewrites it through a temporary
file and a rename (:func:`optimizer.results.atomic_path`) under the store's lock: appending the same data twice
changes nothing (rows are keyed by time, and settlement point or publication time; a newer download of a row replaces
the older, e.g. an ERCOT price correction), and a run killed at any moment leaves every month file either as it was
or fully updated (months already written by the killed run stay). Leftover temporary files of a killed run are
removed by the next update.

**Readers** (:class:`Store`) return the shipped loaders' shapes (float Series on a UTC interval-start index named
``timestamp``). :func:`prices_for` and :func:`history` are what ``schedule``, ``backtest`` and ``operate`` call:
they use the store when it covers the period and the shipped data otherwise, and always say which (``source``).

Without gridstatus, or offline, :func:`fetch` raises :class:`~optimizer.errors.InputError` (exit 2) naming what to
install or what failed. Nothing here imports gridstatus at module import.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from optimizer.errors import InputError

#: The gridstatus release the adapter is written against (the ``live`` extra pins it).
GRIDSTATUS_VERSION = "0.37.0"
INSTALL_HINT = f'pip install "curtail[live]" (gridstatus=={GRIDSTATUS_VERSION})'
#: ``--what`` choices and their store folders.
WHAT = {"rt": "rt", "dam": "dam", "load": "load", "load-forecast": "load_forecast", "as": "as"}
#: gridstatus's ancillary-service column names -> the shipped file's.
AS_COLUMNS = {"Regulation Up": "regup", "Regulation Down": "regdn", "Responsive Reserves": "rrs",
              "Non-Spinning Reserves": "nspin", "ERCOT Contingency Reserve Service": "ecrs"}
_TIME = {"rt": "interval_start_utc", "dam": "timestamp_utc", "load": "timestamp_utc",
         "load_forecast": "timestamp_utc", "as": "timestamp_utc"}
_KEYS = {"dam": ("timestamp_utc", "settlement_point"), "load_forecast": ("timestamp_utc", "published_utc")}
_WIDE = ("rt", "load", "as")
_STEP = {"rt": pd.Timedelta(minutes=15), "dam": pd.Timedelta(hours=1), "load": pd.Timedelta(hours=1),
         "load_forecast": pd.Timedelta(hours=1), "as": pd.Timedelta(hours=1)}


def default_store() -> Path:
    """The user's store folder: ``$CURTAIL_STORE``, else ``$XDG_DATA_HOME/curtail/market``, else
    ``~/.local/share/curtail/market``."""
    if os.environ.get("CURTAIL_STORE"):
        return Path(os.environ["CURTAIL_STORE"])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "curtail" / "market"


# ----------------------------------------------------------------------------------------------------------------
# the store


@dataclass(frozen=True)
class Appended:
    """What one append did: rows given, rows new to the store, stored rows whose value changed, files written."""

    dataset: str
    rows: int
    new: int
    replaced: int
    files: tuple[str, ...]


class Store:
    """A folder of Parquet files in the shipped schema, one per dataset and UTC month."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # -- writing -----------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the store ({exc.strerror})", source=str(self.root)) from None
        fd = os.open(self.root / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            for stale in self.root.glob("*/.*.tmp"):        # a killed update's temporary files
                stale.unlink(missing_ok=True)
            yield
        finally:
            os.close(fd)

    def append(self, dataset: str, frame: pd.DataFrame) -> Appended:
        """Merge ``frame`` (the dataset's store schema, e.g. from :func:`from_gridstatus`) into the store, one
        month file at a time, each replaced atomically. Idempotent; a newer row replaces a stored one."""
        from optimizer import results

        _check_dataset(dataset)
        frame = _validated(dataset, frame)
        folder = self.root / dataset
        new = replaced = 0
        files = []
        with self._locked():
            folder.mkdir(exist_ok=True)
            month = frame[_TIME[dataset]].dt.strftime("%Y-%m")
            for key, part in frame.groupby(month.to_numpy()):
                path = folder / f"{key}.parquet"
                old = pd.read_parquet(path) if path.exists() else None
                merged, n_new, n_replaced = _merge(dataset, old, part)
                new, replaced = new + n_new, replaced + n_replaced
                try:
                    with results.atomic_path(path) as tmp:
                        merged.to_parquet(tmp, index=False)
                except OSError as exc:
                    raise results.output_error(exc, path) from None
                files.append(str(path))
        return Appended(dataset, len(frame), new, replaced, tuple(files))

    # -- reading -----------------------------------------------------------------------------------------------

    def read(self, dataset: str) -> pd.DataFrame:
        """Every stored row of a dataset (empty frame with the schema's time column when nothing is stored)."""
        _check_dataset(dataset)
        files = sorted((self.root / dataset).glob("[0-9][0-9][0-9][0-9]-[0-9][0-9].parquet"))
        if not files:
            return pd.DataFrame({_TIME[dataset]: pd.DatetimeIndex([], tz="UTC")})
        try:
            df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        except Exception as exc:  # noqa: BLE001 - any reader failure is a damaged store file
            raise InputError(f"cannot read the store ({type(exc).__name__}: {exc})",
                             source=str(self.root / dataset)) from None
        return df.sort_values(list(_KEYS.get(dataset, (_TIME[dataset],)))).reset_index(drop=True)

    def rt_prices(self, location: str, resolution: str = "15min") -> pd.Series:
        """Real-time SPP at ``location`` (USD/MWh): ``15min``, or ``1h`` (mean of an hour's four intervals; only
        complete hours). Empty when the store holds none."""
        df = self.read("rt")
        if location not in df.columns:
            return _series([], [], "price_usd_per_mwh")
        s = pd.Series(df[location].to_numpy(dtype=float), index=pd.DatetimeIndex(df["interval_start_utc"])).dropna()
        if resolution == "1h":
            g = s.groupby(s.index.floor("h"))
            s = g.mean()[g.count() == 4]
        elif resolution != "15min":
            raise InputError(f"resolution must be 15min or 1h, got {resolution!r}", field="resolution")
        return _series(s.index, s.to_numpy(), "price_usd_per_mwh")

    def da_prices(self, location: str) -> pd.Series:
        """Day-ahead SPP at ``location`` (USD/MWh, hourly)."""
        df = self.read("dam")
        if "settlement_point" not in df.columns:
            return _series([], [], "price_usd_per_mwh")
        df = df[df["settlement_point"].astype(str) == location]
        return _series(df["timestamp_utc"], df["price_usd_per_mwh"], "price_usd_per_mwh")

    def load(self) -> pd.Series:
        """ERCOT system load (MW, hourly means)."""
        df = self.read("load")
        return _series(df["timestamp_utc"], df.get("ercot_native_load_mw", []), "load_mw")

    def load_forecast(self, timezone: str = "America/Chicago", decision_hour_local: int | None = None) -> pd.Series:
        """ERCOT's system load forecast (MW), one value per hour: of the vintages stored for an hour, the latest
        published at or before the nightly decision for its local day (``decision_hour_local`` on the day before;
        default :data:`optimizer.market.DEFAULT_DECISION_HOUR_LOCAL`), else the earliest published after it.
        ``attrs["published"]``: the chosen vintage's publication time per hour (what
        :class:`optimizer.forecast.MarketHistory` takes as ``load_forecast_published``)."""
        from optimizer import market

        hour = market.DEFAULT_DECISION_HOUR_LOCAL if decision_hour_local is None else decision_hour_local
        df = self.read("load_forecast")
        if not len(df):
            s = _series([], [], "load_forecast_mw")
            s.attrs["published"] = pd.Series([], index=s.index, dtype="datetime64[ns, UTC]")
            return s
        t = pd.DatetimeIndex(df["timestamp_utc"])
        local_day = t.tz_convert(timezone).normalize().tz_localize(None)
        decision = (local_day - pd.Timedelta(days=1) + pd.Timedelta(hours=hour)).tz_localize(
            timezone, ambiguous="NaT", nonexistent="shift_forward").tz_convert("UTC")
        df = df.assign(_late=np.asarray(pd.DatetimeIndex(df["published_utc"]) > decision))
        # before the decision: latest first; after it: earliest first
        df["_order"] = np.where(df["_late"], pd.DatetimeIndex(df["published_utc"]).asi8,
                                -pd.DatetimeIndex(df["published_utc"]).asi8)
        best = df.sort_values(["timestamp_utc", "_late", "_order"]).groupby("timestamp_utc", sort=True).head(1)
        s = _series(best["timestamp_utc"], best["da_demand_forecast_mw"], "load_forecast_mw")
        s.attrs["published"] = pd.Series(pd.DatetimeIndex(best["published_utc"]).tz_convert("UTC"), index=s.index,
                                         name="published")
        return s

    def as_prices(self, service: str) -> pd.Series:
        """Day-ahead ancillary-service clearing price of ``service`` (USD/MW-h, hourly)."""
        if service not in AS_COLUMNS.values():
            raise InputError(f"unknown service {service!r}; one of {', '.join(AS_COLUMNS.values())}", field="service")
        df = self.read("as")
        return _series(df["timestamp_utc"], df.get(service, []), f"{service}_usd_per_mw_hour")

    def coverage(self) -> dict[str, str]:
        """Per dataset, the stored span (first .. last interval start, UTC) and row count; for ``rt`` and ``dam``
        per settlement point."""
        out = {}
        for dataset in WHAT.values():
            df = self.read(dataset)
            if not len(df):
                continue
            t = pd.DatetimeIndex(df[_TIME[dataset]])
            span = f"{t.min():%Y-%m-%d %H:%M} .. {t.max():%Y-%m-%d %H:%M} UTC, {len(df):,} rows"
            if dataset == "rt":
                span += f" ({', '.join(c for c in df.columns if c != 'interval_start_utc')})"
            if dataset == "dam":
                span += f" ({', '.join(sorted(df['settlement_point'].astype(str).unique()))})"
            out[dataset] = span
        return out


def _check_dataset(dataset: str) -> None:
    if dataset not in WHAT.values():
        raise InputError(f"unknown dataset {dataset!r}; one of {', '.join(WHAT.values())}", field="dataset")


def _series(index: Any, values: Any, name: str) -> pd.Series:
    idx = pd.DatetimeIndex(index)
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    s = pd.Series(np.asarray(values, dtype=float), index=idx, name=name).sort_index()
    s.index.name = "timestamp"
    return s


def _validated(dataset: str, frame: pd.DataFrame) -> pd.DataFrame:
    """A frame in the dataset's store schema: UTC times on the dataset's grid, keys unique, values finite."""
    tcol = _TIME[dataset]
    if tcol not in frame.columns:
        raise InputError(f"missing column {tcol}", field=dataset)
    frame = frame.copy()
    t = pd.DatetimeIndex(frame[tcol])
    if t.tz is None:
        raise InputError(f"{tcol} has no time zone", field=dataset)
    frame[tcol] = t.tz_convert("UTC").as_unit("us")
    if "published_utc" in frame.columns:
        frame["published_utc"] = pd.DatetimeIndex(frame["published_utc"]).tz_convert("UTC").as_unit("us")
    off = frame[tcol] != frame[tcol].dt.floor(_STEP[dataset])
    if off.any():
        raise InputError(f"{frame[tcol][off].iloc[0].isoformat()} is not on the {_STEP[dataset]} grid", field=dataset)
    keys = list(_KEYS.get(dataset, (tcol,)))
    dup = frame.duplicated(keys)
    if dup.any():
        raise InputError(f"row for {frame.loc[dup, keys].iloc[0].to_dict()} appears twice", field=dataset)
    values = [c for c in frame.columns if c not in (*keys, "settlement_point")]
    for c in values:
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
    if dataset not in ("as", "rt") and frame[values].isna().any().any():
        raise InputError("a value is missing or not a number", field=dataset)
    if "settlement_point" in frame.columns:
        frame["settlement_point"] = frame["settlement_point"].astype(str)
    return frame.sort_values(keys).reset_index(drop=True)


def _merge(dataset: str, old: pd.DataFrame | None, new: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """(merged month, rows new to it, stored rows whose value changed: e.g. an ERCOT price correction). A row given
    again with the same values changes nothing."""
    tcol = _TIME[dataset]
    if old is None or not len(old):
        return new, len(new), 0
    if dataset in _WIDE:
        o, n = old.set_index(tcol), new.set_index(tcol)
        both = o.index.intersection(n.index)
        cols = [c for c in n.columns if c in o.columns]
        a, b = o.loc[both, cols], n.loc[both, cols]
        changed = int((b.notna() & ~((a == b) | (a.isna() & b.isna()))).any(axis=1).sum()) if cols else 0
        new_rows = len(n.index.difference(o.index))
        merged = n.combine_first(o)[[*o.columns, *(c for c in n.columns if c not in o.columns)]]
        merged.index.name = tcol
        return merged.reset_index().sort_values(tcol).reset_index(drop=True), new_rows, changed
    keys = list(_KEYS[dataset])
    values = [c for c in new.columns if c not in keys]
    o, n = old.set_index(keys), new.set_index(keys)
    both = n.index.intersection(o.index)
    changed = int((~(o.loc[both, values] == n.loc[both, values])).any(axis=1).sum()) if len(both) else 0
    merged = pd.concat([old, new], ignore_index=True).drop_duplicates(keys, keep="last")
    return merged.sort_values(keys).reset_index(drop=True), len(new) - len(both), changed


# ----------------------------------------------------------------------------------------------------------------
# gridstatus tables -> the store's schema (pure functions: tested on recorded gridstatus-shaped fixtures)


def _need(df: pd.DataFrame, cols: tuple[str, ...], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InputError(f"gridstatus returned no column(s) {', '.join(missing)} for {what} (columns: "
                         f"{', '.join(map(str, df.columns))}); is gridstatus=={GRIDSTATUS_VERSION} installed?",
                         field=what)


def _utc(col: pd.Series, what: str) -> pd.DatetimeIndex:
    t = pd.DatetimeIndex(col)
    if t.tz is None:
        raise InputError("gridstatus returned times without a time zone", field=what)
    return t.tz_convert("UTC")


def from_gridstatus(what: str, df: pd.DataFrame, location: str | None = None) -> pd.DataFrame:
    """Convert a gridstatus ``Ercot`` table (columns exactly as gridstatus produces them) to the store schema of
    ``what`` (a ``--what`` choice). ``location``: the settlement point kept for ``rt`` / ``dam``."""
    if what not in WHAT:
        raise InputError(f"--what must be one of {', '.join(WHAT)}, got {what!r}", field="--what")
    if what in ("rt", "dam"):
        if not location:
            raise InputError(f"--what {what} needs --location (a settlement point, e.g. HB_WEST)", field="--location")
        _need(df, ("Interval Start", "Location", "SPP"), what)
        market = "REAL_TIME_15_MIN" if what == "rt" else "DAY_AHEAD_HOURLY"
        if "Market" in df.columns and len(df) and not (df["Market"].astype(str) == market).all():
            raise InputError(f"gridstatus returned {sorted(df['Market'].astype(str).unique())} rows, expected "
                             f"{market}", field=what)
        df = df[df["Location"].astype(str) == location]
        t = _utc(df["Interval Start"], what)
        if what == "rt":
            return pd.DataFrame({"interval_start_utc": t, location: df["SPP"].to_numpy(dtype=float)})
        return pd.DataFrame({"timestamp_utc": t, "settlement_point": location,
                             "price_usd_per_mwh": df["SPP"].to_numpy(dtype=float)})
    if what == "load":
        col = "Load" if "Load" in df.columns else "ERCOT"
        _need(df, ("Interval Start", col), what)
        s = pd.Series(df[col].to_numpy(dtype=float), index=_utc(df["Interval Start"], what)).dropna()
        return _hourly_load(s)
    if what == "load-forecast":
        _need(df, ("Interval Start", "Publish Time", "System Total"), what)
        return pd.DataFrame({"timestamp_utc": _utc(df["Interval Start"], what),
                             "published_utc": _utc(df["Publish Time"], what),
                             "da_demand_forecast_mw": df["System Total"].to_numpy(dtype=float)})
    _need(df, ("Interval Start", *AS_COLUMNS), what)
    out = pd.DataFrame({"timestamp_utc": _utc(df["Interval Start"], what)})
    for theirs, ours in AS_COLUMNS.items():
        out[ours] = pd.to_numeric(df[theirs], errors="coerce").to_numpy(dtype=float)
    return out


def _hourly_load(s: pd.Series) -> pd.DataFrame:
    """Hourly means of a load series (hourly already, or 5-minute for today): only complete hours."""
    s = s.sort_index()
    step = s.index.to_series().diff().min() if len(s) > 1 else pd.Timedelta(hours=1)
    per_hour = max(1, round(pd.Timedelta(hours=1) / step)) if pd.notna(step) and step > pd.Timedelta(0) else 1
    g = s.groupby(s.index.floor("h"))
    hourly = g.mean()[g.count() == per_hour]
    return pd.DataFrame({"timestamp_utc": hourly.index, "ercot_native_load_mw": hourly.to_numpy()})


# ----------------------------------------------------------------------------------------------------------------
# fetching through gridstatus


def client() -> Any:
    """A ``gridstatus.Ercot`` (gridstatus is imported here, not at module import); not installed:
    :class:`~optimizer.errors.InputError` naming what to install."""
    try:
        import gridstatus
    except ImportError:
        raise InputError(f"live data needs gridstatus, which is not installed: {INSTALL_HINT}",
                         field="gridstatus") from None
    return gridstatus.Ercot()


def _call(what: str, label: str, fn: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    try:
        return fn()
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - the network and ERCOT's site fail in many ways; each is named
        raise InputError(f"fetching {label} through gridstatus failed ({type(exc).__name__}: {exc}); offline, or "
                         "ERCOT no longer keeps these days online (try --archive for whole past years)",
                         field=f"--what {what}") from None


def fetch(what: str, start: dt.date, end: dt.date, *, location: str | None = None, ercot: Any = None,
          archive: bool = False) -> pd.DataFrame:
    """Fetch local days ``start`` .. ``end`` (inclusive, ERCOT's local time) of ``what`` through gridstatus and
    return it in the store schema. For ``load-forecast`` the days are those the vintages were PUBLISHED in.
    ``archive``: ERCOT's yearly files (``rt``, ``dam``, ``load``; whole years, then cut to the days). ``ercot``:
    a ``gridstatus.Ercot`` (default: :func:`client`)."""
    if end < start:
        raise InputError(f"--end {end} is before --start {start}", field="--end")
    if what not in WHAT:
        raise InputError(f"--what must be one of {', '.join(WHAT)}, got {what!r}", field="--what")
    if archive and what not in ("rt", "dam", "load"):
        raise InputError("--archive is for rt, dam and load (ERCOT's yearly files)", field="--archive")
    if what in ("rt", "dam") and not location:
        raise InputError(f"--what {what} needs --location (a settlement point, e.g. HB_WEST)", field="--location")
    ercot = ercot if ercot is not None else client()
    tz = "US/Central"
    lo = pd.Timestamp(start).tz_localize(tz)
    hi = pd.Timestamp(end + dt.timedelta(days=1)).tz_localize(tz)
    label = f"{what} {start} .. {end}" + (f" at {location}" if location else "")
    if archive:
        getter = {"rt": lambda y: ercot.get_rtm_spp(year=y), "dam": lambda y: ercot.get_dam_spp(year=y),
                  "load": lambda y: ercot.get_hourly_load_post_settlements(date=f"{y}-01-01")}[what]
        raw = pd.concat([_call(what, label, functools.partial(getter, y)) for y in range(start.year, end.year + 1)],
                        ignore_index=True)
    elif what in ("rt", "dam"):
        market = "REAL_TIME_15_MIN" if what == "rt" else "DAY_AHEAD_HOURLY"
        raw = _call(what, label, lambda: ercot.get_spp(date=lo, end=hi, market=market, locations=[location]))
    elif what == "load":
        raw = _call(what, label, lambda: ercot.get_load(date=lo, end=hi))
    elif what == "load-forecast":
        raw = _call(what, label, lambda: ercot.get_load_forecast(date=lo, end=hi))
    else:
        raw = _call(what, label, lambda: ercot.get_as_prices(date=lo, end=hi))
    out = from_gridstatus(what, raw, location)
    tcol = "published_utc" if what == "load-forecast" else _TIME[WHAT[what]]
    keep = (out[tcol] >= lo.tz_convert("UTC")) & (out[tcol] < hi.tz_convert("UTC"))
    return out[keep.to_numpy()].reset_index(drop=True)


def months(start: dt.date, end: dt.date) -> list[tuple[dt.date, dt.date]]:
    """``start`` .. ``end`` cut at local month ends: the chunks an update fetches and stores one by one."""
    out, a = [], start
    while a <= end:
        nxt = (pd.Timestamp(a) + pd.offsets.MonthBegin(1)).date()
        b = min(end, nxt - dt.timedelta(days=1))
        out.append((a, b))
        a = nxt
    return out


def update(what: str, start: dt.date, end: dt.date, store: Store, *, location: str | None = None,
           ercot: Any = None, archive: bool = False,
           progress: Callable[[dt.date, dt.date], None] | None = None) -> list[Appended]:
    """``curtail data update``: fetch ``what`` for local days ``start`` .. ``end`` month by month and append each
    month to ``store`` as soon as it is fetched (a killed update keeps the months already stored). ``progress``
    is called after each month. With ``archive``, the yearly file is fetched once per year."""
    ercot = ercot if ercot is not None else client()
    chunks = [(start, end)] if archive else months(start, end)
    out = []
    for a, b in chunks:
        frame = fetch(what, a, b, location=location, ercot=ercot, archive=archive)
        if len(frame):
            out.append(store.append(WHAT[what], frame))
        if progress:
            progress(a, b)
    return out


# ----------------------------------------------------------------------------------------------------------------
# readers for schedule, backtest and operate: the store where it covers, else shipped, and which


@dataclass(frozen=True)
class Sourced:
    """A series and where it came from (printed by the commands)."""

    series: pd.Series
    source: str


def prices_for(settlement_point: str, market: str, start: pd.Timestamp, end: pd.Timestamp, *,
               store: Store | None = None, resolution: str = "1h") -> Sourced:
    """Prices (``market`` ``rt`` or ``da``) at ``settlement_point`` over ``[start, end)`` (UTC): from the store
    when it holds every interval of the period, else the shipped data when it does, else an
    :class:`~optimizer.errors.InputError` saying what each covers and the ``curtail data update`` to run."""
    from optimizer import data

    step = pd.Timedelta(minutes=15) if resolution == "15min" else pd.Timedelta(hours=1)
    want = pd.date_range(pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC"), freq=step,
                         inclusive="left")
    label = {"rt": "real-time", "da": "day-ahead"}[market]
    spans = []
    if store is not None:
        s = store.rt_prices(settlement_point, resolution) if market == "rt" else store.da_prices(settlement_point)
        if want.isin(s.index).all():
            return Sourced(s.reindex(want), f"ERCOT {label} {settlement_point} (store {store.root}, gridstatus)")
        spans.append(f"store {store.root}: {_span(s)}")
    try:
        shipped = data.ercot_prices(settlement_point, market, resolution)
    except InputError:
        shipped = None
    if shipped is not None and want.isin(shipped.index).all():
        return Sourced(shipped.reindex(want), f"ERCOT {label} {settlement_point} (shipped)")
    spans.append(f"shipped: {_span(shipped) if shipped is not None else 'none at this point'}")
    what = "rt" if market == "rt" else "dam"
    raise InputError(f"no {label} prices at {settlement_point} cover {want[0].isoformat()} .. "
                     f"{(want[-1] + step).isoformat()} ({'; '.join(spans)}); run curtail data update --what {what} "
                     f"--location {settlement_point} --start ... --end ...", field="prices")


def _span(s: pd.Series) -> str:
    return "nothing" if not len(s) else f"{s.index.min():%Y-%m-%d %H:%M} .. {s.index.max():%Y-%m-%d %H:%M} UTC"


def history(settlement_point: str, store: Store | None = None) -> tuple[Any, str]:
    """The :class:`optimizer.forecast.MarketHistory` of ``settlement_point``: the shipped series with the store's
    merged over them (the store wins where both hold an hour; the load forecast's publication times kept), and a
    sentence saying which parts came from where."""
    from optimizer import forecast

    shipped = forecast.MarketHistory.shipped(settlement_point)
    if store is None:
        return shipped, "shipped ERCOT data"
    parts = {"rt": (store.rt_prices(settlement_point, "1h"), shipped.rt),
             "da": (store.da_prices(settlement_point), shipped.da),
             "load": (store.load(), shipped.load)}
    merged, said = {}, []
    for name, (mine, theirs) in parts.items():
        merged[name] = mine.combine_first(theirs) if theirs is not None and len(mine) else (
            theirs if theirs is not None else (mine if len(mine) else None))
        if len(mine):
            said.append(f"{name} {_span(mine)}")
    fc = store.load_forecast(shipped.timezone)
    published = None
    if len(fc):
        base = shipped.load_forecast
        pub_rule = forecast_published_rule(base.index, shipped.timezone) if base is not None else None
        merged_fc = fc.combine_first(base) if base is not None else fc
        published = fc.attrs["published"].combine_first(pub_rule) if pub_rule is not None else fc.attrs["published"]
        published = published.reindex(merged_fc.index)
        said.append(f"load forecast {_span(fc)}")
    else:
        merged_fc = shipped.load_forecast
    h = forecast.MarketHistory(rt=merged["rt"], da=merged["da"], load_forecast=merged_fc, load=merged["load"],
                               timezone=shipped.timezone, load_forecast_published=published)
    source = ("shipped ERCOT data" + (f", with the store {store.root} over it ({'; '.join(said)})" if said else
                                      f" (the store {store.root} holds nothing for {settlement_point})"))
    return h, source


def forecast_published_rule(index: pd.DatetimeIndex, timezone: str) -> pd.Series:
    """Publication times of a vintage-less load forecast by the documented rule (the forecast of local day D is
    known from :data:`optimizer.market.LOAD_FORECAST_PUBLICATION_LOCAL` on D-1)."""
    from optimizer import market

    local = pd.DatetimeIndex(index).tz_convert(timezone).normalize().tz_localize(None)
    at = market.LOAD_FORECAST_PUBLICATION_LOCAL
    t = (local - pd.Timedelta(days=1) + pd.Timedelta(hours=at.hour, minutes=at.minute)).tz_localize(
        timezone, ambiguous="NaT", nonexistent="shift_forward").tz_convert("UTC")
    return pd.Series(t, index=index, name="published")


def day_prices(site: Any, day: dt.date, lookahead_hours: int, store: Store) -> tuple[pd.Series, int] | None:
    """The store's prices for an operating day and as much of its lookahead as it holds without a gap, as
    ``curtail schedule`` uses shipped data (day-ahead where it covers the day, else real-time): (hourly prices with
    ``attrs["source"]``, lookahead hours kept); ``None`` when the store does not cover the operating day (then the
    shipped data applies, and says so)."""
    from optimizer import market as mk

    hours = mk.operating_hours(day, site.timezone)
    full = pd.date_range(hours[0], periods=len(hours) + lookahead_hours, freq="1h")
    for market, s in (("day-ahead", store.da_prices(site.settlement_point)),
                      ("real-time", store.rt_prices(site.settlement_point, "1h"))):
        if not hours.isin(s.index).all():
            continue
        n = int(s.reindex(full).notna().cumprod().sum())
        la = n - len(hours)
        out = s.reindex(full[:n]).rename("price_usd_per_mwh")
        note = "" if la == lookahead_hours else f", lookahead cut to {la} h where the store ends"
        out.attrs["source"] = f"ERCOT {market} {site.settlement_point} (store {store.root}, gridstatus){note}"
        return out, la
    return None
