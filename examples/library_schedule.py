"""Library use: schedule a real day, inspect it with pandas/xarray, and rerun with a hashprice scenario.

Run: python examples/library_schedule.py
"""

from __future__ import annotations

import optimizer

site = optimizer.load_site(optimizer.default_site_path())
ds = optimizer.schedule(site, day="2023-08-17")            # real-time HB_WEST prices of the August 2023 scarcity

print(ds["power_mw"].to_pandas().round(1).head())          # hours x assets, MW
s = optimizer.summary(ds)
print(f"\n{s['day']}: profit {s['profit_usd']:,.0f} USD, sell-back credit {s['sellback_credit_usd']:,.0f} USD, "
      f"status {s['status']}, solved in {s['solve_seconds']:.3f} s")

# The same day if hashprice were 40 USD/PH/day (late-2025 levels): more curtailment, more sell-back.
low = optimizer.schedule(site, day="2023-08-17", hashprice=40.0)
print(f"at 40 USD/PH/day: mining {float(low['mining_mw'].sum()):,.0f} MWh vs {float(ds['mining_mw'].sum()):,.0f} MWh")

# Bring your own prices: any hourly series with a tz-aware index covering the day and the lookahead.
prices = optimizer.ercot_prices("HB_NORTH", "rt")
north = optimizer.schedule(site, prices, day="2023-08-17")
print(f"settled at HB_NORTH instead: profit {optimizer.summary(north)['profit_usd']:,.0f} USD")

# A flat table, one row per hour, the same as `curtail schedule --out schedule.csv` writes.
print(optimizer.to_frame(ds)[["timestamp", "price_usd_per_mwh", "mining_mw", "ai_mw", "sellback_mw"]].tail())
