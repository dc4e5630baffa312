"""Live data (issue 13, part 1): the gridstatus adapter on recorded gridstatus-shaped fixtures (never the network),
the Parquet store (shipped schema, idempotent appends, kill-safe), the readers that say which source they used, and
``curtail data update``'s exit 2 without gridstatus or offline."""

from __future__ import annotations

import datetime as dt
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from optimizer import data, live
from optimizer.cli.data import data_update
from optimizer.errors import InputError
from optimizer.site import load_site

FIXTURES = Path(__file__).parent / "fixtures" / "gridstatus"
TZ = "US/Central"
SITE = load_site(data.default_site_path())


def fixture(name: str) -> pd.DataFrame:
    """A recorded table with gridstatus's dtypes: local US/Central times, string locations, categorical types."""
    df = pd.read_csv(FIXTURES / f"{name}.csv")
    for col in ("Time", "Interval Start", "Interval End", "Publish Time"):
        if col in df.columns:
            df[col] = pd.to_datetime(df[col], utc=True).dt.tz_convert(TZ)
    if "Location" in df.columns:
        df["Location"] = df["Location"].astype("string")
        df["Location Type"] = df["Location Type"].astype("category")
    return df


class FakeErcot:
    """``gridstatus.Ercot`` answering from the fixtures, with gridstatus's date-range semantics ([date, end))."""

    def __init__(self, fail: BaseException | None = None, bump: float = 0.0):
        self.fail, self.bump, self.calls = fail, bump, []

    def _window(self, df, col, date, end):
        if self.fail is not None:
            raise self.fail
        return df[(df[col] >= date) & (df[col] < end)].reset_index(drop=True)

    def get_spp(self, date, end=None, market=None, locations="ALL", location_type="ALL", verbose=False):
        self.calls.append(("get_spp", date, end, market, tuple(locations)))
        df = fixture("ercot_get_spp_rt" if market == "REAL_TIME_15_MIN" else "ercot_get_spp_dam")
        df = df[df["Location"].isin(locations)]
        df["SPP"] = df["SPP"] + self.bump
        return self._window(df, "Interval Start", date, end)

    def get_load(self, date, end=None, verbose=False):
        self.calls.append(("get_load", date, end))
        return self._window(fixture("ercot_get_load"), "Interval Start", date, end)

    def get_load_forecast(self, date, end=None, verbose=False):
        self.calls.append(("get_load_forecast", date, end))
        return self._window(fixture("ercot_get_load_forecast"), "Publish Time", date, end)

    def get_as_prices(self, date, end=None, verbose=False):
        self.calls.append(("get_as_prices", date, end))
        return self._window(fixture("ercot_get_as_prices"), "Interval Start", date, end)


D = dt.date


def _update(store, what, start, end, location=None, ercot=None):
    return live.update(what, start, end, store, location=location, ercot=ercot or FakeErcot())


# ---------------------------------------------------------------------------------------------------------
# gridstatus tables -> the shipped schema


def test_rt_spp_becomes_the_shipped_15_minute_schema():
    out = live.from_gridstatus("rt", fixture("ercot_get_spp_rt"), "HB_WEST")
    assert list(out.columns) == ["interval_start_utc", "HB_WEST"] and len(out) == 96 + 100
    shipped = data.ercot_prices("HB_WEST", "rt", "15min")
    np.testing.assert_allclose(out["HB_WEST"], shipped.reindex(pd.DatetimeIndex(out["interval_start_utc"])),
                               atol=6e-3)                               # shipped values are float32
    fall = out[out["interval_start_utc"] >= pd.Timestamp("2024-11-03T05:00Z")]
    assert len(fall) == 100                                            # the fall-back day has 25 hours
    assert (fall["interval_start_utc"].diff().dropna() == pd.Timedelta(minutes=15)).all()


def test_other_tables_become_the_shipped_schemas():
    dam = live.from_gridstatus("dam", fixture("ercot_get_spp_dam"), "HB_WEST")
    assert list(dam.columns) == ["timestamp_utc", "settlement_point", "price_usd_per_mwh"] and len(dam) == 25
    np.testing.assert_allclose(dam["price_usd_per_mwh"],
                               data.ercot_prices("HB_WEST", "da").reindex(pd.DatetimeIndex(dam["timestamp_utc"])))
    load = live.from_gridstatus("load", fixture("ercot_get_load"))
    assert list(load.columns) == ["timestamp_utc", "ercot_native_load_mw"] and len(load) == 24
    np.testing.assert_allclose(load["ercot_native_load_mw"],
                               data.ercot_load().reindex(pd.DatetimeIndex(load["timestamp_utc"])), atol=1e-3)
    fc = live.from_gridstatus("load-forecast", fixture("ercot_get_load_forecast"))
    assert list(fc.columns) == ["timestamp_utc", "published_utc", "da_demand_forecast_mw"] and len(fc) == 48
    assert set(fc["published_utc"]) == {pd.Timestamp("2024-07-15T10:30Z"), pd.Timestamp("2024-07-15T15:30Z")}
    a = live.from_gridstatus("as", fixture("ercot_get_as_prices"))
    assert list(a.columns) == ["timestamp_utc", "regup", "regdn", "rrs", "nspin", "ecrs"]
    for service in ("regup", "ecrs"):
        np.testing.assert_allclose(a[service], data.ercot_as_prices(service).reindex(
            pd.DatetimeIndex(a["timestamp_utc"])))


def test_a_table_without_gridstatus_columns_is_named():
    with pytest.raises(InputError, match=r"no column\(s\) Location, SPP for rt"):
        live.from_gridstatus("rt", fixture("ercot_get_load"), "HB_WEST")
    with pytest.raises(InputError, match="needs --location"):
        live.from_gridstatus("dam", fixture("ercot_get_spp_dam"))


def test_five_minute_load_of_today_is_kept_as_complete_hourly_means():
    t = pd.date_range(pd.Timestamp("2026-11-30 00:00").tz_localize(TZ), periods=30, freq="5min")
    df = pd.DataFrame({"Time": t, "Interval Start": t, "Interval End": t + pd.Timedelta(minutes=5),
                       "Load": np.arange(30.0) + 40_000})
    out = live.from_gridstatus("load", df)
    assert len(out) == 2                                   # the third hour has 6 of 12 values: not kept
    assert out["ercot_native_load_mw"].iloc[0] == pytest.approx(40_000 + 5.5)


# ---------------------------------------------------------------------------------------------------------
# the store


def test_update_fetches_local_days_and_appends_idempotently(tmp_path):
    store = live.Store(tmp_path / "store")
    ercot = FakeErcot()
    (a,) = _update(store, "rt", D(2024, 7, 15), D(2024, 7, 15), "HB_WEST", ercot)
    assert ercot.calls[0][1:] == (pd.Timestamp("2024-07-15").tz_localize(TZ),
                                  pd.Timestamp("2024-07-16").tz_localize(TZ), "REAL_TIME_15_MIN", ("HB_WEST",))
    assert (a.rows, a.new, a.replaced) == (96, 96, 0) and [Path(f).name for f in a.files] == ["2024-07.parquet"]
    before = (tmp_path / "store" / "rt" / "2024-07.parquet").read_bytes()
    (b,) = _update(store, "rt", D(2024, 7, 15), D(2024, 7, 15), "HB_WEST")
    assert (b.rows, b.new, b.replaced) == (96, 0, 0)
    assert (tmp_path / "store" / "rt" / "2024-07.parquet").read_bytes() == before
    (c,) = _update(store, "rt", D(2024, 7, 15), D(2024, 7, 15), "HB_NORTH")         # a second point: a column
    assert list(store.read("rt").columns) == ["interval_start_utc", "HB_WEST", "HB_NORTH"] and c.new == 0
    (d,) = _update(store, "rt", D(2024, 7, 15), D(2024, 7, 15), "HB_WEST", FakeErcot(bump=0.5))
    assert (d.new, d.replaced) == (0, 96)                                         # a correction replaces
    assert store.rt_prices("HB_WEST").iloc[0] == pytest.approx(17.46 + 0.5)
    assert store.rt_prices("HB_NORTH").iloc[0] == pytest.approx(17.46)


def test_months_are_fetched_and_stored_one_by_one():
    assert live.months(D(2024, 10, 30), D(2024, 12, 2)) == [
        (D(2024, 10, 30), D(2024, 10, 31)), (D(2024, 11, 1), D(2024, 11, 30)), (D(2024, 12, 1), D(2024, 12, 2))]


def test_store_readers_return_the_shipped_shapes(tmp_path):
    store = live.Store(tmp_path)
    _update(store, "rt", D(2024, 7, 15), D(2024, 7, 15), "HB_WEST")
    _update(store, "dam", D(2024, 11, 3), D(2024, 11, 3), "HB_WEST")
    _update(store, "load", D(2024, 7, 15), D(2024, 7, 15))
    _update(store, "as", D(2024, 7, 15), D(2024, 7, 15))
    hourly = store.rt_prices("HB_WEST", "1h")
    assert len(hourly) == 24 and hourly.index.name == "timestamp" and str(hourly.index.tz) == "UTC"
    np.testing.assert_allclose(hourly, data.ercot_prices("HB_WEST", "rt").reindex(hourly.index), atol=6e-3)
    da = store.da_prices("HB_WEST")
    assert len(da) == 25 and da.index[0] == pd.Timestamp("2024-11-03T05:00Z")
    assert store.load().iloc[0] == pytest.approx(55638.871)
    np.testing.assert_allclose(store.as_prices("nspin"), data.ercot_as_prices("nspin").reindex(
        store.as_prices("nspin").index))
    assert set(store.coverage()) == {"rt", "dam", "load", "as"}


def test_load_forecast_keeps_its_publication_time_and_picks_the_vintage_a_decision_had(tmp_path):
    """Two vintages for 2024-07-16: published 05:30 and 10:30 local on 07-15. The nightly decision (10:00 local on
    D-1) had the 05:30 one; a decision at 11:00 had the 10:30 one (values rounded to 10 MW)."""
    store = live.Store(tmp_path)
    (a,) = _update(store, "load-forecast", D(2024, 7, 15), D(2024, 7, 15))
    assert a.rows == 48 and len(store.read("load_forecast")) == 48                # both vintages are stored
    s = store.load_forecast("America/Chicago")
    assert len(s) == 24 and (s.attrs["published"] == pd.Timestamp("2024-07-15T10:30Z")).all()
    shipped = data.ercot_load_forecast().reindex(s.index)
    np.testing.assert_allclose(s, shipped, atol=1e-3)
    late = store.load_forecast("America/Chicago", decision_hour_local=11)
    assert (late.attrs["published"] == pd.Timestamp("2024-07-15T15:30Z")).all()
    np.testing.assert_allclose(late, np.round(shipped, -1))


_APPENDER = textwrap.dedent("""
    import sys
    import pandas as pd
    from optimizer import data, live
    store, ready = live.Store(sys.argv[1]), sys.argv[2]
    rt = data.ercot_prices("HB_WEST", "rt", "15min")
    rt = rt[(rt.index >= "2023-01-01T06:00Z") & (rt.index < "2024-01-01T06:00Z")]
    open(ready, "w").close()
    bump = 0.0
    while True:
        bump += 1.0
        store.append("rt", pd.DataFrame({"interval_start_utc": rt.index, "HB_WEST": rt.to_numpy() + bump}))
""")


def test_a_killed_update_leaves_no_partial_file(tmp_path):
    """Appends of a year of real 15-minute prices (12 month files each), SIGKILLed at random moments: every month
    file reads whole (all its intervals, one consistent bump), and the next update removes the leftovers."""
    rng = random.Random(7)
    root = tmp_path / "store"
    for k in range(4):
        ready = tmp_path / f"ready{k}"
        proc = subprocess.Popen([sys.executable, "-c", _APPENDER, str(root), str(ready)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while not ready.exists():
            assert proc.poll() is None, proc.communicate()[1].decode()
            time.sleep(0.02)
        time.sleep(rng.uniform(0.3, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        store = live.Store(root)
        files = sorted((root / "rt").glob("*.parquet"))
        for f in files:
            month = pd.read_parquet(f)
            t = pd.DatetimeIndex(month["interval_start_utc"])
            assert len(t) == len(pd.date_range(t[0], t[-1], freq="15min"))              # whole months
            shipped = data.ercot_prices("HB_WEST", "rt", "15min").reindex(t).to_numpy()
            bumps = np.round(month["HB_WEST"].to_numpy() - shipped, 3)
            assert len(np.unique(bumps)) == 1, f.name                                     # one write, not two
    assert len(files) >= 1
    store.append("rt", live.from_gridstatus("rt", fixture("ercot_get_spp_rt"), "HB_WEST"))
    assert not list(root.glob("*/.*.tmp"))


# ---------------------------------------------------------------------------------------------------------
# readers for schedule, backtest, operate: which source


def test_prices_come_from_the_store_when_it_covers_else_shipped_and_say_so(tmp_path):
    store = live.Store(tmp_path)
    _update(store, "rt", D(2024, 7, 15), D(2024, 7, 15), "HB_WEST")
    day = (pd.Timestamp("2024-07-15T05:00Z"), pd.Timestamp("2024-07-16T05:00Z"))
    s = live.prices_for("HB_WEST", "rt", *day, store=store, resolution="15min")
    assert "store" in s.source and len(s.series) == 96
    s = live.prices_for("HB_WEST", "rt", pd.Timestamp("2023-07-15T05:00Z"), pd.Timestamp("2023-07-16T05:00Z"),
                        store=store)
    assert s.source == "ERCOT real-time HB_WEST (shipped)" and len(s.series) == 24
    with pytest.raises(InputError, match="curtail data update --what rt --location HB_WEST"):
        live.prices_for("HB_WEST", "rt", pd.Timestamp("2026-11-01T05:00Z"), pd.Timestamp("2026-11-02T05:00Z"),
                        store=store)


def test_history_merges_the_store_over_the_shipped_data(tmp_path):
    store = live.Store(tmp_path)
    _update(store, "rt", D(2024, 7, 15), D(2024, 7, 15), "HB_WEST", FakeErcot(bump=1.0))
    _update(store, "load-forecast", D(2024, 7, 15), D(2024, 7, 15))
    h, source = live.history("HB_WEST", store)
    assert "with the store" in source and "load forecast" in source
    t = pd.Timestamp("2024-07-15T05:00Z")
    shipped = data.ercot_prices("HB_WEST", "rt")
    assert h.rt[t] == pytest.approx(shipped[t] + 1.0, abs=6e-3)                   # the store wins
    assert h.rt[pd.Timestamp("2023-07-15T05:00Z")] == shipped[pd.Timestamp("2023-07-15T05:00Z")]
    assert h.load_forecast_published[pd.Timestamp("2024-07-16T05:00Z")] == pd.Timestamp("2024-07-15T10:30Z")
    _, plain = live.history("HB_WEST", None)
    assert plain == "shipped ERCOT data"


def test_day_prices_for_schedule_from_the_store(tmp_path):
    store = live.Store(tmp_path)
    assert live.day_prices(SITE, D(2024, 11, 3), 24, store) is None
    _update(store, "dam", D(2024, 11, 3), D(2024, 11, 3), "HB_WEST")
    prices, lookahead = live.day_prices(SITE, D(2024, 11, 3), 24, store)
    assert len(prices) == 25 and lookahead == 0
    assert "day-ahead HB_WEST (store" in prices.attrs["source"] and "lookahead cut to 0 h" in prices.attrs["source"]


# ---------------------------------------------------------------------------------------------------------
# curtail data update


app = typer.Typer()
app.command("update")(data_update)
app.command("noop")(lambda: None)


def cli(*args, expect: int | None = 0):
    r = CliRunner().invoke(app, ["update", *map(str, args)])
    if expect is not None:
        assert r.exit_code == expect, (r.exit_code, r.stdout, r.stderr, r.exception)
    return r


def test_data_update_command(tmp_path, monkeypatch):
    monkeypatch.setattr(live, "client", lambda: FakeErcot())
    args = ("--what", "rt", "--start", "2024-07-15", "--end", "2024-07-15", "--location", "HB_WEST",
            "--store", tmp_path, "--quiet")
    r = cli(*args)
    assert "rt: 96 rows fetched for 2024-07-15 .. 2024-07-15 at HB_WEST; 96 new" in r.stdout
    assert "rt             2024-07-15 05:00 .. 2024-07-16 04:45 UTC, 96 rows (HB_WEST)" in r.stdout
    r = cli(*args)
    assert "0 new, 0 changed a stored value, 96 already stored" in r.stdout
    monkeypatch.setenv("CURTAIL_STORE", str(tmp_path / "env"))
    cli("--what", "as", "--start", "2024-07-15", "--end", "2024-07-15")            # progress bar on, env store
    assert (tmp_path / "env" / "as" / "2024-07.parquet").exists()


def test_data_update_without_gridstatus_exits_2_naming_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "gridstatus", None)                         # import gridstatus fails
    r = cli("--what", "as", "--start", "2026-11-01", "--end", "2026-11-02", "--store", tmp_path, expect=2)
    assert 'pip install "curtail[live]" (gridstatus==0.37.0)' in r.stderr and "Traceback" not in r.stderr
    assert not any(tmp_path.rglob("*.parquet"))


def test_data_update_offline_exits_2_naming_what_failed(tmp_path, monkeypatch):
    monkeypatch.setattr(live, "client", lambda: FakeErcot(fail=ConnectionError("Max retries exceeded: "
                                                                              "Name or service not known")))
    r = cli("--what", "rt", "--start", "2026-11-01", "--end", "2026-11-02", "--location", "HB_WEST",
            "--store", tmp_path, "--quiet", expect=2)
    assert "fetching rt 2026-11-01 .. 2026-11-02 at HB_WEST through gridstatus failed (ConnectionError" in r.stderr
    assert "offline" in r.stderr
    r = cli("--what", "rt", "--start", "2026-11-01", "--end", "2026-11-02", "--store", tmp_path, expect=2)
    assert "needs --location" in r.stderr
    r = cli("--what", "prices", "--start", "2026-11-01", "--end", "2026-11-02", "--store", tmp_path, expect=2)
    assert "--what must be one of rt, dam, load, load-forecast, as" in r.stderr


def test_the_calls_bind_to_the_installed_gridstatus():
    """With the ``live`` extra installed: live.client() is a gridstatus.Ercot (imported with warnings as errors) and
    every call the adapter makes binds to that release's signatures (no network)."""
    import inspect

    gridstatus = pytest.importorskip("gridstatus", reason="the live extra (gridstatus) is not installed here")
    assert gridstatus.__version__ == live.GRIDSTATUS_VERSION
    ercot = live.client()
    assert isinstance(ercot, gridstatus.Ercot)
    lo, hi = pd.Timestamp("2026-11-01").tz_localize(TZ), pd.Timestamp("2026-11-02").tz_localize(TZ)
    calls = {"get_spp": {"date": lo, "end": hi, "market": "REAL_TIME_15_MIN", "locations": ["HB_WEST"]},
             "get_load": {"date": lo, "end": hi}, "get_load_forecast": {"date": lo, "end": hi},
             "get_as_prices": {"date": lo, "end": hi}, "get_rtm_spp": {"year": 2025}, "get_dam_spp": {"year": 2025},
             "get_hourly_load_post_settlements": {"date": "2025-01-01"}}
    for name, kwargs in calls.items():
        inspect.signature(getattr(ercot, name)).bind(**kwargs)
    assert gridstatus.Markets("REAL_TIME_15_MIN") and gridstatus.Markets("DAY_AHEAD_HOURLY")
