"""Errors curtail raises, each with the exit code the CLI returns for it (a cron job can act on the code).

0 done; 1 internal error (a bug: please report); 2 bad input; 3 infeasible; 4 no valid solution, nothing written;
5 fallback schedule written (solver failed, strike rule used); 6 another run holds the output's lock.
"""

from __future__ import annotations


class CurtailError(Exception):
    """Base class; ``exit_code`` is what ``curtail`` exits with."""

    exit_code = 1


class InternalError(CurtailError):
    """An invariant of curtail's own code did not hold (a bug: please report); the message says which. Raised
    where a value the code has already established (a solved plan, an INSERT's row id) turns out missing."""


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
    """The solver stopped without a usable solution (time limit, numerical trouble, solver error), or a schedule
    failed the independent check; nothing was written."""

    exit_code = 4


class LockedError(CurtailError):
    """Another run holds the lock of the same output file."""

    exit_code = 6


#: Exit code of ``curtail schedule`` when it wrote the strike-rule fallback schedule instead of an optimised one.
FALLBACK_EXIT_CODE = 5
