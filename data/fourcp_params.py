"""Rebuild ``data/fourcp_params.json``: the 4CP peak model's walk-forward parameters fitted on the shipped ERCOT load.

Run from the repository root after changing the shipped load, the load forecast or the peak model:
``python data/fourcp_params.py``. Each entry is a fresh ``optimizer.fourcp.fit_params`` through one year, keyed by
the digest of exactly the data that fit reads and by the model's constants; ``fit_params`` uses an entry only for
data with the same digest, so a user's own load file that changes a past summer is fitted afresh.
``tests/test_fourcp_cli.py`` checks the file equals a fresh fit.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from optimizer import fourcp
from optimizer.forecast import MarketHistory

HERE = Path(__file__).resolve().parent


def main() -> None:
    t0 = time.perf_counter()
    content = fourcp.params_cache(MarketHistory.shipped("HB_HUBAVG"))
    path = HERE / fourcp.PARAMS_CACHE_FILE
    path.write_text(json.dumps(content, indent=1) + "\n", encoding="utf-8")
    for e in content["entries"]:
        print(f"through {e['through_year']}: correlation {e['day_error_correlation']:.4f}, hour noise "
              f"{e['hour_sd_log']:.5f} (summers {e['summers']}, {e['decisions']} decisions)")
    print(f"wrote {path} in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
