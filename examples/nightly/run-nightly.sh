#!/usr/bin/env bash
# Nightly day-ahead schedule for tomorrow (site time zone), chained from today's schedule.
# Exit codes (from `curtail schedule`): 0 done; 2 bad input; 3 infeasible; 4 no valid solution (nothing
# written); 5 fallback strike-rule schedule written; 6 another run holds the lock. The previous good schedule
# is never overwritten by a failed run.
set -uo pipefail

SITE=${CURTAIL_SITE:-/etc/curtail/site.toml}
PRICES=${CURTAIL_PRICES:-/var/lib/curtail/prices/da-forecast.csv}    # hourly forecast, day + 24 h lookahead
OUT_DIR=${CURTAIL_OUT:-/var/lib/curtail/schedules}
LOG_DIR=${CURTAIL_LOG:-/var/log/curtail}
CURTAIL=${CURTAIL_BIN:-curtail}
TZ_SITE=${CURTAIL_TZ:-America/Chicago}

today=$(TZ=$TZ_SITE date +%F)
tomorrow=$(TZ=$TZ_SITE date -d tomorrow +%F)
mkdir -p "$OUT_DIR" "$LOG_DIR"
state_args=()
[ -f "$OUT_DIR/$today.json" ] && state_args=(--initial-state "$OUT_DIR/$today.json")

"$CURTAIL" schedule --site "$SITE" --prices "$PRICES" --day "$tomorrow" "${state_args[@]}" \
  --out "$OUT_DIR/$tomorrow.json" >>"$LOG_DIR/$tomorrow.log" 2>&1
rc=$?
case $rc in
  0) echo "$(date -Is) ok $tomorrow" >>"$LOG_DIR/nightly.log" ;;
  5) echo "$(date -Is) FALLBACK $tomorrow (see $LOG_DIR/$tomorrow.log)" >>"$LOG_DIR/nightly.log" ;;
  *) echo "$(date -Is) FAILED rc=$rc $tomorrow (see $LOG_DIR/$tomorrow.log)" >>"$LOG_DIR/nightly.log" ;;
esac
exit $rc
