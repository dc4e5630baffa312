"""Walk-forward backtests: :func:`run` replays days as the nightly job would have (see :mod:`.engine`);
:mod:`.report` writes the results, plots and an HTML report. The engine is imported on first use of its names
(PEP 562), so that importing the policy names costs nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from optimizer.backtest.names import POLICIES

if TYPE_CHECKING:
    from optimizer.backtest.engine import Deployment, Market, Result, Settings, run

__all__ = ["POLICIES", "Deployment", "Market", "Result", "Settings", "run"]


def __getattr__(name: str) -> Any:
    if name in ("Deployment", "Market", "Result", "Settings", "run"):
        from optimizer.backtest import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'optimizer.backtest' has no attribute {name!r}")
