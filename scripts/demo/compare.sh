#!/bin/sh
# Writes a leaderboard (best mask mAP first) from metrics files. usage: compare.sh OUT METRICS...
set -eu
out=$1; shift
{
  echo "best_mask_map,best_epoch,run"
  for f in "$@"; do
    run=$(basename "$(dirname "$f")")
    tr -d '{}" ' < "$f" | awk -F'[:,]' -v run="$run" '{ printf "%s,%s,\"%s\"\n", $2, $4, run }'
  done | sort -t, -k1,1 -r
} > "$out"
