"""Shared fixtures. Every schedule any test produces through the planner passes the independent checker:
``Planner.solve`` is wrapped for every test so no test can forget it (the library's ``schedule`` / ``optimize``,
the CLI and the backtest also run the checker themselves, at run time)."""

from __future__ import annotations

import pytest

import optimizer
from optimizer.check import check_schedule
from optimizer.planner import Planner
from optimizer.results import to_frame
from optimizer.scheduling import check_inputs

CHECKED = {"count": 0}


@pytest.fixture(autouse=True)
def _check_every_schedule(monkeypatch):
    real = Planner.solve

    def checked(self, inputs, **kw):
        ds = real(self, inputs, **kw)
        violations = check_schedule(self.site, to_frame(ds), check_inputs(self.site, inputs, self.allow_sla_breach))
        assert not violations, "schedule fails the independent checker:\n" + "\n".join(map(str, violations))
        CHECKED["count"] += 1
        return ds

    monkeypatch.setattr(Planner, "solve", checked)
    yield


@pytest.fixture(scope="session")
def default_site() -> optimizer.Site:
    return optimizer.load_site(optimizer.default_site_path())
