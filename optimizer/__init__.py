"""curtail: power-market-aware curtailment optimizer for hybrid Bitcoin-mining / AI-compute sites.

Typical use::

    import optimizer
    site = optimizer.load_site("models/west-texas-200.toml")
    ds = optimizer.schedule(site, day="2022-07-20")      # xarray.Dataset, dims time x asset
    df = optimizer.to_frame(ds)                           # one row per hour

``import optimizer`` loads nothing heavy: each public name below is imported from its module the first time it is
used (PEP 562 module ``__getattr__``), so ``curtail --help`` and commands that need no solver, no Dask, no
scikit-learn and no plotting do not pay for them. ``from optimizer import schedule`` works as usual.

One more start-up cost is taken out here, without changing any result: xarray asks, for every array it wraps,
whether it is a Dask array, and the first time it asks it imports ``dask.array`` (with SciPy; and once SciPy is
imported, Pyomo's import hooks pull in ``scipy.stats``): about 1 s of a ``curtail schedule`` run, for arrays that
are always NumPy. An object can only be a Dask array if ``dask.array`` has been imported, so until it has, the
answer is "no" without importing it; once anything imports ``dask.array`` (a Dask sweep, a user's own code), xarray
gets the real type. Likewise xarray imports ``dask`` to ask whether a NumPy array is a Dask collection: objects
without a ``__dask_graph__`` method are answered at once (Dask's own definition), the others as before
(:func:`_xarray_imports_dask_only_when_used`).
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
from typing import TYPE_CHECKING, Any

#: Public name -> the module that defines it.
_EXPORTS = {
    "check_schedule": "optimizer.check",
    "default_site_path": "optimizer.data", "ercot_prices": "optimizer.data", "hashprice_series": "optimizer.data",
    "read_price_file": "optimizer.data",
    "CurtailError": "optimizer.errors", "InfeasibleError": "optimizer.errors", "InputError": "optimizer.errors",
    "NoSolutionError": "optimizer.errors",
    "read_schedule": "optimizer.results", "summary": "optimizer.results", "to_frame": "optimizer.results",
    "write": "optimizer.results",
    "operating_hours": "optimizer.scheduling", "schedule": "optimizer.scheduling",
    "GpuCluster": "optimizer.site", "MiningFleet": "optimizer.site", "Site": "optimizer.site",
    "load_site": "optimizer.site", "site_from_dict": "optimizer.site",
    "SolverOptions": "optimizer.solve",
    "UnitState": "optimizer.state", "state_from_schedule": "optimizer.state",
}

__all__ = [
    "CurtailError", "GpuCluster", "InfeasibleError", "InputError", "MiningFleet", "NoSolutionError", "Site",
    "SolverOptions", "UnitState", "check_schedule", "default_site_path", "ercot_prices", "hashprice_series",
    "load_site", "operating_hours", "read_price_file", "read_schedule", "schedule", "site_from_dict",
    "state_from_schedule", "summary", "to_frame", "write",
]
assert sorted(__all__) == sorted(_EXPORTS)

if TYPE_CHECKING:            # for type checkers and editors; at run time the names load on first use
    from optimizer.check import check_schedule
    from optimizer.data import default_site_path, ercot_prices, hashprice_series, read_price_file
    from optimizer.errors import CurtailError, InfeasibleError, InputError, NoSolutionError
    from optimizer.results import read_schedule, summary, to_frame, write
    from optimizer.scheduling import operating_hours, schedule
    from optimizer.site import GpuCluster, MiningFleet, Site, load_site, site_from_dict
    from optimizer.solve import SolverOptions
    from optimizer.state import UnitState, state_from_schedule


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use (then cached in this module's namespace). Submodules
    (``optimizer.data``, ...) are found by the import system as usual."""
    module = _EXPORTS.get(name)
    if module is None:
        if name.startswith("__"):
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        try:
            return importlib.import_module(f"{__name__}.{name}")        # optimizer.data etc. as attributes
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


# ----------------------------------------------------------------------------------------------------------------
# xarray without importing dask.array until something else does

_PYCOMPAT = "xarray.namedarray.pycompat"


class _DaskArrayTypeWhenImported:
    """Stands in for xarray's cached ``DuckArrayModule("dask")`` (``xarray.namedarray.pycompat``): its ``type``
    (what xarray tests ``isinstance`` against) is empty while ``dask.array`` is not imported, which is exact: no
    object can then be a Dask array. Once ``dask.array`` is imported, or anything else is asked (version,
    availability), xarray's own object is made and replaces this one in the cache."""

    def __init__(self, pycompat: Any):
        self._pycompat = pycompat

    def _real(self) -> Any:
        real = self._pycompat.DuckArrayModule("dask")
        self._pycompat._cached_duck_array_modules["dask"] = real      # noqa: SLF001 - see the module docstring
        return real

    @property
    def type(self) -> tuple[type, ...]:
        dask_array = sys.modules.get("dask.array")
        if dask_array is None or not hasattr(dask_array, "Array"):    # not imported, or still being imported
            return ()
        return self._real().type

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real(), name)


def _install_dask_stand_in(pycompat: Any) -> None:
    cache = getattr(pycompat, "_cached_duck_array_modules", None)
    if isinstance(cache, dict) and hasattr(pycompat, "DuckArrayModule") and "dask" not in cache:
        cache["dask"] = _DaskArrayTypeWhenImported(pycompat)
    # else: an xarray whose internals differ, or one that already looked for Dask: leave it as it is
    utils: Any = sys.modules.get("xarray.namedarray.utils")      # xarray internals: probed by name (or None)
    original = getattr(utils, "is_dask_collection", None)
    if callable(original) and not getattr(original, "_curtail_quick", False):
        utils.is_dask_collection = _quick_is_dask_collection(original)


def _quick_is_dask_collection(original: Any) -> Any:
    """xarray's ``is_dask_collection`` imports ``dask`` to ask ``dask.base.is_dask_collection``, for every NumPy
    array it wraps. Dask defines a collection as an object with a ``__dask_graph__`` method (its
    ``DaskCollection`` protocol; ``dask.base.is_dask_collection`` answers False at once without one), so objects
    without it are answered here and the others are asked as before."""
    def is_dask_collection(x: object) -> bool:
        if not hasattr(x, "__dask_graph__"):
            return False
        return original(x)

    is_dask_collection._curtail_quick = True          # type: ignore[attr-defined]
    return is_dask_collection


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``action(module)`` right after one module is first imported (as Pyomo's
    ``DeferredImportCallbackFinder`` does): finds the module with the finders after itself and wraps its loader
    once; removes itself from ``sys.meta_path`` when it fires."""

    def __init__(self, name: str, action: Any):
        self.name, self.action = name, action

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.name or self not in sys.meta_path:
            return None
        rest = sys.meta_path[sys.meta_path.index(self) + 1:]
        sys.meta_path.remove(self)
        for finder in rest:
            spec = finder.find_spec(fullname, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _ThenRun(spec.loader, self.action)
                return spec
        return None


class _ThenRun(importlib.abc.Loader):
    def __init__(self, loader: Any, action: Any):
        self.loader, self.action = loader, action

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        module.__loader__ = module.__spec__.loader = self.loader        # the real loader, for tools that look
        self.loader.exec_module(module)
        self.action(module)


def _xarray_imports_dask_only_when_used() -> None:
    """Install :class:`_DaskArrayTypeWhenImported` in xarray now (if xarray is already imported) or right after
    xarray imports its ``pycompat`` module."""
    if _PYCOMPAT in sys.modules:
        _install_dask_stand_in(sys.modules[_PYCOMPAT])
    elif not any(isinstance(f, _AfterImport) and f.name == _PYCOMPAT for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport(_PYCOMPAT, _install_dask_stand_in))


_xarray_imports_dask_only_when_used()
