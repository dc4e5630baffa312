"""curtail: power-market-aware curtailment optimizer for hybrid Bitcoin-mining / AI-compute sites.

Typical use::

    import optimizer
    site = optimizer.load_site("models/west-texas-200.toml")
    ds = optimizer.schedule(site, day="2022-07-20")      # xarray.Dataset, dims time x asset
    df = optimizer.to_frame(ds)                           # one row per hour
"""

from optimizer.check import check_schedule
from optimizer.data import default_site_path, ercot_prices, hashprice_series, read_price_file
from optimizer.errors import CurtailError, InfeasibleError, InputError, NoSolutionError
from optimizer.results import read_schedule, summary, to_frame, write
from optimizer.scheduling import operating_hours, schedule
from optimizer.site import GpuCluster, MiningFleet, Site, load_site, site_from_dict
from optimizer.solve import SolverOptions
from optimizer.state import UnitState, state_from_schedule

__all__ = [
    "CurtailError", "GpuCluster", "InfeasibleError", "InputError", "MiningFleet", "NoSolutionError", "Site",
    "SolverOptions", "UnitState", "check_schedule", "default_site_path", "ercot_prices", "hashprice_series",
    "load_site", "operating_hours", "read_price_file", "read_schedule", "schedule", "site_from_dict",
    "state_from_schedule", "summary", "to_frame", "write",
]
