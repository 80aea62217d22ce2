#!/bin/sh
# Simulates a training run: per-epoch loss and mAP that depend on the hyperparameters and
# the data, written as a log. usage: train.sh DATA LR SCHEDULER EPOCHS OUT
set -eu
data=$1 lr=$2 sched=$3 epochs=$4 out=$5
awk -v lr="$lr" -v sched="$sched" -v epochs="$epochs" '
  { d += substr($3, 12) ; n++ }
  END {
    hard = d / n; best = 0;
    for (e = 0; e < epochs; e++) {
      f = (sched == "cosine") ? 0.5 * (1 + cos(3.14159 * e / epochs)) : (e < 0.8 * epochs ? 1 : 0.1);
      loss = 2.5 * exp(-e * lr * 4000 * (0.5 + f)) + hard;
      map = (1 - hard) * (1 - exp(-(e + 1) * lr * 3000));
      printf "epoch=%d loss=%.4f mask_map=%.4f\n", e, loss, map;
    }
  }' "$data" > "$out"
