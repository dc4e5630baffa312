"""Ancillary services a load can sell in ERCOT: the one owner of the service rules and of the capacity prices.

**Services** (:data:`SERVICES`; the rules, each with its source, are in ``docs/ancillary.md``). A ``[[reserve]]``
table names one of ERCOT's day-ahead ancillary services by its MCPC column (``regup``, ``rrs``, ``ecrs``,
``nspin``). Each unit (``[[mining]]``, ``[[gpu]]``) says what kind of ERCOT Load Resource it is registered as,
``reserve_resource`` (:data:`RESOURCES`):

| resource | what it is | may sell |
|---|---|---|
| ``clr`` (default) | Controllable Load Resource: follows ERCOT's dispatch | regup, rrs, ecrs, nspin |
| ``ufr`` | Load Resource that is not controllable, tripped by an under-frequency relay | rrs, ecrs |
| ``none`` | not registered | nothing |

Every service sold by a load is a REDUCTION of consumption, so an offer is backed by load actually drawn
(``optimizer.model.reserves``). Regulation Down (``regdn``) would be an INCREASE of consumption (headroom above the
draw, energy bought when deployed): it is refused with a named error, not modelled. A service's response time
(``response_minutes``) bounds what a unit can drop in time; its sustained duration (``sustain_hours``, NPRR 1096:
ECRS 2 h, Non-Spin 4 h) is a capability a curtailable load has by nature (it can stay off: no energy limit), so it
does not limit offers; it sets how long an assumed deployment lasts (:func:`assumed_deployments`).

**Prices** (:class:`AsPrices`): ERCOT's day-ahead Market Clearing Prices for Capacity (MCPC, USD per MW per hour)
per service and hour, from the shipped file (``data/ercot_as_prices_da_hourly.parquet``, local 2022-2024; ECRS from
its first delivery hour, 2023-06-10) or a user file (:func:`read_as_price_file`). A ``[[reserve]]`` without
``price_usd_per_mw_hour`` is paid these hourly prices (``Reserve.clearing_prices``); with it, the constant is an
explicit what-if. A clearing-priced service with no price for an hour it is needed is a named error, never a zero.

**Publication** (the rule of ``optimizer.market``: day D's day-ahead results, energy and AS prices, are published at
:data:`optimizer.market.DA_PUBLICATION_LOCAL` (13:30 ERCOT local time) on D-1). A backtest plan made at a decision
time sees day D's MCPC only when published by then (:meth:`AsPrices.known_at`); for the hours not published yet it
uses the **median of the same local hour over the latest (up to 7) published days** (:meth:`AsPrices.plan_prices`).
The award is settled at the actual MCPC of the hour (:meth:`AsPrices.actual`).

**Deployments** without data (:func:`assumed_deployments`, rule ``weekly-cheapest``): each service the site offers
is deployed once per local calendar week, for its deployment duration (:attr:`Service.deploy_hours`), in the
window of whole local hours of one day with the lowest mean real-time price of the week. Conservative: there the
site runs (power is worth less than mining), so a drop gives up the most margin; ERCOT deploys reserves in
scarcity, when prices are high and a drop costs little.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from optimizer import market
from optimizer.errors import InputError

if TYPE_CHECKING:
    from optimizer.site import GpuCluster, MiningFleet, Reserve, Site

#: Kinds of ERCOT Load Resource a unit can be registered as (``reserve_resource``).
RESOURCES = ("clr", "ufr", "none")
#: What a unit is when its site file does not say (what every site assumed before the flag existed).
DEFAULT_RESOURCE = "clr"
#: Sane range of a capacity price in a user file (USD/MW-h): outside it a value is an error. ERCOT's highest
#: shipped MCPC is 4,085 (2022-2024); MCPCs are never negative.
AS_PRICE_SANE_RANGE = (0.0, 20_000.0)
#: ERCOT publishes MCPCs on ERCOT's clock.
AS_TIMEZONE = market.TIMEZONE
#: Days of published prices the forecast of an unpublished hour takes the median of.
FORECAST_DAYS = 7
#: Deployment rules without data (``--deployment-rule``).
DEPLOYMENT_RULES = ("weekly-cheapest", "none")


@dataclass(frozen=True)
class Service:
    """One ERCOT day-ahead ancillary service as a load sells it. ``resources``: the ``reserve_resource`` kinds that
    may sell it; ``response_minutes``: the longest a unit may take to deliver it (a site's ``response_minutes``
    may be shorter, never longer); ``sustain_hours``: how long a deployment must be sustainable (NPRR 1096), 0
    where no such rule applies; ``deploy_hours``: how long an assumed deployment lasts; ``modelled``: False for a
    service refused with ``why``."""

    name: str
    title: str
    resources: tuple[str, ...]
    response_minutes: float
    sustain_hours: float
    deploy_hours: int
    launch_local: dt.date | None = None
    modelled: bool = True
    why: str = ""


SERVICES: dict[str, Service] = {s.name: s for s in (
    Service("regup", "Regulation Up", ("clr",), 5.0, 0.0, 1),
    Service("regdn", "Regulation Down", ("clr",), 5.0, 0.0, 1, modelled=False,
            why="for a load, Regulation Down means INCREASING consumption on ERCOT's signal (headroom above its "
                "draw, within the import limit, energy bought when deployed); curtail models only reductions"),
    Service("rrs", "Responsive Reserve", ("clr", "ufr"), 10.0, 0.0, 1),
    Service("ecrs", "ERCOT Contingency Reserve", ("clr", "ufr"), 10.0, 2.0, 2, launch_local=dt.date(2023, 6, 10)),
    Service("nspin", "Non-Spinning Reserve", ("clr",), 30.0, 4.0, 4),
)}


def service(name: str) -> Service | None:
    """The rules of service ``name`` (None: not an ERCOT service curtail knows)."""
    return SERVICES.get(name)


def eligible(resource: str, service_name: str) -> bool:
    """May a unit registered as ``resource`` sell ``service_name``? (Only modelled ERCOT services.)"""
    s = SERVICES.get(service_name)
    return s is not None and s.modelled and resource in s.resources


def response_minutes(reserve: Reserve) -> float:
    """The response time that bounds offers: the site's, never longer than the service's rule."""
    s = SERVICES.get(reserve.name)
    return reserve.response_minutes if s is None else min(reserve.response_minutes, s.response_minutes)


def default_response_minutes(name: str) -> float:
    """A ``[[reserve]]`` without ``response_minutes``: the service's rule (10 for a name curtail does not know)."""
    s = SERVICES.get(name)
    return 10.0 if s is None else s.response_minutes


def validate_reserve(name: str, response: float, *, source: str, where: str) -> None:
    """Refuse what the rules forbid for a ``[[reserve]]`` entry at load time: a service that is not modelled
    (``regdn``), and a response time longer than the service allows."""
    s = SERVICES.get(name)
    if s is None:
        return                      # a name curtail does not know: refused where a model is built (check_site)
    if not s.modelled:
        raise InputError(f"{s.title} ({name!r}) is refused: {s.why}", source=source, field=f"{where}.name")
    if response > s.response_minutes:
        raise InputError(f"response_minutes {response:g} is longer than {s.title} allows ({s.response_minutes:g} "
                         "minutes)", source=source, field=f"{where}.response_minutes")


def check_site(site: Site) -> None:
    """Every ``[[reserve]]`` of ``site`` names a modelled ERCOT service (a model is built only then): named errors.
    Also covers reserves set without the TOML loader (``--reserve``, ``dataclasses.replace``)."""
    for i, r in enumerate(site.reserves):
        s = SERVICES.get(r.name)
        where = f"reserve[{i}]"
        if s is None:
            raise InputError(f"{r.name!r} is not an ERCOT ancillary service curtail models (one of "
                             f"{', '.join(n for n, x in SERVICES.items() if x.modelled)}): its eligibility and "
                             "response rules are unknown", source=site.source, field=f"{where}.name")
        validate_reserve(r.name, r.response_minutes, source=site.source, where=where)
    units: list[MiningFleet | GpuCluster] = [*site.mining, *site.gpu]
    for u in units:
        if u.reserve_resource not in RESOURCES:
            raise InputError(f"reserve_resource {u.reserve_resource!r} is not one of {', '.join(RESOURCES)}",
                             source=site.source, field=f"{u.name}.reserve_resource")


def clearing_priced(site: Site) -> tuple[Reserve, ...]:
    """The site's services paid at ERCOT's hourly clearing prices (no constant price given)."""
    return tuple(r for r in site.reserves if r.clearing_prices)


def price_matrix(site: Site, given: Mapping[str, Any] | None, n: int) -> np.ndarray:
    """(interval, service) capacity prices in the site's ``[[reserve]]`` order, USD/MW-h: ``given`` per service, else
    the site's constant; a clearing-priced service not given is a named error (never a zero)."""
    given = given or {}
    unknown = sorted(set(given) - {r.name for r in site.reserves})
    if unknown:
        raise InputError(f"reserve prices for unknown service(s) {', '.join(unknown)}; the site has "
                         f"{', '.join(r.name for r in site.reserves) or 'none'}", field="reserve_prices")
    cols = []
    for r in site.reserves:
        if r.name in given:
            cols.append(np.asarray(given[r.name], dtype=float))
        elif r.clearing_prices:
            raise InputError(f"service {r.name!r} is paid ERCOT's hourly clearing prices (its [[reserve]] sets no "
                             "price_usd_per_mw_hour) and none were given for this horizon", field="reserve_prices")
        else:
            cols.append(np.full(n, r.price_usd_per_mw_hour))
    return np.stack(cols, axis=1) if cols else np.zeros((n, 0))


# ----------------------------------------------------------------------------------------------------------------
# prices


@dataclass(frozen=True, eq=False)
class AsPrices:
    """Hourly capacity prices per service (USD/MW-h): ``table`` has a UTC hour-start index and one column per
    service (NaN where a service has no price); ``source`` says where they came from."""

    table: pd.DataFrame
    source: str
    _memo: dict = field(default_factory=dict, repr=False)

    @classmethod
    def shipped(cls) -> AsPrices:
        """The shipped ERCOT day-ahead MCPCs, local 2022-2024 (ECRS from 2023-06-10)."""
        return _shipped()

    @classmethod
    def read(cls, path: str | Path) -> AsPrices:
        """A user file (:func:`read_as_price_file`)."""
        return cls(read_as_price_file(path), str(path))

    def series(self, name: str) -> pd.Series:
        if name not in self.table.columns:
            raise InputError(f"no clearing prices of {name!r} in {self.source} (it has "
                             f"{', '.join(self.table.columns) or 'none'})", source=self.source, field="service")
        return self.table[name].dropna()

    def actual(self, site: Site, times: pd.DatetimeIndex) -> dict[str, np.ndarray]:
        """The clearing price of each clearing-priced service in each interval of ``times`` (UTC starts, hourly
        or 15-minute: an interval takes its hour's price). A missing hour is a named error."""
        times = pd.DatetimeIndex(times).tz_convert("UTC")
        hours = times.floor("h")
        out = {}
        for r in clearing_priced(site):
            s = self.series(r.name)
            v = s.reindex(hours).to_numpy(dtype=float)
            if np.isnan(v).any():
                raise _missing(self, r.name, hours[np.isnan(v)][0], s)
            out[r.name] = v
        return out

    def last_published_day(self, t: pd.Timestamp) -> dt.date:
        """The latest local (ERCOT) day whose MCPCs are published at ``t`` (13:30 on the day before)."""
        first = market.first_unpublished_day_start(pd.Timestamp(t), AS_TIMEZONE, market.DA_PUBLICATION_LOCAL)
        return market.local_day(first, AS_TIMEZONE) - dt.timedelta(days=1)

    def known_at(self, t: pd.Timestamp) -> AsPrices:
        """Only the hours published at ``t``: the days up to :meth:`last_published_day`."""
        end = market.local_midnight(self.last_published_day(t) + dt.timedelta(days=1), AS_TIMEZONE)
        return AsPrices(self.table[self.table.index < end], f"{self.source} (published by {pd.Timestamp(t)})")

    def plan_prices(self, site: Site, times: pd.DatetimeIndex, decision: pd.Timestamp) -> dict[str, np.ndarray]:
        """The prices a plan made at ``decision`` may use over ``times``: the clearing price of each hour already
        published, else the median of the same local hour over the latest (up to :data:`FORECAST_DAYS`) published
        days. No published day at all is a named error."""
        times = pd.DatetimeIndex(times).tz_convert("UTC")
        hours = times.floor("h")
        last = self.last_published_day(decision)
        end = market.local_midnight(last + dt.timedelta(days=1), AS_TIMEZONE)
        local_hour = hours.tz_convert(AS_TIMEZONE).hour
        out = {}
        for r in clearing_priced(site):
            s = self.series(r.name)
            known = s[s.index < end]
            v = known.reindex(hours).to_numpy(dtype=float, copy=True)
            future = np.asarray(hours >= end)
            if future.any():
                profile = self._median_profile(r.name, last)
                if profile is None:
                    raise InputError(f"no clearing price of {r.name!r} published by {pd.Timestamp(decision)} "
                                     f"(the {self.source} prices of {r.name!r} start "
                                     f"{_first(s)}): nothing to plan the unpublished hours with",
                                     source=self.source, field=r.name)
                v[future] = profile[local_hour[future]]
            if np.isnan(v).any():
                raise _missing(self, r.name, hours[np.isnan(v)][0], s)
            out[r.name] = v
        return out

    def _median_profile(self, name: str, last: dt.date) -> np.ndarray | None:
        """Per local hour 0..23, the median over the latest published days up to ``last`` (up to 7 days with a
        price at that hour); None when no day up to ``last`` has a price. Memoised per (service, day)."""
        key = (name, last)
        if key not in self._memo:
            days = self._by_local_hour(name)
            window = days[(days.index <= last) & (days.index > last - dt.timedelta(days=FORECAST_DAYS))]
            if window.notna().any().any():
                med = window.median(axis=0, skipna=True)
                # an hour no day of the window has (the spring-forward 02:00): the day's median
                self._memo[key] = med.fillna(float(np.nanmedian(window.to_numpy()))).to_numpy(dtype=float)
            else:
                self._memo[key] = None
        return self._memo[key]

    def _by_local_hour(self, name: str) -> pd.DataFrame:
        key = ("pivot", name)
        if key not in self._memo:
            s = self.series(name)
            local = s.index.tz_convert(AS_TIMEZONE)
            frame = pd.DataFrame({"day": local.date, "hour": local.hour, "v": s.to_numpy()})
            pivot = frame.groupby(["day", "hour"])["v"].first().unstack("hour")        # fall-back hour: the first
            self._memo[key] = pivot.reindex(columns=range(24))
        return self._memo[key]


def _first(s: pd.Series) -> str:
    return s.index[0].isoformat() if len(s) else "nowhere"


def _missing(prices: AsPrices, name: str, hour: pd.Timestamp, s: pd.Series) -> InputError:
    svc = SERVICES.get(name)
    launch = (f"; {svc.title} has existed only since its first delivery day {svc.launch_local} (ERCOT time)"
              if svc is not None and svc.launch_local is not None and hour < market.local_midnight(svc.launch_local,
                                                                                                  AS_TIMEZONE)
              else "")
    span = f"{s.index[0].isoformat()} .. {s.index[-1].isoformat()}" if len(s) else "no hours"
    return InputError(f"no clearing price of {name!r} for the hour starting {hour.isoformat()} (the prices cover "
                      f"{span}{launch}): give --as-prices covering it, a constant price "
                      f"(price_usd_per_mw_hour or --reserve {name}:PRICE), or leave the service out",
                      source=prices.source, field=name)


@functools.cache
def _shipped() -> AsPrices:
    from optimizer import data

    table = pd.concat({s: data.ercot_as_prices(s) for s in data.AS_SERVICES}, axis=1)
    table.index.name = "timestamp"
    return AsPrices(table, "ERCOT day-ahead MCPC (shipped data/ercot_as_prices_da_hourly.parquet)")


def read_as_price_file(path: str | Path) -> pd.DataFrame:
    """Read a user file of hourly capacity prices: CSV or Parquet, one row per hour and service, columns
    ``timestamp`` (ISO 8601 with UTC offset, the hour's start), ``service`` (``regup``, ``regdn``, ``rrs``,
    ``nspin``, ``ecrs``) and ``price_usd_per_mw_hour`` (finite, within :data:`AS_PRICE_SANE_RANGE`). Returns a
    frame on a sorted UTC hour-start index, one column per service present. Errors name the file, the (1-based
    data) row, the field and the value."""
    from optimizer.data import parse_timestamps, read_user_table

    src = str(path)
    df = read_user_table(path, "AS price", ("timestamp", "service", "price_usd_per_mw_hour"),
                         " (one row per hour and service: timestamp, service, price_usd_per_mw_hour)",
                         text=("timestamp", "service"))
    if not len(df):
        raise InputError("no rows", source=src)
    ts = parse_timestamps(df["timestamp"], src)
    off = np.flatnonzero(np.asarray(ts != ts.floor("h")))
    if len(off):
        i = int(off[0])
        raise InputError(f"row {i + 1}: timestamp {df['timestamp'].iloc[i]!r} is not the start of an hour (hourly "
                         "clearing prices expected)", source=src, field="timestamp")
    names = df["service"].astype("string").str.strip().str.lower()
    bad = np.flatnonzero(~names.isin(list(SERVICES)).fillna(False).to_numpy(dtype=bool))
    if len(bad):
        i = int(bad[0])
        raise InputError(f"row {i + 1}: service {df['service'].iloc[i]!r} is not one of {', '.join(SERVICES)}",
                         source=src, field="service")
    prices = pd.to_numeric(df["price_usd_per_mw_hour"], errors="coerce").to_numpy(dtype=float)
    lo, hi = AS_PRICE_SANE_RANGE
    wrong = np.flatnonzero(~np.isfinite(prices) | (prices < lo) | (prices > hi))
    if len(wrong):
        i = int(wrong[0])
        raise InputError(f"row {i + 1}: price {str(df['price_usd_per_mw_hour'].iloc[i])!r} is not a number in "
                         f"[{lo:g}, {hi:g}] USD/MW-h", source=src, field="price_usd_per_mw_hour")
    long = pd.DataFrame({"timestamp": ts, "service": names.to_numpy(dtype=str), "v": prices})
    dup = np.flatnonzero(long.duplicated(["timestamp", "service"]).to_numpy())
    if len(dup):
        i = int(dup[0])
        raise InputError(f"row {i + 1}: {long['service'].iloc[i]} at {long['timestamp'].iloc[i].isoformat()} appears "
                         "twice", source=src, field="timestamp")
    table = long.pivot(index="timestamp", columns="service", values="v").sort_index()
    table.columns.name = None
    return table


# ----------------------------------------------------------------------------------------------------------------
# deployments


def assumed_deployments(site: Site, rt_prices: pd.Series, start: dt.date, end: dt.date,
                        rule: str = "weekly-cheapest") -> tuple:
    """Deployment events (``optimizer.backtest.Deployment``) of the local days ``start`` .. ``end`` under ``rule``
    (:data:`DEPLOYMENT_RULES`): ``weekly-cheapest`` deploys each modelled service of the site once per local
    calendar week (Monday-Sunday, clipped to the run), for its :attr:`Service.deploy_hours`, in the window of whole
    local hours of one day with the lowest mean real-time price of the week (the earliest such window on a tie);
    ``none``: no event. ``rt_prices``: actual real-time prices (any resolution, UTC interval starts) covering the
    days. Events are in UTC, end exclusive, and never cross local midnight."""
    from optimizer.backtest.engine import Deployment

    if rule not in DEPLOYMENT_RULES:
        raise InputError(f"unknown deployment rule {rule!r}; one of {', '.join(DEPLOYMENT_RULES)}",
                         field="deployment_rule")
    if rule == "none" or not site.reserves:
        return ()
    tz = site.timezone
    s = pd.Series(np.asarray(rt_prices, dtype=float), index=pd.DatetimeIndex(rt_prices.index).tz_convert("UTC"))
    hourly = s.groupby(s.index.floor("h")).mean()
    out = []
    days = list(pd.date_range(start, end, freq="D").date)
    weeks: dict[tuple[int, int], list[dt.date]] = {}
    for d in days:
        weeks.setdefault(tuple(d.isocalendar())[:2], []).append(d)
    for name in dict.fromkeys(r.name for r in site.reserves):
        svc = SERVICES.get(name)
        if svc is None or not svc.modelled:
            continue
        k = svc.deploy_hours
        for week in weeks.values():
            best = None
            for d in week:
                hours = market.operating_hours(d, tz)
                p = hourly.reindex(hours).to_numpy()
                if np.isnan(p).any():
                    raise InputError(f"no real-time price for every hour of {d}: cannot place the assumed "
                                     "deployments", field="prices")
                if len(p) < k:
                    continue
                means = np.convolve(p, np.ones(k) / k, mode="valid")
                i = int(np.argmin(means))
                if best is None or means[i] < best[0] - 1e-12:
                    best = (float(means[i]), hours[i], hours[i] + pd.Timedelta(hours=k))
            if best is not None:
                out.append(Deployment(best[1], best[2], name))
    return tuple(sorted(out, key=lambda e: (e.start, e.service)))


def describe_deployments(rule: str | None, events: Sequence, source: str | None = None) -> str:
    """One line for outputs: where the deployments came from and how many events."""
    if source:
        return f"{len(events)} deployment event(s) from {source}"
    if rule in (None, "none"):
        return "none (no deployment assumed)"
    return (f"{len(events)} assumed event(s), rule {rule}: each service once a week, for its deployment duration, "
            "in the week's cheapest real-time hours")


# ----------------------------------------------------------------------------------------------------------------
# options


def parse_reserve_option(text: str, flag: str = "--reserve") -> tuple[Reserve, ...]:
    """``NAME[:PRICE[:MINUTES]],...``: ``rrs`` (hourly clearing prices, the service's response time),
    ``rrs:12.5`` (a constant USD/MW-h), ``rrs:12.5:8`` or ``rrs::8`` (a response time in minutes). Each entry is
    checked like a ``[[reserve]]`` table (named errors)."""
    from optimizer.site import Reserve

    out = []
    for item in filter(None, (x.strip() for x in text.split(","))):
        parts = item.split(":")
        try:
            if not 1 <= len(parts) <= 3 or not parts[0]:
                raise ValueError(item)
            name = parts[0].strip().lower()
            price = parts[1].strip() if len(parts) > 1 else ""
            minutes = float(parts[2]) if len(parts) > 2 and parts[2].strip() else default_response_minutes(name)
            value = float(price) if price else 0.0
        except ValueError:
            raise InputError(f"{item!r} is not NAME[:USD_PER_MW_HOUR[:RESPONSE_MINUTES]]", field=flag) from None
        lo, hi = AS_PRICE_SANE_RANGE
        if not (np.isfinite(value) and lo <= value <= hi) or not (np.isfinite(minutes) and 0 < minutes <= 240):
            raise InputError(f"{item!r}: price must be {lo:g}..{hi:g} USD/MW-h and response 0..240 minutes",
                             field=flag)
        validate_reserve(name, minutes, source=flag, where=f"{flag} {name}")
        if name not in SERVICES:
            raise InputError(f"{item!r}: {name!r} is not an ERCOT ancillary service curtail models (one of "
                             f"{', '.join(n for n, x in SERVICES.items() if x.modelled)})", field=flag)
        out.append(Reserve(name, value, minutes, clearing_prices=not price))
    if not out:
        raise InputError(f"no service in {text!r}", field=flag)
    if len({r.name for r in out}) != len(out):
        raise InputError(f"reserve names must be unique: {text!r}", field=flag)
    return tuple(out)


def price_source(site: Site, prices: AsPrices | None) -> str:
    """One line for outputs: which services are paid hourly clearing prices (and from where), which a constant."""
    if not site.reserves:
        return "none (no [[reserve]])"
    parts = []
    hourly = [r.name for r in clearing_priced(site)]
    if hourly:
        parts.append(f"{', '.join(hourly)}: hourly clearing prices, {(prices or AsPrices.shipped()).source}")
    for r in site.reserves:
        if not r.clearing_prices:
            parts.append(f"{r.name}: constant {r.price_usd_per_mw_hour:g} USD/MW-h (given)")
    return "; ".join(parts)
