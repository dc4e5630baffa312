"""Tests written from the mutation testing of ``optimizer/model/`` (docs/mutation.md, "The model"): each closes a
gap the survivors showed (a constraint or money term that could be wrong without any test of the fast subset
noticing). Every expected value is worked out by hand in the test; each test was run against the mutants its
docstring names and fails on each.

Cluster of :func:`_gpu`: 1000 GPUs x 1 kW x PUE 1.0 = 1 MW; 600 committed GPUs (0.6 MW) at 2.5 USD per GPU-hour;
400 spot GPUs at 2.0 USD per GPU-hour, inference demand flat at 50% of them (200 GPUs, 0.2 MW).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from support import fleet, hourly, inputs, make_site

from optimizer import UnitState, diagnose, model
from optimizer.model import jobs
from optimizer.scheduling import optimize
from optimizer.workloads import Job

START = pd.Timestamp("2022-07-20T05:00:00Z")


def _gpu(**kw) -> dict:
    return {"name": "g", "gpus": 1000, "kw_per_gpu": 1.0, "committed_gpus": 600,
            "committed_price_usd_per_gpu_hour": 2.5, "spot_price_usd_per_gpu_hour": 2.0, "spot_utilization": 0.5,
            **kw}


# --------------------------------------------------------------------------------------------------------------
# SLA breach allowed: shortfall, credit tier, committed revenue, site power (no test of the subset allowed a breach)

def test_an_emergency_below_the_committed_load_breaches_the_sla_at_the_first_tier_by_hand():
    """Emergency cap 0.5 MW in hours 0-1, below the 0.6 MW committed load; prices 20 USD/MWh; breach allowed.

    Committed GPU-hours are worth 2500 USD/MWh and spot ones 2000, so the cap is given to committed load:
    0.5 MW committed (shortfall 0.1 MW), no spot; hours 2-3: 0.6 committed + 0.2 spot = 0.8 MW.
    Shortfall 0.2 MWh of a 0.6 MW x 730 h = 438 MWh month: availability 1 - 0.2/438 = 0.99954, below 99.99% and
    above 99%: the first tier, 10% of the monthly bill 600 x 2.5 x 730 = 1,095,000 USD: 109,500 USD, booked in the
    first interval. Committed revenue 1500 USD/h x 5/6 delivered = 1250 USD in hours 0-1. Once the tier is reached,
    further shortfall up to 1% (4.38 MWh) is free of credit but loses 2500 USD/MWh of revenue, more than the
    20 USD/MWh it saves: no more shortfall.

    With 0.1 MWh already missed this month (availability before 0.99977: the first tier already reached) the same
    day owes no new credit.

    Kills (sample): gpu ``add`` 146, 147, 152, 155, 166, 212, 215, 225; ``profit`` 7, 25, 44, 45; ``read`` 48, 49,
    54, 57, 62, 73, 83; ``set_data`` 33.
    """
    site = make_site(gpu=[_gpu()])
    cap = np.array([0.5, 0.5, 1000.0, 1000.0])
    ds = optimize(site, inputs(hourly([20.0] * 4), load_cap_mw=cap), allow_sla_breach=True)
    assert ds["sla_shortfall_mw"].sel(asset="g").to_numpy() == pytest.approx([0.1, 0.1, 0.0, 0.0], abs=1e-6)
    assert ds["power_mw"].sel(asset="g").to_numpy() == pytest.approx([0.5, 0.5, 0.8, 0.8], abs=1e-6)
    assert ds["sla_credit_usd"].to_numpy() == pytest.approx([109_500.0, 0.0, 0.0, 0.0], abs=1e-3)
    # revenue: committed 1250, 1250, 1500, 1500; spot 0, 0, 400, 400
    assert ds["ai_revenue_usd"].to_numpy() == pytest.approx([1250.0, 1250.0, 1900.0, 1900.0], abs=1e-3)
    energy = 20.0 * np.array([0.5, 0.5, 0.8, 0.8])
    assert float(ds["profit_usd"].sum()) == pytest.approx(1250 * 2 + 1900 * 2 - energy.sum() - 109_500, abs=1e-2)

    before = optimize(site, inputs(hourly([20.0] * 4), load_cap_mw=cap, sla_shortfall_before_mwh={"g": 0.1}),
                      allow_sla_breach=True)
    assert before["sla_shortfall_mw"].sel(asset="g").to_numpy() == pytest.approx([0.1, 0.1, 0, 0], abs=1e-6)
    assert before["sla_credit_usd"].to_numpy() == pytest.approx([0.0] * 4, abs=1e-3)


# --------------------------------------------------------------------------------------------------------------
# The elastic model of the diagnosis (optimizer.diagnose): its slacks and their signs

def test_every_limit_family_of_the_elastic_model_has_its_slack_by_asset():
    """A ramp-limited fleet (continuous) and a switched one (minimum load) and a cluster with committed GPUs: the
    elastic model has, per unit, ramp up, ramp down and initial hold slacks, the cluster's SLA slack and the
    site's import-limit slack, one per interval (a continuous unit's initial hold: the first only); nothing else is
    named ``relax_``.

    Kills (sample): commitment ``add`` 43 (a slack named so the diagnosis never sees it), 48 (no ramp-down slack),
    91; mining ``add`` 21 (fleets built without slacks); gpu ``add`` 146 (the SLA slack named ``shortfall``).
    """
    site = make_site([fleet("cont", ramp_mw_per_hour=2.0), fleet("sw", ramp_mw_per_hour=2.0, min_load_fraction=0.2)],
                     [_gpu()])
    inp = inputs(hourly([20.0] * 3))
    m = model.build(site, model.Structure.of(site, inp, elastic=True))
    families = {(family, asset) for (family, asset, _), _ in model.slack_values(m)}
    want = {(f, u) for u in ("cont", "sw", "g") for f in ("ramp_up", "ramp_down", "initial_hold")}
    want |= {("sla", "g"), ("import_limit", "site")}
    assert families == want
    # one per interval, but a continuous unit's initial hold binds the first interval only ("cont" and "g")
    assert len(model.slack_values(m)) == len(want) * 3 - 2 * 2


@pytest.mark.parametrize("min_load_fraction", [0.0, 0.2], ids=["continuous", "switched"])
def test_a_ramp_down_conflicting_with_an_emergency_is_named_with_its_size(min_load_fraction):
    """Fleet at 10 MW before the horizon, ramp 2 MW/h, emergency cap 4 MW in hour 0: the fleet can only come down
    to 8 MW (a stop would need a 10 MW jump; the start/stop jump is max(ramp, min load) = 2). Relaxing the import
    limit alone needs 8 - 4 = 4 MW; relaxing the ramp-down alone needs 4 MW too (10 -> 4 instead of 10 -> 8); the
    initial hold is not in the conflict.

    Kills (sample): commitment ``add`` 340 (the switched ramp-down slack subtracted: it cannot relax the ramp);
    ``build`` 21 (the slack penalty added to the profit: the elastic model is unbounded).
    """
    site = make_site([fleet(ramp_mw_per_hour=2.0, min_load_fraction=min_load_fraction)])
    inp = inputs(hourly([20.0] * 3), load_cap_mw=np.array([4.0, 1000.0, 1000.0]))
    found = diagnose.conflicts(site, inp)
    got = sorted((c["limit"], c["asset"], tuple(c["hours"]), c["alone"], round(c["max_amount"], 6)) for c in found)
    assert got == [("import_limit", "site", (0,), True, 4.0), ("ramp_down", "f", (0,), True, 4.0)]


def test_a_ramp_up_too_slow_for_the_initial_hold_is_named_with_its_size():
    """A continuous fleet (no minimum load) started 0.5 h ago at 2 kW, minimum on time 1 h, ramp 5 kW/h: the hold
    keeps it on in hour 0, at least the on floor max(0.1% x 10 MW, 1 kW) = 10 kW, and the ramp allows at most
    2 + 5 = 7 kW: 3 kW short. Relaxing the ramp-up alone or the hold alone (by 0.003 MW) makes it feasible.

    Kills (sample): commitment ``add`` 72 (the continuous ramp-up slack subtracted: it cannot relax the ramp).
    """
    site = make_site([fleet(ramp_mw_per_hour=0.005, min_on_hours=1)])
    inp = inputs(hourly([20.0] * 3), initial_state={"f": UnitState(on=True, power_mw=0.002, hours_in_state=0.5)})
    got = sorted((c["limit"], c["asset"], tuple(c["hours"]), c["alone"], round(c["max_amount"], 9))
                 for c in diagnose.conflicts(site, inp))
    assert got == [("initial_hold", "f", (0,), True, 0.003), ("ramp_up", "f", (0,), True, 0.003)]


# --------------------------------------------------------------------------------------------------------------
# A continuous unit's starts are its rising edges

def test_a_continuous_fleet_starts_exactly_where_its_power_rises_from_zero():
    """No ramp limit, mining worth 173.6 USD/MWh: on (10 MW) below that price, off above. Prices 20, 1000, 1000, 20,
    20, 1000 from off: power 10, 0, 0, 10, 10, 0; starts in hours 0 and 3 only.

    Kills (sample): commitment ``read`` 34 (a start wherever the previous hour is off), 37 (a start wherever the
    previous hour is on).
    """
    site = make_site([fleet()])
    ds = optimize(site, inputs(hourly([20.0, 1000.0, 1000.0, 20.0, 20.0, 1000.0]),
                               initial_state={"f": UnitState(on=False)}))
    assert ds["power_mw"].sel(asset="f").to_numpy() == pytest.approx([10, 0, 0, 10, 10, 0], abs=1e-6)
    assert ds["start"].sel(asset="f").to_numpy().tolist() == [1, 0, 0, 1, 0, 0]


# --------------------------------------------------------------------------------------------------------------
# Rigid jobs: a minimum run of exactly two intervals, and whole runs only

def test_a_two_hour_rigid_job_runs_one_whole_block_and_leaves_the_rest_late():
    """100 GPUs, 250 GPU-hours, minimum run 2 h, window the 6 hours, worth 1 USD per GPU-hour (1000 USD/MWh at
    1 kW per GPU, above every price), late penalty 5 USD per GPU-hour. Rigid: whole hours on all 100 GPUs, at least
    2 in a row; 3 hours would be 300 > 250 GPU-hours, so one 2-hour block and 50 GPU-hours late (250 USD). The
    cheapest 2-hour block of prices 300, 20, 400, 350, 10, 250 is hours 4-5 (260). Divisible, it would take
    hours 1 and 4 and half of hour 5.

    Kills (sample): jobs ``_min_run`` 9 (a 2-interval run treated as divisible), ``add`` 139 (``job_run`` not
    binary: a fractional tail after the block).
    """
    job = Job("train", None, 100, 250.0, START, START + pd.Timedelta(hours=6), 2.0, 1.0, 5.0)
    site = dataclasses.replace(make_site(gpu=[_gpu()]), jobs=(job,))
    ds = optimize(site, inputs(hourly([300.0, 20.0, 400.0, 350.0, 10.0, 250.0])))
    assert ds["job_gpus"].sel(job="train").to_numpy() == pytest.approx([0, 0, 0, 0, 100, 100], abs=1e-6)
    assert float(ds["job_penalty_usd"].sum()) == pytest.approx(50 * 5.0, abs=1e-6)


def test_expected_late_gpu_hours_by_hand():
    """A job of 100 GPUs with 500 GPU-hours left, deadline 2 hours after the end of a 3-hour horizon, work 100,
    100, 50 GPUs: 250 GPU-hours done on time, 2 h x 100 GPUs = 200 still possible after the horizon:
    500 - 250 - 200 = 50 late. With the deadline at the horizon's end: 500 - 250 = 250 late.

    Kills: jobs ``expected_late_gpu_hours`` 11 (the horizon's end taken one interval early), 23 (the GPU-hours after
    the horizon divided instead of multiplied); no test of the subset called it.
    """
    times = pd.date_range(START, periods=3, freq="1h")
    work = np.array([100.0, 100.0, 50.0])
    late = Job("j", None, 100, 500.0, START, START + pd.Timedelta(hours=5), 0.0, 1.0, 5.0)
    assert jobs.expected_late_gpu_hours(late, 500.0, work, times, 1.0) == pytest.approx(50.0)
    due = dataclasses.replace(late, deadline=START + pd.Timedelta(hours=3))
    assert jobs.expected_late_gpu_hours(due, 500.0, work, times, 1.0) == pytest.approx(250.0)
