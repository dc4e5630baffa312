"""Fallback schedule: the operators' strike rule, interval by interval, within every hard limit.

Used when the solver returns nothing usable (time limit without a good enough solution, solver error). Each unit
wants to run when the price is below its value per MWh (fleet: mining value; GPU cluster: spot value), and moves
toward that within its ramp, minimum load, minimum on/off times and the holds of its initial state (see
:mod:`optimizer.operate`). When a load cap binds, the least valuable units give way first. Restart costs are
paid, not optimised.
"""

from __future__ import annotations

import xarray as xr

from optimizer import operate, results
from optimizer.inputs import Inputs
from optimizer.site import Site


def strike_schedule(site: Site, inputs: Inputs) -> xr.Dataset:
    """The strike-rule schedule over the horizon of ``inputs`` (a dataset like :func:`optimizer.results.read`),
    within its load caps; the 4CP probability is carried for the accounting."""
    price = inputs.price_array
    units = operate.units_for(site, inputs.hashprice_usd_per_ph_day, inputs.state, inputs.dt_hours)
    w = operate.walk(site, inputs.times, units, operate.strike_policy(price), inputs.caps(site),
                     emergency=inputs.emergency_caps(site))
    return results.assemble(site, inputs.times, price, w.site_power(site), w.on, w.start,
                            hashprice_usd_per_ph_day=inputs.hashprice_usd_per_ph_day, dt_hours=inputs.dt_hours,
                            max_load_mw=inputs.caps(site), peak_weight=inputs.peak_probability)
