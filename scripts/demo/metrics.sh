#!/bin/sh
# Extracts the best epoch of a simulated training log as JSON. usage: metrics.sh LOG
set -eu
awk '{ split($3, m, "="); if (m[2] > best) { best = m[2]; epoch = substr($1, 7) } }
  END { printf "{\"best_mask_map\": %.4f, \"best_epoch\": %d}\n", best, epoch }' "$1"
