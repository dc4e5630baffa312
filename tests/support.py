"""Helpers for tests: small sites from dictionaries, hourly price series, and a checked solve."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

import optimizer
import optimizer.scheduling as schedule_module
from optimizer.inputs import Inputs

START = "2022-07-20T05:00:00Z"      # local midnight (CDT) of a real day


def hourly(values, start: str = START) -> pd.Series:
    """An hourly UTC price series (USD/MWh) starting at ``start``."""
    idx = pd.date_range(pd.Timestamp(start), periods=len(values), freq="1h", name="timestamp")
    return pd.Series(np.asarray(values, dtype=float), index=idx, name="price_usd_per_mwh")


def make_site(mining: list[dict] | None = None, gpu: list[dict] | None = None, *, import_limit_mw: float = 1000.0,
              block_mw: float = 0.0, contract_price: float = 0.0, sellback: bool = True) -> optimizer.Site:
    raw: dict[str, Any] = {"name": "test-site", "timezone": "America/Chicago", "settlement_point": "HB_WEST",
                           "grid": {"import_limit_mw": import_limit_mw},
                           "contract": {"block_mw": block_mw, "price_usd_per_mwh": contract_price,
                                        "sellback": sellback}}
    if mining:
        raw["mining"] = mining
    if gpu:
        raw["gpu"] = gpu
    return optimizer.site_from_dict(raw)


def fleet(name: str = "f", capacity_mw: float = 10.0, efficiency_j_per_th: float = 24.0, **kw) -> dict:
    """A fleet; at hashprice 100 USD/PH/day and 24 J/TH, one MWh mines 100/24*1000/24 = 173.61 USD."""
    return {"name": name, "capacity_mw": capacity_mw, "efficiency_j_per_th": efficiency_j_per_th, **kw}


INPUT_FIELDS = {"initial_state": "state", "load_cap_mw": "load_cap_mw", "peak_probability": "peak_probability",
                "reserve_prices": "reserve_prices"}


def inputs(prices: pd.Series, hashprice: float = 100.0, **kw) -> Inputs:
    """The Inputs of a solve: ``initial_state``, ``load_cap_mw``, ``peak_probability``, ``reserve_prices``."""
    return Inputs(prices, hashprice, **{INPUT_FIELDS[k]: v for k, v in kw.items()})


def solve(site: optimizer.Site, prices: pd.Series, hashprice: float = 100.0, **kw):
    """Solve exactly the intervals of ``prices`` (checked at run time and by the conftest wrapper) and return the
    dataset. Keywords: the Inputs fields of :func:`inputs`, and ``optimize``'s options."""
    data = {k: kw.pop(k) for k in list(kw) if k in INPUT_FIELDS}
    return schedule_module.optimize(site, inputs(prices, hashprice, **data), **kw)


def power(ds, asset: str) -> np.ndarray:
    return ds["power_mw"].sel(asset=asset).to_numpy()
