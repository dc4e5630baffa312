"""The ``curtail`` command through ``typer.testing.CliRunner``: outputs, options, and exit codes with messages.

Every schedule solved here passes the independent checker (conftest wrapper). A failing run must write nothing and
leave an existing output file byte-identical.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from typer.testing import CliRunner

import optimizer
from optimizer.cli import app

REQUIRED = ["timestamp", "price_usd_per_mwh", "mining_mw", "ai_mw", "load_mw", "grid_mw", "sellback_mw", "profit_usd",
            "mining_mw__s21-pro", "mining_mw__s19j-pro", "ai_mw__h100"]
SUFFIXES = [".csv", ".parquet", ".json", ".nc"]
COMMITTED_MW = 18800 * 1.275 * 1.25 / 1000


def run(*args, expect: int | None = 0):
    result = CliRunner().invoke(app, ["schedule", *map(str, args)])
    if expect is not None:
        assert result.exit_code == expect, (result.exit_code, result.stdout, result.stderr, result.exception)
    return result


def read_json_summary(*args) -> dict:
    return json.loads(run(*args, "--json").stdout)


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, comment="#")          # CSV outputs open with '# key: value' provenance lines


def listing(folder: Path) -> dict[str, bytes]:
    """Every file in ``folder`` and its bytes, except the (empty, deliberately kept) ``<out>.lock`` files and the
    run ledger (``curtail-ledger.sqlite*``, written beside ``--out``; tested in tests/test_ledger.py)."""
    return {p.name: p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.suffix != ".lock" and not p.name.startswith("curtail-ledger.sqlite")}


def write_prices(path: Path, values, start: str = "2022-07-20T05:00:00Z") -> Path:
    idx = pd.date_range(pd.Timestamp(start), periods=len(values), freq="1h")
    pd.DataFrame({"timestamp": idx.strftime("%Y-%m-%dT%H:%M:%SZ"), "price_usd_per_mwh": values}).to_csv(
        path, index=False)
    return path


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)          # anything written to the working folder shows up in tmp_path


# ---------------------------------------------------------------------------------------------------------
# Defaults and the summary


def test_no_options_prints_the_summary_table(tmp_path):
    r = run()
    out = r.stdout
    for label in ("site", "operating day", "prices", "hashprice", "profit (day)", "status", "times"):
        assert any(line.startswith(label) for line in out.splitlines()), label
    assert "west-texas-200" in out and "HB_WEST" in out
    assert "2022-07-20" in out and "24 h" in out
    assert "day-ahead" in out
    assert "optimal" in out
    assert "build" in out and "solve" in out and "total" in out
    assert "nothing written" in out
    assert listing(tmp_path) == {}
    assert r.stderr == ""


def test_summary_table_profit_matches_json_summary():
    table = run().stdout
    s = read_json_summary()
    assert f"{s['profit_usd']:,.2f} USD" in table
    assert f"{s['objective_usd']:,.2f} USD" in table
    assert s["day"] == "2022-07-20" and s["hours"] == 24 and s["lookahead_hours"] == 24
    assert "day-ahead" in s["price_source"] and s["site"] == "west-texas-200"
    assert s["status"] == "optimal"
    assert s["site_source"] == str(optimizer.default_site_path())


def test_json_prints_parseable_summary():
    r = run("--json")
    s = json.loads(r.stdout)
    for key in ("objective_usd", "status", "mip_gap", "build_seconds", "solve_seconds", "profit_usd",
                "initial_state", "price_source", "hashprice_usd_per_ph_day"):
        assert key in s, key
    assert set(s["initial_state"]) == {"s21-pro", "s19j-pro", "h100"}



def test_no_help_text_is_eaten_by_rich_markup():
    # Typer renders help as Rich markup: an unescaped "[fourcp]" or "[[job]]" silently vanishes from --help
    import typer.main
    from rich.text import Text

    def helps(cmd):
        for sub in getattr(cmd, "commands", {}).values():
            yield from helps(sub)
        yield from ((cmd.name, p.opts[0], p.help) for p in getattr(cmd, "params", []) if getattr(p, "help", None))

    for command, option, text in helps(typer.main.get_command(app)):
        assert Text.from_markup(text).plain == text.replace("\\[", "["), (command, option, text)


def test_every_command_is_mounted():
    r = CliRunner().invoke(app, ["--help"])
    for name in ("schedule", "backtest", "sweep", "check", "operate", "ledger", "data"):
        assert re.search(rf"│ {name}\s", r.output), name
    assert "update" in CliRunner().invoke(app, ["data", "--help"]).output


# ---------------------------------------------------------------------------------------------------------
# Output files


def read_any(path: Path) -> pd.DataFrame:
    """The written file by its own format's reader (not optimizer.read_schedule)."""
    if path.suffix == ".csv":
        return read_csv(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".json":
        return pd.DataFrame(json.loads(path.read_text())["schedule"])
    with xr.open_dataset(path) as ds:
        return optimizer.to_frame(ds.load())


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_out_writes_one_row_per_hour_with_the_required_columns(tmp_path, suffix):
    out = tmp_path / f"schedule{suffix}"
    r = run("--out", out)
    assert str(out) in r.stdout
    sidecar = {f"{out.name}.meta.json"} if suffix == ".csv" else set()   # a CSV's provenance rides beside it
    assert listing(tmp_path).keys() == {out.name} | sidecar           # no temporary file left behind
    df = read_any(out)
    assert len(df) == 24
    assert set(REQUIRED) <= set(df.columns)
    assert df["timestamp"].iloc[0] == "2022-07-20T05:00:00Z" and df["timestamp"].iloc[-1] == "2022-07-21T04:00:00Z"
    np.testing.assert_allclose(df["load_mw"], df["mining_mw"] + df["ai_mw"], atol=1e-6)
    np.testing.assert_allclose(df["mining_mw"], df["mining_mw__s21-pro"] + df["mining_mw__s19j-pro"], atol=1e-6)
    np.testing.assert_allclose(df["ai_mw"], df["ai_mw__h100"], atol=1e-6)
    assert (df["ai_mw__h100"] >= COMMITTED_MW - 1e-6).all()
    assert (df["load_mw"] <= 200 + 1e-6).all()
    back = optimizer.read_schedule(out)
    assert len(back) == 24 and set(REQUIRED) <= set(back.columns)


def test_all_formats_hold_the_same_schedule(tmp_path):
    frames = {}
    for suffix in SUFFIXES:
        run("--out", tmp_path / f"s{suffix}")
        frames[suffix] = optimizer.read_schedule(tmp_path / f"s{suffix}")
    ref = frames[".parquet"]
    for suffix, df in frames.items():
        assert list(df["timestamp"]) == list(ref["timestamp"]), suffix
        for col in REQUIRED[1:]:
            np.testing.assert_allclose(df[col], ref[col], atol=1e-5, err_msg=f"{suffix} {col}")


def test_json_output_has_summary(tmp_path):
    out = tmp_path / "s.json"
    run("--out", out)
    payload = json.loads(out.read_text())
    s = payload["summary"]
    for key in ("objective_usd", "status", "mip_gap", "build_seconds", "solve_seconds"):
        assert key in s, key
    assert s["status"] == "optimal"
    assert isinstance(s["objective_usd"], float) and np.isfinite(s["objective_usd"])
    assert 0 <= s["mip_gap"] <= 1e-6
    assert s["build_seconds"] >= 0 and s["solve_seconds"] >= 0
    assert len(payload["schedule"]) == 24
    assert s["profit_usd"] == pytest.approx(sum(row["profit_usd"] for row in payload["schedule"]))


def test_nc_output_is_the_dataset(tmp_path):
    out = tmp_path / "s.nc"
    run("--out", out)
    with xr.open_dataset(out) as ds:
        assert ds.sizes["time"] == 24
        assert list(ds["asset"].values) == ["s21-pro", "s19j-pro", "h100"]
        assert ds["power_mw"].attrs["units"] == "MW"
        assert ds.attrs["status"] == "optimal"


def test_out_overwrites_an_existing_file(tmp_path):
    out = tmp_path / "s.csv"
    out.write_text("old\n")
    run("--out", out)
    assert len(read_csv(out)) == 24


def test_output_file_gets_ordinary_permissions(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    out = tmp_path / "s.csv"
    run("--out", out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask


def test_out_that_is_an_existing_folder_is_exit_2(tmp_path):
    (tmp_path / "x.csv").mkdir()
    r = run("--out", tmp_path / "x.csv", expect=None)
    assert r.exit_code == 2 and "x.csv" in r.stderr
    assert listing(tmp_path) == {}


@pytest.mark.parametrize("suffix", [".lp", ".mps"])
def test_export_model(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    run("--export-model", path)
    text = path.read_text()
    assert len(text) > 1000
    assert "import_limit" in text                     # readable names (symbolic labels)


def test_export_model_bad_suffix_is_exit_2(tmp_path):
    r = run("--export-model", tmp_path / "model.txt", expect=2)
    assert "model.txt" in r.stderr and ".txt" in r.stderr
    assert listing(tmp_path) == {}


def test_export_model_into_missing_folder_is_exit_2(tmp_path):
    r = run("--export-model", tmp_path / "nodir" / "model.lp", expect=None)
    assert r.exit_code == 2
    assert "nodir" in r.stderr


# ---------------------------------------------------------------------------------------------------------
# Options


@pytest.mark.parametrize("day, n, first, last", [
    ("2021-03-14", 23, "2021-03-14T06:00:00Z", "2021-03-15T04:00:00Z"),
    ("2021-11-07", 25, "2021-11-07T05:00:00Z", "2021-11-08T05:00:00Z"),
    ("2021-07-20", 24, "2021-07-20T05:00:00Z", "2021-07-21T04:00:00Z"),
])
def test_day_in_local_time_with_dst(tmp_path, day, n, first, last):
    out = tmp_path / "s.csv"
    r = run("--day", day, "--out", out)
    df = read_csv(out)
    assert len(df) == n
    assert (df["timestamp"].iloc[0], df["timestamp"].iloc[-1]) == (first, last)
    assert f"{day} ({n} h" in r.stdout
    assert "day-ahead" in r.stdout                      # ERCOT's 2021 day-ahead prices are shipped


def test_prices_from_a_user_csv(tmp_path):
    values = np.full(48, 20.0)
    values[14:18] = 3000.0                             # 14:00-17:59 local: far above any use of power
    prices = write_prices(tmp_path / "my-prices.csv", values)
    out = tmp_path / "s.csv"
    r = run("--prices", prices, "--out", out)
    assert str(prices) in r.stdout
    df = read_csv(out)
    np.testing.assert_allclose(df["price_usd_per_mwh"], values[:24])
    assert (df["mining_mw"].iloc[14:18] == 0).all()
    assert (df["mining_mw"].iloc[:12] > 100).all()
    s = read_json_summary("--prices", prices)
    assert s["price_source"] == str(prices)


def test_prices_in_parquet(tmp_path):
    idx = pd.date_range("2022-07-20T05:00Z", periods=48, freq="1h")
    path = tmp_path / "p.parquet"
    pd.DataFrame({"timestamp": idx, "price_usd_per_mwh": np.linspace(10, 60, 48)}).to_parquet(path)
    s = read_json_summary("--prices", path)
    assert s["price_source"] == str(path)


def test_hashprice_option(tmp_path):
    default = read_json_summary()
    out = tmp_path / "s.csv"
    run("--hashprice", "1", "--out", out)
    s = read_json_summary("--hashprice", "1")
    assert s["hashprice_usd_per_ph_day"] == 1.0 and s["hashprice_source"] == "given"
    df = read_csv(out)
    # at 1 USD/PH/day an S21 Pro MWh mines 1/24*1000/15.45*0.98 = 2.64 USD, below every price of that day
    assert df["price_usd_per_mwh"].min() > 2.7
    assert (df["mining_mw"] == 0).all()
    assert default["mining_mwh"] > 1000 and s["mining_mwh"] == 0


def test_initial_state_from_a_state_json(tmp_path):
    state = {"s21-pro": {"on": False, "power_mw": 0.0, "hours_in_state": 0},
             "h100": {"on": True, "power_mw": 5.0, "hours_in_state": 3}}
    path = tmp_path / "state.json"
    path.write_text(json.dumps(state))
    out = tmp_path / "s.csv"
    run("--initial-state", path, "--out", out)
    s = read_json_summary("--initial-state", path)
    assert s["initial_state"]["s21-pro"] == {"on": False, "power_mw": 0.0, "hours_in_state": 0}
    assert s["initial_state"]["h100"] == {"on": True, "power_mw": 5.0, "hours_in_state": 3}
    assert s["initial_state"]["s19j-pro"]["on"] is True                 # unnamed assets: on at full power
    df = read_csv(out)
    first = df.iloc[0]
    assert first["mining_mw__s21-pro"] == 0                              # min off 1 h after a stop at hour -1
    assert first["ai_mw__h100"] <= COMMITTED_MW + 5.0 + 13.0 + 1e-4      # ramp 13 MW/h from 5 MW flexible


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_initial_state_from_a_previous_schedule(tmp_path, suffix):
    # the previous day ends with three hours at 5000 USD/MWh: both fleets end the day off for 3 h
    values = np.full(48, 25.0)
    values[21:24] = 5000.0
    prices = write_prices(tmp_path / "prev-prices.csv", values, "2022-07-19T05:00:00Z")
    prev = tmp_path / f"prev{suffix}"
    run("--day", "2022-07-19", "--prices", prices, "--out", prev)
    frame = optimizer.read_schedule(prev)
    assert (frame[["mining_mw__s21-pro", "mining_mw__s19j-pro"]].iloc[-3:] == 0).all().all()
    assert (frame["mining_mw__s21-pro"].iloc[-4] > 0) and (frame["mining_mw__s19j-pro"].iloc[-4] > 0)
    s = read_json_summary("--day", "2022-07-20", "--initial-state", prev)
    site = optimizer.load_site(optimizer.default_site_path())
    want = optimizer.state_from_schedule(site, frame)
    for name in ("s21-pro", "s19j-pro"):
        assert s["initial_state"][name] == {"on": False, "power_mw": 0.0, "hours_in_state": 3}
        assert want[name].hours_in_state == 3
    h100 = s["initial_state"]["h100"]
    assert h100["power_mw"] == pytest.approx(frame["ai_mw__h100"].iloc[-1] - COMMITTED_MW, abs=1e-4)


# ---------------------------------------------------------------------------------------------------------
# Failures: exit code, message, nothing written, an existing output untouched

INFEASIBLE_SITE = """\
name = "too-small"
timezone = "America/Chicago"
settlement_point = "HB_WEST"

[grid]
import_limit_mw = 50.0

[[mining]]
name = "stuck"
capacity_mw = 30.0
efficiency_j_per_th = 20.0
min_load_fraction = 1.0
min_on_hours = 5

[[gpu]]
name = "sla"
gpus = 4000
kw_per_gpu = 10.0
committed_gpus = 3000
"""


@pytest.fixture(scope="module")
def good_outputs(tmp_path_factory) -> dict[str, bytes]:
    """Bytes of a good schedule in every format (made once)."""
    folder = tmp_path_factory.mktemp("good")
    out = {}
    for suffix in SUFFIXES:
        path = folder / f"good{suffix}"
        assert CliRunner().invoke(app, ["schedule", "--out", str(path)]).exit_code == 0
        out[suffix] = path.read_bytes()
    return out


def _bad_site(tmp_path, out):
    path = tmp_path / "bad-site.toml"
    path.write_text(optimizer.default_site_path().read_text().replace("capacity_mw = 80.0", "capacity_mv = 80.0"))
    return ["--site", path, "--out", out], [str(path), "mining[0]", "capacity_mv"]


def _missing_site(tmp_path, out):
    return ["--site", tmp_path / "nope.toml", "--out", out], ["nope.toml"]


def _bad_day(tmp_path, out):
    return ["--day", "2022-02-30", "--out", out], ["--day", "2022-02-30"]


def _day_outside_data(tmp_path, out):
    return ["--day", "2019-06-01", "--out", out], ["2019-06-01", "--prices"]


def _prices_not_covering_the_day(tmp_path, out):
    prices = write_prices(tmp_path / "july19.csv", np.full(24, 30.0), "2022-07-19T05:00:00Z")
    return (["--day", "2022-07-20", "--prices", prices, "--out", out],
            [str(prices), "2022-07-20T05:00:00"])


def _prices_with_a_bad_row(tmp_path, out):
    prices = write_prices(tmp_path / "bad-prices.csv", ["30"] * 10 + ["oops"] + ["30"] * 37)
    return ["--prices", prices, "--out", out], [str(prices), "row 11", "'oops'"]


def _bad_out_suffix(tmp_path, out):
    return ["--out", out.with_suffix(".txt")], [out.with_suffix(".txt").name, "'.txt'"]


def _missing_out_folder(tmp_path, out):
    return ["--out", tmp_path / "nodir" / out.name], ["nodir", "does not exist"]


def _bad_mip_gap(tmp_path, out):
    return ["--mip-gap", "1.5", "--out", out], ["mip_rel_gap", "1.5"]


def _negative_mip_gap(tmp_path, out):
    return ["--mip-gap", "-0.1", "--out", out], ["mip_rel_gap", "-0.1"]


def _bad_hashprice(tmp_path, out):
    return ["--hashprice", "0", "--out", out], ["hashprice", "0"]


def _bad_lookahead(tmp_path, out):
    return ["--lookahead-hours", "200", "--out", out], ["lookahead", "200"]


def _bad_export_suffix(tmp_path, out):
    return ["--export-model", tmp_path / "m.txt", "--out", out], ["m.txt", "'.txt'"]


def _state_with_unknown_asset(tmp_path, out):
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"s99": {"on": True, "power_mw": 1.0, "hours_in_state": 1}}))
    return ["--initial-state", path, "--out", out], ["s99"]


def _state_above_capacity(tmp_path, out):
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"s21-pro": {"on": True, "power_mw": 95.0, "hours_in_state": 1}}))
    return ["--initial-state", path, "--out", out], ["s21-pro", "95"]


def _state_not_json(tmp_path, out):
    path = tmp_path / "state.json"
    path.write_text("{not json")
    return ["--initial-state", path, "--out", out], [str(path)]


def _previous_schedule_of_the_wrong_day(tmp_path, out):
    prev = tmp_path / "same-day.parquet"                       # 2022-07-20's own schedule, not the day before
    assert CliRunner().invoke(app, ["schedule", "--out", str(prev)]).exit_code == 0
    return ["--initial-state", prev, "--out", out], [str(prev), "2022-07-20T05:00:00"]


def _infeasible(tmp_path, out):
    site = tmp_path / "too-small.toml"
    site.write_text(INFEASIBLE_SITE)
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"stuck": {"on": True, "power_mw": 30.0, "hours_in_state": 1}}))
    return (["--site", site, "--initial-state", state, "--out", out],
            ["import limit 50 MW", "committed GPU load 30.000 MW", "stuck", "5 h", "2022-07-20T05:00:00"])


FAILURES = {
    "bad_site": (_bad_site, 2),
    "missing_site": (_missing_site, 2),
    "bad_day": (_bad_day, 2),
    "day_outside_data": (_day_outside_data, 2),
    "prices_not_covering_day": (_prices_not_covering_the_day, 2),
    "prices_bad_row": (_prices_with_a_bad_row, 2),
    "bad_out_suffix": (_bad_out_suffix, 2),
    "missing_out_folder": (_missing_out_folder, 2),
    "bad_mip_gap": (_bad_mip_gap, 2),
    "negative_mip_gap": (_negative_mip_gap, 2),
    "bad_hashprice": (_bad_hashprice, 2),
    "bad_lookahead": (_bad_lookahead, 2),
    "bad_export_suffix": (_bad_export_suffix, 2),
    "state_unknown_asset": (_state_with_unknown_asset, 2),
    "state_above_capacity": (_state_above_capacity, 2),
    "state_not_json": (_state_not_json, 2),
    "previous_schedule_wrong_day": (_previous_schedule_of_the_wrong_day, 2),
    "infeasible": (_infeasible, 3),
}


@pytest.mark.parametrize("suffix", [".csv", ".json"])
@pytest.mark.parametrize("case", FAILURES, ids=list(FAILURES))
def test_failure_exit_code_message_and_no_output(tmp_path, good_outputs, case, suffix):
    make, code = FAILURES[case]
    out = tmp_path / f"schedule{suffix}"
    out.write_bytes(good_outputs[suffix])
    args, fragments = make(tmp_path, out)
    before = listing(tmp_path)
    r = run(*args, expect=code)
    assert r.stderr.startswith("curtail schedule: error: ")
    for fragment in fragments:
        assert fragment in r.stderr, (fragment, r.stderr)
    assert r.stdout == ""
    assert listing(tmp_path) == before                  # nothing new, nothing changed (good output byte-identical)
    assert out.read_bytes() == good_outputs[suffix]
    assert not (tmp_path / "nodir").exists()


def test_output_locked_by_another_run_is_exit_6_and_untouched(tmp_path, good_outputs):
    out = tmp_path / "schedule.csv"
    out.write_bytes(good_outputs[".csv"])
    with open(f"{out}.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)           # another run holds the output
        r = run("--out", out, expect=6)
    assert "lock" in r.stderr and str(out) in r.stderr
    assert out.read_bytes() == good_outputs[".csv"]
    assert listing(tmp_path) == {"schedule.csv": good_outputs[".csv"]}
    run("--out", out)                                              # released: the next run writes
    assert len(read_csv(out)) == 24


def test_mip_gap_that_is_not_a_number_is_a_usage_error(tmp_path):
    r = run("--mip-gap", "abc", expect=2)
    assert "--mip-gap" in r.stderr
    assert listing(tmp_path) == {}


def test_infeasible_case_is_feasible_once_the_hold_has_passed(tmp_path):
    """The same site is fine when the fleet has already run its minimum 5 hours: the conflict is the hold."""
    site = tmp_path / "too-small.toml"
    site.write_text(INFEASIBLE_SITE)
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"stuck": {"on": True, "power_mw": 30.0, "hours_in_state": 5}}))
    out = tmp_path / "s.csv"
    run("--site", site, "--initial-state", state, "--out", out)
    df = read_csv(out)
    assert (df["load_mw"] <= 50 + 1e-6).all()
    assert (df["mining_mw__stuck"] == 0).all()                  # 30 MW on top of 30 MW committed never fits


def test_infeasible_raises_in_the_library_too(tmp_path):
    site = tmp_path / "too-small.toml"
    site.write_text(INFEASIBLE_SITE)
    with pytest.raises(optimizer.InfeasibleError, match="import limit 50 MW") as info:
        optimizer.schedule(site, initial_state={"stuck": optimizer.UnitState(True, 30.0, 1)})
    assert info.value.exit_code == 3
