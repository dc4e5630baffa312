"""No option silently dropped: every option of ``curtail schedule`` either changes what is solved or written, or is
refused with exit 2 and a message -- alone, and together with ``--scenarios`` (the path that once dropped hard
limits). A table drives it; the last test checks that the table covers every option the command has."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from optimizer.cli import app
from optimizer.cli import schedule as schedule_cmd

DAY = "2022-07-20"
HOURS = pd.date_range("2022-07-20T05:00Z", periods=48, freq="h")
REPO = Path(__file__).resolve().parent.parent


def cli(*args) -> tuple[int, str, dict | None]:
    r = CliRunner().invoke(app, ["schedule", "--day", DAY, *map(str, args)])
    summary = None
    if r.exit_code in (0, 5) and "--json" in args:
        summary = json.loads(r.stdout)
    return r.exit_code, r.output, summary


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("opts")
    out = {}
    out["prices"] = d / "flat.csv"
    pd.DataFrame({"timestamp": HOURS.strftime("%Y-%m-%dT%H:%M:%SZ"), "price_usd_per_mwh": 30.0}).to_csv(
        out["prices"], index=False)
    rt = pd.read_parquet(REPO / "data" / "ercot_rt_hourly.parquet").set_index("timestamp_utc")["HB_WEST"]
    base = rt.reindex(HOURS).to_numpy()
    out["scenarios"] = d / "scen.csv"
    pd.DataFrame({"timestamp": HOURS.strftime("%Y-%m-%dT%H:%M:%SZ"), "low": base * 0.5, "mid": base,
                  "high": base * 2.0}).to_csv(out["scenarios"], index=False)
    out["state"] = d / "state.json"
    out["state"].write_text(json.dumps({"s21-pro": {"on": False, "power_mw": 0.0, "hours_in_state": 0.25},
                                        "s19j-pro": {"on": False, "power_mw": 0.0, "hours_in_state": 0.25}}))
    out["emergency"] = d / "ev.csv"
    out["emergency"].write_text("start,end,max_load_mw\n2022-07-20T08:00:00Z,2022-07-20T10:00:00Z,60\n")
    out["emergency_below_sla"] = d / "ev2.csv"             # below the committed GPU load: only a breach can hold it
    out["emergency_below_sla"].write_text("start,end,max_load_mw\n2022-07-20T20:00:00Z,2022-07-20T21:00:00Z,20\n")
    out["jobs"] = d / "jobs.csv"
    out["jobs"].write_text("name,gpus,gpu_hours,release,deadline,min_run_hours,value_usd_per_gpu_hour,"
                           "late_penalty_usd_per_gpu_hour\n"
                           "batch,1000,6000,2022-07-20T05:00:00Z,2022-07-21T05:00:00Z,0,0.85,0.85\n")
    out["progress"] = d / "progress.json"
    out["progress"].write_text(json.dumps({"batch": 3000}))
    out["peaks"] = d / "peaks.csv"                        # July 2022's peak hour: 2022-07-20 16:00 CDT
    out["as_prices"] = d / "as.csv"                       # hourly clearing prices of rrs over the horizon
    pd.DataFrame({"timestamp": HOURS.strftime("%Y-%m-%dT%H:%M:%SZ"), "service": "rrs",
                  "price_usd_per_mw_hour": 7.0}).to_csv(out["as_prices"], index=False)
    out["peaks"].write_text("timestamp\n2022-07-20T21:00:00Z\n")
    return out


def _profit(summary: dict) -> float:
    return summary["profit_usd"]


@pytest.fixture(scope="module")
def base() -> dict:
    code, out, summary = cli("--json")
    assert code == 0, out
    return summary


# (option args, how it must show): "differs" = the day's profit changes; "refused" = exit 2; or a callable
# (exit code, output, summary, tmp path) -> bool for options that act elsewhere (a file written, a record).
def _table(f: dict[str, Path], tmp: Path) -> list[tuple[str, list, object]]:
    return [
        ("site", ["--site", REPO / "models" / "west-texas-200-strict.toml"], "differs"),
        ("prices", ["--prices", f["prices"]], "differs"),
        ("hashprice", ["--hashprice", 40.0], "differs"),
        ("initial_state", ["--initial-state", f["state"]], "differs"),
        ("lookahead_hours", ["--lookahead-hours", 0],
         lambda c, o, s, t: c == 0 and s["lookahead_hours"] == 0 and s["hours"] == 24),
        ("emergency", ["--emergency", f["emergency"]], "differs"),
        ("jobs", ["--jobs", f["jobs"]], "differs"),
        ("job_progress", ["--jobs", f["jobs"], "--job-progress", f["progress"]], "differs"),
        ("job_progress_without_jobs", ["--job-progress", f["progress"]], "refused"),
        ("allow_sla_breach", ["--emergency", f["emergency_below_sla"], "--allow-sla-breach"],
         lambda c, o, s, t: c == 0 and s["sla_credit_usd"] > 0),
        ("time_limit", ["--time-limit", 0.001], lambda c, o, s, t: c == 5 and s["fallback"] == 1),
        ("mip_gap", ["--mip-gap", 0.2], lambda c, o, s, t: c == 0 and s["mip_rel_gap_option"] == 0.2),
        ("accept_gap", ["--accept-gap", 0.3], lambda c, o, s, t: c == 0 and s["accept_gap_option"] == 0.3),
        ("threads", ["--threads", 2], lambda c, o, s, t: c == 0 and s["threads_option"] == 2),
        ("out", ["--out", tmp / "o.parquet"], lambda c, o, s, t: c == 0 and (t / "o.parquet").stat().st_size > 0),
        ("export_model", ["--export-model", tmp / "m.lp"],
         lambda c, o, s, t: c == 0 and "import_limit" in (t / "m.lp").read_text()),
        ("ledger", ["--out", tmp / "l.csv", "--ledger", tmp / "l.sqlite"],
         lambda c, o, s, t: c == 0 and (t / "l.sqlite").stat().st_size > 0),
        ("peaks", ["--peaks", f["peaks"]],
         lambda c, o, s, t: c == 0 and s["fourcp_settled"]["peak_hours"] == ["2022-07-20T21:00:00+00:00"]),
        ("weights", ["--weights", "0.5,0.5"], "refused"),     # only with --scenarios
        ("cvar_weight", ["--cvar-weight", 0.5], "refused"),
        ("scenarios", ["--scenarios", f["scenarios"]], lambda c, o, s, t: c == 0 and "3 scenarios" in o),
        ("json_summary", [], lambda c, o, s, t: c == 0 and s is not None),     # the baseline itself is --json
        ("day", ["--day", "2022-07-21"], "differs"),
        ("reserve", ["--reserve", "rrs,nspin"], "differs"),
        ("as_prices", ["--reserve", "rrs", "--as-prices", f["as_prices"]],
         lambda c, o, s, t: c == 0 and str(f["as_prices"]) in s["reserve_price_source"]
         and s["reserve_revenue_usd"] > 0),
        ("as_prices_without_reserves", ["--as-prices", f["as_prices"]], "refused"),   # nothing would use them
    ]


def test_every_option_changes_the_result_or_is_refused(files, base, tmp_path):
    for name, args, want in _table(files, tmp_path):
        json_args = [] if name == "scenarios" else ["--json"]
        code, out, summary = cli(*args, *json_args)
        if want == "differs":
            assert code == 0, (name, out)
            assert _profit(summary) != pytest.approx(_profit(base), rel=1e-9), name
        elif want == "refused":
            assert code == 2 and "error" in out, (name, code, out)
        else:
            assert want(code, out, summary, tmp_path), (name, code, out[-400:])


@pytest.mark.parametrize(("name", "extra", "check"), [
    # hard limits must hold on the scenario path too: the 60 MW cap in every scenario's schedule
    ("emergency", ["--emergency", "EMERGENCY"], "cap"),
    ("initial_state", ["--initial-state", "STATE"], "differs"),
    ("allow_sla_breach", ["--emergency", "BELOW_SLA", "--allow-sla-breach"], "runs"),
    ("accept_gap", ["--accept-gap", 0.3], "runs"),
    ("weights", ["--weights", "0.2,0.6,0.2"], "weights"),
    ("cvar_weight", ["--cvar-weight", 1.0], "runs"),
    ("jobs", ["--jobs", "JOBS"], "differs"),
    ("reserve", ["--reserve", "rrs", "--as-prices", "AS_PRICES"], "differs"),
    ("prices", ["--prices", "PRICES"], "refused"),
    ("export_model", ["--export-model", "MODEL"], "refused"),
    ("peaks", ["--peaks", "PEAKS"], "refused"),
    ("parquet_out", ["--out", "OUT_PARQUET"], "refused"),
])
def test_every_option_is_honoured_with_scenarios_or_refused(files, tmp_path, name, extra, check):
    subst = {"EMERGENCY": files["emergency"], "STATE": files["state"], "BELOW_SLA": files["emergency_below_sla"],
             "JOBS": files["jobs"], "PRICES": files["prices"], "MODEL": tmp_path / "m.lp", "PEAKS": files["peaks"],
             "OUT_PARQUET": tmp_path / "s.parquet", "AS_PRICES": files["as_prices"]}
    args = [subst.get(a, a) if isinstance(a, str) else a for a in extra]
    plain_out = tmp_path / "plain.csv"
    out = tmp_path / "with.csv"
    c0, o0, _ = cli("--scenarios", files["scenarios"], "--out", plain_out)
    assert c0 == 0, o0
    code, output, _ = cli("--scenarios", files["scenarios"], *args,
                          *([] if "--out" in args else ["--out", out]))
    if check == "refused":
        assert code == 2 and "error" in output, (code, output)
        return
    assert code == 0, output
    a, b = pd.read_csv(plain_out), pd.read_csv(out)
    if check == "cap":
        inside = pd.to_datetime(b["timestamp"], utc=True).between(pd.Timestamp("2022-07-20T08:00Z"),
                                                                  pd.Timestamp("2022-07-20T09:00Z"))
        assert (b.loc[inside, "load_mw"] <= 60.0 + 1e-6).all()
        assert (a.loc[inside, "load_mw"] > 60.0).any()          # without it the cap would not hold
    elif check == "weights":
        assert "weight 0.600" in output and "weight 0.333" in o0
    elif check == "differs":
        assert not np.allclose(a["profit_usd"].to_numpy(), b["profit_usd"].to_numpy())


def test_the_table_covers_every_schedule_option(files, tmp_path):
    options = set(inspect.signature(schedule_cmd.schedule).parameters)
    covered = {name for name, _, _ in _table(files, tmp_path)} | {"load", "load_forecast"}
    # --load / --load-forecast change the 4CP estimate: tests/test_fourcp_cli.py runs them against the shipped data
    assert options <= covered, sorted(options - covered)
