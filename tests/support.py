"""Helpers for tests: small sites from dictionaries, hourly price series, and a checked solve."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

import optimizer
import optimizer.scheduling as schedule_module

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


def solve(site: optimizer.Site, prices: pd.Series, hashprice: float = 100.0, **kw):
    """Solve exactly the hours of ``prices`` (checked by the conftest wrapper) and return the dataset."""
    return schedule_module.optimize(site, prices, hashprice, **kw)


def power(ds, asset: str) -> np.ndarray:
    return ds["power_mw"].sel(asset=asset).to_numpy()
