"""Walk-forward backtests: :func:`run` replays days as the nightly job would have (see :mod:`.engine`);
:mod:`.report` writes the results, plots and an HTML report."""

from optimizer.backtest.engine import POLICIES, Deployment, Market, Result, Settings, run

__all__ = ["POLICIES", "Deployment", "Market", "Result", "Settings", "run"]
