"""Sweeps on Dask: a real scheduler and two real worker processes on localhost give the serial results."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from typer.testing import CliRunner

import optimizer
from optimizer import sweep as sw
from optimizer.cli import app

POLICIES = ("schedule+strike", "strike", "always-on", "perfect")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def dask_cluster():
    """`dask scheduler` and two `dask worker` processes (one thread each) on 127.0.0.1, stopped afterwards."""
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], **quiet)]
    for _ in range(2):
        procs.append(subprocess.Popen([sys.executable, "-m", "dask", "worker", addr, "--nthreads", "1",
                                       "--nworkers", "1", "--no-dashboard", "--host", "127.0.0.1"], **quiet))
    from dask.distributed import Client

    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                with Client(addr, timeout=5) as c:
                    if len(c.scheduler_info()["workers"]) == 2:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("dask cluster did not come up in 60 s")
            time.sleep(0.5)
        yield addr
    finally:
        try:                                     # the scheduler tells its workers to close: faster than signals
            with Client(addr, timeout=5) as c:
                c.shutdown()
        except (OSError, TimeoutError):
            pass
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def _scenarios():
    return sw.grid([optimizer.default_site_path()], [45.0, 90.0], ["2022-07-19:2022-07-20"], ["naive"])


def test_sweep_on_a_real_dask_cluster_equals_the_serial_run(dask_cluster):
    scen = _scenarios()
    distributed = sw.sweep(scen, scheduler=dask_cluster, policies=POLICIES)
    serial = sw.sweep(scen, serial=True, policies=POLICIES)
    assert distributed.sizes == {"scenario": 2, "policy": len(POLICIES)}
    for m in sw.METRICS:
        np.testing.assert_allclose(distributed[m].to_numpy(), serial[m].to_numpy(), rtol=1e-9, err_msg=m)
    np.testing.assert_allclose(distributed["value_capture"], serial["value_capture"], rtol=1e-9)
    # a higher hashprice makes mining worth more: more MWh mined by the perfect policy
    mined = distributed["mined_mwh"].sel(policy="perfect").to_numpy()
    assert mined[1] > mined[0]
    assert list(distributed["hashprice_usd_per_ph_day"].values) == [45.0, 90.0]
    # the best policy is the most profitable one run, perfect foresight (the yardstick) aside
    for i in range(2):
        profit = distributed["profit_usd"].isel(scenario=i).drop_sel(policy="perfect")
        best = str(profit["policy"].values[int(np.argmax(profit.to_numpy()))])
        assert str(distributed["best_policy"].values[i]) == best


def test_sweep_writes_netcdf_and_the_cli_prints_a_table(tmp_path, dask_cluster):
    out = tmp_path / "sweep.nc"
    res = CliRunner().invoke(app, ["sweep", "--hashprices", "60", "--periods", "2022-07-20:2022-07-20",
                                   "--forecasts", "naive", "--policies", "strike,perfect", "--scheduler", dask_cluster,
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "west-texas-200 | 60.0" in res.output
    import xarray as xr

    with xr.open_dataset(out) as ds:
        assert ds.sizes["scenario"] == 1 and list(ds["policy"].values) == ["strike", "perfect"]


@pytest.mark.parametrize("args", [["--periods", "22"], ["--hashprices", "-3"], ["--policies", "nope"],
                                  ["--sites", "missing.toml"]])
def test_sweep_bad_input_is_exit_2(args):
    res = CliRunner().invoke(app, ["sweep", "--serial", *args])
    assert res.exit_code == 2, res.output


def test_longest_scenarios_go_first_and_results_keep_the_given_order(dask_cluster):
    """Two days before one: the two-day scenario is handed out first, yet the Dataset follows the grid's order and
    equals the serial run scenario by scenario (rule-based policies only: this is about orchestration)."""
    rules = ("strike", "always-on")
    scen = sw.grid([optimizer.default_site_path()], [60.0], ["2022-07-20:2022-07-20", "2022-07-19:2022-07-20"],
                   ["naive"])
    assert [sw.cost(s, POLICIES) for s in scen] == [4.0, 8.0]                # days x policies
    assert sw.cost(scen[1], ("mpc", "strike")) == 2 * 25.0                   # an hourly re-planner counts 24
    with sw.Pool(scheduler=dask_cluster) as pool:
        first = sw.sweep(scen, pool=pool, policies=rules)
        again = sw.sweep(scen[:1], pool=pool, policies=rules)
        assert pool.workers == 2
    serial = sw.sweep(scen, serial=True, policies=rules)
    assert list(first["period"].values) == ["2022-07-20:2022-07-20", "2022-07-19:2022-07-20"]
    assert list(first["days"].values) == [1, 2]
    for m in sw.METRICS:
        np.testing.assert_allclose(first[m].to_numpy(), serial[m].to_numpy(), rtol=1e-9, err_msg=m)
        np.testing.assert_allclose(again[m].to_numpy(), serial[m].to_numpy()[:1], rtol=1e-9, err_msg=m)
    assert first["mined_mwh"].sel(policy="always-on").values.tolist() == [24 * 120.0, 48 * 120.0]  # 120 MW of ASICs
    # both sweeps ran on the pool's two worker processes, and say when each scenario started
    workers = set(_worker_names(dask_cluster))
    assert set(first["worker"].values) | set(again["worker"].values) <= workers and len(workers) == 2
    assert (first["start_seconds"].values >= 0).all() and first["start_seconds"].values.max() < 60
    assert (first["cpu_seconds"].values > 0).all()
    assert first.attrs["scheduler"] == dask_cluster and first.attrs["workers"] == 2


def _worker_names(address: str) -> list[str]:
    from dask.distributed import Client

    with Client(address, timeout=10) as c:
        return list(c.run(lambda: f"{socket.gethostname()}:{os.getpid()}").values())


def test_a_sweep_of_perfect_foresight_alone_names_no_best_policy():
    """Perfect foresight is the yardstick, never the best policy: alone, the best policy is empty (it crashed)."""
    ds = sw.sweep(_scenarios()[:1], serial=True, policies=("perfect",))
    assert [str(x) for x in ds["best_policy"].values] == [""]
