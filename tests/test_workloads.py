"""AI workloads: demand shapes checked against the real traces, power-cap curves against the Zeus measurements
and by hand, and every kind of bad jobs, curve or demand input raising ``InputError`` naming file, row and field."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from optimizer import InputError
from optimizer import workloads as w
from optimizer.data import resource_dir

CHICAGO = "America/Chicago"
REPO = Path(__file__).resolve().parent.parent          # examples/ is not in the wheel: read it from the repo


def local_day(day: str, freq: str = "1h") -> pd.DatetimeIndex:
    """Interval starts of one local (Chicago) calendar day."""
    start = pd.Timestamp(day, tz=CHICAGO)
    end = pd.Timestamp(pd.Timestamp(day) + pd.Timedelta(days=1), tz=CHICAGO)
    return pd.date_range(start, end, freq=freq, inclusive="left")


def weekday_profile(shape: np.ndarray, day: int) -> np.ndarray:
    """The 24 hours of one day of a 168-hour shape, divided by that day's mean."""
    d = shape.reshape(7, 24)[day]
    return d / d.mean()


# ---------------------------------------------------------------------------------------------------------
# Demand shapes: truths from the shipped traces (data/SOURCE.md, "AI workloads")


@pytest.mark.parametrize("name", w.PROFILE_NAMES)
def test_every_shape_has_168_values_with_mean_one(name):
    s = w.hour_of_week_shape(name)
    assert s.shape == (168,)
    assert s.mean() == pytest.approx(1.0, abs=1e-12)
    assert np.isfinite(s).all() and (s > 0).all()


def test_azure_shape_peaks_about_1_3x_at_13_to_15_utc_and_troughs_about_0_75x():
    s = w.hour_of_week_shape("azure-llm-2024")
    for day in range(5):                                       # every weekday: same hour-of-day shape
        prof = weekday_profile(s, day)
        assert int(np.argmax(prof)) == 14
        assert prof[14] == pytest.approx(1.334, abs=0.005)      # measured in the trace: 1.334
        assert (prof[13:16] > 1.24).all()
        assert prof[[22, 23, 3, 4]].mean() == pytest.approx(0.75, abs=0.01)
        assert int(np.argmin(prof)) == 22


def test_azure_sunday_runs_at_about_56_percent_of_a_weekday_and_saturday_takes_sundays_level():
    days = w.hour_of_week_shape("azure-llm-2024").reshape(7, 24).mean(axis=1)
    assert days[6] / days[:5].mean() == pytest.approx(0.557, abs=0.005)
    assert days[5] == pytest.approx(days[6])


def test_azure_shape_reproduces_the_real_trace_hour_by_hour():
    """Each real hour against the shape scaled to that trace's 6-day mean: within 6% on average (WAPE, 5.1%)."""
    trace = pd.read_csv(resource_dir("data") / w.AZURE_FILE)
    ts = pd.DatetimeIndex(pd.to_datetime(trace["timestamp_utc"], utc=True))
    assert ts[0] == pd.Timestamp("2024-05-12T00:00Z") and len(ts) == 144     # Sunday .. Friday
    requests = trace["requests"].to_numpy(dtype=float)
    shape = w.hour_of_week_shape("azure-llm-2024")
    fitted = shape[ts.day_of_week * 24 + ts.hour]
    fitted = fitted * requests.mean() / fitted.mean()
    wape = np.abs(fitted - requests).sum() / requests.sum()
    assert wape < 0.06
    assert np.abs(requests.mean() - requests).sum() / requests.sum() > 0.15         # a flat profile: 3x worse


def test_burstgpt_weekends_about_0_6x_and_its_clock_is_turned_to_utc():
    s = w.hour_of_week_shape("burstgpt")
    local = np.roll(s, w.BURSTGPT_UTC_OFFSET_HOURS).reshape(7, 24)    # back to the trace's UTC+8 clock
    assert local[5:].mean() == pytest.approx(0.61, abs=0.03)          # Sat + Sun against a weekly mean of 1
    prof = local[2] / local[2].mean()
    assert int(np.argmax(prof)) in (15, 16)                           # campus afternoon, local clock
    assert prof[5:8].max() < 0.1                                      # 05-07 local: nearly nobody
    assert int(np.argmax(weekday_profile(s, 2))) in (7, 8)            # the same peak is 07-08 UTC


def test_burstgpt_levels_follow_the_trace_day_by_day():
    parts = w.shape_parts("burstgpt")
    trace = pd.read_csv(resource_dir("data") / w.BURSTGPT_FILE)
    daily = trace.groupby("day_index").agg(dow=("day_of_week_inferred", "first"),
                                           total=("requests_conversation", "sum"))
    assert len(daily) == 61 and int(daily["total"].sum()) == int(trace["requests_conversation"].sum())
    raw = daily.groupby("dow")["total"].mean()
    raw = raw / raw.mean()
    np.testing.assert_allclose(parts.day_level, raw.to_numpy(), atol=0.07)    # detrending moves them a little
    assert parts.day_level[5] == min(parts.day_level)                         # Saturday is the quietest day
    # the documented method, recomputed: each day over its centred 7-day mean, median per weekday
    ratio = daily["total"] / daily["total"].rolling(7, center=True).mean()
    level = ratio.groupby(daily["dow"]).median()
    np.testing.assert_allclose(parts.day_level, (level / level.mean()).to_numpy(), rtol=1e-12)
    assert parts.day_level[0] == pytest.approx(1.097, abs=0.002)              # raw mean would give 1.16
    # the last two weeks are quieter than the first six (the drift the detrending removes)
    assert daily["total"][-14:].mean() < 0.75 * daily["total"][:-14].mean()


def test_unknown_shape_names_the_shipped_ones():
    with pytest.raises(InputError, match="azure-llm-2024, burstgpt, flat"):
        w.hour_of_week_shape("netflix")


# ---------------------------------------------------------------------------------------------------------
# demand_fraction


@pytest.mark.parametrize(("day", "hours"), [("2024-03-10", 23), ("2024-11-03", 25), ("2024-07-01", 24)])
def test_demand_fraction_gives_one_value_per_interval_on_dst_days(day, hours):
    assert len(w.demand_fraction(local_day(day), "azure-llm-2024", 0.7)) == hours
    assert len(w.demand_fraction(local_day(day, "15min"), "azure-llm-2024", 0.7)) == 4 * hours


def test_demand_fraction_looks_up_the_utc_hour_of_week():
    shape = w.hour_of_week_shape("azure-llm-2024")
    t = pd.DatetimeIndex([pd.Timestamp("2023-07-24T09:00-05:00")])       # Monday 14:00 UTC
    assert w.demand_fraction(t, "azure-llm-2024", 0.7)[0] == pytest.approx(0.7 * shape[14])
    t = pd.DatetimeIndex([pd.Timestamp("2023-07-30T20:00-05:00")])       # Sunday local = Monday 01:00 UTC
    assert w.demand_fraction(t, "azure-llm-2024", 0.5)[0] == pytest.approx(0.5 * shape[1])


def test_demand_fraction_over_a_utc_week_averages_the_mean_utilization_and_quarters_repeat_their_hour():
    week = pd.date_range("2023-07-24T00:00Z", periods=168, freq="1h")
    hourly = w.demand_fraction(week, "burstgpt", 0.7)
    assert hourly.mean() == pytest.approx(0.7, abs=1e-12)
    quarters = w.demand_fraction(pd.date_range("2023-07-24T00:00Z", periods=672, freq="15min"), "burstgpt", 0.7)
    np.testing.assert_array_equal(quarters, np.repeat(hourly, 4))
    np.testing.assert_array_equal(w.demand_fraction(week, "flat", 0.7), np.full(168, 0.7))


def test_demand_fraction_exceeds_one_at_azure_peaks_with_the_default_utilization():
    week = pd.date_range("2023-07-24T00:00Z", periods=168, freq="1h")
    d = w.demand_fraction(week, "azure-llm-2024", 0.7)
    assert d.max() == pytest.approx(0.7 * w.hour_of_week_shape("azure-llm-2024").max())
    assert (d > 1).sum() == 10                              # Monday to Thursday around 13-15 UTC
    assert np.minimum(d, 1).mean() == pytest.approx(0.696, abs=0.001)


def test_demand_fraction_with_a_user_shape_rescales_it_to_mean_one():
    shape = np.r_[np.full(84, 2.0), np.full(84, 6.0)]
    d = w.demand_fraction(pd.date_range("2023-07-24T00:00Z", periods=168, freq="1h"), shape, 0.8)
    np.testing.assert_allclose(d, np.r_[np.full(84, 0.4), np.full(84, 1.2)])


def test_demand_fraction_from_an_hourly_series_at_15_minutes_and_back():
    idx = pd.date_range("2023-07-24T00:00Z", periods=3, freq="1h")
    s = pd.Series([0.2, 0.4, 0.9], index=idx)
    quarters = pd.date_range("2023-07-23T19:00-05:00", periods=12, freq="15min")   # the same 3 hours, local
    np.testing.assert_allclose(w.demand_fraction(quarters, s), np.repeat([0.2, 0.4, 0.9], 4))
    q = pd.Series(np.arange(8) / 10, index=pd.date_range("2023-07-24T00:00Z", periods=8, freq="15min"))
    np.testing.assert_allclose(w.demand_fraction(idx[:2], q), [0.15, 0.55])
    with pytest.raises(InputError, match="no value for 2023-07-24T03:00:00"):
        w.demand_fraction(pd.date_range("2023-07-24T00:00Z", periods=4, freq="1h"), s)


@pytest.mark.parametrize(("times", "profile", "mu", "match"), [
    (pd.date_range("2023-07-24", periods=3, freq="1h"), "flat", 0.5, "no time zone"),
    (pd.date_range("2023-07-24", periods=3, freq="30min", tz="UTC"), "flat", 0.5, "hourly or 15-minute"),
    (pd.date_range("2023-07-24", periods=3, freq="1h", tz="UTC"), "flat", 1.5, r"in \[0, 1\]"),
    (pd.date_range("2023-07-24", periods=3, freq="1h", tz="UTC"), "flat", float("nan"), r"in \[0, 1\]"),
    (pd.date_range("2023-07-24", periods=3, freq="1h", tz="UTC"), "flat", None, r"in \[0, 1\]"),
    (pd.date_range("2023-07-24", periods=3, freq="1h", tz="UTC"), np.ones(24), 0.5, "168 hour-of-week"),
    (pd.date_range("2023-07-24", periods=3, freq="1h", tz="UTC"), np.r_[-1.0, np.ones(167)], 0.5, "hour 0"),
    (pd.date_range("2023-07-24", periods=3, freq="1h", tz="UTC"),
     pd.Series([0.5] * 3, index=pd.date_range("2023-07-24", periods=3, freq="1h", tz="UTC")), 0.7,
     "already holds demand fractions"),
])
def test_demand_fraction_rejects_bad_inputs(times, profile, mu, match):
    with pytest.raises(InputError, match=match):
        w.demand_fraction(times, profile, mu)


# ---------------------------------------------------------------------------------------------------------
# read_demand_file


def test_read_demand_file_csv_and_parquet(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("timestamp,demand_fraction\n2023-07-24T01:00:00-05:00,1.2\n2023-07-24T00:00:00-05:00,0.5\n")
    s = w.read_demand_file(p)
    assert s.name == "demand_fraction" and str(s.index.tz) == "UTC" and s.attrs["source"] == str(p)
    assert list(s.index) == [pd.Timestamp("2023-07-24T05:00Z"), pd.Timestamp("2023-07-24T06:00Z")]
    assert list(s) == [0.5, 1.2]
    q = tmp_path / "d.parquet"
    pd.DataFrame({"timestamp": s.index, "demand_fraction": s.to_numpy()}).to_parquet(q)
    pd.testing.assert_series_equal(w.read_demand_file(q), s, check_index_type=False, check_freq=False)
    assert list(w.demand_fraction(s.index, s)) == [0.5, 1.2]


@pytest.mark.parametrize(("body", "field", "match"), [
    ("timestamp,demand\n2023-07-24T00:00Z,0.5\n", None, "missing column"),
    ("timestamp,demand_fraction\n2023-07-24T00:00,0.5\n", "timestamp", "row 1.*no UTC offset"),
    ("timestamp,demand_fraction\n2023-07-24T00:00Z,0.5\n2023-07-24T01:00Z,nan\n", "demand_fraction", "row 2"),
    ("timestamp,demand_fraction\n2023-07-24T00:00Z,70\n", "demand_fraction", "row 1.*percentage"),
    ("timestamp,demand_fraction\n2023-07-24T00:00Z,-0.1\n", "demand_fraction", "row 1"),
    ("timestamp,demand_fraction\n2023-07-24T00:00Z,0.5\n2023-07-23T19:00-05:00,0.5\n", "timestamp",
     "row 2.*appears twice"),
    ("timestamp,demand_fraction\n2023-07-24T00:00Z,0.5\n2023-07-24T00:30Z,0.5\n", "timestamp", "smallest step"),
    ("timestamp,demand_fraction\n2023-07-24T00:00Z,0.5\n2023-07-24T01:10Z,0.5\n2023-07-24T02:10Z,0.5\n",
     "timestamp", "not on the series"),
])
def test_read_demand_file_faults_name_row_and_field(tmp_path, body, field, match):
    p = tmp_path / "demand.csv"
    p.write_text(body)
    with pytest.raises(InputError, match=match) as err:
        w.read_demand_file(p)
    assert err.value.source == str(p) and err.value.field == field


def test_read_demand_file_missing_and_wrong_type(tmp_path):
    with pytest.raises(InputError, match="not found"):
        w.read_demand_file(tmp_path / "none.csv")
    with pytest.raises(InputError, match="unsupported"):
        w.read_demand_file(tmp_path / "d.xlsx")


# ---------------------------------------------------------------------------------------------------------
# Power-cap curves: the Zeus measurements


def test_zeus_medians_by_cap_reproduce_the_published_checks():
    v100 = w.zeus_medians("V100", "cap").set_index("power_fraction")["throughput_fraction"]
    a40 = w.zeus_medians("A40", "cap").set_index("power_fraction")["throughput_fraction"]
    assert v100[0.6] == pytest.approx(0.90, abs=0.005)        # 150 W of 250 W
    assert a40[0.5] == pytest.approx(0.75, abs=0.005)         # 150 W of 300 W
    assert v100[0.4] == pytest.approx(0.73, abs=0.01) and a40[1 / 3] == pytest.approx(0.35, abs=0.01)
    assert w.fit_from_zeus("V100", "cap").throughput(0.6) == pytest.approx(0.899, abs=0.001)


def test_a_v100_capped_at_150w_draws_about_68_percent_of_its_uncapped_power():
    """Why the shipped curves use measured power: the workloads mostly draw below the cap, so a 60% cap saves
    only about 32% of the power they really draw."""
    z = pd.read_csv(resource_dir("data") / w.ZEUS_FILE)
    key = ["gpu", "workload", "batch_size", "optimizer"]
    full = z[z["power_cap_w"] == z["max_cap_in_sweep_w"]].set_index(key)["avg_power_w"]
    z = z.join(full.rename("full_w"), on=key)
    at150 = z[(z["gpu"] == "V100") & (z["power_cap_w"] == 150)]
    assert len(at150) == 68
    assert (at150["avg_power_w"] / at150["full_w"]).median() == pytest.approx(0.68, abs=0.01)


@pytest.mark.parametrize("gpu", ["V100", "A40", "P100", "RTX6000"])
def test_fit_is_concave_monotone_and_never_above_the_medians(gpu):
    for basis in ("measured", "cap"):
        curve = w.fit_from_zeus(gpu, basis)
        med = w.zeus_medians(gpu, basis)
        inside = med[med["power_fraction"] >= curve.min_power_fraction - 1e-12]
        fitted = curve.throughput(inside["power_fraction"].to_numpy())
        assert (fitted <= inside["throughput_fraction"].to_numpy() + 1e-12).all()
        assert (np.abs(fitted - inside["throughput_fraction"].to_numpy()) < 0.015).all()   # only noise removed
        slopes = [s for s, _ in curve.cuts()]
        assert all(s >= 0 for s in slopes) and slopes == sorted(slopes, reverse=True)
        assert curve.points[-1] == (1.0, 1.0)


@pytest.mark.parametrize("gpu", ["V100", "A40"])
def test_fit_starts_at_the_most_energy_efficient_median(gpu):
    med = w.zeus_medians(gpu)
    ratio = med["throughput_fraction"] / med["power_fraction"]
    assert w.fit_from_zeus(gpu).min_power_fraction == pytest.approx(med["power_fraction"][ratio.idxmax()])


@pytest.mark.parametrize("gpu", ["V100", "A40"])
def test_measured_power_fit_is_more_conservative_than_the_cap_fit(gpu):
    measured, cap = w.fit_from_zeus(gpu), w.fit_from_zeus(gpu, "cap")
    lo = max(measured.min_power_fraction, cap.min_power_fraction)
    grid = np.linspace(lo, 1.0, 61)
    assert (measured.throughput(grid) <= cap.throughput(grid) + 1e-12).all()
    assert measured.min_power_fraction >= cap.min_power_fraction


def test_shipped_curves_are_the_fits_rounded():
    fits = {"v100": w.fit_from_zeus("V100"), "a40": w.fit_from_zeus("A40")}
    fits["h100-default"] = w.lower_envelope(fits.values(), "h100-default")
    assert set(w.SHIPPED_CURVES) == set(fits) and w.DEFAULT_CURVE in w.SHIPPED_CURVES
    for name, fit in fits.items():
        shipped = w.SHIPPED_CURVES[name].points
        assert len(shipped) == len(fit.points)
        np.testing.assert_allclose(np.array(shipped), np.array(fit.points), atol=5e-5)


def test_shipped_hand_checks():
    v100, a40, h100 = (w.SHIPPED_CURVES[k] for k in ("v100", "a40", "h100-default"))
    assert v100.throughput(0.7) == pytest.approx(0.90, abs=0.001)      # 150 W cap: 0.90 at 68% of the draw
    assert v100.throughput(0.6) == pytest.approx(0.824, abs=0.001)
    assert a40.throughput(0.75) == pytest.approx(0.921, abs=0.001)
    assert (v100.min_power_fraction, a40.min_power_fraction, h100.min_power_fraction) == (0.55, 0.7, 0.7)
    grid = np.linspace(0.7, 1.0, 301)
    np.testing.assert_allclose(h100.throughput(grid), np.minimum(v100.throughput(grid), a40.throughput(grid)),
                               atol=1e-4)
    assert h100.throughput(0.75) == pytest.approx(0.921, abs=0.001)     # shed 25% of GPU power: keep 92%


# ---------------------------------------------------------------------------------------------------------
# PowerCapCurve: cuts, inverse, validation


@pytest.mark.parametrize("name", sorted(w.SHIPPED_CURVES))
def test_cuts_reproduce_the_curve_exactly(name):
    c = w.SHIPPED_CURVES[name]
    cuts = np.array(c.cuts())
    assert len(cuts) == len(c.points) - 1
    for x, y in c.points:                                    # at the breakpoints
        assert (cuts[:, 0] * x + cuts[:, 1]).min() == pytest.approx(y, abs=1e-12)
    grid = np.linspace(c.min_power_fraction, 1.0, 997)       # and between them
    envelope = (cuts[:, :1] * grid + cuts[:, 1:]).min(axis=0)
    np.testing.assert_allclose(envelope, c.throughput(grid), atol=1e-12)


def test_perspective_cuts_scale_with_gpus_on():
    """N GPUs at P GPU-full-power units in total: the cuts bound T by N * throughput(P / N)."""
    c = w.SHIPPED_CURVES["h100-default"]
    n, p = 1000.0, 800.0
    bound = min(s * p + i * n for s, i in c.cuts())
    assert bound == pytest.approx(n * c.throughput(p / n))


@pytest.mark.parametrize("name", sorted(w.SHIPPED_CURVES))
def test_inverse_is_the_inverse(name):
    c = w.SHIPPED_CURVES[name]
    p = np.linspace(c.min_power_fraction, 1.0, 101)
    np.testing.assert_allclose(c.min_power_for(c.throughput(p)), p, atol=1e-12)
    t = np.linspace(c.min_throughput_fraction, 1.0, 101)
    np.testing.assert_allclose(c.throughput(c.min_power_for(t)), t, atol=1e-12)


def test_by_hand_curve():
    c = w.PowerCapCurve(((0.5, 0.7), (0.8, 0.97), (0.9, 1.0), (1.0, 1.0)))
    assert c.throughput(0.65) == pytest.approx(0.835)
    assert c.min_power_for(1.0) == pytest.approx(0.9)         # the flat end: least power for full throughput
    assert c.min_power_for(0.835) == pytest.approx(0.65)
    np.testing.assert_allclose(c.cuts(), [(0.9, 0.25), (0.3, 0.73), (0.0, 1.0)], atol=1e-12)
    assert w.PowerCapCurve(((1.0, 1.0),)).cuts() == ((0.0, 1.0),)
    with pytest.raises(ValueError, match="outside"):
        c.throughput(0.4)
    with pytest.raises(ValueError, match="outside"):
        c.min_power_for(0.5)


@pytest.mark.parametrize(("raw", "field", "match"), [
    ([[0.5, 0.8], [0.9, 1.0]], "gpu[0].power_cap_curve[1]", r"last point must be \[1.0, 1.0\]"),
    ([[0.5, 0.8], [0.5, 0.9], [1.0, 1.0]], "gpu[0].power_cap_curve[1]", "must increase"),
    ([[0.5, 0.9], [0.8, 0.85], [1.0, 1.0]], "gpu[0].power_cap_curve[1]", "must not fall"),
    ([[0.5, 0.6], [0.8, 0.7], [1.0, 1.0]], "gpu[0].power_cap_curve[1]", "concave"),
    ([[0.0, 0.5], [1.0, 1.0]], "gpu[0].power_cap_curve[0]", r"in \(0, 1\]"),
    ([[0.5, 1.2], [1.0, 1.0]], "gpu[0].power_cap_curve[0]", r"in \(0, 1\]"),
    ([[0.5, float("nan")], [1.0, 1.0]], "gpu[0].power_cap_curve[0]", "finite"),
    ([[0.5, True], [1.0, 1.0]], "gpu[0].power_cap_curve[0]", "finite"),
    ([[0.5], [1.0, 1.0]], "gpu[0].power_cap_curve[0]", "pair"),
    ([], "gpu[0].power_cap_curve", "list of"),
    (0.8, "gpu[0].power_cap_curve", "list of"),
    ("h200", "gpu[0].power_cap_curve", "unknown power-cap curve 'h200'; shipped: v100, a40, h100-default"),
])
def test_curve_from_points_faults_name_file_field_and_value(raw, field, match):
    with pytest.raises(InputError, match=match) as err:
        w.curve_from_points(raw, "site.toml", "gpu[0].power_cap_curve")
    assert err.value.source == "site.toml" and err.value.field == field


def test_curve_from_points_accepts_pairs_and_names():
    c = w.curve_from_points([[0.6, 0.85], [1, 1]], "site.toml", "gpu[0].power_cap_curve")
    assert c.points == ((0.6, 0.85), (1.0, 1.0)) and c.throughput(0.8) == pytest.approx(0.925)
    assert w.curve_from_points("h100-default", "site.toml", "x") is w.SHIPPED_CURVES["h100-default"]


def test_concave_minorant_by_hand():
    # non-decreasing first: 1.02 at 0.8 is lowered to 1.0 (the point on its right); then it is concave as it is
    assert w.concave_minorant([0.6, 0.8, 1.0], [0.9, 1.02, 1.0]) == [(0.6, 0.9), (0.8, 1.0), (1.0, 1.0)]
    # already concave: kept
    pts = w.concave_minorant([0.5, 0.7, 0.9, 1.0], [0.6, 0.9, 0.97, 1.0])     # slopes 1.5, 0.35, 0.3
    np.testing.assert_allclose(pts, [(0.5, 0.6), (0.7, 0.9), (0.9, 0.97), (1.0, 1.0)])
    # a convex kink at 0.9 (slope 0.1 on its left, 0.9 on its right): 0.7 is lowered onto the extension of the
    # last segment, 0.91 - 0.9 * 0.2 = 0.73, then 0.5 onto 0.73 - 0.9 * 0.2 = 0.55; all collinear, one segment
    pts = w.concave_minorant([0.5, 0.7, 0.9, 1.0], [0.6, 0.9, 0.91, 1.0])
    np.testing.assert_allclose(pts, [(0.5, 0.55), (1.0, 1.0)])
    # the price of keeping the top as measured: a steep last segment pulls everything left onto its line
    np.testing.assert_allclose(w.concave_minorant([0.6, 0.8, 0.9, 1.0], [0.8, 0.95, 0.9, 1.0]),
                               [(0.6, 0.6), (1.0, 1.0)])


def test_site_power_fraction():
    assert w.site_power_fraction(0.7) == pytest.approx(1 - 0.55 * 0.3)
    np.testing.assert_allclose(w.site_power_fraction(np.array([1.0, 0.5]), 1.0), [1.0, 0.5])


# ---------------------------------------------------------------------------------------------------------
# Jobs

HEADER = ("name,cluster,gpus,gpu_hours,release,deadline,min_run_hours,value_usd_per_gpu_hour,"
          "late_penalty_usd_per_gpu_hour")
GOOD = "train,h100,512,2000,2023-07-25T00:00:00-05:00,2023-07-26T00:00:00-05:00,1,1.3,0.5"


def write_jobs(tmp_path, *rows: str, header: str = HEADER):
    p = tmp_path / "jobs.csv"
    p.write_text("\n".join([header, *rows]) + "\n")
    return p


def test_example_job_mix_loads_and_fits_the_default_site(default_site):
    spot = {g.name: g.gpus - g.committed_gpus for g in default_site.gpu}
    assert spot == {"h100": 13_200}
    jobs = w.read_jobs(REPO / "examples" / "jobs-west-texas.csv", spot)
    assert len(jobs) == 11 and all(j.can_finish_on_time for j in jobs)
    assert sum(j.gpu_hours for j in jobs) == 203_500
    assert min(j.release for j in jobs) == pd.Timestamp("2023-07-25T05:00Z")
    assert max(j.deadline for j in jobs) == pd.Timestamp("2023-08-01T05:00Z")
    assert sum(j.gpus for j in jobs if j.release.day == 27 and j.deadline.day > 27) <= 13_200


def test_read_jobs_parses_a_row(tmp_path):
    (job,) = w.read_jobs(write_jobs(tmp_path, "# a comment", GOOD), ["h100"])
    assert job == w.Job("train", "h100", 512, 2000.0, pd.Timestamp("2023-07-25T05:00Z"),
                        pd.Timestamp("2023-07-26T05:00Z"), 1.0, 1.3, 0.5)
    assert job.window_hours == 24 and job.max_gpu_hours_on_time == 512 * 24 and job.can_finish_on_time
    assert str(job.release.tz) == "UTC"


def test_cluster_column_is_optional_and_blank_means_any(tmp_path):
    header = HEADER.replace("cluster,", "")
    (job,) = w.read_jobs(write_jobs(tmp_path, GOOD.replace("h100,", ""), header=header), ["a", "b"])
    assert job.cluster is None
    (job,) = w.read_jobs(write_jobs(tmp_path, GOOD.replace("h100", "")), ["a"])
    assert job.cluster is None


def test_a_job_that_cannot_finish_on_time_is_accepted_and_flagged(tmp_path):
    row = GOOD.replace(",2000,", ",20000,")                  # 512 GPUs x 24 h = 12,288 GPU-hours at most
    (job,) = w.read_jobs(write_jobs(tmp_path, row), ["h100"])
    assert not job.can_finish_on_time
    assert job.unavoidable_late_gpu_hours == pytest.approx(20000 - 12288)


@pytest.mark.parametrize(("row", "field", "match"), [
    (GOOD.replace("2023-07-26T00:00:00-05:00", "2023-07-24T00:00:00-05:00"), "deadline", "not after release"),
    (GOOD.replace("2023-07-26T00:00:00-05:00", "2023-07-25T00:00:00-05:00"), "deadline", "not after release"),
    (GOOD.replace(",2000,", ",nan,"), "gpu_hours", "finite number, got 'nan'"),
    (GOOD.replace(",2000,", ",inf,"), "gpu_hours", "finite number, got 'inf'"),
    (GOOD.replace(",2000,", ",0,"), "gpu_hours", "> 0"),
    (GOOD.replace(",2000,", ",lots,"), "gpu_hours", "expected a number, got 'lots'"),
    (GOOD.replace("h100", "a100"), "cluster", "unknown cluster 'a100'; the site's GPU clusters: h100"),
    (GOOD.replace(",512,", ",512.5,"), "gpus", "whole number, got '512.5'"),
    (GOOD.replace(",512,", ",0,"), "gpus", "whole number >= 1"),
    (GOOD.replace(",512,", ",20000,"), "gpus", "exceed the 13200 uncommitted GPUs"),
    (GOOD.replace(",1,1.3", ",-1,1.3"), "min_run_hours", ">= 0, got '-1'"),
    (GOOD.replace(",1.3,", ",-0.1,"), "value_usd_per_gpu_hour", ">= 0"),
    (GOOD.replace(",0.5", ","), "late_penalty_usd_per_gpu_hour", "missing"),
    (GOOD.replace("train", " "), "name", "missing"),
    (GOOD.replace("2023-07-25T00:00:00-05:00", "2023-07-25T00:00:00"), "release", "no UTC offset"),
    (GOOD.replace("2023-07-25T00:00:00-05:00", "2023-07-32T00:00:00Z"), "release", "not ISO 8601"),
])
def test_each_job_fault_names_file_row_field_and_value(tmp_path, row, field, match):
    p = write_jobs(tmp_path, "# first line of data is row 1", GOOD.replace("train", "ok"), row)
    with pytest.raises(InputError, match=match) as err:
        w.read_jobs(p, {"h100": 13_200})
    assert err.value.source == str(p) and err.value.field == field
    assert "row 2 (line 4)" in str(err.value)


def test_duplicate_job_names_name_both_rows(tmp_path):
    with pytest.raises(InputError, match=r"row 2 \(line 3\): job name 'train' is used twice \(first at row 1") as e:
        w.read_jobs(write_jobs(tmp_path, GOOD, GOOD), ["h100"])
    assert e.value.field == "name"


@pytest.mark.parametrize(("header", "rows", "match"), [
    (HEADER.replace(",gpu_hours", ""), [], "missing: gpu_hours"),
    (HEADER + ",colour", [], "unknown or repeated: colour"),
    (HEADER, [GOOD + ",extra"], r"row 1 \(line 2\): expected 9 fields, got 10"),
])
def test_job_file_structure_faults(tmp_path, header, rows, match):
    with pytest.raises(InputError, match=match):
        w.read_jobs(write_jobs(tmp_path, *rows, header=header), ["h100"])


def test_job_file_not_found_or_empty_or_no_clusters(tmp_path):
    with pytest.raises(InputError, match="not found"):
        w.read_jobs(tmp_path / "none.csv", ["h100"])
    (tmp_path / "empty.csv").write_text("# nothing\n")
    with pytest.raises(InputError, match="empty jobs file"):
        w.read_jobs(tmp_path / "empty.csv", ["h100"])
    assert w.read_jobs(write_jobs(tmp_path), ["h100"]) == ()
    with pytest.raises(InputError, match="no GPU cluster") as err:
        w.read_jobs(write_jobs(tmp_path, GOOD.replace("h100", "")), [])
    assert err.value.field == "cluster"


def test_jobs_from_records_take_toml_values_and_name_the_table_entry():
    rec = {"name": "train", "cluster": "h100", "gpus": 512, "gpu_hours": 2000, "min_run_hours": 1,
           "release": dt.datetime(2023, 7, 25, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
           "deadline": "2023-07-26T05:00:00Z", "value_usd_per_gpu_hour": 1.3, "late_penalty_usd_per_gpu_hour": 0.5}
    (job,) = w.jobs_from_records([rec], "site.toml", ["h100"])
    assert job.release == pd.Timestamp("2023-07-25T05:00Z") and job.deadline == pd.Timestamp("2023-07-26T05:00Z")
    cases = [({"gpus": 2.0}, "jobs[1].gpus", "whole number"),
             ({"gpus": True}, "jobs[1].gpus", "whole number"),
             ({"gpu_hours": math.inf}, "jobs[1].gpu_hours", "finite"),
             ({"release": dt.datetime(2023, 7, 25)}, "jobs[1].release", "no UTC offset"),
             ({"deadline": dt.date(2023, 7, 26)}, "jobs[1].deadline", "ISO 8601"),
             ({"name": "train"}, "jobs[1].name", "used twice"),
             ({"colour": "red"}, "jobs[1]", "unknown key"),
             ({"value_usd_per_gpu_hour": "1.3"}, None, None)]
    for change, field, match in cases:
        second = {**rec, "name": "other", **change}
        if match is None:
            assert w.jobs_from_records([rec, second], "site.toml", ["h100"])[1].value_usd_per_gpu_hour == 1.3
            continue
        with pytest.raises(InputError, match=match) as err:
            w.jobs_from_records([rec, second], "site.toml", ["h100"])
        assert err.value.source == "site.toml" and err.value.field == field, change
    with pytest.raises(InputError, match="array of tables") as err:
        w.jobs_from_records(rec, "site.toml", ["h100"])


def test_job_built_in_code_is_validated():
    t0 = pd.Timestamp("2023-07-25T05:00Z")
    with pytest.raises(InputError, match="tz-aware"):
        w.Job("j", None, 1, 1.0, pd.Timestamp("2023-07-25"), t0)
    with pytest.raises(InputError, match="not after release"):
        w.Job("j", None, 1, 1.0, t0, t0)
    with pytest.raises(InputError, match="finite"):
        w.Job("j", None, 1, float("nan"), t0, t0 + pd.Timedelta(hours=1))
    job = w.Job("j", None, 1, 1.0, t0.tz_convert(CHICAGO), t0 + pd.Timedelta(hours=1))
    assert str(job.release.tz) == "UTC"


def test_progress_carries_across_days(tmp_path):
    jobs = w.read_jobs(REPO / "examples" / "jobs-west-texas.csv", ["h100"])
    left = w.remaining_jobs(jobs, [w.JobProgress("pretrain-13b-1t", 20_000.0),
                                   w.JobProgress("batch-infer-0725", 12_000.0)])
    assert len(left) == len(jobs) - 1
    assert next(j for j in left if j.name == "pretrain-13b-1t").gpu_hours == pytest.approx(34_700.0)
    with pytest.raises(InputError, match="unknown job 'nope'"):
        w.remaining_jobs(jobs, [w.JobProgress("nope", 1.0)])
    with pytest.raises(InputError, match="exceed"):
        w.remaining_jobs(jobs, [w.JobProgress("finetune-70b-a", 3000.0)])
    with pytest.raises(InputError, match="twice"):
        w.remaining_jobs(jobs, [w.JobProgress("finetune-70b-a", 1.0), w.JobProgress("finetune-70b-a", 1.0)])
    with pytest.raises(InputError, match=">= 0"):
        w.JobProgress("finetune-70b-a", -1.0)


def test_job_intervals_round_release_and_deadline_inwards():
    t0 = pd.Timestamp("2023-07-25T05:00Z")
    job = w.Job("j", None, 10, 5.0, t0 + pd.Timedelta(minutes=30), t0 + pd.Timedelta(hours=3, minutes=30))
    times = pd.date_range(t0, periods=5, freq="1h")
    available, on_time = w.job_intervals(job, times)
    assert list(available) == [False, True, True, True, True]
    assert list(on_time) == [False, True, True, False, False]
    available, on_time = w.job_intervals(job, pd.date_range(t0, periods=20, freq="15min"))
    assert available.sum() == 18 and on_time.sum() == 12 and not on_time[:2].any() and on_time[2:14].all()


def test_run_on_arrival_runs_full_width_from_release_until_done():
    t0 = pd.Timestamp("2023-07-25T05:00Z")
    jobs = (w.Job("a", None, 100, 250.0, t0 + pd.Timedelta(hours=1), t0 + pd.Timedelta(hours=10)),
            w.Job("b", None, 8, 4.0, t0, t0 + pd.Timedelta(hours=2)))
    hourly = w.run_on_arrival(jobs, pd.date_range(t0, periods=6, freq="1h"))
    assert list(hourly["a"]) == [0, 100, 100, 50, 0, 0]
    assert list(hourly["b"]) == [4, 0, 0, 0, 0, 0]
    quarters = w.run_on_arrival(jobs, pd.date_range(t0, periods=24, freq="15min"))
    assert quarters["a"].sum() * 0.25 == pytest.approx(250.0) and quarters["a"].iloc[4:14].eq(100).all()
    assert quarters["b"].sum() * 0.25 == pytest.approx(4.0) and quarters["b"].iloc[:2].eq(8).all()
