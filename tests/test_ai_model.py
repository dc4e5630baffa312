"""AI load in the model, by hand: demand caps what spot GPUs earn, a deferrable job runs in the cheapest hours its
deadline allows, a rigid job runs whole checkpoint intervals, power capping sheds site power at a small throughput
loss and never takes committed GPUs below their SLA throughput. Every schedule passes the independent checker
(run by ``optimize`` itself and by the conftest wrapper)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from support import hourly, inputs, make_site

from optimizer import check, workloads
from optimizer.scheduling import optimize
from optimizer.workloads import Job, JobProgress, PowerCapCurve

START = pd.Timestamp("2022-07-20T05:00:00Z")


def _gpu(**kw) -> dict:
    # 1000 GPUs x 1 kW x PUE 1.0: 1 MW; 600 committed (0.6 MW); 400 spot GPUs; demand flat at 50% = 200 GPUs
    return {"name": "g", "gpus": 1000, "kw_per_gpu": 1.0, "committed_gpus": 600,
            "committed_price_usd_per_gpu_hour": 2.5, "spot_price_usd_per_gpu_hour": 2.0, "spot_utilization": 0.5,
            **kw}


def _job(name="train", gpus=100, gpu_hours=200.0, release_h=0, deadline_h=6, min_run_hours=0.0, value=1.0,
         penalty=5.0) -> Job:
    return Job(name, None, gpus, gpu_hours, START + pd.Timedelta(hours=release_h),
               START + pd.Timedelta(hours=deadline_h), min_run_hours, value, penalty)


def _solve(site, prices, **kw):
    return optimize(site, inputs(hourly(prices), 100.0, **kw))


def test_a_deferrable_job_runs_in_the_cheapest_hours_its_deadline_allows():
    # 200 GPU-hours on at most 100 GPUs: 2 of the 6 hours; each GPU-hour needs 1 kW: at 1 USD per GPU-hour of
    # value the job pays in hours below 1000 USD/MWh; it takes the two cheapest (hours 3 and 5)
    site = dataclasses.replace(make_site(gpu=[_gpu()]), jobs=(_job(),))
    prices = [300.0, 250.0, 400.0, 20.0, 350.0, 10.0]
    ds = _solve(site, prices)
    work = ds["job_gpus"].sel(job="train").to_numpy()
    assert work == pytest.approx([0, 0, 0, 100, 0, 100], abs=1e-6)
    # the spot GPUs serve their 200 GPUs of demand in every hour (2000 USD/MWh beats every price) and the job
    # adds its 100 GPUs (0.1 MW) on top in its two hours
    assert ds["power_mw"].sel(asset="g").to_numpy() == pytest.approx([0.8, 0.8, 0.8, 0.9, 0.8, 0.9], abs=1e-6)
    assert float(ds["job_penalty_usd"].sum()) == pytest.approx(0.0, abs=1e-6)


def test_a_job_that_cannot_finish_pays_its_penalty_once_for_the_late_gpu_hours():
    # 900 GPU-hours on 100 GPUs in a 6-hour window: 300 GPU-hours are late whatever the plan; the plan runs all 6
    # hours (value 1 + avoided penalty 5 per GPU-hour beats any price here) and books 300 x 5 = 1500 USD
    site = dataclasses.replace(make_site(gpu=[_gpu()]), jobs=(_job(gpu_hours=900.0),))
    ds = _solve(site, [100.0] * 8)
    assert ds["job_gpus"].sel(job="train").to_numpy()[:6] == pytest.approx([100] * 6, abs=1e-6)
    assert float(ds["job_penalty_usd"].sum()) == pytest.approx(300 * 5.0)


def test_progress_carried_in_means_less_work_and_a_finished_job_is_left_out():
    site = dataclasses.replace(make_site(gpu=[_gpu()]), jobs=(_job(),))
    prices = [300.0, 250.0, 400.0, 20.0, 350.0, 10.0]
    half = _solve(site, prices, job_progress={"train": JobProgress("train", 100.0)})
    assert half["job_gpus"].sel(job="train").to_numpy() == pytest.approx([0, 0, 0, 0, 0, 100], abs=1e-6)
    done = _solve(site, prices, job_progress={"train": JobProgress("train", 200.0)})
    assert float(done["job_gpus"].sum()) == pytest.approx(0.0)


def test_a_rigid_job_runs_whole_checkpoint_intervals_on_all_its_gpus():
    # min run 3 h on exactly 100 GPUs: the cheapest 3-hour block of the window is hours 3-5 (20 + 300 + 10)
    site = dataclasses.replace(make_site(gpu=[_gpu()]), jobs=(_job(gpu_hours=300.0, min_run_hours=3.0),))
    ds = _solve(site, [300.0, 250.0, 400.0, 20.0, 300.0, 10.0])
    assert ds["job_gpus"].sel(job="train").to_numpy() == pytest.approx([0, 0, 0, 100, 100, 100], abs=1e-6)


def test_a_rigid_job_already_running_finishes_its_minimum_run():
    site = dataclasses.replace(make_site(gpu=[_gpu()]), jobs=(_job(gpu_hours=300.0, min_run_hours=3.0),))
    ds = _solve(site, [900.0, 950.0, 100.0, 20.0, 300.0, 10.0],
                job_progress={"train": JobProgress("train", 100.0, running_hours=1.0)})
    x = ds["job_gpus"].sel(job="train").to_numpy()
    assert x[:2] == pytest.approx([100, 100], abs=1e-6)           # 2 more hours of its 3-hour run, dear or not
    assert x.sum() == pytest.approx(200.0, abs=1e-6)


def _capped(**kw) -> dict:
    # boards can be capped to half power at 80% throughput; boards are 50% of a GPU's site power, so a GPU at half
    # board power draws 0.75 of its site power for 0.8 of its throughput
    return _gpu(power_cap_curve=[[0.5, 0.8], [1.0, 1.0]], gpu_power_share=0.5, **kw)


def test_capping_makes_the_first_spot_mw_worth_more_and_serves_demand_on_less_power():
    site = make_site(gpu=[_capped()])
    g = site.gpu[0]
    # throughput per site MW: capped 0.8 / 0.75 GPU-equivalents per kW vs 1 at full: the capped segment first
    assert g.spot_value_usd_per_mwh == pytest.approx(2.0 * 1000 * 0.8 / 0.75)
    # demand 200 GPUs; capped GPUs give 0.8 each: 250 GPUs at 0.75 kW = 0.1875 MW serve it
    ds = _solve(site, [100.0] * 3)
    assert ds["power_mw"].sel(asset="g").to_numpy() == pytest.approx([0.6 + 0.1875] * 3, abs=1e-6)
    assert ds["served_gpus"].sel(cluster="g").to_numpy() == pytest.approx([200.0] * 3, abs=1e-6)


def test_a_price_between_the_segment_values_sheds_the_uncapped_margin_only():
    # with demand above capacity (all 400 spot GPUs wanted): the capped segment (0 -> 0.3 MW for 320 GPUs) earns
    # 2133 USD/MWh, the uncapped top (0.3 -> 0.4 MW for 80 more GPUs) 1600 USD/MWh: at 1800 only the top is shed
    site = make_site(gpu=[_capped(spot_utilization=1.0)])
    ds = _solve(site, [1000.0, 1800.0, 2500.0])
    assert ds["power_mw"].sel(asset="g").to_numpy() == pytest.approx([1.0, 0.9, 0.6], abs=1e-6)
    assert ds["served_gpus"].sel(cluster="g").to_numpy() == pytest.approx([400.0, 320.0, 0.0], abs=1e-6)


def test_a_capped_cluster_never_serves_its_committed_gpus_below_the_sla_throughput():
    # committed GPUs may be capped down to 90% throughput: boards at the least power giving 0.9 on the curve
    # (0.75 of board power), so the 600 committed GPUs draw 0.6 x (0.5 + 0.5 x 0.75) = 0.525 MW at the least
    site = make_site(gpu=[_capped(sla_throughput_fraction=0.9)])
    g = site.gpu[0]
    assert g.committed_min_mw == pytest.approx(0.525)
    assert check.committed_min_mw(g) == pytest.approx(0.525)
    ds = _solve(site, [4000.0, 4500.0, 50.0, -20.0])
    committed = ds["committed_mw"].sel(cluster="g").to_numpy()
    assert committed == pytest.approx([0.525, 0.525, 0.525, 0.6], abs=1e-6)   # capped unless paid to draw
    # committed revenue is owed per GPU-hour, capped or not: 600 x 2.5 every hour
    assert (committed >= 0.525 - 1e-9).all()
    ai = ds["ai_revenue_usd"].to_numpy()
    assert ai[0] == pytest.approx(600 * 2.5)


def test_shed_power_during_a_spike_by_capping_instead_of_switching_off():
    # a 4,000 USD/MWh hour: the spot part is worth 2133 USD/MWh at most: it goes off; committed GPUs cannot go
    # off, only be capped to their SLA throughput (0.525 MW), which costs no revenue, so they are capped in every
    # hour with a positive price: 0.525 + 0.4 MW of spot load, then 0.525 alone in the spike
    site = make_site(gpu=[_capped(sla_throughput_fraction=0.9, spot_utilization=1.0)])
    ds = _solve(site, [100.0, 4000.0, 100.0])
    assert ds["power_mw"].sel(asset="g").to_numpy() == pytest.approx([0.925, 0.525, 0.925], abs=1e-6)


def test_the_shipped_default_curve_sheds_about_a_sixth_of_a_clusters_power():
    # boards at the curve's lowest point (0.70 of board power, 55% of server power): 1 - (0.45 + 0.55 x 0.7) =
    # 16.5% less site power for 12.5% less throughput
    curve: PowerCapCurve = workloads.SHIPPED_CURVES["h100-default"]
    p, y = curve.points[0]
    assert (p, y) == pytest.approx((0.70, 0.8754))
    assert 1 - (0.45 + 0.55 * p) == pytest.approx(0.165)


def test_demand_below_capacity_leaves_the_other_spot_gpus_off_even_when_power_is_cheap():
    site = make_site(gpu=[_gpu(spot_utilization=0.25)])            # 100 of the 400 spot GPUs wanted
    ds = _solve(site, [5.0] * 4)
    assert ds["power_mw"].sel(asset="g").to_numpy() == pytest.approx([0.7] * 4, abs=1e-6)
    assert np.all(ds["served_gpus"].sel(cluster="g").to_numpy() == pytest.approx(100.0))


def test_a_rigid_run_in_progress_keeps_its_gpus_before_another_rigid_job_starts():
    # room for one 300-GPU rigid job (400 spot GPUs at full power, no inference left over). "a" comes first in the
    # site but "b" is 1 h into its 2 h minimum run: b keeps its GPUs and finishes its run, then a starts.
    from optimizer.realtime import allocate_jobs

    a = _job("a", gpus=300, gpu_hours=600.0, min_run_hours=2.0)
    b = _job("b", gpus=300, gpu_hours=600.0, min_run_hours=2.0)
    site = dataclasses.replace(make_site(gpu=[_gpu()]), jobs=(a, b))
    times = pd.date_range(START, periods=3, freq="1h")
    spot_mw = np.full((3, 1), 0.4)                                      # all 400 spot GPUs powered
    progress, work, _ = allocate_jobs(site, {"b": JobProgress("b", 300.0, 1.0)}, np.full((3, 2), 300.0), spot_mw,
                                      np.zeros((3, 1)), times, 1.0)
    assert work[:, 1].tolist() == [300.0, 0.0, 0.0]                     # b: its second hour (300 GPU-h left after)
    assert work[:, 0].tolist() == [0.0, 300.0, 300.0]                   # a: once b's run is done
    assert progress["b"].gpu_hours_done == pytest.approx(600.0) and progress["a"].running_hours == 2.0
