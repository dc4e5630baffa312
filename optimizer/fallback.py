"""Fallback schedule: the operators' strike rule, interval by interval, within every hard limit.

Used when the solver returns nothing usable (time limit without a good enough solution, solver error). Each unit
wants to run when the price is below its value per MWh (fleet: mining value; GPU cluster: spot value), and moves
toward that within its ramp, minimum load, minimum on/off times and the holds of its initial state (see
:mod:`optimizer.operate`). When the import limit binds, the least valuable units give way first. Restart costs are
paid, not optimised.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from optimizer import operate, results
from optimizer.data import interval_hours
from optimizer.site import Site
from optimizer.state import UnitState


def strike_schedule(site: Site, prices: pd.Series, hashprice: float,
                    initial_state: Mapping[str, UnitState] | None = None,
                    load_cap_mw: np.ndarray | None = None, peak_weight: np.ndarray | None = None) -> xr.Dataset:
    """The strike-rule schedule over the intervals of ``prices`` (a dataset like :func:`optimizer.results.read`),
    within ``load_cap_mw`` (per interval; default the import limit)."""
    times = pd.DatetimeIndex(prices.index)
    dt = interval_hours(times)
    price = prices.to_numpy(dtype=float)
    w = operate.walk(site, times, operate.units_for(site, hashprice, initial_state, dt),
                     operate.strike_policy(price), load_cap_mw)
    return results.assemble(site, times, price, w.site_power(site), w.on, w.start,
                            hashprice_usd_per_ph_day=hashprice, dt_hours=dt, max_load_mw=load_cap_mw,
                            peak_weight=peak_weight)
