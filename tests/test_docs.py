"""The docs match the code: every site key the validator accepts is in docs/site-model.md's tables (and nothing
else is), every Pyomo component the model parts build is in docs/formulation.md's component tables under the
module that builds it (and nothing else is), and the README's option tables name every option of
``curtail schedule`` and ``curtail backtest``.

Method. The accepted keys are read from the validator itself: each table of a complete minimal site is given an
unknown key, and the ``InputError`` lists the table's allowed keys (the sets ``site.py`` and
``workloads.jobs_from_records`` check against). The components are read from built models: the default site with
a rigid and a divisible job and a reserve service (plain, SLA breach allowed, elastic), the strict site (its
4-hour minimum off time builds ``min_off``) and the two-stage model; which module owns a component is found by
adding the parts one at a time. The options are read from the Typer commands. No solver is run.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pyomo.environ as pyo
import pytest

import optimizer
from optimizer import InputError, model
from optimizer.data import resource_dir
from optimizer.inputs import Inputs
from optimizer.model import commitment
from optimizer.site import Commitment, Reserve
from optimizer.workloads import Job

ROOT = Path(__file__).resolve().parent.parent
SITE_DOC = ROOT / "docs" / "site-model.md"
FORMULATION = ROOT / "docs" / "formulation.md"
README = ROOT / "README.md"
START = pd.Timestamp("2022-07-20T05:00:00Z")


# ---------------------------------------------------------------------------------------------------------
# Markdown tables


def _tables(text: str, first_header_cell: str) -> list[tuple[str, list[list[str]]]]:
    """(the nearest heading above, rows as lists of cells) of every table whose header's first cell is
    ``first_header_cell``."""
    out = []
    heading = ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if line.startswith("|") and _cells(line)[:1] == [first_header_cell]:
            rows = []
            i += 2                                                    # header and |---| rule
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            out.append((heading, rows))
            continue
        i += 1
    return out


def _cells(line: str) -> list[str]:
    # split on | not inside a code span or a math span (cells hold `a|b` rarely, $|x|$ sometimes)
    cells, cur, code, math_ = [], "", False, False
    for ch in line.strip().strip("|"):
        if ch == "`":
            code = not code
        elif ch == "$" and not code:
            math_ = not math_
        if ch == "|" and not code and not math_:
            cells.append(cur.strip())
            cur = ""
        else:
            cur += ch
    cells.append(cur.strip())
    return cells


def _code(cell: str) -> str:
    """The first code span of a cell."""
    m = re.search(r"`([^`]+)`", cell)
    assert m, f"no `code` in table cell {cell!r}"
    return m.group(1)


# ---------------------------------------------------------------------------------------------------------
# (a) site keys


def _minimal_raw() -> dict:
    """A valid site with every table the validator knows, each with only its required keys."""
    return {
        "name": "docs", "timezone": "America/Chicago", "settlement_point": "HB_WEST",
        "grid": {"import_limit_mw": 10.0},
        "contract": {},
        "mining": [{"name": "f", "capacity_mw": 1.0, "efficiency_j_per_th": 20.0}],
        "gpu": [{"name": "g", "gpus": 10, "kw_per_gpu": 1.0}],
        "fourcp": {},
        "reserve": [{"name": "ecrs"}],
        "job": [{"name": "j", "gpus": 1, "gpu_hours": 1.0, "release": "2022-07-20T05:00:00Z",
                 "deadline": "2022-07-21T05:00:00Z", "min_run_hours": 0, "value_usd_per_gpu_hour": 0,
                 "late_penalty_usd_per_gpu_hour": 0}],
    }


#: doc section -> (path to the table in the raw site, the field the validator names for it)
SECTIONS = {
    "top": ((), "<top level>"), "grid": (("grid",), "grid"), "contract": (("contract",), "contract"),
    "mining": (("mining", 0), "mining[0]"), "gpu": (("gpu", 0), "gpu[0]"), "fourcp": (("fourcp",), "fourcp"),
    "reserve": (("reserve", 0), "reserve[0]"), "job": (("job", 0), "job[0]"),
}


def accepted_keys(section: str) -> set[str]:
    """The keys the validator accepts in one section: an unknown key makes it list them."""
    path, field = SECTIONS[section]
    raw = _minimal_raw()
    target = raw
    for step in path:
        target = target[step]
    target["zz_not_a_key"] = 1
    with pytest.raises(InputError) as exc:
        optimizer.site_from_dict(raw)
    assert exc.value.field == field, f"the unknown key was reported at {exc.value.field!r}, not {field!r}"
    m = re.search(r"unknown key\(s\) 'zz_not_a_key'; allowed: (.+)$", str(exc.value))
    assert m, f"unexpected message: {exc.value}"
    return set(m.group(1).split(", "))


def documented_keys() -> dict[str, dict[str, list[str]]]:
    """{section: {key: its table row}} from docs/site-model.md: the first `| key |` table after each section
    heading (``## Top level``, ``## `[grid]` ``, ``## `[[mining]]` `` ...)."""
    out: dict[str, dict[str, list[str]]] = {}
    for heading, rows in _tables(SITE_DOC.read_text(), "key"):
        m = re.fullmatch(r"Top level|`\[{1,2}(\w+)\]{1,2}`.*", heading)
        if not m:
            continue
        section = m.group(1) or "top"
        assert section not in out, f"two key tables for section {section!r} in {SITE_DOC.name}"
        keys = {}
        for row in rows:
            key = _code(row[0]).strip("[]")
            assert key not in keys, f"{section}: key {key!r} twice"
            keys[key] = row
        out[section] = keys
    return out


def test_the_probe_reads_the_validators_own_sets():
    # by hand from optimizer/site.py: the [fourcp] and [grid] sets, and the job columns of optimizer/workloads.py
    assert accepted_keys("fourcp") == {"charge_usd_per_kw_year", "curtail_above_probability"}
    assert accepted_keys("grid") == {"import_limit_mw"}
    from optimizer.workloads import JOB_COLUMNS, JOB_OPTIONAL_COLUMNS
    assert accepted_keys("job") == set(JOB_COLUMNS) | set(JOB_OPTIONAL_COLUMNS)


@pytest.mark.parametrize("section", list(SECTIONS))
def test_site_model_doc_lists_exactly_the_accepted_keys(section):
    documented = documented_keys()
    assert section in documented, f"{SITE_DOC.name} has no key table for section {section!r}"
    accepted = accepted_keys(section)
    doc = set(documented[section])
    assert not accepted - doc, f"[{section}] accepted by the validator but not in {SITE_DOC.name}: " \
                               f"{sorted(accepted - doc)}"
    assert not doc - accepted, f"[{section}] in {SITE_DOC.name} but rejected by the validator: {sorted(doc - accepted)}"


#: doc section -> the loaded object whose fields the section's keys set
_OBJECTS = {"contract": lambda s: s.contract, "mining": lambda s: s.mining[0], "gpu": lambda s: s.gpu[0],
            "fourcp": lambda s: s.fourcp, "reserve": lambda s: s.reserves[0]}


@pytest.mark.parametrize("section", list(_OBJECTS))
def test_documented_defaults_are_the_loaded_defaults(section):
    # every default written as a literal (`0.0`, `true`, `"flat"`, `[[0.9999, 0.10], ...]`) is what a site that
    # leaves the key out gets
    site = optimizer.site_from_dict(_minimal_raw())
    obj = _OBJECTS[section](site)
    checked = 0
    for key, row in documented_keys()[section].items():
        m = re.fullmatch(r"`([^`]+)`", row[3])
        if not m:
            continue                                    # "required", "unlimited (key absent)", "none: ..."
        want = tomllib.loads(f"v = {m.group(1)}")["v"]
        got = getattr(obj, key)
        if isinstance(want, list):
            want = tuple(tuple(p) for p in want)
        assert got == pytest.approx(want) if isinstance(want, float) else got == want, \
            f"[{section}] {key}: documented default {m.group(1)}, loaded {got!r}"
        checked += 1
    if section == "reserve":     # no literal defaults: the documented "absent" rules, checked for ECRS by hand
        assert obj.clearing_prices and obj.response_minutes == 10.0
        assert "absent: ERCOT's hourly clearing prices" in documented_keys()[section]["price_usd_per_mw_hour"][3]
        assert "ECRS 10" in documented_keys()[section]["response_minutes"][3]
    else:
        assert checked >= 2


# ---------------------------------------------------------------------------------------------------------
# (b) model components


def _site_with_jobs(site: optimizer.Site) -> optimizer.Site:
    jobs = (Job("train", site.gpu[0].name, 64, 400.0, START, START + pd.Timedelta(hours=20), 2.0, 1.3, 0.5),
            Job("batch", None, 50, 100.0, START, START + pd.Timedelta(hours=4), 0.0, 0.85, 0.85))
    return dataclasses.replace(site, jobs=jobs, reserves=(Reserve("ecrs", 9.6, 10.0),))


def _inputs(n: int = 6) -> Inputs:
    return Inputs(pd.Series(np.linspace(20.0, 70.0, n), index=pd.date_range(START, periods=n, freq="h")), 50.0)


def _names(b: pyo.Block) -> dict[int, str]:
    return {id(c): c.local_name for c in b.component_objects(descend_into=True)}


def _owned(site: optimizer.Site, structure: model.Structure) -> dict[str, set[str]]:
    """{component name: modules that build it}, by adding the parts one at a time as ``model.build`` does;
    the unit components ``commitment.add`` makes are credited to commitment."""
    m = pyo.ConcreteModel()
    owner: dict[str, set[str]] = {}
    m.T = pyo.Set(initialize=range(structure.n_intervals), ordered=True)
    m.dt_hours = structure.dt_hours
    for part in model.PARTS:
        before = _names(m)
        part.add(m, site, structure)
        for key, name in _names(m).items():
            if key not in before:
                owner.setdefault(name, set()).add(part.__name__.rsplit(".", 1)[-1])
    unit = pyo.ConcreteModel()
    unit.T = pyo.Set(initialize=range(3), ordered=True)
    commitment.add(unit, unit.T, 10.0, Commitment(0.1, 1.0, 2, 2, 1.0), 1.0, elastic=True)
    unit.continuous = pyo.Block()
    commitment.add(unit.continuous, unit.T, 10.0, Commitment(0.0, 1.0, 1, 1, 0.0), 1.0, elastic=True)
    for name in (set(_names(unit).values()) - {"T", "continuous"}) & set(owner):     # only what this build has
        owner[name] = {"commitment"}
    full = model.build(site, structure)                        # what build adds around the parts
    for name in set(_names(full).values()) - set(owner):
        owner.setdefault(name, set()).add("__init__")
    return owner


def built_components() -> dict[str, set[str]]:
    """{component name: owning modules} over every variant the docs describe."""
    default = optimizer.load_site(optimizer.default_site_path())
    strict = optimizer.load_site(resource_dir("models") / "west-texas-200-strict.toml")
    owner: dict[str, set[str]] = {}
    # a fleet with no restart cost and minimum times of one hour has no binaries in the hourly model
    continuous = dataclasses.replace(default, mining=(dataclasses.replace(default.mining[0], restart_cost_usd=0.0),
                                                      *default.mining[1:]))
    for site, kw in ((_site_with_jobs(default), {}), (_site_with_jobs(default), {"allow_sla_breach": True}),
                     (_site_with_jobs(default), {"elastic": True}), (_site_with_jobs(strict), {}),
                     (continuous, {}), (continuous, {"elastic": True})):
        for name, mods in _owned(site, model.Structure.of(site, _inputs(), **kw)).items():
            owner.setdefault(name, set()).update(mods)
    site = _site_with_jobs(default)
    two = model.build_scenarios(site, model.Structure.of(site, _inputs()), 2)
    for c in two.component_objects(descend_into=False):       # the two-stage model's own (the copies: above)
        owner.setdefault(c.local_name, set()).add("__init__")
    return owner


def documented_components() -> dict[str, set[str]]:
    """{component name: modules} from docs/formulation.md's `| component |` tables, each under a heading naming
    its module (``### `optimizer/model/gpu.py` ``)."""
    out: dict[str, set[str]] = {}
    tables = _tables(FORMULATION.read_text(), "component")
    assert tables, f"no component tables in {FORMULATION.name}"
    for heading, rows in tables:
        m = re.search(r"`optimizer/model/(\w+)\.py`", heading)
        assert m, f"component table under {heading!r} does not name its module"
        for row in rows:
            name = re.sub(r"\[[^\]]*\]", "", _code(row[0])).split(".")[-1]
            out.setdefault(name, set()).add(m.group(1))
    return out


def test_the_variants_build_every_optional_component():
    # by hand from the code: the default site with a job builds the job rows and the shared throughput; the
    # strict site's 4 h minimum off time builds min_off; SLA breach builds the tiers; elastic the slacks; the
    # reserve service its offers; the two-stage model its scenario profits; a unit without binaries its
    # first-interval hold
    owner = built_components()
    for name, module in (("job_rigid", "jobs"), ("capacity", "gpu"), ("throughput_curve", "gpu"),
                         ("min_off", "commitment"), ("tier_reached", "gpu"), ("relax_import_limit", "grid"),
                         ("offer_backed", "reserves"), ("profit_k", "__init__"), ("profit_usd", "__init__"),
                         ("first_max_mw", "commitment")):
        assert module in owner.get(name, set()), (name, owner.get(name))


def test_formulation_component_tables_match_the_built_model():
    built, documented = built_components(), documented_components()
    missing = sorted(set(built) - set(documented))
    extra = sorted(set(documented) - set(built))
    assert not missing, f"built but not in {FORMULATION.name}'s component tables: {missing}"
    assert not extra, f"in {FORMULATION.name}'s component tables but never built: {extra}"
    wrong = {n: (sorted(documented[n]), sorted(built[n])) for n in documented if not documented[n] <= built[n]}
    assert not wrong, f"documented under a module that does not build it (doc, built): {wrong}"


def test_every_component_of_the_default_site_with_a_job_is_named_in_the_doc():
    text = FORMULATION.read_text()
    site = _site_with_jobs(optimizer.load_site(optimizer.default_site_path()))
    m = model.build(site, model.Structure.of(site, _inputs()))
    names = set(_names(m).values())
    assert {"job_x", "served", "throughput", "demand_cap", "committed_mw"} <= names
    absent = sorted(n for n in names if f"`{n}`" not in text and not re.search(rf"\.{n}`", text))
    assert not absent, f"not named in {FORMULATION.name}: {absent}"


# ---------------------------------------------------------------------------------------------------------
# (c) README option tables


def _options(command: str) -> dict[str, set[str]]:
    """{primary option: every spelling} of a ``curtail`` command, read from its Typer definition."""
    import typer.main

    from optimizer.cli import app

    cmd = typer.main.get_command(app).commands[command]
    return {p.opts[0]: set(p.opts) | set(p.secondary_opts) for p in cmd.params if p.opts[0].startswith("--")}


def _readme_table_options(command: str) -> set[str]:
    """Options named in the table rows of the README's ``### `curtail <command>` `` section."""
    text = README.read_text()
    m = re.search(rf"^### `curtail {command}`\n(.*?)(?=^##)", text, re.S | re.M)
    assert m, f"README has no section ### `curtail {command}`"
    rows = "\n".join(line for line in m.group(1).splitlines() if line.startswith("|"))
    return set(re.findall(r"--[a-z0-9][a-z0-9-]*", rows))


def _missing(command: str) -> list[str]:
    named = _readme_table_options(command)
    return [o for o, spellings in _options(command).items() if not spellings & named]


@pytest.mark.parametrize("command", ["schedule", "backtest"])
def test_readme_tables_name_only_real_options(command):
    real = set().union(*_options(command).values())
    assert not _readme_table_options(command) - real


@pytest.mark.parametrize("command", ["schedule", "backtest"])
def test_readme_tables_name_every_option(command):
    missing = _missing(command)
    assert not missing, f"README's `curtail {command}` option table lacks: {', '.join(missing)}"
