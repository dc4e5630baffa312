"""ERCOT market rules and calendar helpers: the one home of each rule the rest of curtail uses.

Times are UTC interval starts everywhere in curtail; operating days, publication times and decision times are
local (the site's time zone, ERCOT's America/Chicago by default). The independent checker
(:mod:`optimizer.check`) keeps its own copy of the money rules on purpose.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

HOUR = pd.Timedelta(hours=1)

#: ERCOT's local time.
TIMEZONE = "America/Chicago"

#: Default local hour on D-1 of the nightly decision for operating day D (day-ahead prices of D not known yet).
DEFAULT_DECISION_HOUR_LOCAL = 10
#: Local time on D-1 at which ERCOT publishes the day-ahead market results (energy and ancillary-service prices)
#: for operating day D.
DA_PUBLICATION_LOCAL = dt.time(13, 30)
#: Local time on D-1 at which ERCOT's day-ahead market stops taking bids and offers for operating day D (Nodal
#: Protocols 4.1.1, not re-read for this release).
DA_BID_DEADLINE_LOCAL = dt.time(10, 0)
#: Earliest whole local hour on D-1 at which the day-ahead prices of D are known.
DA_DECISION_HOUR_LOCAL = 14
#: ASSUMPTION: local time on D-1 from which ERCOT's day-ahead system load forecast for day D is known (the shipped
#: file has no vintages; ERCOT publishes load forecasts hourly, and a D-1 morning vintage covers D).
LOAD_FORECAST_PUBLICATION_LOCAL = dt.time(6, 0)

#: ERCOT's offer floor, USD/MWh.
PRICE_FLOOR_USD_PER_MWH = -250.0
#: ERCOT's system-wide offer cap (HCAP/SWCAP), USD/MWh: 9,000 until 2021-12-31, 5,000 since 2022-01-01 (local).
PRICE_CAP_CHANGE = pd.Timestamp("2022-01-01T06:00:00Z")
PRICE_CAPS_USD_PER_MWH = (9_000.0, 5_000.0)

#: Local calendar months whose system peak interval sets the 4CP transmission charge.
FOURCP_MONTHS = (6, 7, 8, 9)


def price_cap_usd_per_mwh(year: int) -> float:
    """ERCOT's offer cap in local calendar ``year``."""
    return PRICE_CAPS_USD_PER_MWH[0] if year <= 2021 else PRICE_CAPS_USD_PER_MWH[1]


def price_caps_at(times: pd.DatetimeIndex) -> np.ndarray:
    """The offer cap in force at each UTC time (USD/MWh)."""
    t = pd.DatetimeIndex(times).tz_convert("UTC")
    return np.where(t < PRICE_CAP_CHANGE, PRICE_CAPS_USD_PER_MWH[0], PRICE_CAPS_USD_PER_MWH[1])


def fourcp_usd_per_mw_peak(usd_per_kw_year: float) -> float:
    """Charge of one MW drawn in one monthly 4CP peak (USD): each of the four summer months sets a quarter of the
    yearly charge, so ``usd_per_kw_year x 1000 / 4``."""
    return float(usd_per_kw_year) * 1000.0 / len(FOURCP_MONTHS)


def local_midnight(day: dt.date, timezone: str = TIMEZONE) -> pd.Timestamp:
    """UTC time of the start of local calendar day ``day``."""
    return pd.Timestamp(dt.datetime.combine(day, dt.time(), ZoneInfo(timezone))).tz_convert("UTC")


def operating_hours(day: dt.date, timezone: str = TIMEZONE) -> pd.DatetimeIndex:
    """UTC start of every hour of the local calendar day ``day`` (23, 24 or 25 of them)."""
    return pd.date_range(local_midnight(day, timezone), local_midnight(day + dt.timedelta(days=1), timezone),
                         freq="1h", inclusive="left", name="timestamp")


def horizon_for(day: dt.date | str, timezone: str = TIMEZONE, lookahead_hours: int = 24) -> pd.DatetimeIndex:
    """UTC hour starts of local calendar day ``day`` (23, 24 or 25 hours) followed by ``lookahead_hours``."""
    d = pd.Timestamp(day).date()
    start, end = local_midnight(d, timezone), local_midnight(d + dt.timedelta(days=1), timezone)
    return pd.date_range(start, end + lookahead_hours * HOUR, freq="1h", inclusive="left", name="timestamp")


def decision_time_for(day: dt.date | str, timezone: str = TIMEZONE,
                      hour_local: int = DEFAULT_DECISION_HOUR_LOCAL, minute: int = 0) -> pd.Timestamp:
    """UTC timestamp of ``hour_local:minute`` local time on the day before operating day ``day``."""
    d = pd.Timestamp(day).date()
    local = dt.datetime.combine(d - dt.timedelta(days=1), dt.time(hour_local, minute), ZoneInfo(timezone))
    return pd.Timestamp(local).tz_convert("UTC")


def first_unpublished_day_start(t: pd.Timestamp, timezone: str, publication: dt.time) -> pd.Timestamp:
    """UTC start of the first local day whose day-ahead data (published at ``publication`` on the day before)
    is not out yet at ``t``; everything before it is published."""
    local = pd.Timestamp(t).tz_convert(ZoneInfo(timezone))
    last_published = local.date() + dt.timedelta(days=1) if local.time() >= publication else local.date()
    return local_midnight(last_published + dt.timedelta(days=1), timezone)


def local_day(t: pd.Timestamp, timezone: str = TIMEZONE) -> dt.date:
    """The local calendar day of a UTC time."""
    return pd.Timestamp(t).tz_convert(ZoneInfo(timezone)).date()
