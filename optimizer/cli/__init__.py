"""The ``curtail`` command: a thin layer that parses options, calls the library and prints.

Exit codes (for cron): see :mod:`optimizer.errors`.
"""

from __future__ import annotations

import typer

from optimizer.cli import backtest as backtest_cmd
from optimizer.cli import bid as bid_cmd
from optimizer.cli import check as check_cmd
from optimizer.cli import data as data_cmd
from optimizer.cli import ledger as ledger_cmd
from optimizer.cli import operate as operate_cmd
from optimizer.cli import schedule as schedule_cmd
from optimizer.cli import sweep as sweep_cmd

app = typer.Typer(help="Power-market-aware curtailment optimizer for hybrid Bitcoin-mining / AI-compute sites.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
app.command("schedule")(schedule_cmd.schedule)
app.command("backtest")(backtest_cmd.backtest)
app.command("sweep")(sweep_cmd.sweep)
app.command("check")(check_cmd.check)
app.command("operate")(operate_cmd.operate)
app.command("ledger")(ledger_cmd.ledger)
app.command("bid")(bid_cmd.bid)
data_app = typer.Typer(help="Live ERCOT data (gridstatus) in the local store.", no_args_is_help=True)
data_app.command("update")(data_cmd.data_update)
app.add_typer(data_app, name="data")


@app.callback()
def _root() -> None:
    """curtail: decide, hour by hour, how many MW go to mining, to AI and back to the grid."""


def main() -> None:
    app()
