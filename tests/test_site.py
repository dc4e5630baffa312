"""Site models: every shipped model loads, the default site's derived numbers match hand calculations, and every
kind of bad input raises ``InputError`` naming the file, the dotted field and the bad value."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import tomllib
from pathlib import Path

import pytest

import optimizer
from optimizer import InputError
from optimizer.data import resource_dir

MODELS = sorted(resource_dir("models").glob("*.toml"))
DEFAULT_TOML = tomllib.loads(optimizer.default_site_path().read_text())


# ---------------------------------------------------------------------------------------------------------
# A tiny TOML writer for this schema (scalars, tables, arrays of tables), so each bad case is a dict edit.


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)                       # 'inf' / 'nan' / '-inf' are valid TOML floats
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list) and not any(isinstance(x, dict) for x in v):
        return "[" + ", ".join(map(_toml_value, v)) + "]"
    raise TypeError(v)


def to_toml(raw: dict) -> str:
    def is_table(v):
        return isinstance(v, dict)

    def is_array_of_tables(v):
        return isinstance(v, list) and v and all(isinstance(x, dict) for x in v)

    lines = [f"{k} = {_toml_value(v)}" for k, v in raw.items() if not is_table(v) and not is_array_of_tables(v)]
    for k, v in raw.items():
        if is_table(v):
            lines.append(f"\n[{k}]")
            lines += [f"{kk} = {_toml_value(vv)}" for kk, vv in v.items()]
    for k, v in raw.items():
        if is_array_of_tables(v):
            for t in v:
                lines.append(f"\n[[{k}]]")
                lines += [f"{kk} = {_toml_value(vv)}" for kk, vv in t.items()]
    return "\n".join(lines) + "\n"


def test_toml_writer_round_trips_the_default_site():
    assert tomllib.loads(to_toml(DEFAULT_TOML)) == DEFAULT_TOML


def write_site(tmp_path: Path, raw: dict, name: str = "site.toml") -> Path:
    path = tmp_path / name
    path.write_text(to_toml(raw))
    return path


# Edits of the default site's parsed TOML; a path is a tuple of keys / list indexes.


def _parent(raw, path):
    for k in path[:-1]:
        raw = raw[k]
    return raw


def put(path, value):
    def edit(raw):
        _parent(raw, path)[path[-1]] = value
    return edit


def drop(path):
    def edit(raw):
        parent = _parent(raw, path)
        assert path[-1] in parent, f"{path} not in the default site: the case would test nothing"
        del parent[path[-1]]
    return edit


def rename(path, new_key):
    def edit(raw):
        parent = _parent(raw, path)
        # keep key order so the typo sits where the real key was
        items = [(new_key if k == path[-1] else k, v) for k, v in parent.items()]
        assert any(k == new_key for k, _ in items)
        parent.clear()
        parent.update(items)
    return edit


def both(*edits):
    def edit(raw):
        for e in edits:
            e(raw)
    return edit


# ---------------------------------------------------------------------------------------------------------
# Shipped models


@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_every_shipped_model_loads(path):
    site = optimizer.load_site(path)
    assert site.name == path.stem
    assert site.source == str(path)
    assert site.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert site.asset_names
    assert site.grid.import_limit_mw > 0
    assert site.committed_mw <= site.grid.import_limit_mw


def test_shipped_models_include_the_default_site():
    assert len(MODELS) >= 3
    assert optimizer.default_site_path() in MODELS
    assert optimizer.default_site_path().name == "west-texas-200.toml"


@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_every_shipped_model_schedules_the_default_day(path):
    ds = optimizer.schedule(path, day="2022-07-20")         # checked by the conftest wrapper
    assert ds.attrs["status"] == "optimal"
    assert list(ds["asset"].values) == list(optimizer.load_site(path).asset_names)


# ---------------------------------------------------------------------------------------------------------
# The default site, by hand


def test_default_site_top_level_numbers(default_site):
    s = default_site
    assert (s.name, s.timezone, s.settlement_point) == ("west-texas-200", "America/Chicago", "HB_WEST")
    assert s.grid.import_limit_mw == 200.0
    assert (s.contract.block_mw, s.contract.price_usd_per_mwh, s.contract.sellback) == (180.0, 32.0, True)
    assert s.asset_names == ("s21-pro", "s19j-pro", "h100")
    assert [f.capacity_mw for f in s.mining] == [80.0, 40.0]


def test_default_gpu_cluster_power_by_hand(default_site):
    (g,) = default_site.gpu
    assert g.mw_per_gpu == pytest.approx(1.275 * 1.25 / 1000)
    assert g.gpus * g.mw_per_gpu == pytest.approx(51.0)               # 32000 x 1.275 kW x 1.25 / 1000
    assert g.committed_mw == pytest.approx(29.9625)                    # 18800 x 1.275 x 1.25 / 1000
    assert g.flexible_mw == pytest.approx(51.0 - 29.9625)
    assert default_site.committed_mw == pytest.approx(29.9625)


def test_default_gpu_cluster_money_by_hand(default_site):
    (g,) = default_site.gpu
    assert g.committed_revenue_usd_per_hour == pytest.approx(18800 * 2.35)
    # spot GPUs at full power: 1.70 USD/GPU-h per (1.275 x 1.25 / 1000) MW per GPU = 1066.67 USD/MWh. Capped, a
    # GPU whose boards draw f of full power draws (0.45 + 0.55 f) of its site power; throughput per site power is
    # highest at the curve point (0.7628, 0.9289): 0.9289 / 0.86954 = 1.0683 (at 0.70: 0.8754 / 0.835 = 1.0484;
    # at 1.0: 1.0), so the first MW of spot load earns 1066.67 x 1.0683
    assert g.spot_value_usd_per_mwh == pytest.approx(1.70 / (1.275 * 1.25 / 1000) * 0.9289 / (0.45 + 0.55 * 0.7628))
    assert g.spot_value_usd_per_mwh == pytest.approx(1139.48, abs=0.01)


def test_default_fleet_mining_value_by_hand(default_site):
    s21, s19 = default_site.mining
    assert s21.name == "s21-pro" and s19.name == "s19j-pro"
    assert s21.hashrate_ph_per_mw() == pytest.approx(1000 / (15 * 1.03))
    assert s21.value_usd_per_mwh(40.0) == pytest.approx(40 / 24 * 1000 / (15 * 1.03) * 0.98)
    assert s21.value_usd_per_mwh(40.0) == pytest.approx(105.72, abs=0.01)
    assert s19.value_usd_per_mwh(40.0) == pytest.approx(40 / 24 * 1000 / (29.5 * 1.03) * 0.98)
    # linear in the hashprice
    assert s21.value_usd_per_mwh(80.0) == pytest.approx(2 * s21.value_usd_per_mwh(40.0))


def test_default_fleet_commitment_fields(default_site):
    s21, s19 = default_site.mining
    assert (s21.ramp_mw_per_hour, s21.min_on_hours, s21.min_off_hours, s21.restart_cost_usd) == (80.0, 1, 1, 150.0)
    assert (s19.ramp_mw_per_hour, s19.min_on_hours, s19.min_off_hours, s19.restart_cost_usd) == (40.0, 2, 1, 100.0)
    (g,) = default_site.gpu
    assert (g.ramp_mw_per_hour, g.min_on_hours, g.restart_cost_usd) == (13.0, 2, 500.0)


def test_optional_keys_take_documented_defaults(tmp_path):
    raw = {"name": "min", "timezone": "UTC", "settlement_point": "HB_WEST", "grid": {"import_limit_mw": 10.0},
           "mining": [{"name": "f", "capacity_mw": 5.0, "efficiency_j_per_th": 20.0}],
           "gpu": [{"name": "g", "gpus": 100, "kw_per_gpu": 1.0}]}
    site = optimizer.load_site(write_site(tmp_path, raw))
    f, g = site.mining[0], site.gpu[0]
    assert (site.contract.block_mw, site.contract.price_usd_per_mwh, site.contract.sellback) == (0.0, 0.0, True)
    assert (f.cooling_overhead_fraction, f.pool_fee_fraction, f.min_load_fraction) == (0.0, 0.0, 0.0)
    assert math.isinf(f.ramp_mw_per_hour) and (f.min_on_hours, f.min_off_hours, f.restart_cost_usd) == (0, 0, 0.0)
    assert (g.pue, g.committed_gpus, g.spot_utilization) == (1.0, 0, 1.0)
    assert g.committed_mw == 0.0 and g.flexible_mw == pytest.approx(0.1)


def test_site_is_frozen(default_site):
    with pytest.raises(dataclasses.FrozenInstanceError):
        default_site.grid.import_limit_mw = 1.0            # type: ignore[misc]


# ---------------------------------------------------------------------------------------------------------
# Boundary values that are valid


@pytest.mark.parametrize("edit", [
    put(("mining", 0, "min_load_fraction"), 1.0),
    put(("mining", 0, "min_load_fraction"), 0),
    put(("gpu", 0, "committed_gpus"), 32000),                      # every GPU committed: 51 MW <= 200 MW
    put(("mining", 0, "min_on_hours"), 0),
    both(put(("grid", "import_limit_mw"), 29.9625),                # committed load exactly at the limit
         put(("contract", "block_mw"), 0.0)),
    both(put(("contract", "sellback"), False), put(("contract", "block_mw"), 200.0)),   # block = import limit
    both(put(("contract", "sellback"), False), put(("contract", "block_mw"), 0.0)),
    put(("grid", "import_limit_mw"), 200),                          # an integer where a float is expected
], ids=["min_load_1", "min_load_0", "all_committed", "min_on_0", "committed_at_limit", "no_sellback_block_at_limit",
        "no_sellback_no_block", "int_for_float"])
def test_boundary_values_are_accepted(tmp_path, edit):
    raw = copy.deepcopy(DEFAULT_TOML)
    edit(raw)
    optimizer.load_site(write_site(tmp_path, raw))


# ---------------------------------------------------------------------------------------------------------
# Bad inputs: (edit of the default site, dotted field the error names, text of the bad value)

BAD = {
    "unknown_top_level_key": (put(("colour",), "red"), "<top level>", "'colour'"),
    "unknown_key_in_fleet": (rename(("mining", 0, "capacity_mw"), "capacity_mv"), "mining[0]", "'capacity_mv'"),
    "unknown_key_in_second_fleet": (rename(("mining", 1, "efficiency_j_per_th"), "efficiency_j_th"), "mining[1]",
                                    "'efficiency_j_th'"),
    "unknown_key_in_gpu": (rename(("gpu", 0, "committed_gpus"), "commited_gpus"), "gpu[0]", "'commited_gpus'"),
    "unknown_key_in_grid": (put(("grid", "export_limit_mw"), 5.0), "grid", "'export_limit_mw'"),
    "unknown_key_in_contract": (put(("contract", "sell_back"), True), "contract", "'sell_back'"),
    "string_for_number": (put(("mining", 0, "capacity_mw"), "80"), "mining[0].capacity_mw", "'80'"),
    "bool_for_number": (put(("mining", 1, "capacity_mw"), True), "mining[1].capacity_mw", "True"),
    "bool_for_integer": (put(("gpu", 0, "gpus"), True), "gpu[0].gpus", "True"),
    "float_for_integer": (put(("gpu", 0, "min_on_hours"), 2.5), "gpu[0].min_on_hours", "2.5"),
    "string_for_bool": (put(("contract", "sellback"), "yes"), "contract.sellback", "'yes'"),
    "number_for_string": (put(("mining", 0, "name"), 7), "mining[0].name", "7"),
    "empty_name": (put(("gpu", 0, "name"), ""), "gpu[0].name", "''"),
    "nan_number": (put(("mining", 0, "efficiency_j_per_th"), math.nan), "mining[0].efficiency_j_per_th", "nan"),
    "inf_capacity": (put(("mining", 0, "capacity_mw"), math.inf), "mining[0].capacity_mw", "inf"),
    "zero_capacity": (put(("mining", 0, "capacity_mw"), 0.0), "mining[0].capacity_mw", "0.0"),
    "negative_capacity": (put(("mining", 1, "capacity_mw"), -40.0), "mining[1].capacity_mw", "-40.0"),
    "zero_import_limit": (put(("grid", "import_limit_mw"), 0), "grid.import_limit_mw", "0"),
    "zero_gpus": (put(("gpu", 0, "gpus"), 0), "gpu[0].gpus", "0"),
    "zero_kw_per_gpu": (put(("gpu", 0, "kw_per_gpu"), 0.0), "gpu[0].kw_per_gpu", "0.0"),
    "pue_below_one": (put(("gpu", 0, "pue"), 0.9), "gpu[0].pue", "0.9"),
    "min_load_above_one": (put(("mining", 0, "min_load_fraction"), 1.5), "mining[0].min_load_fraction", "1.5"),
    "min_load_negative": (put(("mining", 1, "min_load_fraction"), -0.1), "mining[1].min_load_fraction", "-0.1"),
    "gpu_min_load_above_one": (put(("gpu", 0, "min_load_fraction"), 2), "gpu[0].min_load_fraction", "2"),
    "negative_ramp": (put(("mining", 1, "ramp_mw_per_hour"), -5.0), "mining[1].ramp_mw_per_hour", "-5.0"),
    "zero_ramp": (put(("gpu", 0, "ramp_mw_per_hour"), 0.0), "gpu[0].ramp_mw_per_hour", "0.0"),
    "negative_min_on_hours": (put(("mining", 0, "min_on_hours"), -1), "mining[0].min_on_hours", "-1"),
    "negative_min_off_hours": (put(("mining", 1, "min_off_hours"), -2), "mining[1].min_off_hours", "-2"),
    "negative_restart_cost": (put(("gpu", 0, "restart_cost_usd"), -500.0), "gpu[0].restart_cost_usd", "-500.0"),
    "pool_fee_above_limit": (put(("mining", 0, "pool_fee_fraction"), 0.9), "mining[0].pool_fee_fraction", "0.9"),
    "negative_block": (put(("contract", "block_mw"), -1.0), "contract.block_mw", "-1.0"),
    "committed_above_gpus": (put(("gpu", 0, "committed_gpus"), 40000), "gpu[0].committed_gpus", "40000"),
    "negative_committed": (put(("gpu", 0, "committed_gpus"), -1), "gpu[0].committed_gpus", "-1"),
    "committed_load_above_import_limit": (put(("grid", "import_limit_mw"), 20.0), "gpu.committed_gpus", "29.962"),
    "duplicate_fleet_names": (put(("mining", 1, "name"), "s21-pro"), "name", "s21-pro"),
    "duplicate_name_across_kinds": (put(("gpu", 0, "name"), "s19j-pro"), "name", "s19j-pro"),
    "unknown_time_zone": (put(("timezone",), "America/Dallas"), "timezone", "'America/Dallas'"),
    "time_zone_with_space": (put(("timezone",), "America/Chicago "), "timezone", "'America/Chicago '"),
    "missing_top_level_name": (drop(("name",)), "name", "missing"),
    "missing_timezone": (drop(("timezone",)), "timezone", "missing"),
    "missing_grid": (drop(("grid",)), "grid", "missing"),
    "missing_import_limit": (drop(("grid", "import_limit_mw")), "grid.import_limit_mw", "missing"),
    "missing_fleet_efficiency": (drop(("mining", 0, "efficiency_j_per_th")), "mining[0].efficiency_j_per_th",
                                 "missing"),
    "missing_fleet_name": (drop(("mining", 1, "name")), "mining[1].name", "missing"),
    "missing_gpu_kw": (drop(("gpu", 0, "kw_per_gpu")), "gpu[0].kw_per_gpu", "missing"),
    "mining_not_an_array": (put(("mining",), 5), "mining", "5"),
    "grid_not_a_table": (put(("grid",), 200), "grid", "200"),
    "no_sellback_partial_block": (put(("contract", "sellback"), False), "contract.block_mw", "180"),
    "no_sellback_block_100": (both(put(("contract", "sellback"), False), put(("contract", "block_mw"), 100.0)),
                              "contract.block_mw", "100"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_site_raises_input_error_naming_file_field_and_value(tmp_path, case):
    edit, field, value = BAD[case]
    raw = copy.deepcopy(DEFAULT_TOML)
    edit(raw)
    path = write_site(tmp_path, raw, f"{case}.toml")
    with pytest.raises(InputError) as info:
        optimizer.load_site(path)
    msg = str(info.value)
    assert str(path) in msg
    assert info.value.source == str(path)
    assert info.value.field == field, msg
    assert f"{field}:" in msg
    assert value in msg


def test_bad_site_is_exit_code_2():
    assert InputError("x").exit_code == 2


def test_no_assets(tmp_path):
    raw = copy.deepcopy(DEFAULT_TOML)
    del raw["mining"], raw["gpu"]
    path = write_site(tmp_path, raw)
    with pytest.raises(InputError, match="at least one") as info:
        optimizer.load_site(path)
    assert str(path) in str(info.value)


def test_empty_asset_arrays_are_no_assets():
    raw = copy.deepcopy(DEFAULT_TOML)
    raw["mining"], raw["gpu"] = [], []
    with pytest.raises(InputError, match="at least one"):
        optimizer.site_from_dict(raw, source="mem.toml")


@pytest.mark.parametrize("text", [
    'name = "x"\n[grid\nimport_limit_mw = 1\n',
    'name = "x"\nname = "y"\n',
    'name = \n',
    'timezone = America/Chicago\n',
], ids=["unclosed_table", "duplicate_key", "missing_value", "bare_string"])
def test_invalid_toml(tmp_path, text):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(InputError, match="not valid TOML") as info:
        optimizer.load_site(path)
    assert str(info.value).startswith(f"{path}: ")


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(to_toml(DEFAULT_TOML).replace("west-texas-200", "caf\xe9").encode("latin-1"))
    with pytest.raises(InputError, match="not valid TOML") as info:
        optimizer.load_site(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(InputError, match="cannot read") as info:
        optimizer.load_site(path)
    assert str(path) in str(info.value)


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(InputError, match="cannot read") as info:
        optimizer.load_site(tmp_path)
    assert str(tmp_path) in str(info.value)


@pytest.mark.parametrize("tz", ["America", "Etc"])
def test_time_zone_that_is_a_tzdata_folder(tmp_path, tz):
    raw = copy.deepcopy(DEFAULT_TOML)
    raw["timezone"] = tz
    path = write_site(tmp_path, raw)
    with pytest.raises(InputError) as info:
        optimizer.load_site(path)
    assert info.value.field == "timezone" and repr(tz) in str(info.value)


def test_site_from_dict_names_its_source():
    raw = copy.deepcopy(DEFAULT_TOML)
    raw["mining"][0]["capacity_mw"] = -1.0
    with pytest.raises(InputError) as info:
        optimizer.site_from_dict(raw, source="inline-site")
    assert str(info.value) == "inline-site: mining[0].capacity_mw: expected a positive number, got -1.0"
