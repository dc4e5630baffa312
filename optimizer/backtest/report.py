"""Backtest outputs: per-interval NetCDF, per-day CSV, summary JSON, PNG plots and a self-contained HTML report.

Every file is written like a schedule (:func:`optimizer.results.atomic_path`: a temporary file in the folder, then a
rename), so a reader never sees half a file and a failed rerun leaves the previous outputs as they were; a file that
cannot be replaced (``PermissionError``: read-only, or ``intervals.nc`` held open by a notebook) is an
:class:`~optimizer.errors.InputError` naming it (exit 2), never a traceback.

The report tells the story in panels: the headline table (thousands of USD, so it fits the page), a week of prices
and dispatch, the cumulative profit of every policy ABOVE always-on (their totals differ by a few percent, so plain
cumulative profits lie on top of each other), the value captured per month, the 4CP panel (each actual monthly peak
hour in the run, each policy's load in it and the charge it sets) and the forecast error by lead time (the D-1
forecast each operating hour was planned with, ``Result.forecast``, against the hour's actual real-time price, by
hours between the decision and the hour).
"""

from __future__ import annotations

import base64
import functools
import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from optimizer.backtest.engine import Result
from optimizer.errors import InputError

COLORS = {"mpc": "#8c564b", "schedule": "#1f77b4", "schedule+strike": "#2ca02c", "strike": "#ff7f0e",
          "always-on": "#7f7f7f", "perfect": "#9467bd", "stochastic+strike": "#d62728",
          "bid": "#17becf", "bid-strike": "#bcbd22"}
#: Lead-time bins (hours between the decision and the forecast hour's start) of the forecast-error panel.
LEAD_BINS_HOURS = (0, 18, 24, 30, 36, 42, 48, 72)
FIGURES = ("week", "cumulative", "monthly", "fourcp", "forecast_error")


def write(result: Result, out_dir: str | Path, week_start: str | None = None,
          progress: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Write every output into ``out_dir`` (created if missing), each atomically; returns the paths by name.
    ``progress`` is called with each file's name before it is written."""
    from optimizer import results

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output folder ({exc.strerror})", source=str(out)) from None
    paths = {"intervals": out / "intervals.nc", "days": out / "days.csv", "summary": out / "summary.json",
             **{name: out / f"{name}.png" for name in FIGURES}, "report": out / "report.html"}
    ds = result.intervals.copy()
    ds.attrs = {k: (v if isinstance(v, (int, float, str)) else str(v)) for k, v in ds.attrs.items()}
    plt = _plt()
    figures = {}
    try:
        _atomic(paths["intervals"], lambda tmp: ds.to_netcdf(tmp), progress)
        _atomic(paths["days"], lambda tmp: result.days.to_csv(tmp, float_format="%.2f"), progress)
        _atomic(paths["summary"], lambda tmp: Path(tmp).write_text(json.dumps(result.summary, indent=1, default=str)
                                                                   + "\n"), progress)
        figures = {"week": _week(result, week_start), "cumulative": _cumulative(result), "monthly": _monthly(result),
                   "fourcp": _fourcp_figure(result), "forecast_error": _forecast_error_figure(result)}
        for name, fig in figures.items():
            _atomic(paths[name], functools.partial(_save_png, fig), progress)
        page = _html(result, {k: paths[k] for k in figures})
        _atomic(paths["report"], lambda tmp: Path(tmp).write_text(page), progress)
    except OSError as exc:
        raise results.output_error(exc, out) from None
    finally:
        for fig in figures.values():
            plt.close(fig)
    return paths


def _save_png(fig: Any, path: str) -> None:
    """Write a matplotlib figure (imported lazily, so typed Any) as a PNG."""
    fig.savefig(path, dpi=100, bbox_inches="tight", format="png")


def _atomic(path: Path, write_to: Callable[[str], object], progress: Callable[[str], None] | None) -> None:
    from optimizer import results

    if progress:
        progress(path.name)
    try:
        with results.atomic_path(path) as tmp:
            write_to(tmp)
    except OSError as exc:
        raise results.output_error(exc, path) from None


def headline(result: Result) -> pd.DataFrame:
    """One row per policy: profit and its parts, energy, restarts; sorted by profit."""
    rows = []
    for p, v in result.summary["policies"].items():
        rows.append({"policy": p, "profit_usd": v["profit_usd"], "mining_revenue_usd": v["mining_revenue_usd"],
                     "ai_revenue_usd": v["ai_revenue_usd"], "power_credits_usd": v["power_credits_usd"],
                     "energy_cost_usd": v["energy_cost_usd"], "restart_cost_usd": v["restart_cost_usd"],
                     "fourcp_charge_usd": v["fourcp_charge_usd"],
                     **({"reserve_revenue_usd": v["reserve_revenue_usd"]} if "reserve_revenue_by_service_usd" in v
                        else {}),
                     "mined_mwh": v["mined_mwh"], "sold_back_mwh": v["sold_back_mwh"],
                     "curtailment_hours": v["curtailment_hours"], "restarts": v["restarts"]})
    return pd.DataFrame(rows).set_index("policy").sort_values("profit_usd", ascending=False)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _week(result: Result, week_start: str | None):
    """Prices and dispatch over one week: the chosen one, else the week with the highest price."""
    plt = _plt()
    ds = result.intervals
    price = ds["price_usd_per_mwh"].isel(policy=0).to_series()
    start = pd.Timestamp(week_start) if week_start else price.idxmax().normalize() - pd.Timedelta(days=3)
    sel = ds.sel(time=slice(start, start + pd.Timedelta(days=7)))
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True)
    ax1.plot(sel["time"], sel["price_usd_per_mwh"].isel(policy=0), color="black", lw=0.8)
    ax1.set_ylabel("real-time price, USD/MWh")
    ax1.set_yscale("symlog", linthresh=100)
    for p in sel["policy"].values:
        ax2.plot(sel["time"], sel["load_mw"].sel(policy=p), label=str(p), color=COLORS.get(str(p)), lw=1)
    ax2.set_ylabel("site load, MW")
    ax2.legend(loc="lower left", fontsize=8, ncol=6)
    ax1.set_title(f"{result.summary['site']}: the week from {start.date()} (UTC)")
    fig.autofmt_xdate()
    return fig


def above_always_on(result: Result) -> pd.DataFrame | None:
    """Cumulative profit of every policy minus always-on's (USD, per interval), one column per policy other than
    always-on; ``None`` when always-on was not run."""
    policies = [str(p) for p in result.intervals["policy"].values]
    if "always-on" not in policies:
        return None
    profit = result.intervals["profit_usd"].to_pandas().T            # time x policy
    profit.columns = [str(c) for c in profit.columns]
    gain = profit.drop(columns="always-on").sub(profit["always-on"], axis=0)
    return gain.cumsum()


def _cumulative(result: Result):
    """Cumulative profit above always-on (thousand USD); without always-on, plain cumulative profit."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 4))
    gain = above_always_on(result)
    if gain is None:
        for p in result.intervals["policy"].values:
            s = result.intervals["profit_usd"].sel(policy=p).to_series().cumsum() / 1e3
            ax.plot(s.index, s.to_numpy(), label=str(p), color=COLORS.get(str(p)))
        ax.set_ylabel("cumulative profit, k USD")
        ax.set_title("cumulative profit (always-on not run: no baseline)")
    else:
        for p in gain.columns:
            ax.plot(gain.index, gain[p].to_numpy() / 1e3, label=p, color=COLORS.get(p))
        ax.axhline(0.0, color=COLORS["always-on"], lw=1, ls="--", label="always-on (baseline)")
        ax.set_ylabel("cumulative profit above always-on, k USD")
        ax.set_title("what each policy adds over running everything all the time")
    ax.legend(fontsize=8, ncol=3)
    fig.autofmt_xdate()
    return fig


def _monthly(result: Result):
    """Value captured per month: (policy - always-on) / (perfect - always-on)."""
    plt = _plt()
    d = result.days.filter(like=":profit_usd")
    d.index = pd.to_datetime(d.index)
    m = d.groupby(d.index.to_period("M")).sum()
    fig, ax = plt.subplots(figsize=(10, 3.5))
    if "perfect:profit_usd" in m and "always-on:profit_usd" in m:
        room = (m["perfect:profit_usd"] - m["always-on:profit_usd"]).replace(0, np.nan)
        policies = [c.split(":")[0] for c in m.columns if c.split(":")[0] not in ("perfect", "always-on")]
        width = 0.8 / max(len(policies), 1)
        for k, p in enumerate(policies):
            share = (m[f"{p}:profit_usd"] - m["always-on:profit_usd"]) / room
            ax.bar(np.arange(len(m)) + k * width, share.to_numpy(), width, label=p, color=COLORS.get(p))
        ax.set_xticks(np.arange(len(m)) + 0.4 - width / 2, [str(x) for x in m.index], rotation=45, fontsize=8)
        ax.axhline(1.0, color="#9467bd", lw=0.8, ls="--")
        ax.set_ylabel("value captured vs perfect")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "needs the perfect and always-on policies", ha="center", va="center")
        ax.set_axis_off()
    return fig


# ----------------------------------------------------------------------------------------------------------------
# 4CP


def fourcp_peaks(result: Result) -> pd.DataFrame:
    """One row per actual monthly 4CP peak hour inside the run (``peak_weight`` 1 in the settlement): the hour (UTC
    start), and per policy its mean load in the hour (``<policy>:load_mw``) and the charge it sets
    (``<policy>:charge_usd``, the settled ``fourcp_charge_usd`` of the hour)."""
    ds = result.intervals
    weight = ds["peak_weight"].isel(policy=0).to_series()
    hours = weight.index[weight.to_numpy() > 0].floor("h").unique()
    rows = []
    for h in hours:
        inside = (weight.index >= h) & (weight.index < h + pd.Timedelta(hours=1))
        row = {"hour_utc": pd.Timestamp(h).tz_localize("UTC")}
        for p in ds["policy"].values:
            row[f"{p}:load_mw"] = float(ds["load_mw"].sel(policy=p).values[inside].mean())
            row[f"{p}:charge_usd"] = float(ds["fourcp_charge_usd"].sel(policy=p).values[inside].sum())
        rows.append(row)
    return pd.DataFrame(rows)


def _fourcp_figure(result: Result):
    plt = _plt()
    peaks = fourcp_peaks(result)
    fig, ax = plt.subplots(figsize=(10, 3.2))
    if not len(peaks):
        ax.text(0.5, 0.5, "no actual 4CP peak hour inside this run", ha="center", va="center")
        ax.set_axis_off()
        return fig
    policies = [str(p) for p in result.intervals["policy"].values]
    width = 0.8 / len(policies)
    for k, p in enumerate(policies):
        ax.bar(np.arange(len(peaks)) + k * width, peaks[f"{p}:load_mw"], width, label=p, color=COLORS.get(p))
    ax.set_xticks(np.arange(len(peaks)) + 0.4 - width / 2, [f"{h:%Y-%m-%d %H:%M}" for h in peaks["hour_utc"]])
    ax.set_ylabel("site load in the peak hour, MW")
    ax.set_title("4CP: the site's load in each monthly system peak (UTC hour start)")
    ax.legend(fontsize=8, ncol=6)
    return fig


def _fourcp_html(result: Result) -> str:
    peaks = fourcp_peaks(result)
    if not len(peaks):
        return "<p>No actual monthly 4CP peak hour falls inside this run.</p>"
    policies = [str(p) for p in result.intervals["policy"].values]
    head = "".join(f"<th>{html.escape(p)}</th>" for p in policies)
    rows = []
    for _, r in peaks.iterrows():
        load = "".join(f"<td>{r[f'{p}:load_mw']:,.1f} MW<br>{r[f'{p}:charge_usd'] / 1e3:,.0f} k USD</td>"
                       for p in policies)
        rows.append(f"<tr><th>{r['hour_utc']:%Y-%m-%d %H:%M} UTC</th>{load}</tr>")
    total = "".join(f"<td><b>{peaks[f'{p}:charge_usd'].sum() / 1e3:,.0f} k USD</b></td>" for p in policies)
    return (f"<table><tr><th>peak hour</th>{head}</tr>{''.join(rows)}<tr><th>charge, total</th>{total}</tr></table>"
            "<p>Each cell: the policy's mean load in the peak hour and the 4CP charge it sets.</p>")


# ----------------------------------------------------------------------------------------------------------------
# day-ahead vs real-time settlement (when a day-ahead policy ran)


def settlement_table(result: Result) -> pd.DataFrame | None:
    """Per policy: day-ahead cost (award x DA price), real-time deviation cost ((grid position - award) x RT price),
    their total, and what the day-ahead position added to settling it all in real time (USD; see docs/bidding.md).
    None when no day-ahead policy ran."""
    per = result.summary["policies"]
    if not any("da_cost_usd" in v for v in per.values()):
        return None
    return pd.DataFrame([{"policy": p, "da_cost_usd": v["da_cost_usd"],
                          "rt_deviation_cost_usd": v["rt_deviation_cost_usd"],
                          "market_total_usd": v["da_cost_usd"] + v["rt_deviation_cost_usd"],
                          "da_settlement_usd": v["da_settlement_usd"], "profit_usd": v["profit_usd"]}
                         for p, v in per.items()]).set_index("policy")


def _settlement_html(result: Result) -> str:
    t = settlement_table(result)
    if t is None:
        return ""
    ds = result.intervals
    monthly = ds["da_settlement_usd"].to_pandas().T.groupby(pd.DatetimeIndex(ds["time"].values).to_period("M")).sum()
    labels = {"da_cost_usd": "DA cost", "rt_deviation_cost_usd": "RT deviation cost", "market_total_usd": "total",
              "da_settlement_usd": "DA position vs all-RT", "profit_usd": "profit"}
    fmt = {"float_format": lambda x: f"{x / 1e3:,.0f}", "border": 0}
    return ("<h2>DA vs RT settlement (thousands of USD)</h2>" + t.rename(columns=labels).to_html(**fmt)
            + "<p>Market settlement of the grid position (load minus the fixed-price block; the block's cost is the "
              "same for every policy): the award at the day-ahead price plus the deviation from it at the real-time "
              "price. A policy without a day-ahead award settles all in real time. Per month (UTC), what the day-ahead "
              "position added to settling all in real time (a cost; negative: a gain):</p>"
            + monthly.to_html(**fmt))


# ----------------------------------------------------------------------------------------------------------------
# forecast error by lead time


def forecast_error_by_lead(result: Result, timezone: str | None = None) -> pd.DataFrame:
    """The D-1 forecast of every operating hour against the hour's actual real-time price (mean of its intervals),
    by lead time: hours from the decision (``decision_hour_local`` on the day before the hour's local day, in
    ``timezone``: default the summary's ``timezone``, else ERCOT's) to the hour's start. Columns ``lead_hours``,
    ``forecast``, ``actual``, ``error`` (forecast - actual), USD/MWh."""
    from optimizer import market

    tz = timezone or result.summary.get("timezone") or market.TIMEZONE
    hour = int(result.summary.get("decision_hour_local", market.DEFAULT_DECISION_HOUR_LOCAL))
    fc = result.forecast.copy()
    fc.index = pd.DatetimeIndex(fc.index).tz_convert("UTC")
    price = result.intervals["price_usd_per_mwh"].isel(policy=0).to_series()
    price.index = pd.DatetimeIndex(price.index).tz_localize("UTC")
    actual = price.groupby(price.index.floor("h")).mean().reindex(fc.index)
    local_days = fc.index.tz_convert(tz).date
    decisions = pd.DatetimeIndex([market.decision_time_for(d, tz, hour) for d in local_days])
    lead = (fc.index - decisions) / pd.Timedelta(hours=1)
    return pd.DataFrame({"lead_hours": np.asarray(lead, dtype=float), "forecast": fc.to_numpy(dtype=float),
                         "actual": actual.to_numpy(dtype=float),
                         "error": fc.to_numpy(dtype=float) - actual.to_numpy(dtype=float)}, index=fc.index)


def error_by_lead_table(result: Result, timezone: str | None = None) -> pd.DataFrame:
    """Mean absolute error, bias (mean error) and hours per lead-time bin (:data:`LEAD_BINS_HOURS`)."""
    e = forecast_error_by_lead(result, timezone).dropna()
    bins = pd.cut(e["lead_hours"], list(LEAD_BINS_HOURS), right=False)
    g = e.groupby(bins, observed=True)["error"]
    out = pd.DataFrame({"mae_usd_per_mwh": g.apply(lambda x: float(np.abs(x).mean())),
                        "bias_usd_per_mwh": g.mean(), "hours": g.size()})
    out.index = [f"{int(iv.left)}-{int(iv.right)} h" for iv in out.index]
    return out


def _forecast_error_figure(result: Result):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 3.2))
    e = forecast_error_by_lead(result).dropna()
    if not len(e):
        ax.text(0.5, 0.5, "no forecast hour with an actual price", ha="center", va="center")
        ax.set_axis_off()
        return fig
    g = e.groupby(np.floor(e["lead_hours"]))["error"]
    mae, bias = g.apply(lambda x: float(np.abs(x).mean())), g.mean()
    ax.bar(mae.index, mae.to_numpy(), width=0.8, color="#1f77b4", label="mean absolute error")
    ax.plot(bias.index, bias.to_numpy(), color="#d62728", marker=".", lw=1, label="bias (forecast - actual)")
    ax.axhline(0.0, color="black", lw=0.6)
    ax.set_xlabel("lead time: hours from the decision to the hour's start")
    ax.set_ylabel("USD/MWh")
    ax.set_title(f"D-1 forecast ({result.summary.get('forecast_method')}) against the actual real-time price")
    ax.legend(fontsize=8)
    return fig


# ----------------------------------------------------------------------------------------------------------------
# the page


_CSS = """body{font-family:sans-serif;max-width:1000px;margin:1.5em auto;padding:0 12px;box-sizing:border-box}
table{border-collapse:collapse;width:100%;table-layout:fixed;font-size:13px;margin:0.5em 0}
td,th{border:1px solid #ccc;padding:3px 5px;text-align:right;overflow-wrap:break-word}
table.headline th{font-size:12px} table.headline tr>th:first-child{width:13%;text-align:left}
th{background:#f4f4f4;font-weight:600} table.facts th{text-align:left;width:35%} table.facts td{text-align:left}
img{max-width:100%;height:auto;display:block} p{max-width:100%}"""

_LABELS = {"profit_usd": "profit", "mining_revenue_usd": "mining", "ai_revenue_usd": "AI",
           "power_credits_usd": "power credits", "energy_cost_usd": "energy bought",
           "restart_cost_usd": "restart costs",
           "fourcp_charge_usd": "4CP charge", "mined_mwh": "mined MWh", "sold_back_mwh": "sold back MWh",
           "curtailment_hours": "curtailed hours", "restarts": "restarts", "reserve_revenue_usd": "reserve capacity"}


def _headline_html(result: Result) -> str:
    t = headline(result)
    money = [c for c in t.columns if c.endswith("_usd")]
    t[money] = t[money] / 1e3
    t = t.rename(columns={c: _LABELS.get(c, c) for c in t.columns})
    t.index.name = None
    return t.to_html(float_format=lambda x: f"{x:,.0f}", border=0, classes="headline")


def reserve_revenue_by_service(result: Result) -> pd.DataFrame | None:
    """Capacity revenue (USD) per policy (rows) and service (columns), and the MWh each policy gave up in deployments
    (deployed MW x interval hours); ``None`` when the run has no reserve service."""
    per = result.summary["policies"]
    if not per or not all("reserve_revenue_by_service_usd" in v for v in per.values()):
        return None
    table = pd.DataFrame({p: v["reserve_revenue_by_service_usd"] for p, v in per.items()}).T
    dt_h = float(result.intervals.attrs["interval_hours"])
    deployed = result.intervals["reserve_deployed_mw"].sum("time").to_series() * dt_h
    table["deployed MWh"] = deployed.reindex(table.index).to_numpy()
    return table


def _reserves_html(result: Result) -> str:
    """The ancillary-service panel: capacity revenue by service and policy, where the prices and deployments came
    from, and the default policy's capacity revenue by month and service (an inline chart)."""
    table = reserve_revenue_by_service(result)
    if table is None:
        return ""
    s = result.summary
    shown = table.copy()
    services = [c for c in shown.columns if c != "deployed MWh"]
    shown[services] = shown[services] / 1e3
    shown = shown.rename(columns={c: f"{c} (k USD)" for c in services})
    policy = str(s.get("policy") or shown.index[0])
    ds = result.intervals.sel(policy=policy)
    rev = (ds["reserve_offer_mw"].sum("asset") * ds["reserve_price_usd_per_mw_hour"]).to_pandas()
    rev = rev * float(result.intervals.attrs["interval_hours"])
    monthly = rev.groupby(pd.DatetimeIndex(rev.index).to_period("M")).sum() / 1e3
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 3.2))
    bottom = np.zeros(len(monthly))
    for c in monthly.columns:
        ax.bar(np.arange(len(monthly)), monthly[c].to_numpy(), bottom=bottom, label=str(c))
        bottom += monthly[c].to_numpy()
    ax.set_xticks(np.arange(len(monthly)), [str(x) for x in monthly.index], rotation=45, fontsize=8)
    ax.set_ylabel("capacity revenue, k USD")
    ax.set_title(f"{policy}: capacity revenue by month and service")
    ax.legend(fontsize=8)
    import io

    buf = io.BytesIO()
    fig.savefig(buf, dpi=100, bbox_inches="tight", format="png")
    plt.close(fig)
    chart = f'<img alt="reserves" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'
    return (f"<h2>Ancillary services: capacity revenue by service</h2>"
            f"<p>Prices: {html.escape(str(s.get('reserve_price_source', '')))}. Deployment events: "
            f"{html.escape(str(s.get('deployment_events', 0)))}. Capacity is paid where the load backs it (and in "
            f"full while deployed); the energy a deployment gives up is in the profit, not here.</p>"
            + shown.to_html(float_format=lambda x: f"{x:,.1f}", border=0) + chart)


def _img(path: Path) -> str:
    return f'<img alt="{path.stem}" src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}">'


def _html(result: Result, images: dict[str, Path]) -> str:
    s = result.summary
    facts = {k: s.get(k) for k in ("site", "settlement_point", "start", "end", "days", "forecast_method",
                                   "decision_hour_local", "lookahead_hours", "interval_hours", "policy",
                                   "value_capture", "perfect_foresight_profit_usd", "always_on_profit_usd",
                                   "forecast_mae_usd_per_mwh", "wall_seconds", "solver_seconds")}
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in facts.items())
    lead = error_by_lead_table(result).to_html(float_format=lambda x: f"{x:,.2f}", border=0)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>curtail backtest: {html.escape(s['site'])}</title>
<style>{_CSS}</style></head><body>
<h1>Backtest: {html.escape(s['site'])}, {s['start']} .. {s['end']}</h1>
<h2>Headline (settled at actual real-time prices; money in thousands of USD)</h2>
{_headline_html(result)}
<p>Best non-perfect policy <b>{html.escape(str(s['policy']))}</b> captures
<b>{_fmt(s['value_capture'])}</b> of the value perfect foresight adds over always-on.</p>
<h2>Run</h2><table class="facts">{rows}</table>
<h2>A week of prices and dispatch</h2>{_img(images['week'])}
<h2>Cumulative profit above always-on</h2>{_img(images['cumulative'])}
<h2>Value captured per month</h2>{_img(images['monthly'])}
<h2>4CP: the monthly system peaks</h2>{_img(images['fourcp'])}
{_fourcp_html(result)}
{_reserves_html(result)}
<h2>Forecast error by lead time</h2>{_img(images['forecast_error'])}
{lead}
{_settlement_html(result)}
</body></html>
"""


def _fmt(v) -> str:
    if isinstance(v, float):
        r = round(v, 4) if abs(v) < 10 else round(v)
        r = 0.0 if r == 0 else r
        return f"{r:,.4f}" if abs(v) < 10 else f"{r:,.0f}"
    return str(v)
