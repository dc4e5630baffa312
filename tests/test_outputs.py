"""Outputs people read (issue 13, part 3): a plain CSV with a provenance sidecar, readers of the new and the old
layout, named errors for outputs that cannot be written, no ``-0.00`` on the terminal, and the backtest report as a
user sees it (headless Chromium: no horizontal overflow, every image loaded)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from optimizer import results
from optimizer.cli.schedule import _mwh, _usd
from optimizer.cli.schedule import schedule as schedule_cmd
from optimizer.errors import InputError

app = typer.Typer()
app.command("schedule")(schedule_cmd)
app.command("noop")(lambda: None)              # two commands: "schedule" stays a sub-command


def cli(*args, expect: int | None = 0):
    r = CliRunner().invoke(app, ["schedule", *map(str, args)])
    if expect is not None:
        assert r.exit_code == expect, (r.exit_code, r.stdout, r.stderr, r.exception)
    return r


@pytest.fixture(scope="module")
def default_csv(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("csv") / "s.csv"
    cli("--out", out)
    return out


# ---------------------------------------------------------------------------------------------------------
# CSV and sidecar


def test_csv_opens_with_a_bare_read_csv(default_csv):
    first = default_csv.read_text().splitlines()[0]
    assert first.startswith("timestamp,price_usd_per_mwh,")              # the header, no '# key: value' lines
    df = pd.read_csv(default_csv)                                         # no options
    assert len(df) == 24 and df["timestamp"].iloc[0] == "2022-07-20T05:00:00Z"
    np.testing.assert_allclose(df["load_mw"], df["mining_mw"] + df["ai_mw"], atol=1e-6)


def test_provenance_is_in_the_sidecar_and_names_the_csv(default_csv):
    side = results.sidecar_path(default_csv)
    assert side.name == "s.csv.meta.json"
    meta = json.loads(side.read_text())
    assert meta["csv_sha256"] == results.file_sha256(default_csv)
    assert len(meta["provenance"]["site_sha256"]) == 64 and meta["provenance"]["status"] == "optimal"
    summary = results.read_summary(default_csv)
    assert summary == meta["provenance"]
    assert summary["profit_usd"] == pytest.approx(pd.read_csv(default_csv)["profit_usd"].sum(), abs=1e-3)
    assert "build_seconds" not in summary                                 # run-dependent timings stay out


def test_a_csv_split_from_its_sidecar_is_refused(tmp_path, default_csv):
    out = tmp_path / "s.csv"
    shutil.copy(default_csv, out)
    shutil.copy(results.sidecar_path(default_csv), results.sidecar_path(out))
    assert results.read_summary(out)["status"] == "optimal"
    out.write_text(out.read_text().replace("2022-07-20T05:00:00Z", "2022-07-20T06:00:00Z", 1))
    with pytest.raises(InputError, match="sidecar s.csv.meta.json does not belong"):
        results.read_summary(out)


def test_the_old_layout_is_still_read(tmp_path, default_csv):
    """curtail <= 0.1 wrote '# key: value' lines before the header: read_schedule / read_summary read both."""
    old = tmp_path / "old.csv"
    prov = results.read_summary(default_csv)
    lines = [f"# {k}: {json.dumps(v, sort_keys=True)}" for k, v in prov.items()]
    old.write_text("\n".join(lines) + "\n" + default_csv.read_text())
    back = results.read_schedule(old)
    pd.testing.assert_frame_equal(back, results.read_schedule(default_csv))
    assert results.read_summary(old) == prov
    bare = tmp_path / "bare.csv"
    bare.write_text(default_csv.read_text())                      # a plain CSV without a sidecar: no provenance
    assert results.read_summary(bare) == {}


def test_same_inputs_same_csv_and_sidecar_bytes(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    a, b = tmp_path / "a" / "s.csv", tmp_path / "b" / "s.csv"
    for out in (a, b):
        out.parent.mkdir()
        cli("--out", out)
    assert a.read_bytes() == b.read_bytes()
    assert results.sidecar_path(a).read_bytes() == results.sidecar_path(b).read_bytes()


# ---------------------------------------------------------------------------------------------------------
# outputs that cannot be written


def _deny(monkeypatch, name: str):
    """os.replace onto ``name`` fails as it does on a file another program holds open (Windows) or a read-only one."""
    real = os.replace

    def replace(src, dst, *a, **kw):
        if Path(dst).name == name:
            raise PermissionError(13, "Permission denied", str(dst))
        return real(src, dst, *a, **kw)

    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json", ".nc"])
def test_schedule_output_that_cannot_be_replaced_is_a_named_error(tmp_path, monkeypatch, suffix):
    out = tmp_path / f"s{suffix}"
    out.write_text("previous\n")
    _deny(monkeypatch, out.name)
    r = cli("--out", out, expect=2)
    assert f"cannot write {out.name} (permission denied" in r.stderr and "Traceback" not in r.stderr
    assert out.read_text() == "previous\n"                                       # the old file is left as it was
    assert not results.sidecar_path(out).exists()                               # and no sidecar without its CSV
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]        # no temporary file left


# ---------------------------------------------------------------------------------------------------------
# terminal


def test_no_negative_zero_in_the_summary(default_csv):
    r = cli("--out", default_csv.parent / "again.csv")
    assert "-0.00" not in r.stdout and "-0.0 " not in r.stdout
    energy = next(line for line in r.stdout.splitlines() if line.startswith("energy bought"))
    assert energy.split()[-2] == "0.00"           # the default day buys nothing: a zero cost, shown as 0.00
    assert _usd(-0.0) == _usd(0.0) == _usd(-0.004) == f"{0.0:>14,.2f} USD"
    assert _usd(-0.005).strip() == "-0.01 USD" and _mwh(-0.04).strip() == "0.0 MWh"


# ---------------------------------------------------------------------------------------------------------
# the backtest report


@pytest.fixture(scope="module")
def backtest_result():
    """Two real days (2022-07-20 holds July 2022's 4CP peak hour), the naive forecast, five policies."""
    from optimizer import backtest, data
    from optimizer.backtest import Market, Settings
    from optimizer.site import load_site

    site = load_site(data.default_site_path())
    return backtest.run(site, dt.date(2022, 7, 20), dt.date(2022, 7, 21), Market.shipped(site.settlement_point),
                        Settings(forecast_method="naive",
                                 policies=("mpc", "schedule", "strike", "always-on", "perfect")))


@pytest.fixture(scope="module")
def report_dir(backtest_result, tmp_path_factory) -> Path:
    from optimizer.backtest import report

    out = tmp_path_factory.mktemp("bt")
    report.write(backtest_result, out)
    return out


def test_cumulative_profit_is_shown_above_always_on(backtest_result):
    from optimizer.backtest import report

    gain = report.above_always_on(backtest_result)
    assert "always-on" not in gain.columns and set(gain.columns) == {"mpc", "schedule", "strike", "perfect"}
    profit = {p: backtest_result.summary["policies"][p]["profit_usd"] for p in ("always-on", "perfect", "mpc")}
    assert gain["perfect"].iloc[-1] == pytest.approx(profit["perfect"] - profit["always-on"], rel=1e-9)
    assert gain["mpc"].iloc[-1] == pytest.approx(profit["mpc"] - profit["always-on"], rel=1e-9)
    fig = report._cumulative(backtest_result)
    lines = {ln.get_label(): ln.get_ydata() for ln in fig.axes[0].get_lines()}
    np.testing.assert_allclose(lines["perfect"], gain["perfect"].to_numpy() / 1e3)
    assert np.allclose(lines["always-on (baseline)"], 0.0)


def test_fourcp_panel_holds_the_peak_each_load_and_the_charge(backtest_result):
    """2022-07-20 21:00 UTC is July 2022's peak hour (shipped proxy); the charge is load x 100 USD/kW-yr x 1000 / 4."""
    from optimizer.backtest import report

    peaks = report.fourcp_peaks(backtest_result)
    assert list(peaks["hour_utc"]) == [pd.Timestamp("2022-07-20T21:00Z")]
    ds = backtest_result.intervals
    for p in ds["policy"].values:
        load = ds["load_mw"].sel(policy=p).sel(time=slice("2022-07-20T21:00", "2022-07-20T21:45")).values
        assert peaks[f"{p}:load_mw"].iloc[0] == pytest.approx(load.mean())
        assert peaks[f"{p}:charge_usd"].iloc[0] == pytest.approx(load.mean() * 100 * 1000 / 4, rel=1e-9)
        assert peaks[f"{p}:charge_usd"].iloc[0] == pytest.approx(
            backtest_result.summary["policies"][str(p)]["fourcp_charge_usd"], rel=1e-9)


def test_forecast_error_by_lead_time(backtest_result):
    """A 10:00 decision on D-1 sees local midnight of D 14 hours ahead and D's 23:00 37 hours ahead (CDT)."""
    from optimizer.backtest import report

    e = report.forecast_error_by_lead(backtest_result)
    assert len(e) == 48
    assert e["lead_hours"].iloc[0] == 14 and e["lead_hours"].iloc[23] == 37 and e["lead_hours"].iloc[24] == 14
    price = backtest_result.intervals["price_usd_per_mwh"].isel(policy=0).to_series()
    first_hour = price.iloc[:4].mean()
    assert e["actual"].iloc[0] == pytest.approx(first_hour)
    assert e["error"].iloc[0] == pytest.approx(backtest_result.forecast.iloc[0] - first_hour)
    table = report.error_by_lead_table(backtest_result)
    assert table["hours"].sum() == 48
    assert table.loc["0-18 h", "mae_usd_per_mwh"] == pytest.approx(e["error"][e["lead_hours"] < 18].abs().mean())
    mae = backtest_result.summary["forecast_mae_usd_per_mwh"]
    assert (e["error"].abs().mean()) == pytest.approx(mae, rel=1e-9)


def test_report_files_are_all_written_without_temporaries(report_dir):
    names = {p.name for p in report_dir.iterdir()}
    assert names == {"intervals.nc", "days.csv", "summary.json", "week.png", "cumulative.png", "monthly.png",
                     "fourcp.png", "forecast_error.png", "report.html"}
    page = report_dir.joinpath("report.html").read_text()
    for heading in ("Cumulative profit above always-on", "4CP: the monthly system peaks", "Forecast error by lead"):
        assert heading in page


def test_rerun_over_an_open_intervals_nc_is_a_named_error(backtest_result, tmp_path, monkeypatch):
    from optimizer.backtest import report

    report.write(backtest_result, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    _deny(monkeypatch, "intervals.nc")
    with pytest.raises(InputError, match=r"cannot write intervals.nc \(permission denied") as err:
        report.write(backtest_result, tmp_path)
    assert err.value.exit_code == 2
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def _probe(page: Path, width: int) -> dict:
    """Load the page in headless Chromium at ``width`` px and measure it after load: horizontal overflow and images."""
    probe = page.with_name("probe.html")
    script = """<script>window.addEventListener('load', function () {
  var imgs = Array.from(document.images), w = document.documentElement.clientWidth;
  var r = {clientWidth: w, scrollWidth: document.documentElement.scrollWidth, images: imgs.length,
           loaded: imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length,
           outside: Array.from(document.querySelectorAll('table, img, p, h1, h2')).filter(function (e) {
             return e.getBoundingClientRect().right > w + 0.5; }).length};
  var pre = document.createElement('pre'); pre.id = 'curtail-probe'; pre.textContent = JSON.stringify(r);
  document.body.appendChild(pre);
});</script>"""
    probe.write_text(page.read_text().replace("</body>", script + "</body>"))
    out = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                          f"--window-size={width},900", "--virtual-time-budget=10000", "--dump-dom",
                          probe.as_uri()], capture_output=True, text=True, timeout=180, check=True).stdout
    start = out.index('<pre id="curtail-probe">') + len('<pre id="curtail-probe">')
    return json.loads(out[start: out.index("</pre>", start)])


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian package 'chromium')")
@pytest.mark.parametrize("width", [1280, 800])
def test_report_as_a_user_sees_it(report_dir, tmp_path, width):
    """Rendered in headless Chromium: nothing wider than the window, and all five images decoded."""
    page = tmp_path / "report.html"
    shutil.copy(report_dir / "report.html", page)
    m = _probe(page, width)
    assert m["images"] == 5 and m["loaded"] == 5, m
    assert m["scrollWidth"] <= m["clientWidth"] and m["outside"] == 0, m


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian package 'chromium')")
def test_report_screenshot(report_dir, tmp_path):
    shot = tmp_path / "report.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1280,2400", f"--screenshot={shot}", (report_dir / "report.html").as_uri()],
                   capture_output=True, timeout=180, check=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
