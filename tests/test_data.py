"""Market data loaders: the shipped real ERCOT and hashprice series, and users' own price files."""

from __future__ import annotations

import datetime as dt
import os
import warnings
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

import optimizer
import optimizer.scheduling as scheduling
from optimizer import InputError, data

CHICAGO = "America/Chicago"


def local(ts: str) -> pd.Timestamp:
    return pd.Timestamp(ts, tz=CHICAGO)


def local_window(s: pd.Series, start: str, end: str) -> pd.Series:
    """The part of a UTC-indexed series whose local (Chicago) time is in [start, end)."""
    return s[(s.index >= local(start)) & (s.index < local(end))]


@pytest.fixture(scope="module")
def rt_west() -> pd.Series:
    return optimizer.ercot_prices("HB_WEST")


@pytest.fixture(scope="module")
def da_west() -> pd.Series:
    return optimizer.ercot_prices("HB_WEST", "da")


# ---------------------------------------------------------------------------------------------------------
# Shipped ERCOT prices


def test_rt_hourly_covers_2020_through_2024_local_without_gaps(rt_west):
    idx = rt_west.index
    assert isinstance(idx, pd.DatetimeIndex)
    assert str(idx.tz) == "UTC"
    assert idx[0] == local("2020-01-01 00:00")
    assert idx[-1] == local("2024-12-31 23:00")
    assert len(rt_west) == 43_848                        # 1827 days x 24 h; DST days cancel out
    assert idx.is_monotonic_increasing and idx.is_unique
    assert (idx[1:] - idx[:-1] == pd.Timedelta(hours=1)).all()
    assert rt_west.notna().all() and rt_west.dtype == np.float64
    assert rt_west.name == "price_usd_per_mwh"


@pytest.mark.parametrize("sp", data.settlement_points("rt"))
def test_every_rt_hub_has_the_full_hourly_range(sp):
    s = optimizer.ercot_prices(sp)
    assert len(s) == 43_848 and s.index[0] == local("2020-01-01") and s.index[-1] == local("2024-12-31 23:00")


def test_rt_hourly_is_the_mean_of_the_four_15min_prices(rt_west):
    q = optimizer.ercot_prices("HB_WEST", "rt", "15min")
    assert len(q) == 4 * len(rt_west)
    assert str(q.index.tz) == "UTC"
    hourly = q.groupby(q.index.floor("1h")).mean()
    assert hourly.index.equals(rt_west.index)
    np.testing.assert_allclose(hourly.to_numpy(), rt_west.to_numpy(), atol=0.01, rtol=1e-5)


def test_day_ahead_hb_west_covers_2021_to_2024_local_only(da_west):
    assert str(da_west.index.tz) == "UTC"
    years = set(da_west.index.tz_convert(CHICAGO).year)
    assert years == {2021, 2022, 2023, 2024}
    assert len(da_west) == 8760 * 3 + 8784                     # 2024 is a leap year; DST days net out
    assert da_west.index[0] == local("2021-01-01") and da_west.index[-1] == local("2024-12-31 23:00")
    assert (np.diff(da_west.index) == pd.Timedelta(hours=1)).all()
    assert local_window(da_west, "2020-01-01", "2021-01-01").empty


def test_day_ahead_and_real_time_line_up_in_time(rt_west, da_west):
    """Day-ahead and real-time prices of the same hub agree best with no shift: the timestamps are aligned."""
    rt = rt_west.reindex(da_west.index)

    def corr(lag):
        shifted = rt_west.reindex(da_west.index + pd.Timedelta(hours=lag)).to_numpy()
        return np.corrcoef(np.clip(da_west.to_numpy(), -100, 500), np.clip(shifted, -100, 500))[0, 1]

    assert rt.notna().all()
    assert corr(0) > max(corr(lag) for lag in (-6, -3, -1, 1, 3, 6))


def test_no_shipped_day_ahead_at_15min():
    with pytest.raises(InputError):
        optimizer.ercot_prices("HB_WEST", "da", "15min")


def test_unknown_settlement_point_names_it():
    with pytest.raises(InputError, match="HB_NOWHERE") as info:
        optimizer.ercot_prices("HB_NOWHERE")
    assert "HB_WEST" in str(info.value)          # and lists what exists


def test_known_value_max_hb_west_rt_in_august_2023(rt_west):
    aug = local_window(rt_west, "2023-08-01", "2023-09-01")
    assert len(aug) == 31 * 24
    assert aug.max() == pytest.approx(5219.49, abs=0.01)
    assert aug.idxmax() == local("2023-08-17 19:00")          # the evening peak of 17 Aug 2023


def test_hb_west_has_negative_prices(rt_west):
    assert rt_west.min() < 0
    assert (rt_west < 0).sum() > 1000                          # West Texas wind: thousands of negative hours


def test_winter_storm_uri_prices_near_the_9000_cap(rt_west):
    uri = local_window(rt_west, "2021-02-15", "2021-02-16")
    assert len(uri) == 24
    assert 8500 < uri.max() < 9500
    assert (uri > 8500).sum() >= 6
    assert uri.median() > 5000
    # and far above a normal day a month later
    assert local_window(rt_west, "2021-03-15", "2021-03-16").max() < 1000


def test_shipped_prices_are_within_the_sane_range(rt_west, da_west):
    lo, hi = data.PRICE_SANE_RANGE
    assert rt_west.between(lo, hi).all() and da_west.between(lo, hi).all()


# ---------------------------------------------------------------------------------------------------------
# Which shipped market a day gets


def test_horizon_uses_day_ahead_in_2022(default_site, da_west):
    pin = scheduling.horizon_prices(default_site, dt.date(2022, 7, 20), None, 24)
    assert "day-ahead" in pin.source and pin.lookahead_hours == 24
    assert len(pin.prices) == 48
    assert pin.prices.index[0] == local("2022-07-20")
    np.testing.assert_array_equal(pin.prices.to_numpy(), da_west.reindex(pin.prices.index).to_numpy())


@pytest.mark.parametrize("day", [dt.date(2020, 7, 20), dt.date(2020, 11, 1)])
def test_horizon_uses_real_time_where_no_day_ahead_is_shipped(default_site, rt_west, day):
    pin = scheduling.horizon_prices(default_site, day, None, 24)
    assert "real-time" in pin.source and "day-ahead" not in pin.source
    np.testing.assert_array_equal(pin.prices.to_numpy(), rt_west.reindex(pin.prices.index).to_numpy())


def test_horizon_cuts_lookahead_where_shipped_data_ends(default_site):
    pin = scheduling.horizon_prices(default_site, dt.date(2024, 12, 31), None, 24)
    assert pin.lookahead_hours == 0 and len(pin.prices) == 24
    assert "lookahead cut to 0 h" in pin.source
    assert pin.prices.notna().all()


def test_horizon_outside_shipped_data_is_input_error(default_site):
    with pytest.raises(InputError, match="2019-06-01"):
        scheduling.horizon_prices(default_site, dt.date(2019, 6, 1), None, 24)


# ---------------------------------------------------------------------------------------------------------
# Hashprice: only what is known before the day


def test_hashprice_series_is_daily_2019_to_2024():
    s = optimizer.hashprice_series()
    assert s.index[0] == pd.Timestamp("2019-01-01") and s.index[-1] == pd.Timestamp("2024-12-31")
    assert len(s) == 2192 and s.index.is_unique and (s > 0).all()


def _ten_am_day_before(day: dt.date) -> pd.Timestamp:
    return pd.Timestamp(dt.datetime.combine(day - dt.timedelta(days=1), dt.time(10), ZoneInfo("America/Chicago")))


def test_hashprice_known_at_ten_the_day_before_is_two_utc_days_back():
    # 2022-07-19 10:00 CDT = 15:00 UTC: UTC day 07-19 has not ended, 07-18 has: its value is the latest known
    s = optimizer.hashprice_series()
    value, date = data.hashprice_known_at(_ten_am_day_before(dt.date(2022, 7, 20)))
    assert date == dt.date(2022, 7, 18)
    assert value == s[pd.Timestamp("2022-07-18")]
    assert value != s[pd.Timestamp("2022-07-19")]        # not yet published at the decision: look-ahead


def test_hashprice_known_at_midnight_utc_includes_the_day_just_ended():
    s = optimizer.hashprice_series()
    assert data.hashprice_known_at(pd.Timestamp("2022-07-20T00:00Z")) == (s[pd.Timestamp("2022-07-19")],
                                                                          dt.date(2022, 7, 19))
    assert data.hashprice_known_at(pd.Timestamp("2022-07-19T23:59Z"))[1] == dt.date(2022, 7, 18)


def test_hashprice_known_at_never_looks_ahead_on_any_day():
    """Every day the data can serve (exhaustive, not sampled): a 10:00 local decision on D-1 knows D-2."""
    s = optimizer.hashprice_series()
    day = dt.date(2019, 1, 3)
    while day <= dt.date(2025, 1, 1):
        value, date = data.hashprice_known_at(_ten_am_day_before(day), day=day)
        assert date == day - dt.timedelta(days=2), day
        assert value == s[pd.Timestamp(date)], day
        day += dt.timedelta(days=1)


def test_hashprice_known_at_reads_a_user_series_in_any_order():
    """A user's daily series given newest first (or shuffled) is read by date, not by position."""
    s = pd.Series([70.0, 60.0, 50.0], index=pd.to_datetime(["2025-03-03", "2025-03-02", "2025-03-01"]))
    t = pd.Timestamp("2025-03-03T15:00Z")                     # 2025-03-02 ended 15 h ago; 03-03 has not ended
    assert data.hashprice_known_at(t, s) == (60.0, dt.date(2025, 3, 2))
    assert data.hashprice_known_at(t, s.sample(frac=1.0, random_state=1)) == (60.0, dt.date(2025, 3, 2))


def test_stale_hashprice_is_refused():
    t = _ten_am_day_before(dt.date(2025, 1, 7))
    assert data.hashprice_known_at(t, day=dt.date(2025, 1, 7))[1] == dt.date(2024, 12, 31)       # 7 days: used
    with pytest.raises(InputError, match="2024-12-31") as info:
        data.hashprice_known_at(_ten_am_day_before(dt.date(2025, 6, 1)), day=dt.date(2025, 6, 1))
    assert info.value.field == "hashprice" and "stale" in str(info.value)


def test_no_hashprice_before_the_first_day():
    with pytest.raises(InputError, match="hashprice"):
        data.hashprice_known_at(_ten_am_day_before(dt.date(2019, 1, 1)))


def test_schedule_uses_the_hashprice_known_at_its_decision_time(default_site):
    ds = optimizer.schedule(default_site, day="2022-07-20")
    assert ds.attrs["hashprice_usd_per_ph_day"] == optimizer.hashprice_series()[pd.Timestamp("2022-07-18")]
    assert "2022-07-18" in ds.attrs["hashprice_source"]


# ---------------------------------------------------------------------------------------------------------
# User price files

HEADER = "timestamp,price_usd_per_mwh\n"


def hours(n: int, start: str = "2022-07-20T05:00:00Z", freq: str = "1h") -> pd.DatetimeIndex:
    return pd.date_range(pd.Timestamp(start), periods=n, freq=freq)


def write_csv(path, index: pd.DatetimeIndex, prices) -> None:
    rows = [f"{t.strftime('%Y-%m-%dT%H:%M:%SZ')},{p}" for t, p in zip(index, prices, strict=True)]
    path.write_text(HEADER + "\n".join(rows) + "\n")


def csv_with_row(tmp_path, row: str, name: str = "prices.csv"):
    """A CSV whose third data row is ``row``."""
    path = tmp_path / name
    path.write_text(HEADER + "2022-07-20T05:00:00Z,10\n2022-07-20T06:00:00Z,20\n" + row + "\n"
                    "2022-07-20T08:00:00Z,30\n")
    return path


def test_csv_round_trip(tmp_path):
    idx = hours(48)
    values = np.round(np.linspace(-20.5, 3000.25, 48), 4)
    path = tmp_path / "p.csv"
    write_csv(path, idx, values)
    s = optimizer.read_price_file(path)
    assert str(s.index.tz) == "UTC" and s.index.name == "timestamp"
    assert s.index.equals(idx)
    np.testing.assert_array_equal(s.to_numpy(), values)
    assert s.dtype == np.float64 and s.attrs["source"] == str(path)


def test_csv_with_offsets_is_converted_to_utc_and_sorted(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text(HEADER + "2022-07-20T02:00:00-05:00,7\n2022-07-20T00:00:00-05:00,5\n"
                             "2022-07-20T08:00:00+02:00,6\n")
    s = optimizer.read_price_file(path)
    assert list(s.index) == list(hours(3))
    assert list(s) == [5.0, 6.0, 7.0]


def test_parquet_round_trip_with_tz_aware_timestamps(tmp_path):
    idx = hours(30).tz_convert(CHICAGO)
    values = np.arange(30, dtype=float) * 1.5 - 3
    path = tmp_path / "p.parquet"
    pd.DataFrame({"timestamp": idx, "price_usd_per_mwh": values}).to_parquet(path)
    s = optimizer.read_price_file(path)
    assert str(s.index.tz) == "UTC" and s.index.equals(hours(30))
    np.testing.assert_array_equal(s.to_numpy(), values)


def test_parquet_round_trip_with_iso_strings(tmp_path):
    idx = hours(5)
    path = tmp_path / "p.parquet"
    pd.DataFrame({"timestamp": idx.strftime("%Y-%m-%dT%H:%M:%SZ"), "price_usd_per_mwh": [1, 2, 3, 4, 5]}
                 ).to_parquet(path)
    s = optimizer.read_price_file(path)
    assert s.index.equals(idx) and list(s) == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_csv_and_parquet_of_the_same_prices_agree(tmp_path):
    idx, values = hours(24), np.linspace(10, 200, 24)
    write_csv(tmp_path / "p.csv", idx, values)
    pd.DataFrame({"timestamp": idx, "price_usd_per_mwh": values}).to_parquet(tmp_path / "p.parquet")
    a = optimizer.read_price_file(tmp_path / "p.csv")
    b = optimizer.read_price_file(tmp_path / "p.parquet")
    pd.testing.assert_series_equal(a, b, check_index_type=False, check_exact=False, rtol=1e-12)


def test_gzipped_csv(tmp_path):
    path = tmp_path / "p.csv.gz"
    pd.DataFrame({"timestamp": hours(3).strftime("%Y-%m-%dT%H:%M:%SZ"), "price_usd_per_mwh": [1.0, 2.0, 3.0]}
                 ).to_csv(path, index=False)
    assert list(optimizer.read_price_file(path)) == [1.0, 2.0, 3.0]


BAD_ROWS = {
    "nan_price": ("2022-07-20T07:00:00Z,", "price_usd_per_mwh", "nan"),
    "nan_text_price": ("2022-07-20T07:00:00Z,NaN", "price_usd_per_mwh", "nan"),
    "inf_price": ("2022-07-20T07:00:00Z,inf", "price_usd_per_mwh", "inf"),
    "minus_inf_price": ("2022-07-20T07:00:00Z,-inf", "price_usd_per_mwh", "-inf"),
    "text_price": ("2022-07-20T07:00:00Z,abc", "price_usd_per_mwh", "'abc'"),
    "thousands_separator": ('2022-07-20T07:00:00Z,"1,000"', "price_usd_per_mwh", "'1,000'"),
    "timestamp_without_offset": ("2022-07-20T07:00:00,5", "timestamp", "'2022-07-20T07:00:00'"),
    "timestamp_empty": (",5", "timestamp", "nan"),
    "non_iso_timestamp": ("July 20 2022 07:00Z,5", "timestamp", "'July 20 2022 07:00Z'"),
    "day_first_timestamp": ("20/07/2022 07:00Z,5", "timestamp", "'20/07/2022 07:00Z'"),
    "impossible_date": ("2022-02-30T07:00:00Z,5", "timestamp", "'2022-02-30T07:00:00Z'"),
    "duplicate_timestamp": ("2022-07-20T05:00:00Z,5", "timestamp", "2022-07-20T05:00:00"),
    "duplicate_in_other_offset": ("2022-07-20T00:00:00-05:00,5", "timestamp", "2022-07-20T05:00:00"),
    "price_above_range": ("2022-07-20T07:00:00Z,25000", "price_usd_per_mwh", "25000"),
    "price_below_range": ("2022-07-20T07:00:00Z,-10001", "price_usd_per_mwh", "-10001"),
}


@pytest.mark.parametrize("case", BAD_ROWS, ids=list(BAD_ROWS))
def test_bad_csv_row_names_file_row_and_value(tmp_path, case):
    row, field, value = BAD_ROWS[case]
    path = csv_with_row(tmp_path, row)
    with pytest.raises(InputError) as info:
        optimizer.read_price_file(path)
    msg = str(info.value)
    assert info.value.source == str(path) and msg.startswith(f"{path}: ")
    assert info.value.field == field
    assert "row 3" in msg
    assert value in msg


def test_prices_at_the_edges_of_the_sane_range_are_accepted_with_a_warning(tmp_path):
    path = tmp_path / "p.csv"
    write_csv(path, hours(2), [-10000, 20000])
    with pytest.warns(data.PriceWarning, match="row 1") as caught:
        assert list(optimizer.read_price_file(path)) == [-10000.0, 20000.0]
    assert str(path) in str(caught[0].message) and "2 such rows" in str(caught[0].message)


def test_price_above_the_ercot_cap_of_its_year_warns_naming_row_and_value(tmp_path):
    path = tmp_path / "p.csv"
    write_csv(path, hours(3), [30, 6000, 40])                   # 2022: cap 5,000
    with pytest.warns(data.PriceWarning, match="row 2: price 6000") as caught:
        optimizer.read_price_file(path)
    assert "5000" in str(caught[0].message)


def test_price_within_the_2021_cap_does_not_warn(tmp_path):
    path = tmp_path / "p.csv"
    write_csv(path, hours(3, "2021-02-15T06:00:00Z"), [8000, 9000, -250])     # Uri: cap 9,000; floor -250
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list(optimizer.read_price_file(path)) == [8000.0, 9000.0, -250.0]


def test_missing_column(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("timestamp,price\n2022-07-20T05:00:00Z,10\n")
    with pytest.raises(InputError, match="price_usd_per_mwh") as info:
        optimizer.read_price_file(path)
    assert str(path) in str(info.value) and "price" in str(info.value)


def test_parquet_naive_timestamps(tmp_path):
    path = tmp_path / "p.parquet"
    pd.DataFrame({"timestamp": hours(3).tz_localize(None), "price_usd_per_mwh": [1.0, 2.0, 3.0]}).to_parquet(path)
    with pytest.raises(InputError, match="no UTC offset") as info:
        optimizer.read_price_file(path)
    assert str(path) in str(info.value)


def test_parquet_bad_price_names_row(tmp_path):
    path = tmp_path / "p.parquet"
    pd.DataFrame({"timestamp": hours(3), "price_usd_per_mwh": [1.0, np.nan, 3.0]}).to_parquet(path)
    with pytest.raises(InputError, match="row 2") as info:
        optimizer.read_price_file(path)
    assert str(path) in str(info.value) and "nan" in str(info.value)


@pytest.mark.parametrize("name", ["p.txt", "p.xlsx", "p.json", "p"])
def test_unsupported_suffix(tmp_path, name):
    path = tmp_path / name
    path.write_text(HEADER + "2022-07-20T05:00:00Z,10\n")
    with pytest.raises(InputError, match="unsupported") as info:
        optimizer.read_price_file(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("name", ["nope.csv", "nope.parquet"])
def test_missing_price_file(tmp_path, name):
    path = tmp_path / name
    with pytest.raises(InputError, match="not found") as info:
        optimizer.read_price_file(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", [os.urandom(4096), b"", b"PAR1" + os.urandom(100)],
                         ids=["random_bytes", "empty", "bad_footer"])
def test_corrupted_parquet(tmp_path, content):
    path = tmp_path / "p.parquet"
    path.write_bytes(content)
    with pytest.raises(InputError, match="cannot read price file") as info:
        optimizer.read_price_file(path)
    assert str(path) in str(info.value)


def test_empty_csv(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("")
    with pytest.raises(InputError) as info:
        optimizer.read_price_file(path)
    assert str(path) in str(info.value)


# ---------------------------------------------------------------------------------------------------------
# A user price file against the horizon


def test_price_file_covering_the_horizon_is_used(tmp_path, default_site):
    values = np.linspace(15, 90, 48)
    path = tmp_path / "p.csv"
    write_csv(path, hours(48), values)
    s = optimizer.read_price_file(path)
    pin = scheduling.horizon_prices(default_site, dt.date(2022, 7, 20), s, 24)
    assert pin.source == str(path)
    np.testing.assert_array_equal(pin.prices.to_numpy(), values)
    ds = optimizer.schedule(default_site, s, day="2022-07-20")
    np.testing.assert_allclose(ds["price_usd_per_mwh"].to_numpy(), values[:24])
    assert ds.attrs["price_source"] == str(path)


def test_price_file_missing_an_hour_names_the_hour(tmp_path, default_site):
    idx = hours(48).delete(5)                                   # 2022-07-20T10:00Z missing
    path = tmp_path / "gap.csv"
    write_csv(path, idx, np.full(47, 30.0))
    s = optimizer.read_price_file(path)
    with pytest.raises(InputError, match="2022-07-20T10:00:00") as info:
        scheduling.horizon_prices(default_site, dt.date(2022, 7, 20), s, 24)
    assert str(path) in str(info.value)
    with pytest.raises(InputError, match="2022-07-20T10:00:00"):
        optimizer.schedule(default_site, s, day="2022-07-20")


def test_price_file_missing_a_lookahead_hour(tmp_path, default_site):
    idx = hours(48).delete(40)                                  # inside the lookahead
    path = tmp_path / "gap.csv"
    write_csv(path, idx, np.full(47, 30.0))
    s = optimizer.read_price_file(path)
    with pytest.raises(InputError, match="2022-07-21T21:00:00"):
        optimizer.schedule(default_site, s, day="2022-07-20")
    ds = optimizer.schedule(default_site, s, day="2022-07-20", lookahead_hours=6)    # not needed any more
    assert ds.sizes["time"] == 24 and ds.attrs["lookahead_hours"] == 6


def test_price_file_at_15_minutes_is_rejected_naming_the_timestamp(tmp_path, default_site):
    path = tmp_path / "q.csv"
    write_csv(path, hours(48 * 4, freq="15min"), np.full(192, 30.0))
    s = optimizer.read_price_file(path)
    with pytest.raises(InputError, match="2022-07-20T05:15:00") as info:
        scheduling.horizon_prices(default_site, dt.date(2022, 7, 20), s, 24)
    assert "on the hour" in str(info.value) and str(path) in str(info.value)
    with pytest.raises(InputError, match="2022-07-20T05:15:00"):
        optimizer.schedule(default_site, s, day="2022-07-20")


def test_price_file_for_another_day(tmp_path, default_site):
    path = tmp_path / "p.csv"
    write_csv(path, hours(24, "2022-07-18T05:00:00Z"), np.full(24, 30.0))
    s = optimizer.read_price_file(path)
    with pytest.raises(InputError, match="2022-07-20T05:00:00") as info:     # the day's first hour
        optimizer.schedule(default_site, s, day="2022-07-20")
    assert str(path) in str(info.value)


def test_price_series_without_time_zone(default_site):
    s = pd.Series(np.full(48, 30.0), index=hours(48).tz_localize(None))
    with pytest.raises(InputError, match="time zone"):
        optimizer.schedule(default_site, s, day="2022-07-20")
