"""Out-of-sample skill of the 4CP peak model, year by year, and what simple curtailment rules built on it are worth.

Run: python benchmarks/fourcp_skill.py [--years 2022,2023,2024] [--charge 100] [--site models/west-texas-200.toml]
     python benchmarks/fourcp_skill.py --quick        (one year, fewer rules: a smoke run for CI)

For each scored year Y the peak model's parameters are fitted on the shipped summers before Y only
(``fourcp.fit_params(history, Y - 1)``) and Y is forecast as a backtest would: day D at 10:00 local on D-1 (horizon
= day D), and again during D at 12:00, 14:00 and 16:00 with the load seen so far (the hours from then to the end of
D). Printed, per year:

* the fitted parameters;
* the log score (natural log) of each month's actual peak hour (the shipped hourly proxy, the highest Native Load
  hour) against the uniform forecast 1 / hours-in-month, and its rank among the month's hours;
* calibration: predicted (sum of probabilities) against observed peaks in probability bins;
* intraday updates: the probability and log score of each actual peak hour as known at 10:00 D-1 and at the
  updates before it;
* curtailment rules on the default site, by SIMPLE PER-HOUR ARITHMETIC (not the MILP; ramps, minimum run times,
  restart costs and 15-minute operation are ignored; ``curtail backtest --fourcp`` gives the real figure):

  - ``perfect``: curtail every flexible unit in exactly the four actual peak hours;
  - ``threshold``: curtail every flexible unit (mining fleets and the GPU cluster's spot load; committed GPU load
    never) in the hours with p >= x, x chosen OUT OF SAMPLE: the x of a grid with the best net value on the summers
    before Y, scored with the parameters fitted through Y - 1;
  - ``expected-value``: curtail unit u in hour h when p(h) x charge per MW-peak > u's margin per MWh (forecast at
    the decision: hashprice known before D, seasonal-naive price forecast of D made at 10:00 D-1);
  - ``+intraday``: the same rule with each hour's latest probability (12:00/14:00/16:00 updates of D);
  - ``naive``: the issue's day-before rule: curtail every flexible unit 14:00-19:00 local (5 hours) on days whose
    day-ahead system load forecast peak comes within 2% of the month's actual peak so far (through the end of D-1);
    ERCOT's forecast exists only for 2024 in the shipped data, so every year is also shown with D-1's actual load
    as the forecast (labelled ``naive (D-1 load)``).

  Accounting: a unit runs in an hour (the baseline) iff its realised margin (mining value at the day's hashprice,
  or the GPU spot value = spot price x utilisation per GPU-hour, minus the hour's HB_WEST real-time price: under the
  take-or-pay block an unused MWh is sold at the market price) is positive. Curtailing a running unit in an actual
  peak hour avoids MW x charge x 1000 / 4; curtailing it in any hour gives up MW x realised margin.
  Net = avoided - given up; capture = net / perfect's net. "peaks hit": actual peak hours in which the rule
  curtailed at least one unit; "hours": hours with any unit curtailed; "MWh": curtailed energy.

``--startup`` prints only the cost of the first 4CP estimate in a process (what ``curtail schedule`` pays): the
walk-forward fit done afresh against the parameters taken from the shipped cache (``data/fourcp_params.json``).

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import math
import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from optimizer import data, fourcp
from optimizer import forecast as F
from optimizer.site import load_site

INTRADAY_HOURS_LOCAL = (12, 14, 16)
THRESHOLD_GRID = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
NAIVE_HOURS_LOCAL = range(14, 19)          # 14:00-19:00 local: hours starting 14..18
NAIVE_WITHIN = 0.02


@dataclass(frozen=True)
class Units:
    """The site's flexible units as arrays over a summer's hours: MW, realised and forecast margins (USD/MWh)."""

    names: tuple[str, ...]
    mw: np.ndarray                 # (U,)
    margin: np.ndarray             # (U, H) realised: value at the day's hashprice - actual RT price
    margin_forecast: np.ndarray    # (U, H) at the decision: value at the hashprice known - naive price forecast


def summer_hours(year: int, tz: str) -> pd.DatetimeIndex:
    z = ZoneInfo(tz)
    start = pd.Timestamp(dt.datetime(year, 6, 1, tzinfo=z)).tz_convert("UTC")
    end = pd.Timestamp(dt.datetime(year, 10, 1, tzinfo=z)).tz_convert("UTC")
    return pd.date_range(start, end, freq="1h", inclusive="left", name="timestamp")


def summer_days(year: int) -> list[dt.date]:
    d, out = dt.date(year, 6, 1), []
    while d.month <= 9:
        out.append(d)
        d += dt.timedelta(days=1)
    return out


def units_for(site, history: F.MarketHistory, year: int) -> Units:
    tz = history.timezone
    hours = summer_hours(year, tz)
    local_day = hours.tz_convert(tz).date
    price = history.rt.reindex(hours).to_numpy()
    hp = data.hashprice_series()
    hp_real = np.array([float(hp.loc[pd.Timestamp(d)]) for d in local_day])
    known = {d: known_hashprice(hp, F.decision_time_for(d, tz)) for d in summer_days(year)}
    hp_known = np.array([known[d] for d in local_day])
    fc = pd.concat([F.forecast("naive", history, F.decision_time_for(d, tz), F.horizon_for(d, tz, 0))
                    for d in summer_days(year)]).reindex(hours).to_numpy()
    names, mw, real, fore = [], [], [], []
    for f in site.mining:
        names.append(f.name)
        mw.append(f.capacity_mw)
        real.append(np.array([f.value_usd_per_mwh(x) for x in hp_real]) - price)
        fore.append(np.array([f.value_usd_per_mwh(x) for x in hp_known]) - fc)
    for g in site.gpu:                  # spot GPUs: price x utilisation per GPU-hour (the site file's numbers)
        value = g.spot_price_usd_per_gpu_hour * g.spot_utilization / g.mw_per_gpu
        names.append(f"{g.name} (spot)")
        mw.append((g.gpus - g.committed_gpus) * g.mw_per_gpu)
        real.append(value - price)
        fore.append(value - fc)
    return Units(tuple(names), np.array(mw), np.array(real), np.array(fore))


def known_hashprice(hp: pd.Series, decision_time: pd.Timestamp) -> float:
    """The latest daily hashprice whose UTC day had ended by the decision time."""
    cutoff = decision_time.tz_convert("UTC").tz_localize(None) - pd.Timedelta(days=1)
    return float(hp[hp.index <= cutoff].iloc[-1])


def day_ahead_probabilities(history, year, params) -> tuple[pd.Series, dict]:
    ev = fourcp.evaluate(history, year, params=params)
    return ev["probabilities"], ev


def intraday_probabilities(history, year, params, d1: pd.Series, peaks: list[pd.Timestamp]
                           ) -> tuple[pd.Series, dict[int, pd.Series], dict[int, tuple[float, float]]]:
    """Each hour's latest probability (10:00 D-1, then the updates of D before the hour), each update's own
    probabilities, and per update hour u the summer's summed log score of the event "the month's peak is this hour
    of D from u on / is none of them", for the 10:00 D-1 forecast and for the update."""
    tz = history.timezone
    latest = d1.copy()
    each: dict[int, list[pd.Series]] = {h: [] for h in INTRADAY_HOURS_LOCAL}
    scores = {h: [0.0, 0.0] for h in INTRADAY_HOURS_LOCAL}
    for d in summer_days(year):
        day_hours = F.horizon_for(d, tz, 0)
        for h in INTRADAY_HOURS_LOCAL:
            t = pd.Timestamp(dt.datetime.combine(d, dt.time(h), ZoneInfo(tz))).tz_convert("UTC")
            rest = day_hours[day_hours >= t]
            p = fourcp.peak_probability(history, t, rest, params)
            latest.loc[rest] = p.to_numpy()
            each[h].append(p)
            scores[h][0] += event_log_score(d1.reindex(rest), peaks)
            scores[h][1] += event_log_score(p, peaks)
    return latest, {h: pd.concat(v) for h, v in each.items()}, {h: (a, b) for h, (a, b) in scores.items()}


def event_log_score(p: pd.Series, peaks: list[pd.Timestamp]) -> float:
    """log P(the peak hour) if a month's peak is among p's hours, else log P(none of them)."""
    inside = [pk for pk in peaks if pk in p.index]
    q = float(p[inside[0]]) if inside else 1.0 - float(p.sum())
    return math.log(max(q, fourcp.LOG_SCORE_FLOOR))


def settle(curtail: np.ndarray, units: Units, peak_mask: np.ndarray, usd_per_mw_peak: float) -> dict:
    """curtail (U, H) bool -> figures of the rule (see the module docstring)."""
    running = units.margin > 0
    cut = curtail & running
    avoided_u = (cut & peak_mask[None, :]).sum(axis=1) * units.mw * usd_per_mw_peak
    given_u = (np.where(cut, units.margin, 0.0) * units.mw[:, None]).sum(axis=1)
    any_cut = curtail.any(axis=0)
    caught = int((any_cut & peak_mask).sum())
    return {"hours": int(any_cut.sum()), "mwh": float((curtail * units.mw[:, None]).sum()), "caught": caught,
            "avoided": float(avoided_u.sum()), "given_up": float(given_u.sum()),
            "net": float(avoided_u.sum() - given_u.sum()), "avoided_u": avoided_u, "given_u": given_u}


def threshold_curtail(p: np.ndarray, units: Units, x: float) -> np.ndarray:
    return np.broadcast_to(p >= x, units.margin.shape)


def ev_curtail(p: np.ndarray, units: Units, usd_per_mw_peak: float) -> np.ndarray:
    return p[None, :] * usd_per_mw_peak > np.maximum(units.margin_forecast, 0.0)


def naive_curtail(history, year, hours: pd.DatetimeIndex, forecast_kind: str) -> np.ndarray:
    tz = history.timezone
    load = history.load
    z = ZoneInfo(tz)
    flagged = np.zeros(len(hours), dtype=bool)
    local = hours.tz_convert(tz)
    for d in summer_days(year):
        start = pd.Timestamp(dt.datetime.combine(d, dt.time(), z)).tz_convert("UTC")
        end = pd.Timestamp(dt.datetime.combine(d + dt.timedelta(days=1), dt.time(), z)).tz_convert("UTC")
        if forecast_kind == "ercot":
            f = history.load_forecast
            forecast_peak = float(f[(f.index >= start) & (f.index < end)].max())
        else:                                                   # D-1's actual load as the forecast of D
            prev = pd.Timestamp(dt.datetime.combine(d - dt.timedelta(days=1), dt.time(), z)).tz_convert("UTC")
            forecast_peak = float(load[(load.index >= prev) & (load.index < start)].max())
        month_start = pd.Timestamp(dt.datetime(d.year, d.month, 1, tzinfo=z)).tz_convert("UTC")
        so_far = load[(load.index >= month_start) & (load.index < start)]
        if so_far.empty or forecast_peak >= (1.0 - NAIVE_WITHIN) * float(so_far.max()):
            flagged |= (local.date == d) & np.isin(local.hour, NAIVE_HOURS_LOCAL)
    return flagged


def best_threshold(history, site, year, params, usd, cache) -> float:
    """x of THRESHOLD_GRID with the best total net value on the shipped summers before ``year`` (probabilities
    from ``params``, fitted through year - 1; ``usd`` per MW in one monthly peak)."""
    totals = np.zeros(len(THRESHOLD_GRID))
    for y in fourcp._complete_summers(history, year - 1):
        p, _ = cached(cache, ("d1", y, params), lambda y=y: day_ahead_probabilities(history, y, params))
        units = cached(cache, ("units", y), lambda y=y: units_for(site, history, y))
        peaks = p.index.isin(fourcp.monthly_peak_hours(history.load, history.timezone))
        for k, x in enumerate(THRESHOLD_GRID):
            totals[k] += settle(threshold_curtail(p.to_numpy(), units, x), units, peaks, usd)["net"]
    return float(THRESHOLD_GRID[int(np.argmax(totals))])


def afternoon_daily(ev: dict, tz: str) -> float:
    """The daily log score of "the peak is one of the 14:00-18:00 local hours, every day alike"."""
    total = 0.0
    for m in ev["months"].values():
        n = m["hours"] // 24
        inside = 14 <= m["peak_hour"].tz_convert(tz).hour <= 18
        total += (n - 1) * math.log(1.0 - 1.0 / n) + (math.log(1.0 / (5 * n)) if inside
                                                       else math.log(fourcp.LOG_SCORE_FLOOR))
    return total


def cached(cache: dict, key, make):
    if key not in cache:
        cache[key] = make()
    return cache[key]


def musd(x: float) -> str:
    return f"{x / 1e6:7.2f}"


def startup(history: F.MarketHistory) -> None:
    """First 4CP estimate of a process for the default day (2022-07-20, decided 10:00 on 07-19; parameters fitted
    through 2021): fresh fit vs the shipped parameter cache, each from empty in-process caches, median of 3."""
    tz = history.timezone
    t = F.decision_time_for(dt.date(2022, 7, 20), tz)
    horizon = F.horizon_for(dt.date(2022, 7, 20), tz, 24)

    def first_call(fresh: bool) -> float:
        fourcp._FIT_CACHE.clear()
        fourcp._SUMMER_CACHE.clear()
        t0 = time.perf_counter()
        params = fourcp.fit_params(history, 2021, cache=not fresh)
        fourcp.peak_probability(history, t, horizon, params)
        return time.perf_counter() - t0

    for label, fresh in (("fresh walk-forward fit", True), ("shipped parameter cache", False)):
        runs = sorted(first_call(fresh) for _ in range(3))
        print(f"first peak_probability of a process, {label}: {runs[1]:.3f} s (median of 3; "
              f"{', '.join(f'{r:.3f}' for r in runs)})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--years", default="2022,2023,2024")
    ap.add_argument("--charge", type=float, default=100.0, help="4CP charge, USD/kW-year")
    ap.add_argument("--site", default=str(data.default_site_path()))
    ap.add_argument("--quick", action="store_true", help="2024 only, no intraday, no threshold choice")
    ap.add_argument("--startup", action="store_true", help="only the first-call cost: fresh fit vs shipped cache")
    args = ap.parse_args()
    if args.startup:
        startup(F.MarketHistory.shipped("HB_HUBAVG"))
        return
    years = [2024] if args.quick else [int(y) for y in args.years.split(",")]
    site = load_site(args.site)
    usd = args.charge * 1000.0 / 4.0
    history = F.MarketHistory.shipped(site.settlement_point)
    tz = history.timezone
    t0 = time.perf_counter()
    cache: dict = {}
    print(f"4CP skill, shipped ERCOT data, site {site.name}, charge {args.charge:g} USD/kW-year "
          f"({usd:,.0f} USD per MW in one monthly peak)")
    rows, pooled_p, pooled_peaks = [], [], []
    for year in years:
        params = fourcp.fit_params(history, year - 1)
        print(f"\n=== {year}: parameters fitted on summers {params.summers or 'none (defaults)'}: "
              f"day_error_correlation {params.day_error_correlation:.3f}, hour_sd_log {params.hour_sd_log:.4f}"
              + (f", in-sample mean log score {params.mean_log_score:.3f} over {params.decisions} decisions"
                 if params.mean_log_score is not None else ""))
        p, ev = cached(cache, ("d1", year, params), functools.partial(day_ahead_probabilities, history, year, params))
        peaks = [m["peak_hour"] for m in ev["months"].values()]
        pooled_p.append(p)
        pooled_peaks += peaks
        print(f"{'month':>6}{'peak hour (local)':>22}{'p at peak':>11}{'log score':>11}{'uniform':>9}{'rank':>6}"
              f"{'sum p':>7}")
        for m, r in ev["months"].items():
            print(f"{m:>6}" + f"{r['peak_hour'].tz_convert(tz):%Y-%m-%d %H:%M}".rjust(22)
                  + f"{r['probability_at_peak']:11.4f}{r['log_score']:11.2f}{r['uniform_log_score']:9.2f}"
                  f"{r['rank_of_peak']:6d}{r['sum_probability']:7.2f}")
        ls = np.mean([r["log_score"] for r in ev["months"].values()])
        us = np.mean([r["uniform_log_score"] for r in ev["months"].values()])
        print(f"  mean log score {ls:.2f} vs uniform {us:.2f}: {ls - us:+.2f} nats per month "
              f"({math.exp(ls - us):.1f}x the uniform probability)")
        daily = sum(r["daily_log_score"] for r in ev["months"].values())
        uniform_daily = sum(r["uniform_daily_log_score"] for r in ev["months"].values())
        fixed = fourcp.evaluate(history, year, params=fourcp.DEFAULT_PARAMS)
        fixed_daily = sum(r["daily_log_score"] for r in fixed["months"].values())
        print(f"  daily log score of the summer (each day D: the peak hour if D holds it, else 'none of D'): "
              f"{daily:.2f}; uniform {uniform_daily:.2f}; afternoon climatology {afternoon_daily(ev, tz):.2f}; "
              f"with the in-sample constants (0.6, 1%) {fixed_daily:.2f}")
        print("  calibration (D-1 10:00 forecasts of every summer hour):")
        print(fourcp.calibration(p, peaks).to_string(index=False, float_format=lambda v: f"{v:.4f}"))

        units = cached(cache, ("units", year), functools.partial(units_for, site, history, year))
        hours = summer_hours(year, tz)
        peak_mask = hours.isin(peaks)
        results = {"perfect": settle(np.broadcast_to(peak_mask, units.margin.shape), units, peak_mask, usd)}
        if not args.quick:
            x = best_threshold(history, site, year, params, usd, cache)
            results[f"threshold p>={x:g}"] = settle(threshold_curtail(p.to_numpy(), units, x), units, peak_mask, usd)
        results["expected-value"] = settle(ev_curtail(p.to_numpy(), units, usd), units, peak_mask, usd)
        if not args.quick:
            latest, each, event = intraday_probabilities(history, year, params, p, peaks)
            results[f"threshold p>={x:g} +intraday"] = settle(threshold_curtail(latest.to_numpy(), units, x), units,
                                                            peak_mask, usd)
            results["expected-value +intraday"] = settle(ev_curtail(latest.to_numpy(), units, usd), units,
                                                         peak_mask, usd)
            print("  intraday updates: probability of each actual peak hour as known then (log score)")
            print(f"{'peak hour (local)':>22}{'10:00 D-1':>18}" + "".join(f"{f'{h}:00 D':>18}"
                                                                      for h in INTRADAY_HOURS_LOCAL))
            for pk in peaks:
                cells = [f"{p[pk]:.4f} ({math.log(max(p[pk], fourcp.LOG_SCORE_FLOOR)):6.2f})"]
                for h in INTRADAY_HOURS_LOCAL:
                    q = each[h]
                    cells.append(f"{q[pk]:.4f} ({math.log(max(q[pk], fourcp.LOG_SCORE_FLOOR)):6.2f})"
                                 if pk in q.index else "(after)")
                print(f"{pk.tz_convert(tz):%Y-%m-%d %H:%M}".rjust(22) + "".join(f"{c:>18}" for c in cells))
            print("  every day D: summed log score of 'which of D's hours from u on is the month's peak, or none' "
                  f"({len(summer_days(year))} days)")
            for h, (a, b) in event.items():
                print(f"    u = {h}:00   10:00 D-1 forecast {a:7.2f}   update at u {b:7.2f}   gain {b - a:+.2f} nats")
        if history.load_forecast is not None and history.load_forecast.reindex(hours).notna().all():
            results["naive (ERCOT DA forecast)"] = settle(
                np.broadcast_to(naive_curtail(history, year, hours, "ercot"), units.margin.shape), units, peak_mask,
                usd)
        results["naive (D-1 load)"] = settle(
            np.broadcast_to(naive_curtail(history, year, hours, "d-1"), units.margin.shape), units, peak_mask, usd)
        perfect_net = results["perfect"]["net"]
        print("  rules on the default site (simple per-hour arithmetic; the backtest gives the real figure):")
        print(f"{'rule':>34}{'peaks hit':>10}{'hours':>7}{'MWh':>9}{'avoided M$':>11}{'given up M$':>12}"
              f"{'net M$':>8}{'capture':>8}")
        for name, r in results.items():
            print(f"{name:>34}{r['caught']:>8}/4{r['hours']:7d}{r['mwh']:9.0f}{musd(r['avoided']):>11}"
                  f"{musd(r['given_up']):>12}{musd(r['net']):>8}{r['net'] / perfect_net:8.3f}")
            rows.append((year, name, r))
        ev_r = results["expected-value"]
        print("  expected-value rule per unit (avoided / given up, M$): " + "; ".join(
            f"{n} {musd(a).strip()} / {musd(g).strip()}" for n, a, g in zip(units.names, ev_r["avoided_u"],
                                                                          ev_r["given_u"], strict=True)))
    if len(years) > 1:
        print("\n=== pooled calibration, " + ", ".join(map(str, years)))
        print(fourcp.calibration(pd.concat(pooled_p), pooled_peaks).to_string(
            index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"\n{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
