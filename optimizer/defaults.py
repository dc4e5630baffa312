"""Defaults the command line shows in its help: kept in a module that imports nothing heavy, so that
``curtail --help`` loads no pandas, Pyomo or xarray. Each is owned here and imported by the module that uses it."""

from __future__ import annotations

import datetime as dt

#: Default operating day of ``curtail schedule`` with no ``--day``: a real summer day with day-ahead prices.
DEFAULT_DAY = dt.date(2022, 7, 20)
