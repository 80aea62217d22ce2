#!/bin/sh
# Writes a small synthetic "dataset": one line per image with a deterministic difficulty.
# usage: make_dataset.sh SEED IMAGES OUT
set -eu
seed=$1 images=$2 out=$3
awk -v seed="$seed" -v n="$images" 'BEGIN {
  srand(seed);
  for (i = 0; i < n; i++) printf "image_%04d.png objects=%d difficulty=%.3f\n", i, 1 + int(rand() * 6), rand();
}' > "$out"
