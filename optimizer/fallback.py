"""Fallback schedule: the operators' strike rule, interval by interval, within every hard limit.

Used when the solver returns nothing usable (time limit without a good enough solution, solver error). Each unit
runs, up to the power it can use, while the price is below its value per MWh (fleet: mining value; GPU cluster:
spot value while there is inference demand) and moves toward that within its ramp, minimum load, minimum on/off
times and the holds of its initial state (see :mod:`optimizer.operate`). When a load cap binds, the least valuable
units give way first. Restart costs are paid, not optimised; jobs get no GPUs (the next plan catches up), and
the GPU-hours that leaves late are booked as a plan books them.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from optimizer import operate, results
from optimizer.inputs import Inputs
from optimizer.site import Site


def strike_schedule(site: Site, inputs: Inputs) -> xr.Dataset:
    """The strike-rule schedule over the horizon of ``inputs`` (a dataset like :func:`optimizer.results.read`),
    within its load caps; the 4CP probability is carried for the accounting."""
    ctx = results.context(site, inputs)
    units = operate.Units(site, inputs.state, inputs.dt_hours)
    values = operate.values_usd_per_mwh(site, inputs.hashprice_usd_per_ph_day)
    strike = np.broadcast_to(values, (inputs.n, len(values)))
    useful = operate.useful_mw(site, ctx["demand_gpus"] if site.gpu else np.zeros((inputs.n, 0)))
    price = operate.decision_price(site, inputs.price_array)
    w = operate.walk(site, units, inputs.n, operate.strike_policy(price, strike, useful),
                     inputs.caps(site), inputs.emergency_caps(site), priority=strike, times=inputs.times)
    ds = results.assemble(site, inputs.times, power=w.site_power(site), on=w.on, start=w.start, **ctx)
    return results.resettle_job_penalty(ds, site, inputs)        # the jobs' expected lateness, as a plan books it
