"""The ledger (issue 13, part 2): every schedule run recorded in SQLite with its inputs, plan, status and gap; the
operate hook; realised settlement at real-time prices (checked by hand); the SLA month's budget and its feed into the
nightly plan; crash safety under SIGKILL and two concurrent writers (real subprocesses)."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
import xarray as xr
from typer.testing import CliRunner

from optimizer import data, ledger, results
from optimizer.cli.ledger import ledger as ledger_cmd
from optimizer.cli.schedule import schedule as schedule_cmd
from optimizer.errors import InputError
from optimizer.nightly import NightlyJob, run_day
from optimizer.site import load_site

SITE = load_site(data.default_site_path())
COMMITTED_MW = 18800 * 1.275 * 1.25 / 1000          # 29.9625 MW: the default cluster's committed GPUs at full power
MONTHLY_BILL_USD = 18800 * 2.35 * 730                # committed GPUs x price x SLA month hours

app = typer.Typer()
app.command("schedule")(schedule_cmd)
app.command("ledger")(ledger_cmd)


def cli(*args, expect: int | None = 0):
    r = CliRunner().invoke(app, list(map(str, args)))
    if expect is not None:
        assert r.exit_code == expect, (r.exit_code, r.stdout, r.stderr, r.exception)
    return r


@pytest.fixture(scope="module")
def day_plan(tmp_path_factory) -> Path:
    """The default schedule of 2022-07-20 (shipped day-ahead prices), as run_day returns it, saved as NetCDF."""
    _, ds = run_day(NightlyJob())
    path = tmp_path_factory.mktemp("plan") / "plan.nc"
    ds.to_netcdf(path)
    return path


def _plan(path: Path) -> xr.Dataset:
    with xr.open_dataset(path) as ds:
        return ds.load()


def _rows(db: Path, sql: str, *args) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


# ---------------------------------------------------------------------------------------------------------
# recording runs


def test_schedule_cli_records_the_run_beside_its_output(tmp_path):
    out = tmp_path / "s.csv"
    r = cli("schedule", "--out", out)
    db = tmp_path / ledger.DEFAULT_NAME
    assert f"ledger             {db}" in r.stdout
    (run,) = _rows(db, "SELECT run_id, kind, day, status, mip_gap, fallback, exit_code, output, output_sha256, "
                       "plan_rows FROM runs")
    assert run[1:] == ("schedule", "2022-07-20", "optimal", 0.0, 0, 0, str(out), results.file_sha256(out), 24)
    assert _rows(db, "SELECT name, sha256 FROM inputs") == [("site", SITE.sha256)]
    frame = pd.read_csv(out)
    plan = _rows(db, "SELECT timestamp, load_mw, profit_usd FROM plan ORDER BY timestamp")
    assert [p[0] for p in plan] == list(frame["timestamp"])
    np.testing.assert_allclose([p[1] for p in plan], frame["load_mw"], atol=1e-6)
    np.testing.assert_allclose([p[2] for p in plan], frame["profit_usd"], atol=1e-6)
    assert _rows(db, "SELECT COUNT(*) FROM plan_assets")[0][0] == 24 * 3
    assert ledger.integrity(db) == "ok"


def test_explicit_ledger_and_failed_runs_are_recorded(tmp_path):
    db = tmp_path / "book.sqlite"
    bad = tmp_path / "prices.csv"
    bad.write_text("timestamp,price_usd_per_mwh\n2022-07-20T05:00:00Z,40\n")       # one hour: not enough
    r = cli("schedule", "--prices", bad, "--ledger", db, expect=2)
    (run,) = _rows(db, "SELECT kind, status, exit_code, error, plan_rows FROM runs")
    assert run[:3] == ("schedule", "failed", 2) and run[4] == 0
    assert "no price for" in run[3] and run[3] in r.stderr
    assert _rows(db, "SELECT name, path FROM inputs ORDER BY name") == [("prices", str(bad)), ("site", SITE.source)]
    cli("schedule", "--ledger", db)                                   # no --out: recorded all the same
    assert _rows(db, "SELECT status, output FROM runs ORDER BY run_id") == [("failed", None), ("optimal", None)]


def test_a_missing_ledger_folder_is_refused_before_solving(tmp_path):
    r = cli("schedule", "--ledger", tmp_path / "nope" / "l.sqlite", expect=2)
    assert "ledger folder does not exist" in r.stderr


def test_not_a_ledger_is_a_named_error(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(InputError, match="junk.sqlite"):
        ledger.record_failure(junk, kind="schedule", site=SITE, error=RuntimeError("x"), exit_code=1)


# ---------------------------------------------------------------------------------------------------------
# settlement by hand


def _flat(value: float, day: str = "2022-07-20") -> pd.Series:
    start = pd.Timestamp(f"{day}T05:00Z")
    return pd.Series(value, index=pd.date_range(start, periods=96, freq="15min"))


def test_realised_settlement_at_a_known_price(tmp_path, day_plan):
    """The plan followed, settled at 100 USD/MWh every interval: sell-back = 100 x MWh sold, no energy bought,
    the block 180 MW x 32 USD x 24 h, mining and AI as planned; no 4CP charge in the realised money."""
    db = tmp_path / "l.sqlite"
    ds = _plan(day_plan)
    ledger.record_schedule(db, ds)
    assert ledger.settle(db, SITE, _flat(100.0), price_source="flat 100") == 96
    r = ledger.month_report(db, SITE, "2022-07")
    sold_mwh = float(ds["sellback_mw"].sum())
    assert r.realised["sellback_credit_usd"] == pytest.approx(100.0 * sold_mwh, rel=1e-12)
    assert r.realised["energy_cost_usd"] == 0.0
    assert r.realised["contract_cost_usd"] == pytest.approx(180 * 32 * 24)
    for part in ("mining_revenue_usd", "ai_revenue_usd", "restart_cost_usd"):
        assert r.realised[part] == pytest.approx(float(ds[part].sum()), rel=1e-9), part
    assert r.realised["fourcp_charge_usd"] == 0.0
    planned = float(ds["profit_usd"].sum())
    assert r.planned["profit_usd"] == pytest.approx(planned)
    assert r.realised["profit_usd"] == pytest.approx(planned + float(ds["fourcp_charge_usd"].sum())
                                                     - float(ds["sellback_credit_usd"].sum()) + 100.0 * sold_mwh)
    assert r.settled_intervals == 96 and r.settled_basis == {"plan": 96} and r.price_sources == ["flat 100"]
    mining_cap = sum(f.capacity_mw for f in SITE.mining)
    assert r.realised["curtailment_hours"] == float((ds["mining_mw"] < mining_cap - 1e-6).sum())


def test_intervals_without_a_price_wait_and_a_newer_plan_replaces_the_older(tmp_path, day_plan):
    db = tmp_path / "l.sqlite"
    ds = _plan(day_plan)
    ledger.record_schedule(db, ds)
    assert ledger.settle(db, SITE, _flat(50.0).iloc[:40], price_source="partial") == 40
    later = ds.copy()
    later["sellback_mw"] = later["sellback_mw"] * 0.0
    run2 = ledger.record_schedule(db, later)
    assert ledger.settle(db, SITE, _flat(50.0), price_source="full") == 96
    assert {r[0] for r in _rows(db, "SELECT source_run_id FROM settlement")} == {run2}


def _operate_payload(interval_start: str, previous_start: str, mw: dict, committed: float = COMMITTED_MW) -> dict:
    """A setpoints document of the shape optimizer.operating.Setpoints.to_dict writes (the fields the ledger reads)."""
    units = [{"name": n, "strike_usd_per_mwh": 80.0, "strike_applies": "stop",
              "if_price_below_strike": {"mw": v, "on": v > 0}, "if_price_at_or_above_strike": {"mw": 0.0, "on": False}}
             for n, v in mw.items()]
    return {"interval_start": interval_start, "units": units, "hashprice_usd_per_ph_day": 98.91537237883459,
            "plan": {"status": "optimal", "fallback": False, "fallback_reason": ""},
            "previous_interval": {"interval_start": previous_start, "price_usd_per_mwh": 30.0, "mw": mw,
                                  "on": {n: v > 0 for n, v in mw.items()}, "started": [],
                                  "committed_mw": {"h100": committed}},
            "inputs": {"site": {"path": SITE.source, "sha256": SITE.sha256}}, "created_at": "2022-07-20T06:00:00+00:00"}


def test_operate_records_setpoints_and_its_realised_interval_wins_over_the_plan(tmp_path, day_plan):
    db = tmp_path / "l.sqlite"
    ledger.record_schedule(db, _plan(day_plan))
    mw = {"s21-pro": 0.0, "s19j-pro": 40.0, "h100": 50.0}
    run = ledger.record_operate(db, _operate_payload("2022-07-20T06:00:00Z", "2022-07-20T05:45:00Z", mw), SITE)
    assert _rows(db, "SELECT unit, run_mw FROM setpoints WHERE run_id = ? ORDER BY unit", run) == [
        ("h100", 50.0), ("s19j-pro", 40.0), ("s21-pro", 0.0)]
    ledger.settle(db, SITE, _flat(30.0), price_source="flat 30")
    row = _rows(db, "SELECT basis, load_mw, sellback_credit_usd FROM settlement WHERE interval_start = ?",
                "2022-07-20T05:45:00Z")[0]
    assert row[0] == "operate" and row[1] == pytest.approx(90.0)
    assert row[2] == pytest.approx(30.0 * (180.0 - 90.0) * 0.25)           # block 180 MW, 90 drawn, a quarter hour
    assert _rows(db, "SELECT COUNT(*) FROM settlement WHERE basis = 'plan'")[0][0] == 95


# ---------------------------------------------------------------------------------------------------------
# the SLA month


def test_sla_budget_and_shortfall_before_a_day(tmp_path, day_plan):
    """A whole committed cluster out for 15 minutes: 0.25 committed-hours of 730 -> availability 99.9658%, below the
    99.99% tier (budget 4.38 min): credit 10% of the monthly bill; the nightly of any later day that month sees
    29.9625 x 0.25 MWh already missed, and the next month starts from nothing."""
    db = tmp_path / "l.sqlite"
    ledger.record_schedule(db, _plan(day_plan))
    payload = _operate_payload("2022-07-20T15:15:00Z", "2022-07-20T15:00:00Z",
                               {"s21-pro": 80.0, "s19j-pro": 40.0, "h100": 21.0375}, committed=0.0)
    ledger.record_operate(db, payload, SITE, sla_shortfall_mw={"h100": COMMITTED_MW})
    (s,) = ledger.month_report(db, SITE, "2022-07").sla
    assert s.committed_mw == pytest.approx(COMMITTED_MW)
    assert s.availability == pytest.approx(1 - 0.25 / 730)
    assert s.used_minutes == pytest.approx(15.0) and s.budget_minutes == pytest.approx(0.0001 * 730 * 60)
    assert s.left_minutes == pytest.approx(0.0001 * 730 * 60 - 15.0)
    assert s.credit_usd == pytest.approx(0.10 * MONTHLY_BILL_USD)
    before = pd.Timestamp("2022-07-21").date()
    assert ledger.sla_shortfall_before(db, SITE, before) == pytest.approx({"h100": COMMITTED_MW * 0.25})
    assert ledger.sla_shortfall_before(db, SITE, pd.Timestamp("2022-07-20").date()) == {}
    assert ledger.sla_shortfall_before(db, SITE, pd.Timestamp("2022-08-02").date()) == {}
    assert ledger.sla_shortfall_before(tmp_path / "none.sqlite", SITE, before) == {}


def test_nightly_feeds_the_months_shortfall_into_the_schedule(tmp_path, day_plan, monkeypatch):
    """run_day reads the month's missed MWh from the ledger and passes them to schedule() (here a stand-in that
    takes the new keyword and records it); the written summary says what was fed."""
    from optimizer import nightly

    db = tmp_path / "l.sqlite"
    ledger.record_schedule(db, _plan(day_plan))
    payload = _operate_payload("2022-07-20T15:15:00Z", "2022-07-20T15:00:00Z",
                               {"s21-pro": 80.0, "s19j-pro": 40.0, "h100": 21.0375}, committed=0.0)
    ledger.record_operate(db, payload, SITE, sla_shortfall_mw={"h100": COMMITTED_MW})
    seen = {}
    real = nightly.schedule

    def schedule(site, prices=None, *, sla_shortfall_before_mwh=None, **kw):
        seen["before"] = sla_shortfall_before_mwh
        return real(site, prices, **kw)

    monkeypatch.setattr(nightly, "schedule", schedule)
    summary, _ = run_day(NightlyJob(day="2022-07-21", ledger=db))
    assert seen["before"] == pytest.approx({"h100": COMMITTED_MW * 0.25})
    assert summary["sla_shortfall_before"] == pytest.approx({"h100": COMMITTED_MW * 0.25})
    assert _rows(db, "SELECT day, status FROM runs WHERE kind = 'schedule' ORDER BY run_id")[-1] == (
        "2022-07-21", "optimal")


def test_the_plan_prices_a_breach_from_the_months_shortfall(tmp_path, day_plan):
    """An emergency cap of 10 MW for an hour forces committed load short on 2022-07-21 (SLA breach allowed): alone,
    availability falls below 99.99% and the plan owes 10% of the monthly bill; with the ledger's 7.49 MWh already
    missed this month (below 99.99% already) the same shortfall stays in that tier and the day owes nothing more."""
    events = tmp_path / "events.csv"
    events.write_text("start,end,max_load_mw\n2022-07-21T20:00:00Z,2022-07-21T21:00:00Z,10\n")
    job = {"day": "2022-07-21", "emergency": events, "allow_sla_breach": True}
    alone, ds = run_day(NightlyJob(**job))
    short_mwh = float(ds["sla_shortfall_mw"].sum())
    assert short_mwh / (COMMITTED_MW * 730) > 0.0001                      # below 99.99% on its own
    assert alone["sla_credit_usd"] == pytest.approx(0.10 * MONTHLY_BILL_USD)
    db = tmp_path / "l.sqlite"
    ledger.record_schedule(db, _plan(day_plan))
    payload = _operate_payload("2022-07-20T15:15:00Z", "2022-07-20T15:00:00Z",
                               {"s21-pro": 80.0, "s19j-pro": 40.0, "h100": 21.0375}, committed=0.0)
    ledger.record_operate(db, payload, SITE, sla_shortfall_mw={"h100": COMMITTED_MW})
    fed, ds2 = run_day(NightlyJob(**job, ledger=db))
    assert fed["sla_shortfall_before"] == pytest.approx({"h100": COMMITTED_MW * 0.25})
    assert (COMMITTED_MW * 0.25 + float(ds2["sla_shortfall_mw"].sum())) / (COMMITTED_MW * 730) < 0.01   # same tier
    assert fed["sla_credit_usd"] == 0.0


# ---------------------------------------------------------------------------------------------------------
# curtail ledger


def test_ledger_command_prints_the_month(tmp_path, day_plan):
    db = tmp_path / "l.sqlite"
    ledger.record_schedule(db, _plan(day_plan))
    r = cli("ledger", "--ledger", db, "--store", tmp_path / "empty-store", "--shipped")
    out = r.stdout
    assert "month 2022-07 to date" in out and "settled            96 intervals" in out
    assert "4CP exposure" in out and "2022-07-20 21:00 UTC  system load    80,038 MW" in out
    assert "h100       availability 100.0000%" in out and "4.4 min budget (99.99%" in out
    assert "-0 " not in out and "-0.0 " not in out
    r = cli("ledger", "--ledger", db, "--month", "2022-13", expect=2)
    assert "'2022-13' is not a month" in r.stderr
    r = cli("ledger", "--ledger", tmp_path / "missing.sqlite", expect=2)
    assert "ledger not found" in r.stderr


# ---------------------------------------------------------------------------------------------------------
# crash safety and concurrent writers (real processes)


_WRITER = textwrap.dedent("""
    import sys, xarray as xr
    from optimizer import ledger
    db, plan, n, ready = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    with xr.open_dataset(plan) as ds:
        ds = ds.load()
    open(ready, "w").close()
    i = 0
    while n < 0 or i < n:
        ledger.record_schedule(db, ds)
        i += 1
""")


def _complete(db: Path) -> tuple[int, int]:
    """(runs, runs whose plan is incomplete): every recorded run must hold its 24 plan rows and 72 asset rows."""
    runs = _rows(db, "SELECT run_id, plan_rows FROM runs")
    broken = 0
    for run_id, plan_rows in runs:
        n_plan = _rows(db, "SELECT COUNT(*) FROM plan WHERE run_id = ?", run_id)[0][0]
        n_assets = _rows(db, "SELECT COUNT(*) FROM plan_assets WHERE run_id = ?", run_id)[0][0]
        n_inputs = _rows(db, "SELECT COUNT(*) FROM inputs WHERE run_id = ?", run_id)[0][0]
        broken += not (plan_rows == n_plan == 24 and n_assets == 72 and n_inputs == 1)
    return len(runs), broken


def _writer(db: Path, plan: Path, n: int, ready: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _WRITER, str(db), str(plan), str(n), str(ready)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_ready(ready: Path, proc: subprocess.Popen) -> None:
    while not ready.exists():
        assert proc.poll() is None, proc.communicate()[1].decode()
        time.sleep(0.02)


def test_sigkill_at_any_moment_leaves_the_run_whole_or_absent(tmp_path, day_plan):
    db = tmp_path / "l.sqlite"
    rng = random.Random(13)
    seen = 0
    for k in range(6):
        ready = tmp_path / f"ready{k}"
        proc = _writer(db, day_plan, -1, ready)
        _wait_ready(ready, proc)
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        assert ledger.integrity(db) == "ok"
        runs, broken = _complete(db)
        assert broken == 0 and runs >= seen
        seen = runs
    assert seen > 6                          # the writers did record runs between the kills
    ledger.record_schedule(db, _plan(day_plan))        # and the ledger takes new runs after the kills
    assert _complete(db) == (seen + 1, 0)


def test_two_concurrent_writers_do_not_corrupt_it(tmp_path, day_plan):
    db = tmp_path / "l.sqlite"
    procs = [(_writer(db, day_plan, 12, tmp_path / f"ready{k}")) for k in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
    assert ledger.integrity(db) == "ok"
    assert _complete(db) == (24, 0)
    assert [r[0] for r in _rows(db, "SELECT run_id FROM runs ORDER BY run_id")] == list(range(1, 25))
    assert _rows(db, "PRAGMA journal_mode")[0][0] == "wal"


def test_a_failure_the_ledger_cannot_take_is_a_warning_and_unreadable_inputs_keep_the_site(tmp_path):
    """record_failure_or_warn never raises over the command's own error: a ledger in a missing folder gives a
    LedgerWarning; input files that cannot be read are recorded as the site file alone."""
    import optimizer
    from optimizer.errors import InputError

    site = optimizer.load_site(optimizer.default_site_path())
    error = InputError("prices end before the day", field="prices")

    def unreadable() -> dict:
        raise OSError("gone")

    with pytest.warns(ledger.LedgerWarning, match="the failed schedule run could not be recorded"):
        ledger.record_failure_or_warn(tmp_path / "missing" / "l.sqlite", kind="schedule", site=site, error=error,
                                      inputs=unreadable, day="2023-08-17")
    db = tmp_path / "l.sqlite"
    ledger.record_failure_or_warn(db, kind="schedule", site=site, error=error, inputs=unreadable, day="2023-08-17")
    assert _rows(db, "SELECT status, exit_code FROM runs") == [("failed", error.exit_code)]
    assert [r[0] for r in _rows(db, "SELECT name FROM inputs")] == ["site"]
