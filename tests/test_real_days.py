"""Real ERCOT days at HB_WEST on the shipped data, solved with the real solver (each schedule is also checked
independently by the conftest wrapper)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import optimizer
from optimizer import check
from optimizer.data import resource_dir


def _limits_removed(site: optimizer.Site) -> optimizer.Site:
    """The site without commitment limits and without 4CP: every hour decides on its own."""
    free = dict(ramp_mw_per_hour=float("inf"), min_on_hours=0, min_off_hours=0, restart_cost_usd=0.0,
                min_load_fraction=0.0)
    return dataclasses.replace(site, mining=tuple(dataclasses.replace(f, **free) for f in site.mining),
                               gpu=tuple(dataclasses.replace(g, **free) for g in site.gpu),
                               fourcp=optimizer.site.FourCP())


def _spot_mw_by_hand(g: optimizer.GpuCluster, price: np.ndarray, demand_gpus: np.ndarray) -> np.ndarray:
    """Spot MW of an unlimited cluster: every throughput segment (the checker's own derivation of the curve) whose
    spot revenue per MWh (spot price x GPUs per MW) beats the price, up to the MW that serves the demand; at a
    negative price every MW is worth drawing."""
    xs, ys = check.throughput_curve(g)
    slopes = np.diff(ys) / np.diff(xs)
    out = np.zeros(len(price))
    for t, p in enumerate(price):
        if p < 0:
            out[t] = xs[-1]
            continue
        worth = xs[1:][g.spot_price_usd_per_gpu_hour * slopes > p]
        out[t] = min(worth.max() if len(worth) else 0.0, float(np.interp(demand_gpus[t], ys, xs)))
    return out


def _local_hours(ds) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(ds["time"].values).tz_localize("UTC").tz_convert("America/Chicago")


def test_winter_storm_uri_curtails_all_mining_and_holds_the_sla(default_site):
    ds = optimizer.schedule(default_site, day="2021-02-15")
    s = optimizer.summary(ds)
    assert s["status"] == "optimal" and "day-ahead" in s["price_source"]    # ERCOT DAM 2021 is shipped
    assert float(ds["price_usd_per_mwh"].min()) > 1500                      # the whole day far above mining value
    assert np.all(ds["mining_mw"].to_numpy() < 1e-6)
    committed = default_site.gpu[0].committed_mw
    ai = ds["power_mw"].sel(asset="h100").to_numpy()
    assert ai.min() == pytest.approx(committed)                             # the SLA floor holds at 9,000 USD/MWh
    # the flexible GPU load leaves within its 13 MW/h ramp: 21.04 -> 8.04 -> 0
    assert ai[:3] - committed == pytest.approx([21.0375 - 13.0, 0.0, 0.0], abs=1e-6)
    assert s["sellback_credit_usd"] > 1e7                                   # > 10 M USD of power credits in a day


def test_august_2023_scarcity_curtails_mining_through_the_spike(default_site):
    ds = optimizer.schedule(default_site, day="2023-08-17")
    price = ds["price_usd_per_mwh"].to_numpy()
    spike = price > 1000
    assert spike.sum() >= 5                                                 # the evening scarcity hours
    assert np.all(ds["mining_mw"].to_numpy()[spike] < 1e-6)
    assert np.all(ds["power_mw"].sel(asset="h100").to_numpy() >= default_site.gpu[0].committed_mw - 1e-9)
    assert float(ds["sellback_credit_usd"].sum()) > 0


@pytest.mark.parametrize(("day", "hours", "market"), [
    ("2021-03-14", 23, "day-ahead"), ("2021-11-07", 25, "day-ahead"),
    ("2022-03-13", 23, "day-ahead"), ("2022-11-06", 25, "day-ahead"),
])
def test_daylight_saving_days_have_23_or_25_hours(default_site, day, hours, market):
    ds = optimizer.schedule(default_site, day=day)
    assert ds.sizes["time"] == hours
    local = _local_hours(ds)
    assert local[0].strftime("%Y-%m-%d %H:%M") == f"{day} 00:00"
    assert (local[-1] + pd.Timedelta(hours=1)).strftime("%H:%M") == "00:00"
    assert np.all(np.diff(ds["time"].values) == np.timedelta64(1, "h"))
    assert market in optimizer.summary(ds)["price_source"]


def test_negative_prices_run_everything_and_pay_for_sellback(default_site):
    ds = optimizer.schedule(default_site, day="2022-02-15")
    price = ds["price_usd_per_mwh"].to_numpy()
    assert (price < 0).sum() >= 20
    neg = price < 0
    assert ds["mining_mw"].to_numpy() == pytest.approx(np.full(24, 120.0), abs=1e-6)
    # at a negative price every GPU is worth powering, demand or not (drawing power is paid)
    assert ds["ai_mw"].to_numpy()[neg] == pytest.approx(np.full(neg.sum(), 51.0), abs=1e-6)
    # the unused 9 MW of the block are settled at a negative price: a charge, not a credit
    assert ds["sellback_credit_usd"].to_numpy()[neg] == pytest.approx(9.0 * price[neg])


@pytest.mark.parametrize("day", ["2023-08-17", "2022-07-20", "2021-02-15"])
def test_without_limits_each_fleet_runs_exactly_when_its_value_beats_the_price(default_site, day):
    site = _limits_removed(default_site)
    ds = optimizer.schedule(site, day=day)
    hp = optimizer.summary(ds)["hashprice_usd_per_ph_day"]
    price = ds["price_usd_per_mwh"].to_numpy()
    for f in site.mining:
        value = f.value_usd_per_mwh(hp)
        want = np.where(price < value, f.capacity_mw, 0.0)
        assert ds["power_mw"].sel(asset=f.name).to_numpy() == pytest.approx(want, abs=1e-6), f.name
    g = site.gpu[0]
    demand = ds["demand_gpus"].sel(cluster=g.name).to_numpy()
    want = g.committed_gpus * 1.275 * 1.25 / 1000 + _spot_mw_by_hand(g, price, demand)
    assert ds["power_mw"].sel(asset=g.name).to_numpy() == pytest.approx(want, abs=1e-6)


def test_lookahead_is_cut_where_the_shipped_data_ends(default_site):
    ds = optimizer.schedule(default_site, day="2024-12-31")
    s = optimizer.summary(ds)
    assert ds.sizes["time"] == 24 and s["lookahead_hours"] == 0
    assert "lookahead cut" in s["price_source"]


@pytest.mark.parametrize("model", sorted(p.name for p in resource_dir("models").glob("*.toml")))
def test_every_shipped_site_schedules_a_real_day(model):
    site = optimizer.load_site(resource_dir("models") / model)
    ds = optimizer.schedule(site, day="2023-08-17")
    s = optimizer.summary(ds)
    assert s["status"] == "optimal"
    assert s["profit_usd"] == pytest.approx(float(ds["profit_usd"].sum()))
    if not site.contract.sellback:
        assert s["sellback_credit_usd"] == 0.0 and s["energy_cost_usd"] == 0.0


def test_4cp_charge_curtails_the_likely_peak_hours_of_a_real_summer_day(default_site):
    """2023-08-10 17:00 CDT was August's system peak. With flat cheap power, only the 4CP charge can curtail:
    the hours whose expected charge per MW (probability x 25,000 USD) beats a unit's margin are curtailed."""
    site = dataclasses.replace(default_site, fourcp=dataclasses.replace(default_site.fourcp,
                                                                        charge_usd_per_kw_year=100.0))
    idx = pd.date_range("2023-08-10T05:00Z", periods=48, freq="h")
    flat = pd.Series(30.0, index=idx)
    ds = optimizer.schedule(site, flat, day="2023-08-10")
    s = optimizer.summary(ds)
    assert s["fourcp_source"].startswith("estimated from shipped ERCOT load known at 2023-08-09T15:00")
    prob = ds["peak_weight"].to_numpy()
    assert _local_hours(ds)[int(np.argmax(prob))].hour in (15, 16, 17, 18)
    hp = s["hashprice_usd_per_ph_day"]
    for f in site.mining:          # no ramp limits bind at these sizes: each fleet follows its own margin
        margin = f.value_usd_per_mwh(hp) - 30.0
        curtailed = ds["power_mw"].sel(asset=f.name).to_numpy() < 0.01 * f.capacity_mw   # off or warm standby
        assert (curtailed[prob * 25_000 > margin * 1.05]).all(), f.name
        assert (~curtailed[prob * 25_000 < margin * 0.95]).all(), f.name
    plain = optimizer.schedule(dataclasses.replace(default_site, fourcp=optimizer.site.FourCP()), flat,
                               day="2023-08-10")
    assert float(plain["mining_mw"].min()) == pytest.approx(120.0)
