"""Shared fixtures. Every schedule any test produces (library, CLI or backtest) passes the independent checker:
``Planner.solve`` is wrapped for every test so no test can forget it."""

from __future__ import annotations

import pytest

import optimizer
from optimizer.check import check_schedule
from optimizer.planner import Planner
from optimizer.results import summary, to_frame
from optimizer.state import UnitState

CHECKED = {"count": 0}


@pytest.fixture(autouse=True)
def _check_every_schedule(monkeypatch):
    real = Planner.solve

    def checked(self, prices, hashprice, initial_state=None, **kw):
        ds = real(self, prices, hashprice, initial_state, **kw)
        state = {k: UnitState(**v) for k, v in summary(ds)["initial_state"].items()}
        violations = check_schedule(self.site, to_frame(ds), hashprice_usd_per_ph_day=hashprice, initial_state=state,
                                    allow_sla_breach=self.allow_sla_breach)
        assert not violations, "schedule fails the independent checker:\n" + "\n".join(map(str, violations))
        CHECKED["count"] += 1
        return ds

    monkeypatch.setattr(Planner, "solve", checked)
    yield


@pytest.fixture(scope="session")
def default_site() -> optimizer.Site:
    return optimizer.load_site(optimizer.default_site_path())
