"""Benchmark one default schedule: build, solve (HiGHS time inside), read back, total; median and p95.

Run: python benchmarks/schedule.py [--repeats N] [--day YYYY-MM-DD]
Prints figures and ratios; asserts nothing about time (CI runs it once with --repeats 1 so it cannot rot).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import numpy as np

import optimizer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--day", default="2022-07-20")
    args = ap.parse_args()
    site = optimizer.load_site(optimizer.default_site_path())
    optimizer.schedule(site, day=args.day)                     # warm-up: data caches, imports
    keys = ("build_seconds", "translate_seconds", "solve_seconds", "highs_seconds", "read_seconds", "total_seconds")
    rows = []
    for _ in range(args.repeats):
        s = optimizer.summary(optimizer.schedule(site, day=args.day))
        rows.append([s[k] for k in keys])
    a = np.array(rows) * 1e3
    print(f"default schedule, {args.day}, {args.repeats} repeats (ms)")
    print(f"{'':16}{'median':>10}{'p95':>10}")
    for k, col in zip(keys, a.T, strict=True):
        print(f"{k:16}{np.median(col):10.2f}{np.percentile(col, 95):10.2f}")
    med = np.median(a, axis=0)
    print(f"ratio total / HiGHS: {med[5] / med[3]:.2f}; solve call / HiGHS: {med[2] / med[3]:.2f}")

    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "optimizer.cli", "schedule", "--day", args.day], check=True,
                   capture_output=True)
    print(f"CLI process, start to exit (imports included): {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
