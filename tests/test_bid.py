"""Day-ahead bid curves (optimizer.bid, ``curtail bid``) and the two-settlement accounting of their awards.

Truths known by hand: a commitment that makes independent scenario solves buy MORE at a higher price, and the
bidding constraints that forbid it; the step semantics of a curve; ERCOT's hour-ending labels on both DST days;
two-settlement amounts on a small case; the checker catching a tampered day-ahead amount. Real shipped data: the bid
of sample days (a DST day each way, Winter Storm Uri, the August 2023 scarcity day) is monotone and within its
segment limit and round-trips through the operator's CSV; the scenarios read no day-ahead price published after
the bid deadline; a short backtest settles bid / bid-strike / mpc exactly as recomputed here from the shipped prices.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import optimizer
from optimizer import bid as bids
from optimizer import check, data, results
from optimizer import market as mk
from optimizer.cli import app
from optimizer.cli import bid as bid_cmd
from optimizer.errors import InputError
from optimizer.forecast import MarketHistory
from optimizer.planner import Planner
from tests.support import fleet, hourly, inputs, make_site

REPO = Path(__file__).resolve().parent.parent
D = dt.date


# ----------------------------------------------------------------------------------------------------------------
# curves by hand


def _curve(rows: list[list[tuple[float, float]]], start: str = "2022-07-20T05:00Z") -> bids.Curves:
    n = max(len(r) for r in rows)
    price, mw = np.full((len(rows), n), np.nan), np.full((len(rows), n), np.nan)
    for h, r in enumerate(rows):
        for i, (p, q) in enumerate(r):
            price[h, i], mw[h, i] = p, q
    return bids.Curves(pd.date_range(start, periods=len(rows), freq="h"), price, mw)


def test_a_curve_buys_the_mw_of_the_first_segment_priced_at_or_above_the_da_price():
    c = _curve([[(20.0, 100.0), (50.0, 60.0), (5000.0, -30.0)]] * 6)
    award = c.award_mw([-250.0, 20.0, 20.01, 50.0, 4999.0, 5100.0])
    assert award.tolist() == [100.0, 100.0, 60.0, 60.0, -30.0, -30.0]


def test_problems_name_every_invalid_curve():
    ok = _curve([[(20.0, 10.0), (5000.0, 5.0)]])
    assert ok.problems(2) == []
    assert "rise with the price" in _curve([[(20.0, 5.0), (5000.0, 10.0)]]).problems()[0]
    assert "not strictly increasing" in _curve([[(20.0, 10.0), (20.0, 5.0)]]).problems()[0]
    assert "more than the limit 1" in ok.problems(1)[0]
    assert "no segment" in _curve([[(np.nan, np.nan)]]).problems()[0]
    gap = bids.Curves(ok.hours, np.array([[20.0, np.nan, 5000.0]]), np.array([[10.0, np.nan, 5.0]]))
    assert "gap" in gap.problems()[0]


def test_points_merge_ties_and_equal_levels_and_end_at_the_cap():
    # scenario points (price, MW) in any order; two at the same price average (weighted); equal MW runs merge,
    # bidding up to the run's highest price; the last segment is priced at the cap
    p = np.array([30.0, 10.0, 20.0, 20.0, 40.0])
    q = np.array([50.0, 100.0, 80.0, 60.0, 50.0])
    w = np.array([0.2, 0.2, 0.1, 0.3, 0.2])
    price, mw = bids.step_points(p, q, w, 10, 5000.0)
    assert price.tolist() == [10.0, 20.0, 5000.0]
    assert mw.tolist() == [100.0, 65.0, 50.0]                   # (0.1 x 80 + 0.3 x 60) / 0.4 = 65


def test_reduction_finds_the_best_contiguous_groups():
    # 4 levels into 2 segments, equal weights: {100, 98} | {20, 10} errs 2 + 50 = 52, the best split
    # ({100} | {98, 20, 10}: 4,880; {100, 98, 20} | {10}: 4,181)
    price, mw = bids.step_points(np.array([10.0, 20.0, 30.0, 40.0]), np.array([100.0, 98.0, 20.0, 10.0]),
                                 np.full(4, 0.25), 2, 5000.0)
    assert price.tolist() == [20.0, 5000.0]
    assert mw.tolist() == [99.0, 15.0]


def test_hour_ending_labels_on_both_dst_days_follow_ercot():
    spring = bids.hour_labels(mk.operating_hours(D(2022, 3, 13)), "America/Chicago")
    assert len(spring) == 23 and 3 not in spring["hour_ending"].tolist()
    assert spring["hour_ending"].tolist() == [1, 2, *range(4, 25)] and (spring["repeated_hour_flag"] == "N").all()
    fall = bids.hour_labels(mk.operating_hours(D(2022, 11, 6)), "America/Chicago")
    assert len(fall) == 25 and fall["hour_ending"].tolist() == [1, 2, 2, *range(3, 25)]
    assert fall["repeated_hour_flag"].tolist() == ["N", "N", "Y"] + ["N"] * 22
    # the second HE 2 is 01:00-02:00 CST = 07:00Z; the first is 01:00 CDT = 06:00Z
    hours = mk.operating_hours(D(2022, 11, 6))
    assert [hours[1].hour, hours[2].hour] == [6, 7]


def test_the_csv_reads_back_and_bad_files_are_refused(tmp_path):
    hours = mk.operating_hours(D(2022, 11, 6))
    price = np.tile([[-5.0, 60.0, 5000.0]], (25, 1))
    mw = np.tile([[-9.0, -50.0, -130.0]], (25, 1))
    curves = bids.Curves(hours, price, mw)
    path = bids.write_bids(curves, tmp_path / "b.csv", segments=4)
    text = path.read_text().splitlines()
    assert text[0] == "delivery_date,hour_ending,repeated_hour_flag,price_1,mw_1,price_2,mw_2,price_3,mw_3,price_4,mw_4"
    assert text[3] == "2022-11-06,2,Y,-5.00,-9.00,60.00,-50.00,5000.00,-130.00,,"
    back = bids.read_bids(path, segments=4)
    assert back.hours.equals(hours) and np.array_equal(back.mw[:, :3], mw)
    meta = json.loads(results.sidecar_path(path).read_text())
    assert meta["csv_sha256"] == results.file_sha256(path)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    for row, col, value, message in [(0, "hour_ending", "25", "not an hour"),
                                     (5, "repeated_hour_flag", "Y", "not an hour"),
                                     (0, "mw_2", "10", "rise with the price"), (0, "price_1", "abc", "not a number")]:
        bad = frame.copy()
        bad.loc[row, col] = value
        bad.to_csv(tmp_path / "bad.csv", index=False)
        with pytest.raises(InputError, match=message):
            bids.read_bids(tmp_path / "bad.csv")
    spring = frame.iloc[:23].copy()
    spring["delivery_date"] = "2022-03-13"
    spring["hour_ending"] = [str(h) for h in range(1, 24)]          # HE 3 does not exist that day
    spring["repeated_hour_flag"] = "N"
    spring.to_csv(tmp_path / "spring.csv", index=False)
    with pytest.raises(InputError, match="row 3"):
        bids.read_bids(tmp_path / "spring.csv")


# ----------------------------------------------------------------------------------------------------------------
# the bidding model: a hand case where a commitment makes independent solves non-monotone


def _committed_site():
    # value 173.61 USD/MWh at hashprice 100 (fleet() docstring); once on, 3 hours at 5 MW or more; starts off
    return make_site([fleet("f", 10.0, min_on_hours=3, min_load_fraction=0.5, restart_cost_usd=0.0)])


OFF = {"f": optimizer.UnitState(on=False, power_mw=0.0, hours_in_state=100.0)}
LOW = [150.0, 1000.0, 1000.0]      # starting now means 3 hours on, two of them at 1000: stay off
HIGH = [160.0, 10.0, 10.0]         # 3 cheap hours: run them all


def test_independent_solves_buy_more_at_the_higher_price():
    site = _committed_site()
    low = Planner(site).solve(inputs(hourly(LOW), initial_state=OFF))
    high = Planner(site).solve(inputs(hourly(HIGH), initial_state=OFF))
    assert low["load_mw"].values.tolist() == pytest.approx([0.0, 0.0, 0.0])
    assert high["load_mw"].values.tolist() == pytest.approx([10.0, 10.0, 10.0])     # 160 > 150 yet 10 MW > 0


def test_the_bidding_constraints_make_the_scenarios_monotone_and_commitments_stay_per_scenario():
    site = _committed_site()
    frame = pd.DataFrame({"low": LOW, "high": HIGH}, index=hourly(LOW).index)
    sol = bids.Bidder(site).solve(inputs(hourly(LOW), initial_state=OFF), frame, [0.5, 0.5], 3, datasets=True)
    # hour 0: high (160) may buy no more than low (150), which stays off: high starts an hour later
    assert sol.net_mw[:, 0].tolist() == pytest.approx([0.0, 0.0, 0.0])
    assert sol.net_mw[:, 1].tolist() == pytest.approx([0.0, 10.0, 10.0])
    on = [ds["on"].sel(asset="f").values.tolist() for ds in sol.datasets]
    assert on[0] != on[1]                                    # not the shared commitment of the two-stage schedule
    for ds, inp in zip(sol.datasets, sol.inputs, strict=True):          # every scenario holds every limit
        assert check.check_schedule(site, results.to_frame(ds), optimizer.scheduling.check_inputs(site, inp)) == []
    curves = sol.curves(10, site.timezone)
    assert curves.problems(10) == []
    assert curves.award_mw([200.0, 10.0, 10.01]).tolist() == [0.0, 10.0, 0.0]


# ----------------------------------------------------------------------------------------------------------------
# scenarios: only what is published by the deadline


def test_scenarios_read_no_day_ahead_price_published_after_the_deadline():
    da = data.ercot_prices("HB_WEST", "da")
    day = D(2023, 8, 17)
    deadline = bids.bid_deadline(day)
    horizon = mk.horizon_for(day, lookahead_hours=24).rename(None)
    base = bids.price_scenarios(MarketHistory(rt=da, da=da), deadline, horizon)
    published_until = mk.local_midnight(day)                 # D-1's prices are out (13:30 on D-2); D's are not
    poisoned = da.where(da.index < published_until, 1e6)
    again = bids.price_scenarios(MarketHistory(rt=poisoned, da=poisoned), deadline, horizon)
    pd.testing.assert_frame_equal(base, again)
    changed = da.where(da.index < published_until - pd.Timedelta(hours=24), 1e6)     # D-1 itself: it is known
    assert not bids.price_scenarios(MarketHistory(rt=changed, da=changed), deadline, horizon).equals(base)
    assert (np.diff(base.to_numpy(), axis=1) >= 0.01 - 1e-9).all()       # strictly increasing in every hour
    with pytest.raises(InputError, match="need 63 days"):
        bids.price_scenarios(MarketHistory(rt=da, da=da), bids.bid_deadline(D(2021, 2, 16)),
                             mk.horizon_for(D(2021, 2, 16)).rename(None))


def test_a_decision_after_the_deadline_is_refused(default_site):
    with pytest.raises(InputError, match="closed"):
        bids.bid_day(default_site, D(2022, 7, 20), decision_time=pd.Timestamp("2022-07-19T16:00Z"))


# ----------------------------------------------------------------------------------------------------------------
# real days


@pytest.mark.parametrize(("day", "settings"), [
    (D(2022, 3, 13), bids.BidSettings(scenarios=10)),                    # spring forward: 23 hours
    (D(2022, 11, 6), bids.BidSettings(scenarios=10, segments=3)),        # fall back: 25 hours, reduced to 3
    (D(2021, 2, 16), bids.BidSettings(scenarios=10, window_days=28)),    # Winter Storm Uri (cap 9,000)
    (D(2023, 8, 17), bids.BidSettings()),                                # the August 2023 scarcity day
])
def test_real_days_bid_monotone_curves_within_the_limit(default_site, tmp_path, day, settings):
    b = bids.bid_day(default_site, day, settings=settings)
    c = b.curves
    hours = mk.operating_hours(day)
    assert c.hours.equals(hours) and c.problems(settings.segments) == []
    assert (c.used <= settings.segments).all()
    cap = mk.price_cap_usd_per_mwh(day.year)
    assert (c.price_usd_per_mwh[np.arange(len(hours)), c.used - 1] == cap).all()
    block, limit = default_site.contract.block_mw, default_site.grid.import_limit_mw
    assert (np.nanmax(c.mw) <= limit - block + 1e-6) and (np.nanmin(c.mw) >= default_site.committed_mw - block - 0.05)
    written = bids.write_bids(c, tmp_path / "b.csv", segments=settings.segments)
    back = bids.read_bids(written, segments=settings.segments)
    assert np.array_equal(np.nan_to_num(back.mw[:, : c.mw.shape[1]], nan=-1), np.nan_to_num(c.mw, nan=-1))


# ----------------------------------------------------------------------------------------------------------------
# two-settlement


def test_two_settlement_by_hand():
    # one hour of four 15-minute intervals: award -50 MW (a sale) at DA 40; real time 30, 50, 60, -10
    m = bids.two_settlement(np.full(4, -50.0), np.full(4, 40.0), np.array([30.0, 50.0, 60.0, -10.0]),
                            np.array([-40.0, -60.0, -50.0, -50.0]), 0.25)
    assert m["da_cost_usd"].tolist() == [-500.0] * 4                       # -50 x 40 x 0.25
    assert m["rt_deviation_cost_usd"].tolist() == [75.0, -125.0, 0.0, 0.0]   # (grid + 50) x RT x 0.25
    assert m["da_settlement_usd"].tolist() == [-125.0, 125.0, 250.0, -625.0]  # -50 x (40 - RT) x 0.25
    # DA + deviation = the all-real-time settlement (-1,675) + what the award added (-375)
    assert m["da_cost_usd"].sum() + m["rt_deviation_cost_usd"].sum() == -2050.0 == -1675.0 - 375.0


def _settled(site, award, rt, da, power):
    times = pd.date_range("2022-07-20T05:00Z", periods=len(rt), freq="15min")
    ds = results.assemble(site, times, np.asarray(rt, float), np.asarray(power, float), (np.asarray(power) > 0) * 1.0,
                          np.zeros_like(np.asarray(power, float)), hashprice_usd_per_ph_day=100.0, dt_hours=0.25)
    ins = check.CheckInputs(timestamps=times, prices_usd_per_mwh=rt, hashprice_usd_per_ph_day=100.0,
                            initial_state={"f": optimizer.UnitState(on=True, power_mw=float(power[0][0]))},
                            da_award_mw=award, da_prices_usd_per_mwh=da)
    return ds, bids.with_two_settlement(ds, site, np.asarray(award, float), np.asarray(da, float)), ins


def test_the_checker_recomputes_the_day_ahead_settlement_and_catches_a_tampered_amount():
    site = make_site([fleet("f", 100.0)], block_mw=90.0, contract_price=32.0, sellback=True)
    rt, da, award = [30.0, 50.0, 60.0, -10.0], [40.0] * 4, [-50.0] * 4
    before, ds, ins = _settled(site, award, rt, da, [[50.0], [30.0], [40.0], [40.0]])
    # grid position = load - 90 = -40, -60, -50, -50: the case above
    assert float((before["profit_usd"] - ds["profit_usd"]).sum()) == pytest.approx(-375.0)
    frame = results.to_frame(ds).assign(**bids.da_frame_columns(ds))
    assert check.check_schedule(site, frame, ins) == []
    tampered = frame.copy()
    tampered.loc[1, "rt_deviation_cost_usd"] += 1.0
    assert [v.rule for v in check.check_schedule(site, tampered, ins)] == ["accounting"]
    no_award = check.CheckInputs(timestamps=ins.timestamps, prices_usd_per_mwh=rt, hashprice_usd_per_ph_day=100.0,
                                 initial_state=ins.initial_state)
    assert {v.asset for v in check.check_schedule(site, frame, no_award)} == {"profit_usd"}
    with pytest.raises(InputError, match="go together"):
        check.CheckInputs(timestamps=ins.timestamps, prices_usd_per_mwh=rt, hashprice_usd_per_ph_day=100.0,
                          da_award_mw=award)


def test_a_site_without_a_market_position_cannot_bid():
    site = make_site([fleet("f", 10.0)], import_limit_mw=20.0, block_mw=20.0, sellback=False)
    with pytest.raises(InputError, match="no market position"):
        bids.Bidder(site)


def test_a_backtest_settles_the_awards_as_recomputed_from_the_shipped_prices(default_site, tmp_path):
    from optimizer.backtest import Market, Settings, report, run

    market = Market.shipped("HB_WEST")
    first = D(2022, 7, 19)
    r = run(default_site, first, D(2022, 7, 20), market, Settings(policies=("mpc", "bid", "bid-strike"),
                                                                  forecast_method="naive"))
    ds = r.intervals
    times = pd.DatetimeIndex(ds["time"].values).tz_localize("UTC")
    rt = market.actual.reindex(times).to_numpy()
    da = data.ercot_prices("HB_WEST", "da").reindex(times.floor("h")).to_numpy()
    mpc = r.summary["policies"]["mpc"]["profit_usd"]
    for p in ("bid", "bid-strike"):
        # the same real-time trajectory as mpc: the award changes no real-time decision
        assert np.array_equal(ds["power_mw"].sel(policy=p).values, ds["power_mw"].sel(policy="mpc").values)
        award = ds["da_award_mw"].sel(policy=p).to_numpy()
        assert r.summary["policies"][p]["profit_usd"] - mpc == pytest.approx(-(award * (da - rt) * 0.25).sum(),
                                                                             abs=0.01)
        assert award.max() <= default_site.grid.import_limit_mw - default_site.contract.block_mw + 1e-9
    # the first day's award is the library's bid (same deadline, history, state) evaluated at that day's DA prices
    lib = bids.bid_day(default_site, first, verify=False)
    hours = mk.operating_hours(first)
    award = ds["da_award_mw"].sel(policy="bid").to_numpy()[: 4 * len(hours): 4]
    assert award.tolist() == lib.curves.award_mw(data.ercot_prices("HB_WEST", "da").reindex(hours)).tolist()
    assert (ds["da_award_mw"].sel(policy="mpc") == 0).all()
    table = report.settlement_table(r)
    assert table.loc["mpc", "da_cost_usd"] == 0.0
    assert table.loc["bid", "market_total_usd"] == pytest.approx(
        float((ds["da_cost_usd"] + ds["rt_deviation_cost_usd"]).sel(policy="bid").sum()))
    report.write(r, tmp_path / "bt")
    assert "DA vs RT settlement" in (tmp_path / "bt" / "report.html").read_text()


# ----------------------------------------------------------------------------------------------------------------
# curtail bid


BASE = ["--scenario-count", "4", "--lookahead-hours", "0"]       # small and fast; every option is tested against it


def _cli(*args):
    return CliRunner().invoke(app, ["bid", *map(str, args)])


def _frame(path: Path) -> pd.DataFrame:
    return pd.read_csv(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bid")
    hours = mk.horizon_for(D(2022, 7, 20), lookahead_hours=0)
    da = data.ercot_prices("HB_WEST", "da").reindex(hours).to_numpy()
    out = {"scenarios": d / "scen.csv", "da": d / "da.csv", "state": d / "state.json", "emergency": d / "ev.csv"}
    pd.DataFrame({"timestamp": hours.strftime("%Y-%m-%dT%H:%M:%SZ"), "low": da * 0.5, "mid": da,
                  "high": da * 2.0}).to_csv(out["scenarios"], index=False)
    hist = data.ercot_prices("HB_WEST", "da")
    pd.DataFrame({"timestamp": hist.index.strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "price_usd_per_mwh": hist.to_numpy() * 1.5}).to_csv(out["da"], index=False)
    out["state"].write_text(json.dumps({"s21-pro": {"on": False, "power_mw": 0.0, "hours_in_state": 0.25},
                                        "s19j-pro": {"on": False, "power_mw": 0.0, "hours_in_state": 0.25}}))
    out["emergency"].write_text("start,end,max_load_mw\n2022-07-20T08:00:00Z,2022-07-20T10:00:00Z,60\n")
    # 4CP inputs: July 2022's system load so far 20% lower (D more likely to set the month's peak), and a day-ahead
    # load forecast of D published on D-1 at 06:00 CDT, 30% above D's actual load (a record day)
    load = data.ercot_load()
    july = load[(load.index >= "2022-07-01T05:00Z") & (load.index < "2022-07-20T05:00Z")]
    out["load"] = d / "load.csv"
    pd.DataFrame({"timestamp": july.index.strftime("%Y-%m-%dT%H:%M:%SZ"), "load_mw": july.to_numpy() * 0.8}).to_csv(
        out["load"], index=False)
    day = load.reindex(hours)
    out["load_forecast"] = d / "load_forecast.csv"
    pd.DataFrame({"timestamp": hours.strftime("%Y-%m-%dT%H:%M:%SZ"), "load_forecast_mw": day.to_numpy() * 1.3,
                  "published": "2022-07-19T11:00:00Z"}).to_csv(out["load_forecast"], index=False)
    return out


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> pd.DataFrame:
    path = tmp_path_factory.mktemp("base") / "b.csv"
    r = _cli(*BASE, "--out", path)
    assert r.exit_code == 0, r.output
    return _frame(path)


def _table(f: dict[str, Path]) -> list[tuple[str, list, object]]:
    """(option, args, what must show): "differs" (the curves change), "refused" (exit 2), or a callable
    (exit code, output, written frame or None) -> bool."""
    return [
        ("site", ["--site", REPO / "models" / "north-texas-mining.toml"],
         lambda c, o, fr: c == 0 and fr.filter(like="mw_").min().min() >= 0 and fr["mw_1"].max() > 0),  # no block:
        #                                                                                             it only buys
        ("day", ["--day", "2022-07-21"], lambda c, o, fr: c == 0 and fr["delivery_date"].iloc[0] == "2022-07-21"),
        ("segments", ["--segments", "1"], lambda c, o, fr: c == 0 and list(fr.columns)[-2:] == ["price_1", "mw_1"]),
        ("scenarios", ["--scenarios", f["scenarios"], "--scenario-count", "4"], "refused"),
        ("scenarios_alone", ["--scenarios", f["scenarios"]], lambda c, o, fr: c == 0 and "scenarios: 3 (" in o),
        ("scenario_count", ["--scenario-count", "6"], lambda c, o, fr: c == 0 and "scenarios: 6 (" in o),
        ("weights", ["--weights", "0.2,0.6,0.2"], "refused"),               # only with --scenarios
        ("weights_with_scenarios", ["--scenarios", f["scenarios"], "--weights", "0.2,0.6,0.2"],
         lambda c, o, fr: c == 0 and "weights 0.2, 0.6, 0.2" in o),
        ("da_prices", ["--da-prices", f["da"]], "differs"),          # (Uri x 1.5 is above the cap: a warning)
        ("hashprice", ["--hashprice", 30.0], "differs"),
        ("initial_state", ["--initial-state", f["state"]], "differs"),
        ("emergency", ["--emergency", f["emergency"]],
         lambda c, o, fr: c == 0 and fr.loc[3:4, [x for x in fr.columns if x.startswith("mw_")]].max().max() <= -120),
        ("load", ["--load", f["load"]], "differs"),
        ("load_forecast", ["--load-forecast", f["load_forecast"]], "differs"),
        ("lookahead_hours", ["--lookahead-hours", "24"], lambda c, o, fr: c == 0 and "lookahead 24 h" in o),
        ("time_limit", ["--time-limit", "0.0001"], lambda c, o, fr: c == 4 and fr is None),
        ("mip_gap", ["--mip-gap", "0.5"], lambda c, o, fr: c == 0 and "mip gap option 0.5" in o),
        ("out", [], lambda c, o, fr: c == 0 and fr is not None),
    ]


def test_every_option_changes_the_bid_or_is_refused(files, base, tmp_path):
    for name, args, want in _table(files):
        out = tmp_path / f"{name}.csv"
        r = _cli(*(BASE if "--scenarios" not in args else BASE[2:]), *args, "--out", out)
        fr = _frame(out) if out.exists() else None
        if want == "differs":
            assert r.exit_code == 0, (name, r.output)
            assert not fr.equals(base), name
        elif want == "refused":
            assert r.exit_code == 2 and "error" in r.output and fr is None, (name, r.exit_code, r.output)
        else:
            assert want(r.exit_code, r.output, fr), (name, r.exit_code, r.output[-600:])


def test_the_table_covers_every_bid_option(files):
    options = set(inspect.signature(bid_cmd.bid).parameters)
    covered = {name for name, _, _ in _table(files)}
    assert options <= covered, sorted(options - covered)


@pytest.mark.parametrize(("args", "message"), [
    (["--segments", "0"], "segments"),
    (["--day", "2022-13-01"], "not a day"),
    (["--day", "today"], "closed"),
    (["--day", "2030-01-01"], "day-ahead"),
    (["--da-prices", "/nonexistent.csv"], "not found"),
    (["--weights", "a,b"], "comma-separated"),
])
def test_bad_input_exits_2_and_keeps_the_previous_bid(tmp_path, base, args, message):
    out = tmp_path / "b.csv"
    base.to_csv(out, index=False)
    before = out.read_bytes()
    r = _cli(*BASE, *args, "--out", out)
    assert r.exit_code == 2 and message in r.output, r.output
    assert out.read_bytes() == before


def test_a_parquet_output_is_refused_before_solving(tmp_path):
    r = _cli(*BASE, "--out", tmp_path / "b.parquet")
    assert r.exit_code == 2 and ".csv" in r.output and not (tmp_path / "b.parquet").exists()


def test_a_second_run_on_a_locked_output_exits_6(tmp_path):
    out = tmp_path / "b.csv"
    with results.output_lock(out):
        r = _cli(*BASE, "--out", out)
    assert r.exit_code == 6 and not out.exists()
