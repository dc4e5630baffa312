"""Market data: the real ERCOT and Bitcoin series shipped with curtail, and users' own price files.

Every loader returns tz-aware UTC-indexed pandas objects (interval start). The shipped files live in the
repository's ``data/`` folder and are packaged into the wheel, so they work after a plain ``pip install .``.
"""

from __future__ import annotations

import datetime as dt
import functools
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from optimizer.errors import InputError

#: Sanity range for a price (USD/MWh): outside it a value is an error, not a market price.
PRICE_SANE_RANGE = (-10_000.0, 20_000.0)
#: ERCOT's offer floor and caps (USD/MWh): -250; 9,000 until 2021-12-31, 5,000 since 2022-01-01. Settlement
#: prices can sit slightly outside with adders, so values outside only warn.
ERCOT_FLOOR = -250.0
ERCOT_CAP_CHANGE = pd.Timestamp("2022-01-01T06:00:00Z")      # local midnight, America/Chicago
ERCOT_CAPS = (9_000.0, 5_000.0)
#: Beyond this many days between the latest known hashprice and the operating day, the value is stale.
HASHPRICE_STALE_DAYS = 7


class PriceWarning(UserWarning):
    """A price is plausible but outside the market's caps (the run goes on; the CLI prints it)."""


def resource_dir(name: str) -> Path:
    """Folder of shipped resources (``data`` or ``models``): inside the installed wheel, else the repo."""
    embedded = resources.files("optimizer") / "_embedded" / name
    if embedded.is_dir():
        return Path(str(embedded))
    repo = Path(__file__).resolve().parent.parent / name
    if repo.is_dir():
        return repo
    raise FileNotFoundError(f"shipped {name!r} folder not found (looked in {embedded} and {repo})")


def default_site_path() -> Path:
    """The embedded default site model."""
    return resource_dir("models") / "west-texas-200.toml"


@functools.cache
def _rt_hourly() -> pd.DataFrame:
    return pd.read_parquet(resource_dir("data") / "ercot_rt_hourly.parquet").set_index("timestamp_utc")


@functools.cache
def _rt_15min() -> pd.DataFrame:
    return pd.read_parquet(resource_dir("data") / "ercot_rt_15min.parquet").set_index("interval_start_utc")


@functools.cache
def _da_hourly() -> pd.DataFrame:
    df = pd.read_parquet(resource_dir("data") / "ercot_da_hourly.parquet")
    return df.pivot(index="timestamp_utc", columns="settlement_point", values="price_usd_per_mwh")


#: ERCOT day-ahead ancillary services with shipped clearing prices (columns of the shipped file).
AS_SERVICES = ("regup", "regdn", "rrs", "nspin", "ecrs")


@functools.cache
def _as_hourly() -> pd.DataFrame:
    return pd.read_parquet(resource_dir("data") / "ercot_as_prices_da_hourly.parquet").set_index("timestamp_utc")


@functools.cache
def _hashprice() -> pd.Series:
    df = pd.read_parquet(resource_dir("data") / "hashprice_daily.parquet")
    return pd.Series(df["hashprice_usd_per_ph_day"].to_numpy(), index=pd.DatetimeIndex(df["date"]),
                     name="hashprice_usd_per_ph_day")


def settlement_points(market: str = "rt") -> list[str]:
    """Settlement points with shipped prices: ``rt`` real-time, ``da`` day-ahead."""
    return list((_rt_hourly() if market == "rt" else _da_hourly()).columns)


def ercot_prices(settlement_point: str, market: str = "rt", resolution: str = "1h") -> pd.Series:
    """Shipped ERCOT settlement point prices (USD/MWh), UTC interval-start index, no gaps inside coverage.

    ``market`` is ``"rt"`` (real-time, local calendar 2020-2024, 6 hubs) or ``"da"`` (day-ahead market, local
    calendar 2021-2024, 7 hubs and 8 load zones, from ERCOT's annual NP4-180-ER files: the settlement prices);
    ``resolution`` ``"1h"`` or, for real-time only, ``"15min"``. Day-ahead prices of operating day D are published
    at 13:30 local on D-1 (:data:`optimizer.market.DA_PUBLICATION_LOCAL`); this loader returns them all, callers
    filter by what is known (``optimizer.forecast.available``).
    """
    if market == "rt":
        table = _rt_15min() if resolution == "15min" else _rt_hourly()
    elif market == "da" and resolution == "1h":
        table = _da_hourly()
    else:
        raise InputError(f"no shipped {market!r} prices at resolution {resolution!r}", field="market")
    if settlement_point not in table.columns:
        raise InputError(f"no shipped {market} prices for {settlement_point!r}; available: "
                         f"{', '.join(table.columns)}", field="settlement_point")
    s = table[settlement_point].dropna().astype("float64")
    s.index.name = "timestamp"
    return s.rename("price_usd_per_mwh")


def ercot_as_prices(service: str) -> pd.Series:
    """Shipped ERCOT day-ahead ancillary-service clearing prices (MCPC) for ``service``, USD/MW-h (per MW of
    capacity per hour), UTC hour-start index, no gaps inside coverage.

    ``service`` is one of :data:`AS_SERVICES`: ``regup``, ``regdn``, ``rrs``, ``nspin`` (local calendar 2022-2024)
    or ``ecrs`` (from its launch, delivery 2023-06-10, to 2024-12-31). ERCOT report NP4-181-ER ``DAMASMCPC_<year>``;
    like day-ahead energy prices, day D's are published with the day-ahead market results on D-1.
    """
    if service not in AS_SERVICES:
        raise InputError(f"no shipped ancillary-service prices for {service!r}; known services: "
                         f"{', '.join(AS_SERVICES)}", source="ercot_as_prices_da_hourly.parquet", field="service")
    s = _as_hourly()[service].dropna().astype("float64")
    s.index.name = "timestamp"
    return s.rename("price_usd_per_mw_hour")


def hashprice_series() -> pd.Series:
    """Daily hashprice (USD per PH/s per day), indexed by UTC calendar day (naive dates), 2019-2024."""
    return _hashprice()


def hashprice_known_at(decision_time: pd.Timestamp, series: pd.Series | None = None,
                       day: dt.date | None = None) -> tuple[float, dt.date]:
    """The hashprice a decision at ``decision_time`` (tz-aware) knows: the latest daily value whose UTC day had
    ENDED by then (a daily average is published after its day). ``series``: daily values indexed by UTC date
    (default: the shipped series). ``day``: the operating day, for the staleness check (a value more than
    :data:`HASHPRICE_STALE_DAYS` days before it is an error). Returns (USD/PH/day, the date of that value)."""
    s = _hashprice() if series is None else series
    t = pd.Timestamp(decision_time)
    if t.tz is None:
        raise InputError(f"decision time {t} has no time zone", field="decision_time")
    cutoff = t.tz_convert("UTC").tz_localize(None) - pd.Timedelta(days=1)
    if not s.index.is_monotonic_increasing:
        s = s.sort_index()
    pos = int(s.index.searchsorted(cutoff, side="right"))       # values of days up to the cutoff (a backtest asks
    if pos == 0:                                                 # once per re-plan: no boolean mask of the series)
        raise InputError(f"no hashprice known at {t.isoformat()} (data covers {s.index[0].date()} .. "
                         f"{s.index[-1].date()}); pass --hashprice", field="hashprice")
    latest = s.index[pos - 1].date()
    ref = day or t.tz_convert("UTC").date()
    if (ref - latest).days > HASHPRICE_STALE_DAYS:
        raise InputError(f"the latest hashprice known at {t.isoformat()} is from {latest}, {(ref - latest).days} "
                         f"days before {ref} (stale beyond {HASHPRICE_STALE_DAYS} days); pass --hashprice",
                         field="hashprice")
    return float(s.iloc[pos - 1]), latest


def interval_hours(index: pd.DatetimeIndex) -> float:
    """The uniform spacing of a price index in hours: 1 (hourly) or 0.25 (15-minute)."""
    if len(index) < 2:
        return 1.0
    seconds = pd.DatetimeIndex(index).as_unit("s").asi8       # epoch seconds (UTC for any time zone)
    steps = np.unique(np.diff(seconds))
    dt_hours = float(steps[0]) / 3600 if len(steps) == 1 else float("nan")
    if len(steps) != 1 or dt_hours not in (1.0, 0.25):
        raise InputError(f"prices must be evenly spaced, hourly or 15-minute; found steps of "
                         f"{sorted(int(x) // 60 for x in steps)} minutes", field="timestamp")
    return dt_hours


def read_price_file(path: str | Path) -> pd.Series:
    """Read a user price file: CSV or Parquet with columns ``timestamp`` (ISO 8601 with UTC offset) and
    ``price_usd_per_mwh``. Returns a float Series with a UTC DatetimeIndex, sorted.

    Errors name the file, the row (1-based data row for CSV) and the value.
    """
    src = str(path)
    df = read_user_table(path, "price", ("timestamp", "price_usd_per_mwh"))
    ts = parse_timestamps(df["timestamp"], src)
    prices = pd.to_numeric(df["price_usd_per_mwh"], errors="coerce")
    bad = prices.isna() | ~np.isfinite(prices.to_numpy(dtype=float, na_value=np.nan))
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"row {i + 1}: price {str(df['price_usd_per_mwh'].iloc[i])!r} is not a finite number",
                         source=src, field="price_usd_per_mwh")
    lo, hi = PRICE_SANE_RANGE
    out = (prices < lo) | (prices > hi)
    if out.any():
        i = int(np.flatnonzero(out.to_numpy())[0])
        raise InputError(f"row {i + 1}: price {prices.iloc[i]:g} is outside the sane range [{lo:g}, {hi:g}] USD/MWh",
                         source=src, field="price_usd_per_mwh")
    s = pd.Series(prices.to_numpy(dtype=float), index=ts, name="price_usd_per_mwh")
    cap = np.where(s.index < ERCOT_CAP_CHANGE, ERCOT_CAPS[0], ERCOT_CAPS[1])
    beyond = (s.to_numpy() > cap) | (s.to_numpy() < ERCOT_FLOOR)
    if beyond.any():
        i = int(np.flatnonzero(beyond)[0])
        warnings.warn(f"{src}: row {i + 1}: price {s.iloc[i]:g} USD/MWh at {s.index[i].isoformat()} is outside "
                      f"ERCOT's floor/cap [{ERCOT_FLOOR:g}, {cap[i]:g}] ({int(beyond.sum())} such rows); "
                      "used as given", PriceWarning, stacklevel=2)
    dup = s.index.duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise InputError(f"row {i + 1}: timestamp {s.index[i].isoformat()} appears twice", source=src,
                         field="timestamp")
    s = s.sort_index()
    s.index.name = "timestamp"
    s.attrs["source"] = src
    return s


def parse_timestamps(col: pd.Series, src: str) -> pd.DatetimeIndex:
    """ISO 8601 timestamps WITH a UTC offset, as UTC; errors name the file, the row and the value."""
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        return pd.DatetimeIndex(col).tz_convert("UTC")
    if pd.api.types.is_datetime64_any_dtype(col.dtype):
        raise InputError("timestamps have no UTC offset (expected ISO 8601 with offset, e.g. "
                         "2022-07-20T05:00:00Z)", source=src, field="timestamp")
    text = col.astype("string")
    has_offset = text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True, na=False)
    if not has_offset.all():
        i = int(np.flatnonzero(~has_offset.to_numpy())[0])
        raise InputError(f"row {i + 1}: timestamp {col.iloc[i]!r} has no UTC offset (expected ISO 8601 with offset, "
                         "e.g. 2022-07-20T05:00:00Z)", source=src, field="timestamp")
    try:
        return pd.DatetimeIndex(pd.to_datetime(text, utc=True, format="ISO8601"))
    except (ValueError, TypeError):
        parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
        i = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise InputError(f"row {i + 1}: timestamp {col.iloc[i]!r} is not ISO 8601", source=src,
                         field="timestamp") from None


_parse_timestamps = parse_timestamps      # older name, kept for the readers below


@functools.cache
def _load_series(filename: str, column: str) -> pd.Series:
    df = pd.read_parquet(resource_dir("data") / filename)
    s = pd.Series(df[column].to_numpy(dtype="float64"), index=pd.DatetimeIndex(df["timestamp_utc"]), name=column)
    s.index.name = "timestamp"
    return s.sort_index()


def ercot_load() -> pd.Series:
    """Shipped ERCOT system native load (MW, hourly average), UTC interval-start index, 2020-2024 local.

    There are no rows for 2021-10-01 .. 2021-12-31 (missing in the origin); the index is otherwise contiguous.
    """
    return _load_series("ercot_load_hourly.parquet", "ercot_native_load_mw").copy()


def ercot_load_forecast() -> pd.Series:
    """Shipped ERCOT system day-ahead load forecast (MW), UTC interval-start index, local calendar 2024 only."""
    return _load_series("ercot_load_forecast_da_2024.parquet", "da_demand_forecast_mw").copy()


@functools.cache
def _ercot_4cp_hours() -> pd.DatetimeIndex:
    df = pd.read_csv(resource_dir("data") / "ercot_4cp_proxy.csv", dtype={"timestamp_utc": str})
    idx = pd.DatetimeIndex(pd.to_datetime(df["timestamp_utc"], utc=True, format="ISO8601"), name="timestamp")
    return idx.sort_values()


def ercot_4cp_hours() -> pd.DatetimeIndex:
    """UTC hour starts of ERCOT's monthly summer peak hours, June-September 2020-2024 (20 hours, sorted).

    An HOURLY PROXY of 4CP: the hour of highest system Native Load in each month, not ERCOT's official
    15-minute 4CP intervals (see ``data/SOURCE.md``).
    """
    return _ercot_4cp_hours()


# ----------------------------------------------------------------------------------------------------------------
# users' own ERCOT system load, day-ahead load forecast and 4CP intervals (4CP on data the shipped files lack)

#: Sane range of ERCOT system load (MW) in a user file: outside it a value is an error (a unit slip: GW or kW),
#: not a load. ERCOT's record hourly load is about 85,500 MW (August 2023).
SYSTEM_LOAD_SANE_RANGE_MW = (1_000.0, 200_000.0)
#: Local months of ERCOT 4CP (June .. September); a peaks file may only hold intervals in them.
PEAK_MONTHS = (6, 7, 8, 9)


def read_load_file(path: str | Path) -> pd.Series:
    """Read a user file of hourly ERCOT system load actuals: CSV or Parquet with columns ``timestamp`` (ISO 8601
    with UTC offset, hour start) and ``load_mw`` (MW, the hour's average). Returns a float Series ``load_mw`` on a
    sorted UTC DatetimeIndex named ``timestamp``; ``attrs["source"]`` is the path. Gaps are allowed (hours with no
    row are unknown); repeated hours, non-hour starts and values outside :data:`SYSTEM_LOAD_SANE_RANGE_MW` are
    :class:`~optimizer.errors.InputError` (exit 2) naming the file, the row (1-based data row) and the value.
    """
    src = str(path)
    df = read_user_table(path, "load", ("timestamp", "load_mw"))
    return _hourly_mw_series(df, src, "load_mw")


def read_load_forecast_file(path: str | Path) -> pd.Series:
    """Read a user file of ERCOT's day-ahead system load forecast: CSV or Parquet with columns ``timestamp``
    (ISO 8601 with UTC offset, hour start), ``load_forecast_mw`` (MW) and, optionally, ``published`` (ISO 8601
    with offset: when that hour's value was published; at or before the hour's start). One row per hour (keep
    the vintage a decision would have used).

    Returns a float Series ``load_forecast_mw`` on a sorted UTC DatetimeIndex named ``timestamp``;
    ``attrs["source"]`` is the path; with a ``published`` column, ``attrs["published"]`` is a Series of UTC
    publication times on the same index (else absent: :mod:`optimizer.forecast`'s publication rule applies, the
    forecast of local day D is known from 06:00 local on D-1). Errors as :func:`read_load_file`.
    """
    src = str(path)
    df = read_user_table(path, "load forecast", ("timestamp", "load_forecast_mw"))
    s = _hourly_mw_series(df, src, "load_forecast_mw")
    if "published" in df.columns:
        published = _parse_times(df["published"], src, "published")
        hour = _parse_timestamps(df["timestamp"], src)
        late = np.flatnonzero(np.asarray(published > hour))
        if len(late):
            i = int(late[0])
            raise InputError(f"row {i + 1}: published {df['published'].iloc[i]!r} is after the start of the hour "
                             f"it forecasts ({hour[i].isoformat()}); a forecast must be out before its hour",
                             source=src, field="published")
        s.attrs["published"] = pd.Series(published, index=hour, name="published").sort_index()
    return s


def read_peaks_file(path: str | Path, timezone: str = "America/Chicago") -> pd.DatetimeIndex:
    """Read a user file of ERCOT's monthly 4CP intervals: CSV or Parquet with a ``timestamp`` column (ISO 8601
    with UTC offset: the START of the month's peak interval, a 15-minute or hourly boundary). At most one per
    local month, June-September only (``timezone``: ERCOT's local time). Other columns are ignored.

    Returns the sorted UTC DatetimeIndex named ``timestamp``; errors are :class:`~optimizer.errors.InputError`
    naming the file, the row and the value.
    """
    src = str(path)
    df = read_user_table(path, "peaks", ("timestamp",))
    ts = _parse_timestamps(df["timestamp"], src)
    if len(ts) == 0:
        raise InputError("no rows: a peaks file needs at least one 4CP interval", source=src)
    off_grid = np.flatnonzero(np.asarray(ts != ts.floor("15min")))
    if len(off_grid):
        i = int(off_grid[0])
        raise InputError(f"row {i + 1}: timestamp {df['timestamp'].iloc[i]!r} is not the start of a 15-minute or "
                         "hourly interval", source=src, field="timestamp")
    local = ts.tz_convert(timezone)
    outside = np.flatnonzero(~np.isin(local.month, PEAK_MONTHS))
    if len(outside):
        i = int(outside[0])
        raise InputError(f"row {i + 1}: timestamp {df['timestamp'].iloc[i]!r} is in local month {local[i]:%Y-%m}; "
                         "4CP intervals are in June-September only", source=src, field="timestamp")
    month = pd.Series(local.year * 100 + local.month)
    twice = np.flatnonzero(month.duplicated().to_numpy())
    if len(twice):
        i = int(twice[0])
        first = int(np.flatnonzero((month == month.iloc[i]).to_numpy())[0])
        raise InputError(f"row {i + 1}: timestamp {df['timestamp'].iloc[i]!r} is a second interval in "
                         f"{local[i]:%Y-%m} (row {first + 1} is the first); at most one 4CP interval per month",
                         source=src, field="timestamp")
    return pd.DatetimeIndex(ts.sort_values(), name="timestamp")


def read_user_table(path: str | Path, what: str, required: tuple[str, ...], hint: str = "",
                    text: tuple[str, ...] = ("timestamp", "published")) -> pd.DataFrame:
    """A user's CSV or Parquet table with the ``required`` columns (the ``text`` columns read as strings from a
    CSV), with errors naming the file: the one reader behind every user file of prices, load, demand and
    ancillary-service prices. ``hint`` is added to the missing-columns message."""
    path = Path(path)
    src = str(path)
    try:
        if path.suffix.lower() == ".parquet":
            df = pd.read_parquet(path)
        elif path.suffix.lower() in (".csv", ".gz"):
            df = pd.read_csv(path, dtype={c: str for c in text}, keep_default_na=True)
        else:
            raise InputError(f"unsupported {what} file type {path.suffix!r} (expected .csv or .parquet)", source=src)
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"{what} file not found", source=src) from None
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file, reported as such
        raise InputError(f"cannot read {what} file ({type(exc).__name__}: {exc})", source=src) from None
    missing = set(required) - set(df.columns)
    if missing:
        raise InputError(f"missing column(s) {', '.join(sorted(missing))}; found {', '.join(map(str, df.columns))}"
                         + hint, source=src)
    return df


def _parse_times(col: pd.Series, src: str, field: str) -> pd.DatetimeIndex:
    """:func:`_parse_timestamps` for a column other than ``timestamp`` (errors name that column)."""
    if col.isna().any():
        i = int(np.flatnonzero(col.isna().to_numpy())[0])
        raise InputError(f"row {i + 1}: {field} is empty", source=src, field=field)
    try:
        return _parse_timestamps(col, src)
    except InputError as exc:
        message = (str(exc).removeprefix(f"{src}: timestamp: ").replace("timestamps have", f"{field} times have")
                   .replace("timestamp ", f"{field} ", 1))
        raise InputError(message, source=src, field=field) from None


def _hourly_mw_series(df: pd.DataFrame, src: str, column: str) -> pd.Series:
    """Validated hourly MW series of ``df[column]`` on ``df["timestamp"]`` (see :func:`read_load_file`)."""
    ts = _parse_timestamps(df["timestamp"], src)
    if len(ts) == 0:
        raise InputError(f"no rows: the file needs at least one hour of {column}", source=src)
    not_hour = np.flatnonzero(np.asarray(ts != ts.floor("h")))
    if len(not_hour):
        i = int(not_hour[0])
        raise InputError(f"row {i + 1}: timestamp {df['timestamp'].iloc[i]!r} is not an hour start; {column} must "
                         "be hourly (one row per hour, at its start)", source=src, field="timestamp")
    values = pd.to_numeric(df[column], errors="coerce")
    bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"row {i + 1}: {column} {str(df[column].iloc[i])!r} is not a finite number", source=src,
                         field=column)
    lo, hi = SYSTEM_LOAD_SANE_RANGE_MW
    out = np.flatnonzero(((values < lo) | (values > hi)).to_numpy())
    if len(out):
        i = int(out[0])
        raise InputError(f"row {i + 1}: {column} {values.iloc[i]:g} is outside the sane range [{lo:g}, {hi:g}] MW "
                         "of ERCOT system load (GW or kW instead of MW?)", source=src, field=column)
    dup = np.flatnonzero(ts.duplicated())
    if len(dup):
        i = int(dup[0])
        raise InputError(f"row {i + 1}: timestamp {ts[i].isoformat()} appears twice", source=src, field="timestamp")
    s = pd.Series(values.to_numpy(dtype=float), index=ts, name=column).sort_index()
    s.index.name = "timestamp"
    s.attrs["source"] = src
    return s
