"""Independent schedule checker: recomputes every hard limit and the accounting from a written schedule alone.

It reads only the flat table (:func:`optimizer.results.to_frame` or a file read back), the site model, the
hashprice and the initial state; it shares no code with the model or the read-back (only the site model's own
unit formulas: mining value, SLA credit tiers, reserve limits), so a modelling bug cannot hide itself.
Used by the tests on every schedule they produce, and by ``curtail schedule`` before it writes anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from optimizer.site import Commitment, Site
from optimizer.state import UnitState

TOL_MW = 1e-4          # power tolerance, MW (HiGHS's feasibility tolerance is 1e-7 on MW-scaled rows)
TOL_USD = 0.01         # accounting tolerance, USD per hour (plus 1e-7 of the amount)
ON_FLOOR_FRACTION = 1e-3   # documented in docs/formulation.md: "on" means at least this share of capacity
ON_FLOOR_MIN_MW = 1e-3     # ... and at least 1 kW (at most the capacity)


@dataclass(frozen=True)
class Violation:
    rule: str
    asset: str
    hour: int            # 0-based row of the schedule
    detail: str

    def __str__(self) -> str:
        return f"{self.rule} [{self.asset}] hour {self.hour}: {self.detail}"


def check_schedule(site: Site, frame: pd.DataFrame, *, hashprice_usd_per_ph_day: float | np.ndarray,
                   initial_state: Mapping[str, UnitState] | None = None,
                   allow_sla_breach: bool = False) -> list[Violation]:
    """Every violated hard limit or accounting identity of ``frame`` (empty when the schedule is valid).

    ``hashprice_usd_per_ph_day``: one value, or one per row (a backtest settles each day at its own).
    ``initial_state`` is the state the schedule started from (missing assets: on at full power, long ago).
    ``allow_sla_breach``: committed GPU load may fall short; the SLA credit of the tier reached is then due.
    Minimum on/off times are checked for runs that end inside the schedule, and for the hold the initial
    state imposes; a run touching the last hour may go on past it.
    """
    out: list[Violation] = []
    state = dict(initial_state or {})
    n = len(frame)
    dt = _check_steps(frame, out)

    fleet_cols, cluster_cols, shortfalls = [], [], []
    # intervals under an emergency cap (below the import limit): a unit may be tripped to zero there
    emergency = (frame["max_load_mw"].to_numpy(float) < site.grid.import_limit_mw - TOL_MW
                 if "max_load_mw" in frame.columns else np.zeros(n, dtype=bool))
    for f in site.mining:
        col = f"mining_mw__{f.name}"
        if _need(frame, col, out):
            p = frame[col].to_numpy(float)
            fleet_cols.append(p)
            s = state.get(f.name, UnitState())
            p0 = (f.capacity_mw if s.power_mw is None else s.power_mw) if s.on else 0.0
            _check_unit(out, f.name, p, f.capacity_mw, f.commitment, p0, s, dt, emergency)
    for g in site.gpu:
        col = f"ai_mw__{g.name}"
        if _need(frame, col, out):
            p = frame[col].to_numpy(float)
            cluster_cols.append(p)
            if not allow_sla_breach:
                for t in np.flatnonzero(p < g.committed_mw - TOL_MW):
                    out.append(Violation("sla_floor", g.name, int(t),
                                         f"{p[t]:.4f} MW < committed {g.committed_mw:.4f} MW"))
            short_col = f"sla_shortfall_mw__{g.name}"
            short = frame[short_col].to_numpy(float) if short_col in frame.columns else np.zeros(n)
            for t in np.flatnonzero((short < -TOL_MW) | (short > g.committed_mw + TOL_MW)
                                    | ((short > TOL_MW) & (not allow_sla_breach))):
                out.append(Violation("sla_floor", g.name, int(t), f"shortfall {short[t]:.4f} MW not allowed"))
            shortfalls.append(np.clip(short, 0.0, None))
            s = state.get(g.name, UnitState())
            p0 = (g.flexible_mw if s.power_mw is None else s.power_mw) if s.on else 0.0
            _check_unit(out, g.name, p - g.committed_mw + short, g.flexible_mw, g.commitment, p0, s, dt, emergency)
    if len(fleet_cols) != len(site.mining) or len(cluster_cols) != len(site.gpu):
        return out

    mining = np.sum(fleet_cols, axis=0) if fleet_cols else np.zeros(n)
    ai = np.sum(cluster_cols, axis=0) if cluster_cols else np.zeros(n)
    load = mining + ai
    grid = load - site.contract.block_mw
    sold = np.clip(-grid, 0, None) if site.contract.sellback else np.zeros(n)
    for name, want in (("mining_mw", mining), ("ai_mw", ai), ("load_mw", load), ("grid_mw", grid),
                       ("sellback_mw", sold)):
        if _need(frame, name, out):
            _close(out, "balance", name, frame[name].to_numpy(float), want, TOL_MW)
    cap = np.full(n, site.grid.import_limit_mw)
    if "max_load_mw" in frame.columns:
        cap = np.minimum(cap, frame["max_load_mw"].to_numpy(float))
    for t in np.flatnonzero(load > cap + TOL_MW):
        out.append(Violation("import_limit", "site", int(t), f"load {load[t]:.4f} MW > limit {cap[t]:g} MW"))

    if not _need(frame, "price_usd_per_mwh", out):
        return out
    price = frame["price_usd_per_mwh"].to_numpy(float)
    hashprice = np.broadcast_to(np.asarray(hashprice_usd_per_ph_day, dtype=float), (n,))
    mining_rev = dt * sum(f.value_usd_per_mwh(hashprice) * c for f, c in zip(site.mining, fleet_cols, strict=True))
    ai_rev = dt * sum(g.committed_revenue_usd_per_hour * (1.0 - sh / g.committed_mw if g.committed_mw else 1.0)
                      + g.spot_value_usd_per_mwh * (c - g.committed_mw + sh)
                      for g, c, sh in zip(site.gpu, cluster_cols, shortfalls, strict=True))
    sla_credit = np.zeros(n)
    sla_credit[0] = sum(g.sla_credit_usd(float(sh.sum()) * dt) for g, sh in zip(site.gpu, shortfalls, strict=True))
    exposed = site.contract.sellback or site.contract.block_mw == 0
    energy_cost = price * np.clip(grid, 0, None) * dt if exposed else np.zeros(n)
    credit = price * sold * dt
    contract = np.full(n, site.contract.block_mw * site.contract.price_usd_per_mwh * dt)
    restart = np.zeros(n)
    flexible = [c - g.committed_mw + sh for g, c, sh in zip(site.gpu, cluster_cols, shortfalls, strict=True)]
    for unit, col in [*zip(site.mining, fleet_cols, strict=True), *zip(site.gpu, flexible, strict=True)]:
        s = state.get(unit.name, UnitState())
        on = col > TOL_MW
        prev = np.concatenate([[s.on and (s.power_mw is None or s.power_mw > TOL_MW)], on[:-1]])
        restart += unit.restart_cost_usd * (on & ~prev)
    want = {"mining_revenue_usd": mining_rev + np.zeros(n), "ai_revenue_usd": ai_rev + np.zeros(n),
            "energy_cost_usd": energy_cost, "sellback_credit_usd": credit, "contract_cost_usd": contract,
            "restart_cost_usd": restart, "sla_credit_usd": sla_credit}
    weight = frame["peak_weight"].to_numpy(float) if "peak_weight" in frame.columns else np.zeros(n)
    want["fourcp_charge_usd"] = weight * load * site.fourcp.charge_usd_per_kw_year * 250.0 * dt
    want["reserve_revenue_usd"] = _check_reserves(out, site, frame, fleet_cols, flexible, dt)
    want["profit_usd"] = (want["mining_revenue_usd"] + want["ai_revenue_usd"] - energy_cost + credit - contract
                          - restart - sla_credit - want["fourcp_charge_usd"] + want["reserve_revenue_usd"])
    for name, w in want.items():
        if _need(frame, name, out):
            _close(out, "accounting", name, frame[name].to_numpy(float), w, TOL_USD, relative=True)
    return out


def _check_unit(out, name, p, cap, c: Commitment, p0, s: UnitState, dt: float, emergency: np.ndarray) -> None:
    n = len(p)
    min_on, min_off = c.min_on_hours, c.min_off_hours
    for t in np.flatnonzero((p < -TOL_MW) | (p > cap + TOL_MW)):
        out.append(Violation("capacity", name, int(t), f"{p[t]:.4f} MW outside [0, {cap:g}]"))
    on = p > TOL_MW
    switched = c.min_load_fraction > 0 or min_on > dt or min_off > dt or c.restart_cost_usd > 0
    floor = min(max(c.min_load_fraction * cap, ON_FLOOR_FRACTION * cap, ON_FLOOR_MIN_MW), cap) if switched else 0.0
    for t in np.flatnonzero(on & (p < floor - TOL_MW)):
        out.append(Violation("min_load", name, int(t), f"{p[t]:.4f} MW on but below minimum {floor:.4f} MW"))
    # Ramps: a step between intervals may not exceed ramp x interval, except a start (from 0) or a stop (to 0),
    # which may jump up to max(that, minimum load).
    ramp = min(c.ramp_mw_per_hour * dt, cap)
    jump = max(ramp, floor)
    prev = np.concatenate([[p0], p[:-1]])
    was_on = np.concatenate([[p0 > TOL_MW], on[:-1]])
    step = p - prev
    limit = np.where(on & ~was_on, jump, np.where(~on & was_on, jump, ramp))
    tripped = emergency & ~on & was_on                 # an emergency trip to zero: allowed under an emergency cap
    for t in np.flatnonzero((np.abs(step) > limit + TOL_MW) & ~tripped):
        out.append(Violation("ramp", name, int(t), f"change {step[t]:+.4f} MW exceeds {limit[t]:.4f} MW "
                                                   f"per {dt:g} h"))
    # Minimum on/off times: runs that end inside the schedule; the initial run counts its earlier hours.
    s_on = p0 > TOL_MW
    runs = _runs(on)
    for k, (value, start, length) in enumerate(runs):
        ends_inside = start + length < n
        before = s.hours_in_state if (k == 0 and bool(value) == s_on) else 0
        need = min_on if value else min_off
        trip = bool(value) and ends_inside and emergency[start + length]
        if ends_inside and not trip and before + length * dt < need - 1e-9:
            out.append(Violation("min_on" if value else "min_off", name, int(start),
                                 f"{'on' if value else 'off'} for {before + length * dt:g} h < {need} h"))


def _check_reserves(out, site: Site, frame: pd.DataFrame, fleet_cols, flexible, dt: float) -> np.ndarray:
    """Offers never above the load a unit consumes nor what it can drop in the response time; their revenue."""
    n = len(frame)
    revenue = np.zeros(n)
    loads = dict(zip([f.name for f in site.mining] + [g.name for g in site.gpu], [*fleet_cols, *flexible], strict=True))
    units = {u.name: u for u in (*site.mining, *site.gpu)}
    total = {name: np.zeros(n) for name in loads}
    for r in site.reserves:
        price_col = f"reserve_price__{r.name}"
        price = frame[price_col].to_numpy(float) if price_col in frame.columns else np.full(n, r.price_usd_per_mw_hour)
        for name in loads:
            col = f"reserve_mw__{r.name}__{name}"
            if col not in frame.columns:
                continue
            offer = frame[col].to_numpy(float)
            limit = units[name].reserve_limit_mw(r.response_minutes)
            for t in np.flatnonzero((offer < -TOL_MW) | (offer > limit + TOL_MW)):
                out.append(Violation("reserve", name, int(t), f"{r.name} offer {offer[t]:.4f} MW outside [0, {limit:g}]"))
            total[name] += offer
            revenue += price * offer * dt
    deployed = frame["reserve_deployed_mw"].to_numpy(float) if "reserve_deployed_mw" in frame.columns else np.zeros(n)
    for name, load in loads.items():
        for t in np.flatnonzero((total[name] > load + TOL_MW) & (deployed <= TOL_MW)):
            out.append(Violation("reserve", name, int(t), f"offers {total[name][t]:.4f} MW above the load "
                                                          f"{load[t]:.4f} MW it consumes"))
    site_offer, site_load = sum(total.values(), np.zeros(n)), sum(loads.values(), np.zeros(n))
    for t in np.flatnonzero(site_offer > site_load + deployed + TOL_MW):
        out.append(Violation("reserve", "site", int(t), f"offers {site_offer[t]:.4f} MW above load {site_load[t]:.4f} "
                                                        f"MW plus deployed {deployed[t]:.4f} MW"))
    return revenue


def _runs(on: np.ndarray) -> list[tuple[bool, int, int]]:
    out, start = [], 0
    for t in range(1, len(on) + 1):
        if t == len(on) or on[t] != on[start]:
            out.append((bool(on[start]), start, t - start))
            start = t
    return out


def _check_steps(frame: pd.DataFrame, out: list[Violation]) -> float:
    """The interval length in hours (rows evenly 1 h or 15 min apart); a violation for every other step."""
    if "timestamp" not in frame.columns:
        out.append(Violation("columns", "site", 0, "missing column 'timestamp'"))
        return 1.0
    ts = pd.to_datetime(frame["timestamp"], utc=True)
    steps = np.diff(ts.to_numpy()).astype("timedelta64[s]").astype(int)
    step = int(steps[0]) if len(steps) and steps[0] in (900, 3600) else 3600
    for t in np.flatnonzero(steps != step):
        out.append(Violation("steps", "site", int(t) + 1, f"step of {steps[t]} s between rows ({step} expected)"))
    return step / 3600.0


def _need(frame: pd.DataFrame, col: str, out: list[Violation]) -> bool:
    if col in frame.columns:
        return True
    out.append(Violation("columns", col, 0, f"missing column {col!r}"))
    return False


def _close(out, rule, name, got, want, tol, relative=False) -> None:
    allowed = tol + (1e-7 * np.abs(want) if relative else 0.0)
    bad = np.flatnonzero(np.abs(got - want) > allowed)
    for t in bad[:5]:
        out.append(Violation(rule, name, int(t), f"written {got[t]:.6f}, recomputed {want[t]:.6f}"))
