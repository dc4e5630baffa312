"""``curtail ledger``: the month to date from the ledger, settled on the real-time prices in the store.

Thin over :mod:`optimizer.ledger`: settles every interval whose real-time price is in the store (one transaction),
then prints planned vs realised profit and its parts, sell-back credits, curtailment hours, 4CP exposure and each GPU
cluster's SLA availability against the month's budget. Exit codes: 0 done; 2 bad input (no ledger, bad month).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from optimizer.errors import CurtailError


def ledger(
    ledger: Annotated[Path, typer.Option(help="The ledger (SQLite) curtail schedule / operate record in.")] = Path(
        "curtail-ledger.sqlite"),
    month: Annotated[str | None,
                     typer.Option(help="Local month, YYYY-MM. Default: the latest month with a run.")] = None,
    site: Annotated[Path | None, typer.Option(help="Site model (TOML). Default: the embedded west-texas-200.")] = None,
    store: Annotated[Path | None, typer.Option(help="Store with real-time prices and system load (curtail data "
                                               "update). Default: $CURTAIL_STORE, else ~/.local/share/curtail/market."
                                               )] = None,
    shipped: Annotated[bool, typer.Option(help="Also settle on the shipped 2020-2024 real-time prices and load "
                                          "where the store has none (replays of past days).")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Month to date: planned vs realised profit, credits, curtailment, 4CP exposure and SLA budget."""
    from optimizer import data, live
    from optimizer import ledger as book
    from optimizer.site import load_site

    try:
        site_obj = load_site(site or data.default_site_path())
        the_month = month or _latest_month(book, ledger, site_obj.name)
        market = live.Store(store or live.default_store())
        prices, source = _rt(live, data, market, site_obj.settlement_point, shipped)
        settled = book.settle(ledger, site_obj, prices, price_source=source, month=the_month) if len(prices) else 0
        load = market.load()
        if shipped:
            load = load.combine_first(data.ercot_load()) if len(load) else data.ercot_load()
        report = book.month_report(ledger, site_obj, the_month, system_load=load,
                                   system_load_source=f"the store {market.root}" + (" and the shipped data"
                                                                                    if shipped else ""))
    except CurtailError as exc:
        typer.echo(f"curtail ledger: error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    if json_out:
        typer.echo(json.dumps(asdict(report), indent=1, default=str))
        return
    typer.echo(format_report(report, settled, source if len(prices) else
                             f"none (no real-time prices for {site_obj.settlement_point} in {market.root})"))


def _latest_month(book, path: Path, site: str) -> str:
    runs = book.runs(path, site)
    if not len(runs):
        from optimizer.errors import InputError

        raise InputError(f"the ledger holds no run of site {site!r}", source=str(path))
    return str(runs["day"].dropna().max())[:7]


def _rt(live, data, market, point: str, shipped: bool):
    prices = market.rt_prices(point, "15min")
    source = f"ERCOT real-time {point} (store {market.root})"
    if shipped:
        try:
            ship = data.ercot_prices(point, "rt", "15min")
        except CurtailError:
            ship = prices.iloc[:0]
        prices = prices.combine_first(ship) if len(prices) else ship
        source = f"ERCOT real-time {point} (store {market.root}, shipped where the store has none)"
    return prices, source


def _money(x: float | None) -> str:
    if x is None:
        return "-"
    r = round(float(x))
    return f"{0 if r == 0 else r:,.0f}"


def _num(x: float | None, decimals: int = 1) -> str:
    if x is None:
        return "-"
    r = round(float(x), decimals)
    return f"{0.0 if r == 0 else r:,.{decimals}f}"


PARTS = (("mining revenue", "mining_revenue_usd", 1), ("AI revenue", "ai_revenue_usd", 1),
         ("sell-back credit", "sellback_credit_usd", 1), ("energy bought", "energy_cost_usd", -1),
         ("contract block", "contract_cost_usd", -1), ("restart costs", "restart_cost_usd", -1),
         ("SLA credits", "sla_credit_usd", -1), ("4CP charge", "fourcp_charge_usd", -1),
         ("reserves", "reserve_revenue_usd", 1), ("job penalties", "job_penalty_usd", -1))


def format_report(r, settled: int, source: str) -> str:
    """The month-to-date table printed by ``curtail ledger``."""
    runs = ", ".join(f"{v} {k}" for k, v in sorted(r.runs.items())) or "none"
    days = f"{r.plan_days[0]} .. {r.plan_days[-1]} ({len(r.plan_days)} days)" if r.plan_days else "none"
    lines = [f"site {r.site}, month {r.month} to date", f"runs               {runs}", f"plans              {days}",
             f"settled            {r.settled_intervals} intervals of 15 min ("
             + ", ".join(f"{v} from {k}" for k, v in sorted(r.settled_basis.items())) + f"); this call: {settled}",
             f"real-time prices   {source}", "",
             f"{'USD':<18} {'planned':>14} {'planned*':>14} {'realised*':>14}"]
    for label, key, sign in PARTS:
        vals = [(None if key not in d else sign * d[key]) for d in (r.planned, r.planned_on_settled, r.realised)]
        if key == "fourcp_charge_usd":
            vals[2] = None
        lines.append(f"{label:<18} " + " ".join(f"{_money(v):>14}" for v in vals))
    before = [None if "profit_usd" not in d else d["profit_usd"] + d["fourcp_charge_usd"]
              for d in (r.planned, r.planned_on_settled)] + [r.realised.get("profit_usd")]
    lines.append(f"{'profit before 4CP':<18} " + " ".join(f"{_money(v):>14}" for v in before))
    lines.append(f"{'profit':<18} " + " ".join(f"{_money(v):>14}" for v in
                                           (r.planned.get("profit_usd"), r.planned_on_settled.get("profit_usd"),
                                            None)))
    for label, key in (("sold back, MWh", "sellback_mwh"), ("mined, MWh", "mining_mwh"),
                       ("curtailed, hours", "curtailment_hours"), ("hours", "hours")):
        lines.append(f"{label:<18} " + " ".join(f"{_num(d.get(key)):>14}" for d in
                                              (r.planned, r.planned_on_settled, r.realised)))
    lines += ["* on the settled intervals only; realised = what was drawn (operate where recorded, else the plan)",
              "  at the real-time price; its 4CP charge is the exposure below, its SLA credit the budget below", ""]
    if r.fourcp_month:
        lines.append(f"4CP exposure ({r.exposure_basis}; {r.fourcp_usd_per_mw_peak:,.0f} USD per MW in the peak):")
        for e in r.exposure:
            risk = f"system load {e.risk:>9,.0f} MW" if e.risk_unit == "MW" else f"peak chance {e.risk:>9.4f}"
            if e.site_load_mw != e.site_load_mw:          # NaN: nothing recorded for that hour
                lines.append(f"  {e.hour:%Y-%m-%d %H:%M} UTC  {risk}  site load not recorded")
                continue
            lines.append(f"  {e.hour:%Y-%m-%d %H:%M} UTC  {risk}  site load {e.site_load_mw:8.2f} MW ({e.basis})  "
                         f"charge if the peak {_money(e.charge_if_peak_usd):>12} USD")
        if not r.exposure:
            lines.append("  (no interval recorded yet)")
    else:
        lines.append("4CP: not a 4CP month (June .. September)" if r.month[5:] not in ("06", "07", "08", "09")
                     else "4CP: the site has no 4CP charge")
    lines.append(f"SLA ({r.sla_basis}):")
    for s in r.sla:
        lines.append(f"  {s.cluster:<10} availability {100 * s.availability:.4f}%  downtime {_num(s.used_minutes)} of "
                     f"{_num(s.budget_minutes)} min budget ({100 * s.budget_level:g}% over {s.month_hours:g} h), "
                     f"{_num(s.left_minutes)} min left; credit owed {_money(s.credit_usd)} USD")
    if not r.sla:
        lines.append("  (no committed GPU load)")
    return "\n".join(lines)
