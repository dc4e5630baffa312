"""The backtest's policy names: the one owner of which policies exist and which run by default. Kept apart from
:mod:`optimizer.backtest.engine` so that the CLI's help text names them without importing the engine (pandas,
Pyomo, xarray)."""

from __future__ import annotations

#: Run by default, in this order (``mpc`` is the summary's policy).
POLICIES = ("mpc", "schedule", "schedule+strike", "strike", "always-on", "perfect")
#: Also available, not run by default: the two-stage plan over the forecaster's 10/50/90% quantile scenarios,
#: operated with its median scenario's strike table (it fits three quantile models), and the day-ahead bidders.
OPTIONAL_POLICIES = ("stochastic+strike", "bid", "bid-strike")
#: Policies that buy (or sell) in the day-ahead market and settle the deviation in real time.
DA_POLICIES = ("bid", "bid-strike")
