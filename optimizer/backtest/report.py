"""Backtest outputs: per-interval NetCDF, per-day CSV, summary JSON, PNG plots and a self-contained HTML report."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np
import pandas as pd

from optimizer.backtest.engine import Result
from optimizer.errors import InputError

COLORS = {"schedule": "#1f77b4", "schedule+strike": "#2ca02c", "strike": "#ff7f0e", "always-on": "#7f7f7f",
          "perfect": "#9467bd", "stochastic+strike": "#d62728"}


def write(result: Result, out_dir: str | Path, week_start: str | None = None) -> dict[str, Path]:
    """Write every output into ``out_dir`` (created if missing); returns the paths by name."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output folder ({exc.strerror})", source=str(out)) from None
    paths = {"intervals": out / "intervals.nc", "days": out / "days.csv", "summary": out / "summary.json",
             "week": out / "week.png", "cumulative": out / "cumulative.png", "monthly": out / "monthly.png",
             "report": out / "report.html"}
    ds = result.intervals.copy()
    ds.attrs = {k: (v if isinstance(v, (int, float, str)) else str(v)) for k, v in ds.attrs.items()}
    ds.to_netcdf(paths["intervals"])
    result.days.to_csv(paths["days"], float_format="%.2f")
    paths["summary"].write_text(json.dumps(result.summary, indent=1, default=str) + "\n")
    figures = {"week": _week(result, week_start), "cumulative": _cumulative(result), "monthly": _monthly(result)}
    for name, fig in figures.items():
        fig.savefig(paths[name], dpi=110, bbox_inches="tight")
    paths["report"].write_text(_html(result, {k: paths[k] for k in figures}))
    import matplotlib.pyplot as plt

    for fig in figures.values():
        plt.close(fig)
    return paths


def headline(result: Result) -> pd.DataFrame:
    """One row per policy: profit and its parts, energy, restarts; sorted by profit."""
    rows = []
    for p, v in result.summary["policies"].items():
        rows.append({"policy": p, "profit_usd": v["profit_usd"], "mining_revenue_usd": v["mining_revenue_usd"],
                     "ai_revenue_usd": v["ai_revenue_usd"], "power_credits_usd": v["power_credits_usd"],
                     "energy_cost_usd": v["energy_cost_usd"], "restart_cost_usd": v["restart_cost_usd"],
                     "fourcp_charge_usd": v["fourcp_charge_usd"],
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
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
    ax1.plot(sel["time"], sel["price_usd_per_mwh"].isel(policy=0), color="black", lw=0.8)
    ax1.set_ylabel("real-time price, USD/MWh")
    ax1.set_yscale("symlog", linthresh=100)
    for p in sel["policy"].values:
        ax2.plot(sel["time"], sel["load_mw"].sel(policy=p), label=str(p), color=COLORS.get(str(p)), lw=1)
    ax2.set_ylabel("site load, MW")
    ax2.legend(loc="lower left", fontsize=8, ncol=5)
    ax1.set_title(f"{result.summary['site']}: the week from {start.date()} (UTC)")
    return fig


def _cumulative(result: Result):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 4))
    for p in result.intervals["policy"].values:
        s = result.intervals["profit_usd"].sel(policy=p).to_series().cumsum() / 1e6
        ax.plot(s.index, s.to_numpy(), label=str(p), color=COLORS.get(str(p)))
    ax.set_ylabel("cumulative profit, M USD")
    ax.legend(fontsize=8)
    return fig


def _monthly(result: Result):
    """Value captured per month: (policy - always-on) / (perfect - always-on)."""
    plt = _plt()
    d = result.days.filter(like=":profit_usd")
    d.index = pd.to_datetime(d.index)
    m = d.groupby(d.index.to_period("M")).sum()
    fig, ax = plt.subplots(figsize=(11, 4))
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
    return fig


def _img(path: Path) -> str:
    return f'<img alt="{path.stem}" src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}">'


def _html(result: Result, images: dict[str, Path]) -> str:
    s = result.summary
    table = headline(result).to_html(float_format=lambda x: f"{x:,.0f}", border=0)
    facts = {k: s[k] for k in ("site", "settlement_point", "start", "end", "days", "forecast_method",
                               "decision_hour_local", "lookahead_hours", "interval_hours", "policy", "value_capture",
                               "perfect_foresight_profit_usd", "always_on_profit_usd", "forecast_mae_usd_per_mwh",
                               "wall_seconds", "solver_seconds")}
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in facts.items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>curtail backtest: {html.escape(s['site'])}</title>
<style>body{{font-family:sans-serif;max-width:1150px;margin:2em auto}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}} img{{max-width:100%}}</style></head><body>
<h1>Backtest: {html.escape(s['site'])}, {s['start']} .. {s['end']}</h1>
<h2>Headline (USD, MWh; settled at actual real-time prices)</h2>
{table}
<p>Best non-perfect policy <b>{html.escape(str(s['policy']))}</b> captures
<b>{_fmt(s['value_capture'])}</b> of the value perfect foresight adds over always-on.</p>
<h2>Run</h2><table>{rows}</table>
<h2>A week of prices and dispatch</h2>{_img(images['week'])}
<h2>Cumulative profit</h2>{_img(images['cumulative'])}
<h2>Value captured per month</h2>{_img(images['monthly'])}
</body></html>
"""


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.4f}" if abs(v) < 10 else f"{v:,.0f}"
    return str(v)
