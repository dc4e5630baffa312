"""Errors curtail raises, each with the exit code the CLI returns for it (a cron job can act on the code)."""

from __future__ import annotations


class CurtailError(Exception):
    """Base class; ``exit_code`` is what ``curtail`` exits with."""

    exit_code = 1


class InputError(CurtailError):
    """Bad input: a site model, price file, option or state. The message names file, field/row and value."""

    exit_code = 2

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None):
        self.source, self.field = source, field
        where = ": ".join(p for p in (source, field) if p)
        super().__init__(f"{where}: {message}" if where else message)


class InfeasibleError(CurtailError):
    """The hard limits cannot all hold; the message says which limits conflict."""

    exit_code = 3


class NoSolutionError(CurtailError):
    """The solver stopped without a usable solution (time limit, numerical trouble, solver error)."""

    exit_code = 4
