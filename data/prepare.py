"""Rebuild the compact market data shipped in ``data/`` from the raw public sets in ``../shared/data``.

Run from the repository root: ``python data/prepare.py [SHARED_DATA_DIR]``. Provenance is in ``data/SOURCE.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
#: ERCOT day-ahead ancillary services (column order of the shipped file).
AS_SERVICES = ("regup", "regdn", "rrs", "nspin", "ecrs")


def write_day_ahead(shared: Path) -> None:
    """ERCOT day-ahead prices from ERCOT's own annual files (NP4-180-ER ``DAMLZHBSPP_<year>``, NP4-181-ER
    ``DAMASMCPC_<year>``), copied without edits: energy long (``timestamp_utc``, ``settlement_point``,
    ``price_usd_per_mwh``), ancillary services wide (``timestamp_utc`` + one USD/MW-h column per service; ECRS
    empty before its launch). Fails on a duplicate hour or a gap instead of writing a damaged file."""
    da = pd.read_parquet(shared / "ercot" / "ercot_dam_spp_hourly_2021_2024.parquet")
    da = da[["timestamp_utc", "settlement_point", "price_usd_per_mwh"]].sort_values(["timestamp_utc",
                                                                                     "settlement_point"])
    for sp, g in da.groupby("settlement_point"):
        steps = g["timestamp_utc"].diff().dropna().unique()
        if len(steps) != 1 or steps[0] != pd.Timedelta(hours=1) or g["price_usd_per_mwh"].isna().any():
            raise SystemExit(f"day-ahead {sp}: duplicate, missing or empty hours in the source")
    da["settlement_point"] = da["settlement_point"].astype("category")
    da.to_parquet(HERE / "ercot_da_hourly.parquet", index=False, compression="zstd")

    ancillary = pd.read_parquet(shared / "ercot" / "ercot_as_mcpc_dam_hourly_2022_2024.parquet")
    wide = ancillary.pivot(index="timestamp_utc", columns="service", values="price_usd_per_mw_hour")
    steps = wide.index.to_series().diff().dropna().unique()
    if len(steps) != 1 or steps[0] != pd.Timedelta(hours=1):      # (pivot itself fails on a duplicate)
        raise SystemExit("ancillary-service prices: missing hours in the source")
    wide = wide[list(AS_SERVICES)].reset_index()
    wide.columns.name = None
    wide.to_parquet(HERE / "ercot_as_prices_da_hourly.parquet", index=False, compression="zstd")


def main(shared: Path) -> None:
    rt = pd.read_parquet(shared / "ercot" / "ercot_rtm_spp_hubs_hourly_2020_2024.parquet")
    rt.to_parquet(HERE / "ercot_rt_hourly.parquet", index=False, compression="zstd")

    rt15 = pd.read_parquet(shared / "ercot" / "ercot_rtm_spp_hubs_15min_2020_2024.parquet")
    rt15.to_parquet(HERE / "ercot_rt_15min.parquet", index=False, compression="zstd")

    write_day_ahead(shared)

    btc = pd.read_parquet(shared / "bitcoin" / "btc_daily_network_2010_2024.parquet")
    btc = btc[btc["date"] >= "2019-01-01"]
    hp = pd.DataFrame(
        {
            "date": pd.to_datetime(btc["date"]).dt.date,
            "hashprice_usd_per_ph_day": btc["hashprice_usd_per_ph_day"],
            "btc_price_usd": btc["PriceUSD"],
            "network_hashrate_eh_s": btc["HashRate"] / 1e6,
            "fee_share": btc["fee_share"],
        }
    )
    hp.to_parquet(HERE / "hashprice_daily.parquet", index=False, compression="zstd")

    load = pd.read_parquet(shared / "ercot_load" / "ercot_native_load_hourly_2020_2024.parquet")
    load = load[["timestamp_utc", "ERCOT"]].rename(columns={"ERCOT": "ercot_native_load_mw"})
    load.to_parquet(HERE / "ercot_load_hourly.parquet", index=False, compression="zstd")

    lf = pd.read_parquet(shared / "ercot_load" / "ercot_load_forecast_dayahead_hourly_2024.parquet")
    lf = lf[["timestamp_utc", "da_demand_forecast_mw"]]
    lf.to_parquet(HERE / "ercot_load_forecast_da_2024.parquet", index=False, compression="zstd")

    fourcp = pd.read_csv(shared / "ercot_load" / "ercot_4cp_hourly_proxy_2020_2024.csv")
    fourcp.to_csv(HERE / "ercot_4cp_proxy.csv", index=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent.parent / "shared" / "data")


# ---------------------------------------------------------------------------------------------------------
# AI workloads (optimizer/workloads.py): inference demand traces and the Zeus GPU power-cap measurements.
# Provenance: the "AI workloads" section of data/SOURCE.md.


def prepare_ai_workloads(shared: Path) -> None:
    src = shared / "ai_workloads"
    azure = pd.read_csv(src / "llm_inference_hourly_azure2024_conv.csv", dtype={"timestamp_utc": str})
    azure[["timestamp_utc", "requests"]].to_csv(HERE / "ai_demand_azure2024_conv_hourly.csv", index=False)

    burst = pd.read_csv(src / "llm_inference_hourly_burstgpt_v1.csv")
    burst = burst[["trace_hour", "day_index", "hour_of_day_local", "day_of_week_inferred", "requests_conversation"]]
    burst.to_csv(HERE / "ai_demand_burstgpt_hourly.csv", index=False)

    zeus = pd.read_csv(src / "gpu_power_cap_zeus.csv")
    zeus = zeus[["gpu", "workload", "batch_size", "optimizer", "power_cap_w", "max_cap_in_sweep_w", "avg_power_w",
                 "rel_throughput_vs_max_cap"]]
    zeus.to_csv(HERE / "ai_gpu_power_cap_zeus.csv", index=False)


if __name__ == "__main__":
    prepare_ai_workloads(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent.parent / "shared" / "data")
