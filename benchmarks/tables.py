"""The markdown tables of docs/backtest.md's results, from the CSV files the study scripts append to.

Run: python benchmarks/tables.py [--results benchmarks/results] [--write docs/backtest.md]

Reads ``policies.csv`` (benchmarks/policies.py), ``fourcp_value.csv`` (benchmarks/fourcp_value.py) and
``flexibility.csv`` (benchmarks/flexibility.py) where present and prints one table per file; computes nothing
the scripts did not measure except differences and ratios of their columns. ``--write FILE`` puts each table
between the markers ``<!-- benchmarks/tables.py: NAME -->`` and ``<!-- end NAME -->`` of FILE instead. Value capture is
(profit - always-on) / (perfect - always-on) of the same run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

POLICIES = ("mpc", "schedule", "schedule+strike", "strike")


def policies_table(frame: pd.DataFrame) -> list[str]:
    """Site x year x 4CP: each policy's value capture, mpc's profit short of perfect foresight, 4CP charges,
    restarts, and whether mpc is at least as good as the strike rule."""
    out = ["| site | year | 4CP | " + " | ".join(POLICIES) + " | perfect - mpc M$ | mpc - strike M$ | "
           "4CP charge mpc / perfect M$ | restarts mpc / perfect |",
           "|---|---|---|" + "---|" * (len(POLICIES) + 4)]
    for (site, year, fourcp), g in frame.groupby(["site", "year", "fourcp"]):
        by = g.set_index("policy")
        cap = [f"{float(by.loc[p, 'value_capture']):.3f}" if p in by.index else "-" for p in POLICIES]
        gap = (by.loc["perfect", "profit_usd"] - by.loc["mpc", "profit_usd"]) / 1e6
        vs = (by.loc["mpc", "profit_usd"] - by.loc["strike", "profit_usd"]) / 1e6
        charge = (f"{by.loc['mpc', 'fourcp_charge_usd'] / 1e6:.2f} / {by.loc['perfect', 'fourcp_charge_usd'] / 1e6:.2f}"
                  if fourcp == "on" else "-")
        out.append(f"| {site} | {year} | {fourcp} | " + " | ".join(cap) + f" | {gap:.2f} | {vs:+.2f} | {charge} | "
                   f"{int(by.loc['mpc', 'restarts'])} / {int(by.loc['perfect', 'restarts'])} |")
    return out


def flexibility_table(frame: pd.DataFrame) -> list[str]:
    """Per period run (a year, or the months given): mpc's profit and value capture per variant, and the value of
    each flexibility (mpc profit with it less without it, over the same period)."""
    out = []
    for (_, start, end), g in frame.groupby(["year", "start", "end"]):
        mpc = g[g.policy == "mpc"].set_index("variant")
        out += [f"{start} .. {end}:", "",
                "| variant | mpc profit M$ | value capture | 4CP charge M$ | AI revenue M$ | restarts |",
                "|---|---|---|---|---|---|"]
        for v, r in mpc.iterrows():
            out.append(f"| {v} | {r.profit_usd / 1e6:.2f} | {float(r.value_capture):.3f} | "
                       f"{r.fourcp_charge_usd / 1e6:.2f} | {r.ai_revenue_usd / 1e6:.2f} | {int(r.restarts)} |")
        pairs = (("demand profile", "all", "no-demand"), ("power capping", "all", "no-capping"),
                 ("deferrable jobs", "jobs", "jobs-on-arrival"), ("demand profile and capping together", "all", "none"),
                 ("both, energy only", "all-4cp-off", "none-4cp-off"))
        out += ["", "| flexibility | with | without | value M$ (mpc) |", "|---|---|---|---|"]
        for name, a, b in pairs:
            if a in mpc.index and b in mpc.index:
                value = (mpc.loc[a, "profit_usd"] - mpc.loc[b, "profit_usd"]) / 1e6
                out.append(f"| {name} | {a} | {b} | {value:+.2f} |")
        out.append("")
    return out


def tables(results: Path) -> dict[str, list[str]]:
    out = {}
    if (path := results / "policies.csv").exists():
        out["policies"] = policies_table(pd.read_csv(path))
    if (path := results / "fourcp_value.csv").exists():
        import fourcp_value

        out["fourcp_value"] = fourcp_value.table(pd.read_csv(path).to_dict("records"))
    if (path := results / "flexibility.csv").exists():
        out["flexibility"] = flexibility_table(pd.read_csv(path))
    return out


def write(doc: Path, found: dict[str, list[str]]) -> None:
    text = doc.read_text()
    for name, lines in found.items():
        start, end = f"<!-- benchmarks/tables.py: {name} -->", f"<!-- end {name} -->"
        if start not in text or end not in text:
            raise SystemExit(f"{doc}: no markers {start} ... {end}")
        head, rest = text.split(start, 1)
        text = head + start + "\n" + "\n".join(lines).rstrip() + "\n" + end + rest.split(end, 1)[1]
    doc.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=Path(__file__).resolve().parent / "results")
    ap.add_argument("--write", type=Path, help="a markdown file with the tables' markers")
    args = ap.parse_args()
    found = tables(args.results)
    if args.write:
        write(args.write, found)
        print(f"wrote {', '.join(found)} into {args.write}")
        return
    for lines in found.values():
        print("\n".join(lines), end="\n\n")


if __name__ == "__main__":
    main()
