"""Ancillary services on real hourly prices (issue 14 §1): the ERCOT service rules, the clearing prices and when they
are known, the model and the checker on them, deployments, and the commands.

Expected values come from the raw shared ERCOT file (``../shared/data/ercot``, read here independently of the shipped
copy), from the rules as docs/ancillary.md states them, or by hand. Tests that guard a rule also break it on purpose
(a monkeypatched publication time, an offer a unit may not make) and check that the break is caught."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support import fleet, hourly, inputs, make_site, power
from typer.testing import CliRunner

import optimizer
from optimizer import ancillary, check, scheduling
from optimizer.ancillary import AsPrices
from optimizer.backtest import Deployment, Market, Settings, run
from optimizer.cli import app
from optimizer.errors import InputError
from optimizer.site import FourCP, Reserve

D = dt.date
ROOT = Path(__file__).resolve().parent.parent
RAW = ROOT.parent / "shared" / "data" / "ercot" / "ercot_as_mcpc_dam_hourly_2022_2024.parquet"
TZ = "America/Chicago"


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    """ERCOT's MCPCs as the shared data holds them (long: timestamp_utc, service, price), hour x service."""
    if not RAW.exists():
        pytest.skip(f"shared raw data not found at {RAW}")
    df = pd.read_parquet(RAW)
    return df.pivot(index="timestamp_utc", columns="service", values="price_usd_per_mw_hour")


@pytest.fixture(scope="module")
def market() -> Market:
    return Market.shipped("HB_WEST")


def _site(resource: str = "clr", services: str = "rrs,nspin", **fleet_kw) -> optimizer.Site:
    site = make_site([fleet(reserve_resource=resource, **fleet_kw)])
    return dataclasses.replace(site, reserves=ancillary.parse_reserve_option(services))


# ---------------------------------------------------------------------------------------------------------------
# 1. The rules


def test_eligibility_table_is_the_documented_one_and_the_checker_keeps_its_own_copy():
    # by hand from docs/ancillary.md (ERCOT Load Resource rules; Regulation Down refused)
    want = {"clr": {"regup", "rrs", "ecrs", "nspin"}, "ufr": {"rrs", "ecrs"}, "none": set()}
    for resource, services in want.items():
        assert {s for s in ancillary.SERVICES if ancillary.eligible(resource, s)} == services
        assert {s for s, who in check.AS_SELLERS.items() if resource in who} == services
    assert {s: x.response_minutes for s, x in ancillary.SERVICES.items() if x.modelled} == check.AS_RESPONSE_MINUTES \
        == {"regup": 5.0, "rrs": 10.0, "ecrs": 10.0, "nspin": 30.0}
    assert (ancillary.SERVICES["ecrs"].sustain_hours, ancillary.SERVICES["nspin"].sustain_hours) == (2.0, 4.0)
    doc = (ROOT / "docs" / "ancillary.md").read_text()
    for s in ("regup", "rrs", "ecrs", "nspin", "regdn"):
        assert f"`{s}`" in doc


def test_site_flags_and_reserve_tables_are_validated_with_named_errors():
    base = {"name": "s", "timezone": TZ, "settlement_point": "HB_WEST", "grid": {"import_limit_mw": 50.0},
            "mining": [{"name": "f", "capacity_mw": 10.0, "efficiency_j_per_th": 20.0}]}
    reserves = [{"name": "nspin"}, {"name": "rrs", "price_usd_per_mw_hour": 7}]
    site = optimizer.site_from_dict(base | {"reserve": reserves})
    assert site.mining[0].reserve_resource == "clr"                           # the default
    nspin, rrs = site.reserves
    assert (nspin.clearing_prices, nspin.response_minutes) == (True, 30.0)   # no price: hourly; the rule's response
    assert (rrs.clearing_prices, rrs.price_usd_per_mw_hour, rrs.response_minutes) == (False, 7.0, 10.0)
    cases = [
        ({"mining": [{"name": "f", "capacity_mw": 10.0, "efficiency_j_per_th": 20.0, "reserve_resource": "ers"}]},
         "mining[0].reserve_resource", "'ers'"),
        ({"reserve": [{"name": "regdn"}]}, "reserve[0].name", "INCREASING"),
        ({"reserve": [{"name": "ecrs", "response_minutes": 30}]}, "reserve[0].response_minutes", "10"),
    ]
    for extra, field, text in cases:
        with pytest.raises(InputError) as exc:
            optimizer.site_from_dict(base | extra, source="site.toml")
        assert exc.value.field == field and text in str(exc.value) and "site.toml" in str(exc.value)


def test_reserve_option_parses_prices_and_responses():
    rrs, ecrs, nspin = ancillary.parse_reserve_option("rrs, ecrs:9.5, nspin::20")
    assert (rrs.clearing_prices, rrs.response_minutes) == (True, 10.0)
    assert (ecrs.clearing_prices, ecrs.price_usd_per_mw_hour) == (False, 9.5)
    assert (nspin.clearing_prices, nspin.response_minutes) == (True, 20.0)
    for bad, text in (("rrs:x", "NAME"), ("regdn", "INCREASING"), ("nsrs:4", "not an ERCOT"), ("rrs,rrs", "unique"),
                      ("ecrs::11", "10"), ("rrs:-1", "price")):
        with pytest.raises(InputError, match=text):
            ancillary.parse_reserve_option(bad)


def test_a_model_is_refused_for_a_service_curtail_does_not_know():
    site = dataclasses.replace(make_site([fleet()]), reserves=(Reserve("nsrs", 4.5, 30.0),))
    with pytest.raises(InputError, match="not an ERCOT") as exc:
        scheduling.optimize(site, inputs(hourly([30.0] * 2)))
    assert exc.value.field == "reserve[0].name"


# ---------------------------------------------------------------------------------------------------------------
# 2. Prices: files, coverage, publication


def test_shipped_clearing_prices_are_ercots(raw):
    prices = AsPrices.shipped()
    site = _site(services="regup,rrs,nspin,ecrs")
    times = pd.date_range("2023-08-17T05:00Z", periods=24, freq="h")      # local 2023-08-17
    got = prices.actual(site, times)
    for s in ("regup", "rrs", "nspin", "ecrs"):
        np.testing.assert_array_equal(got[s], raw[s].reindex(times).to_numpy())
    # the 15-minute intervals of an hour take its price
    quarter = prices.actual(site, pd.date_range("2023-08-17T22:00Z", periods=4, freq="15min"))
    assert (quarter["ecrs"] == raw.loc[pd.Timestamp("2023-08-17T22:00Z"), "ecrs"]).all()


def test_a_clearing_priced_service_without_a_price_is_a_named_error_never_a_zero():
    site = _site(services="ecrs")
    with pytest.raises(InputError) as exc:                     # ECRS did not exist before 2023-06-10
        optimizer.schedule(site, day="2022-07-20")
    message = str(exc.value)
    assert exc.value.field == "ecrs" and "2023-06-10" in message and "2022-07-20T05:00:00+00:00" in message
    with pytest.raises(InputError, match="none were given"):   # the library with no prices for it
        scheduling.optimize(site, inputs(hourly([30.0] * 2)))


def _write(path: Path, rows: list[tuple]) -> Path:
    pd.DataFrame(rows, columns=["timestamp", "service", "price_usd_per_mw_hour"]).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(("rows", "field", "text"), [
    ([("2022-07-20T05:00:00", "rrs", 1.0)], "timestamp", "row 1"),                            # no UTC offset
    ([("2022-07-20T05:00:00Z", "rrs", 1.0), ("2022-07-20T05:30:00Z", "rrs", 1.0)], "timestamp", "row 2"),
    ([("2022-07-20T05:00:00Z", "nonspin", 1.0)], "service", "'nonspin'"),
    ([("2022-07-20T05:00:00Z", "rrs", -2.0)], "price_usd_per_mw_hour", "'-2.0'"),
    ([("2022-07-20T05:00:00Z", "rrs", "x")], "price_usd_per_mw_hour", "'x'"),
    ([("2022-07-20T05:00:00Z", "rrs", 1.0), ("2022-07-20T05:00:00Z", "rrs", 2.0)], "timestamp", "twice"),
])
def test_as_price_files_are_validated_naming_file_row_field_value(tmp_path, rows, field, text):
    path = _write(tmp_path / "as.csv", rows)
    with pytest.raises(InputError) as exc:
        ancillary.read_as_price_file(path)
    assert exc.value.field == field and text in str(exc.value) and str(path) in str(exc.value)


def test_a_price_file_is_read_as_given(tmp_path):
    path = _write(tmp_path / "as.csv", [("2022-07-20T00:00:00-05:00", "RRS", 3.5),
                                        ("2022-07-20T05:00:00Z", "nspin", 2)])
    t = ancillary.read_as_price_file(path)
    assert list(t.columns) == ["nspin", "rrs"] and t.loc[pd.Timestamp("2022-07-20T05:00Z"), "rrs"] == 3.5


def test_publication_time_is_13_30_ercot_time_on_the_day_before():
    p = AsPrices.shipped()
    before = pd.Timestamp("2023-08-15 13:29", tz=TZ)
    after = pd.Timestamp("2023-08-15 13:30", tz=TZ)
    assert p.last_published_day(before) == D(2023, 8, 15)
    assert p.last_published_day(after) == D(2023, 8, 16)
    # across the fall-back change (CDT -> CST on 2022-11-06): the rule is local time
    assert p.last_published_day(pd.Timestamp("2022-11-06 13:30", tz=TZ)) == D(2022, 11, 7)
    known = p.known_at(before).table
    assert known.index[-1] == pd.Timestamp("2023-08-16 04:00Z")          # 23:00 CDT on 2023-08-15


def test_plan_prices_take_the_published_hours_and_a_median_of_7_days_for_the_rest(raw):
    site = _site(services="rrs")
    horizon = pd.date_range("2023-08-16T05:00Z", periods=48, freq="h")          # local 08-16 and 08-17
    at_ten = pd.Timestamp("2023-08-15 10:00", tz=TZ)                             # 08-16 not published yet
    got = AsPrices.shipped().plan_prices(site, horizon, at_ten)["rrs"]
    local = raw["rrs"].copy()
    local.index = local.index.tz_convert(TZ)
    hist = local[(local.index >= pd.Timestamp("2023-08-09", tz=TZ)) & (local.index < pd.Timestamp("2023-08-16", tz=TZ))]
    med = hist.groupby(hist.index.hour).median()                                 # by hand: the 7 days 08-09 .. 08-15
    np.testing.assert_allclose(got, med.reindex(horizon.tz_convert(TZ).hour).to_numpy())
    at_two = pd.Timestamp("2023-08-15 14:00", tz=TZ)                              # 08-16 published at 13:30
    got2 = AsPrices.shipped().plan_prices(site, horizon, at_two)["rrs"]
    np.testing.assert_array_equal(got2[:24], raw["rrs"].reindex(horizon[:24]).to_numpy())
    hist2 = local[(local.index >= pd.Timestamp("2023-08-10", tz=TZ))
                  & (local.index < pd.Timestamp("2023-08-17", tz=TZ))]
    np.testing.assert_allclose(got2[24:], hist2.groupby(hist2.index.hour).median().to_numpy())


def _poisoned(prices: AsPrices, after: pd.Timestamp, value: float) -> AsPrices:
    t = prices.table.copy()
    t[t.index >= after] = value
    return AsPrices(t, "poisoned")


@pytest.mark.parametrize("value", [np.nan, 4_000.0])
def test_plan_prices_do_not_read_unpublished_hours(value):
    site = _site(services="rrs,nspin")
    horizon = pd.date_range("2023-08-16T05:00Z", periods=48, freq="h")
    decision = pd.Timestamp("2023-08-15 10:00", tz=TZ)
    clean = AsPrices.shipped().plan_prices(site, horizon, decision)
    cut = pd.Timestamp("2023-08-16T05:00Z")                                      # local midnight of 08-16
    dirty = _poisoned(AsPrices.shipped(), cut, value).plan_prices(site, horizon, decision)
    for s in clean:
        np.testing.assert_array_equal(clean[s], dirty[s])


def _decisions(r, policy: str):
    ds = r.intervals.sel(policy=policy)
    return ds["power_mw"].to_numpy(), ds["reserve_offer_mw"].to_numpy()


def test_backtest_decisions_ignore_prices_published_after_them(default_site, market, monkeypatch):
    """Two days; the last decision is 10:00 CDT on 07-03, when MCPCs are published through 07-03. Every price from
    07-04 on is replaced by 4,000 USD/MW-h: the decisions (power, offers) stay the same, the settlement of 07-04 uses
    the (poisoned) actual prices. With the publication time moved a day ahead (a leak, on purpose), the poison
    changes the decisions."""
    site = dataclasses.replace(default_site, reserves=ancillary.parse_reserve_option("rrs,nspin"))
    settings = Settings(forecast_method="naive", policies=("schedule", "mpc"))
    cut = pd.Timestamp("2023-07-04T05:00Z")
    dirty = dataclasses.replace(market, as_prices=_poisoned(AsPrices.shipped(), cut, 4_000.0))
    a = run(site, D(2023, 7, 3), D(2023, 7, 4), market, settings)
    b = run(site, D(2023, 7, 3), D(2023, 7, 4), dirty, settings)
    for p in ("schedule", "mpc"):
        for x, y in zip(_decisions(a, p), _decisions(b, p), strict=True):
            np.testing.assert_array_equal(x, y)
    day2 = slice("2023-07-04T05:00", None)
    rev_a = float(a.intervals["reserve_revenue_usd"].sel(policy="schedule", time=day2).sum())
    rev_b = float(b.intervals["reserve_revenue_usd"].sel(policy="schedule", time=day2).sum())
    assert rev_b > 10 * rev_a > 0                              # settled at the (poisoned) actual clearing prices
    leak = ancillary.AsPrices.last_published_day
    monkeypatch.setattr(ancillary.AsPrices, "last_published_day", lambda self, t: leak(self, t) + dt.timedelta(days=1))
    c = run(site, D(2023, 7, 3), D(2023, 7, 4), dirty, settings)
    assert not np.array_equal(_decisions(a, "schedule")[1], _decisions(c, "schedule")[1])


# ---------------------------------------------------------------------------------------------------------------
# 3. The model: what each kind of Load Resource sells


V = 100 / 24 * 1000 / 24         # USD/MWh a 24 J/TH fleet mines at hashprice 100


@pytest.mark.parametrize(("resource", "offered"), [("clr", "nspin"), ("ufr", "rrs"), ("none", None)])
def test_each_resource_sells_only_what_the_rules_let_it(resource, offered):
    # 3 hours at 50 USD/MWh (the 10 MW fleet runs: it mines 173.6 USD/MWh); rrs pays 5, nspin 20 USD/MW-h: a
    # controllable load offers its 10 MW to nspin (the dearer), a relay load only to rrs, an unregistered one nothing
    site = _site(resource)
    prices = {"rrs": np.full(3, 5.0), "nspin": np.full(3, 20.0)}
    ds = scheduling.optimize(site, inputs(hourly([50.0] * 3), reserve_prices=prices))
    offers = ds["reserve_offer_mw"].sel(asset="f")
    want = {"rrs": 0.0, "nspin": 0.0} | ({offered: 10.0} if offered else {})
    for s, mw in want.items():
        np.testing.assert_allclose(offers.sel(service=s).to_numpy(), mw, atol=1e-6)
    np.testing.assert_allclose(ds["reserve_revenue_usd"].to_numpy(), 10.0 * prices[offered] if offered else 0.0,
                               atol=1e-6)
    np.testing.assert_allclose(power(ds, "f"), 10.0, atol=1e-6)


def test_capacity_keeps_a_load_running_only_where_the_price_beats_the_energy_loss():
    # at 200 USD/MWh running loses 200 - 173.6 = 26.4 USD/MWh: an nspin price of 30 keeps the 10 MW on (offered), one
    # of 20 does not (by hand)
    site = _site("clr", services="nspin")
    for nspin, on in ((30.0, True), (20.0, False)):
        ds = scheduling.optimize(site, inputs(hourly([200.0] * 2), reserve_prices={"nspin": np.full(2, nspin)}))
        np.testing.assert_allclose(power(ds, "f"), 10.0 if on else 0.0, atol=1e-6)
    assert V == pytest.approx(173.611, abs=1e-3)


def test_response_time_bounds_an_offer_by_the_services_rule():
    # a fleet that drops 0.5 MW a minute offers 0.5 x 30 = 15 -> its 10 MW to nspin, 0.5 x 10 = 5 MW to rrs
    for services, mw in (("nspin", 10.0), ("rrs", 5.0)):
        site = _site("clr", services=services, reserve_drop_mw_per_minute=0.5)
        ds = scheduling.optimize(site, inputs(hourly([50.0] * 2), reserve_prices={services: np.full(2, 9.0)}))
        np.testing.assert_allclose(ds["reserve_offer_mw"].sel(asset="f", service=services).to_numpy(), mw, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# 4. The checker


@pytest.fixture()
def solved():
    site = _site("ufr", services="rrs,nspin")
    inp = inputs(hourly([50.0] * 3), reserve_prices={"rrs": np.array([5.0, 6.0, 7.0]), "nspin": np.full(3, 20.0)})
    ds = scheduling.optimize(site, inp)
    return site, inp, optimizer.to_frame(ds)


def _violations(site, frame, inp, **over):
    ins = scheduling.check_inputs(site, inp)
    ins = dataclasses.replace(ins, **over) if over else ins
    return [(v.rule, v.asset, v.row) for v in check.check_schedule(site, frame, ins)]


def test_the_checker_catches_an_offer_the_resource_may_not_make(solved):
    site, inp, frame = solved
    assert _violations(site, frame, inp) == []
    bad = frame.assign(reserve_mw__nspin__f=0.0)             # (the table leaves out offers that are all zero)
    bad.loc[1, "reserve_mw__nspin__f"] = 1.0                  # a relay load offering 1 MW of Non-Spin instead of RRS
    bad.loc[1, "reserve_mw__rrs__f"] -= 1.0
    bad.loc[1, ["reserve_revenue_usd", "profit_usd"]] += 20.0 - 6.0   # booked at their prices: only the rule is wrong
    assert _violations(site, bad, inp) == [("reserve", "f", 1)]
    assert "'ufr' Load Resource" in str(check.check_schedule(site, bad, scheduling.check_inputs(site, inp))[0])


def test_the_checker_uses_the_rules_response_time_not_a_longer_one():
    site = _site("clr", services="rrs", reserve_drop_mw_per_minute=0.5)
    inp = inputs(hourly([50.0] * 2), reserve_prices={"rrs": np.full(2, 9.0)})
    frame = optimizer.to_frame(scheduling.optimize(site, inp))
    longer = dataclasses.replace(site, reserves=(dataclasses.replace(site.reserves[0], response_minutes=20.0),))
    frame.loc[0, "reserve_mw__rrs__f"] = 10.0                  # 0.5 MW/min x 20 min: allowed only by the longer time
    frame.loc[0, ["reserve_revenue_usd", "profit_usd"]] += 45.0
    assert ("reserve", "f", 0) in _violations(longer, frame, inp)


def test_the_checker_recomputes_revenue_from_the_prices_it_is_given(solved):
    site, inp, frame = solved
    rrs = np.array([5.0, 6.0, 7.0])
    rrs[2] += 1.0                                               # the price the table says it was settled at is wrong
    ins = dataclasses.replace(scheduling.check_inputs(site, inp), reserve_prices_usd_per_mw_hour={
        "rrs": rrs, "nspin": np.full(3, 20.0)})
    got = {(v.rule, v.asset, v.row) for v in check.check_schedule(site, frame, ins)}
    assert {("inputs", "reserve_price__rrs", 2), ("accounting", "reserve_revenue_usd", 2),
            ("accounting", "profit_usd", 2)} <= got
    with pytest.raises(InputError, match="hourly clearing prices"):       # and it is never assumed
        check.check_schedule(site, frame, dataclasses.replace(ins, reserve_prices_usd_per_mw_hour={}))


def test_the_checker_rederives_deployed_mw_from_the_events(solved):
    site, inp, frame = solved
    t = scheduling.check_inputs(site, inp).timestamps
    event = Deployment(t[1], t[2], "rrs")
    deployed = np.array([0.0, frame.loc[1, "reserve_mw__rrs__f"], 0.0])
    assert deployed[1] == pytest.approx(10.0)
    frame = frame.assign(reserve_deployed_mw=deployed)
    ok = {"deployments": (event,), "reserve_deployed_mw": deployed,
          "deployment_cap_mw": np.array([np.inf, 10.0, np.inf])}
    frame.loc[1, ["mining_mw__f", "mining_mw", "load_mw", "grid_mw"]] = 0.0   # the load dropped 10 MW, as instructed
    frame.loc[1, "mining_revenue_usd"] = 0.0
    frame.loc[1, "energy_cost_usd"] = 0.0
    frame.loc[1, "profit_usd"] = frame.loc[1, "reserve_revenue_usd"]
    frame.loc[1, "max_load_mw"] = 10.0                           # the cap the deployment set
    assert [r for r in _violations(site, frame, inp, **ok) if r[0] not in ("ramp", "min_on")] == []
    wrong = ok | {"reserve_deployed_mw": deployed * 0.5}           # an engine that under-counts the deployment
    assert ("deployment", "site", 1) in _violations(site, frame, inp, **wrong)


# ---------------------------------------------------------------------------------------------------------------
# 5. Deployments


def test_weekly_cheapest_deploys_each_service_once_a_week_in_its_cheapest_window(market):
    site = dataclasses.replace(make_site([fleet()]), reserves=ancillary.parse_reserve_option("rrs,nspin,ecrs"))
    start, end = D(2023, 7, 3), D(2023, 7, 16)                # two whole weeks (Monday .. Sunday)
    events = ancillary.assumed_deployments(site, market.actual, start, end)
    assert len(events) == 6
    hourly_rt = market.actual.groupby(market.actual.index.floor("h")).mean()
    for e in events:
        k = {"rrs": 1, "nspin": 4, "ecrs": 2}[e.service]
        assert e.end - e.start == pd.Timedelta(hours=k)
        assert e.start.tz_convert(TZ).date() == (e.end - pd.Timedelta(hours=1)).tz_convert(TZ).date()
        iso_week = e.start.tz_convert(TZ).isocalendar()[1]
        week = [d for d in pd.date_range(start, end).date if d.isocalendar()[1] == iso_week]
        best = min(hourly_rt.reindex(optimizer.market.operating_hours(d, TZ)).rolling(k).mean().dropna().min()
                   for d in week)                             # brute force, by hand
        window = pd.date_range(e.start, e.end, freq="h", inclusive="left")
        assert hourly_rt.reindex(window).mean() == pytest.approx(best)
    assert ancillary.assumed_deployments(site, market.actual, start, end, "none") == ()


def _free(site: optimizer.Site) -> optimizer.Site:
    """No ramp limits, minimum times, restart costs or 4CP: a drop for a deployment leaves no trace after it."""
    free = {"ramp_mw_per_hour": float("inf"), "min_on_hours": 0, "min_off_hours": 0, "restart_cost_usd": 0.0}
    return dataclasses.replace(site, mining=tuple(dataclasses.replace(f, **free) for f in site.mining),
                               fourcp=FourCP())


def test_a_deployment_drops_the_load_and_the_energy_is_settled_as_the_market_would(default_site, market):
    """The schedule policy with and without one rrs deployment: outside it nothing changes; inside it the site draws
    its plan less the award, and the profit changes by exactly the mining it gave up less the energy it sold back
    within its fixed-price block at the real-time price; the capacity is paid in full."""
    site = dataclasses.replace(_free(default_site), reserves=ancillary.parse_reserve_option("rrs"))
    day = D(2023, 7, 3)
    settings = Settings(forecast_method="naive", policies=("schedule",))
    free = run(site, day, day, market, settings).intervals.sel(policy="schedule")
    offered = free["reserve_offer_mw"].sum(("asset", "service")).to_series()
    hour = offered[offered > 1].index[10].floor("h")           # an hour the plan offered in
    event = Deployment(hour.tz_localize("UTC"), hour.tz_localize("UTC") + pd.Timedelta(hours=1), "rrs")
    hit = run(site, day, day, market, dataclasses.replace(settings, deployments=(event,))).intervals.sel(
        policy="schedule")
    inside = (free["time"] >= hour) & (free["time"] < hour + pd.Timedelta(hours=1))
    same = ["power_mw", "reserve_revenue_usd", "profit_usd"]
    for v in same:
        np.testing.assert_allclose(free[v].where(~inside, drop=True), hit[v].where(~inside, drop=True), atol=1e-9)
    drop = free["load_mw"].where(inside, drop=True) - hit["load_mw"].where(inside, drop=True)
    np.testing.assert_allclose(drop, free["reserve_offer_mw"].sum(("asset", "service")).where(inside, drop=True),
                               atol=1e-6)
    assert float(hit["reserve_deployed_mw"].where(inside, drop=True).min()) > 1
    np.testing.assert_allclose(hit["reserve_revenue_usd"], free["reserve_revenue_usd"], atol=1e-9)
    dt_h = 0.25
    price = free["price_usd_per_mwh"].where(inside, drop=True).to_numpy()
    mined = (free["mining_revenue_usd"] - hit["mining_revenue_usd"]).where(inside, drop=True).to_numpy()
    dmw = drop.to_numpy()
    assert (free["grid_mw"].where(inside, drop=True) < 0).all()   # inside the 180 MW block: the MWh is sold back
    np.testing.assert_allclose((free["profit_usd"] - hit["profit_usd"]).where(inside, drop=True).to_numpy(),
                               mined - dmw * price * dt_h, atol=1e-6)


def test_mpc_holds_the_award_of_its_day_ahead_plan(default_site, market):
    # both start the day from the same state: mpc's award is exactly schedule's plan (made at 10:00 on D-1)
    site = dataclasses.replace(default_site, reserves=ancillary.parse_reserve_option("rrs,nspin"))
    r = run(site, D(2023, 7, 3), D(2023, 7, 3), market, Settings(forecast_method="naive",
                                                                 policies=("schedule", "mpc")))
    s, m = (r.intervals["reserve_offer_mw"].sel(policy=p).to_numpy() for p in ("schedule", "mpc"))
    mw = r.intervals["power_mw"].sel(policy="mpc").to_numpy()       # mining fleets: all their power is switchable
    backed = mw >= s.sum(axis=2) - 1e-6
    assert s.sum() > 0 and backed.mean() > 0.5
    np.testing.assert_allclose(m[backed], s[backed], atol=1e-6)     # held where its load backs it,
    assert (m <= s + 1e-6).all()                                     # paid no more than that elsewhere


# ---------------------------------------------------------------------------------------------------------------
# 6. The commands


def test_schedule_cli_uses_clearing_prices_says_so_and_refuses_ignored_prices(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["schedule", "--day", "2023-07-20", "--reserve", "rrs,nspin", "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["reserve_revenue_usd"] > 0 and "hourly clearing prices" in s["reserve_price_source"]
    path = _write(tmp_path / "as.csv", [(t.strftime("%Y-%m-%dT%H:%M:%SZ"), svc, 50.0)
                                        for t in pd.date_range("2023-07-20T05:00Z", periods=48, freq="h")
                                        for svc in ("rrs", "nspin")])
    r2 = runner.invoke(app, ["schedule", "--day", "2023-07-20", "--reserve", "rrs,nspin", "--as-prices", path,
                             "--json"])
    assert r2.exit_code == 0, r2.output
    s2 = json.loads(r2.stdout)
    assert str(path) in s2["reserve_price_source"] and s2["reserve_revenue_usd"] != s["reserve_revenue_usd"]
    r3 = runner.invoke(app, ["schedule", "--day", "2023-07-20", "--as-prices", path])
    assert r3.exit_code == 2 and "ignored" in r3.output


def test_backtest_cli_deployments_both_ways_and_the_report_panel(tmp_path):
    runner = CliRunner()
    args = ["backtest", "--start", "2023-07-03", "--end", "2023-07-04", "--forecast", "naive", "--policies",
            "schedule", "--reserve", "rrs", "--quiet"]
    out = tmp_path / "bt"
    r = runner.invoke(app, [*args, "--out", out])
    assert r.exit_code == 0, r.output
    assert "assumed event(s), rule weekly-cheapest" in r.output
    summary = json.loads((out / "summary.json").read_text())
    by_service = summary["policies"]["schedule"]["reserve_revenue_by_service_usd"]
    assert summary["deployment_events"] == 1 and by_service["rrs"] > 0
    assert "Ancillary services: capacity revenue by service" in (out / "report.html").read_text()
    none = runner.invoke(app, [*args, "--deployment-rule", "none", "--out", tmp_path / "bt0"])
    assert none.exit_code == 0 and "none (no deployment assumed)" in none.output
    s0 = json.loads((tmp_path / "bt0" / "summary.json").read_text())
    assert s0["deployment_events"] == 0
    assert s0["policies"]["schedule"]["profit_usd"] > summary["policies"]["schedule"]["profit_usd"]
    events = tmp_path / "events.csv"
    events.write_text("start,end,service\n2023-07-03T20:00:00Z,2023-07-03T21:00:00Z,rrs\n")
    given = runner.invoke(app, [*args, "--deployments", str(events)])
    assert given.exit_code == 0 and "1 deployment event(s) from" in given.output
    for extra in (["--deployment-rule", "monthly"], ["--deployments", events, "--deployment-rule", "none"]):
        bad = runner.invoke(app, [*args, *map(str, extra)])
        assert bad.exit_code == 2 and "--deployment-rule" in bad.output
    plain = runner.invoke(app, ["backtest", "--start", "2023-07-03", "--end", "2023-07-03", "--forecast", "naive",
                                "--policies", "schedule", "--quiet", "--out", tmp_path / "bt1"])
    assert plain.exit_code == 0 and "Ancillary" not in (tmp_path / "bt1" / "report.html").read_text()
    assert re.search(r"reserves:", plain.output) is None


def test_services_deployed_together_drop_their_offers_together():
    from optimizer.backtest.engine import _deployed

    site = _site("clr", services="rrs,nspin")
    times = pd.date_range("2023-07-03T20:00Z", periods=4, freq="15min")
    offer = np.zeros((4, 1, 2))
    offer[:, 0, 0], offer[:, 0, 1] = 2.0, 3.0                  # 2 MW of rrs and 3 MW of nspin, every interval
    events = [Deployment(times[1], times[3], "rrs"), Deployment(times[2], times[4 - 1] + pd.Timedelta(minutes=15),
                                                                "nspin")]
    caps, deployed = _deployed(site, events, times, 0.25, np.full(4, 50.0), offer, np.full(4, 10.0))
    np.testing.assert_allclose(deployed, [0.0, 2.0, 5.0, 3.0])
    np.testing.assert_allclose(caps, [50.0, 8.0, 5.0, 7.0])    # the planned 10 MW less everything deployed


def test_a_sweep_pays_a_site_file_reserve_at_the_shipped_clearing_prices(tmp_path):
    from optimizer import sweep as sw

    path = tmp_path / "site.toml"
    path.write_text(optimizer.default_site_path().read_text() + '\n[[reserve]]\nname = "nspin"\n')
    ds = sw.sweep(sw.grid([path], [60.0], ["2023-07-03:2023-07-03"], ["naive"]), serial=True, policies=("schedule",))
    assert float(ds["reserve_revenue_usd"].sel(policy="schedule").sum()) > 0 and ds.sizes["scenario"] == 1
