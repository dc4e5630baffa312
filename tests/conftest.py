"""Shared fixtures. Every schedule any test produces (library or CLI) passes the independent checker:
``optimizer.schedule.optimize`` is wrapped for the whole session so no test can forget it."""

from __future__ import annotations

import pytest

import optimizer
import optimizer.scheduling as schedule_module
from optimizer.check import check_schedule
from optimizer.results import summary, to_frame
from optimizer.state import UnitState

CHECKED = {"count": 0}


@pytest.fixture(autouse=True)
def _check_every_schedule(monkeypatch):
    real = schedule_module.optimize

    def checked(site, prices, hashprice, **kw):
        ds = real(site, prices, hashprice, **kw)
        state = {k: UnitState(**v) for k, v in summary(ds)["initial_state"].items()}
        violations = check_schedule(site, to_frame(ds), hashprice_usd_per_ph_day=hashprice, initial_state=state,
                                    allow_sla_breach=kw.get("allow_sla_breach", False))
        assert not violations, "schedule fails the independent checker:\n" + "\n".join(map(str, violations))
        CHECKED["count"] += 1
        return ds

    monkeypatch.setattr(schedule_module, "optimize", checked)
    yield


@pytest.fixture(scope="session")
def default_site() -> optimizer.Site:
    return optimizer.load_site(optimizer.default_site_path())
