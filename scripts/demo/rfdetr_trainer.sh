#!/bin/sh
# A stand-in for a real trainer, for the demo and the tests until flow-train trains:
# reads the resolved config flow wrote, and writes one RF-DETR (<= 1.5) log.txt line per
# epoch whose losses and mAP depend on the learning rate and the scheduler. With --resume
# it continues after the last epoch already logged.
# usage: rfdetr_trainer.sh CONFIG OUTPUT_DIR [--resume]
set -eu
config=$1 out=$2 resume=${3:-}
value() { sed -n "s/^  $1: *//p" "$config" | head -n 1 | tr -d '"'; }
epochs=$(value epochs) lr=$(value lr) sched=$(value lr_scheduler)
mkdir -p "$out"
start=0
if [ "$resume" = --resume ] && [ -f "$out/log.txt" ]; then
    start=$(wc -l < "$out/log.txt")
else
    : > "$out/log.txt"
fi
awk -v lr="$lr" -v sched="$sched" -v epochs="$epochs" -v start="$start" 'BEGIN {
  for (e = start; e < epochs; e++) {
    f = (sched == "cosine") ? 0.5 * (1 + cos(3.14159 * e / epochs)) : (e < 0.8 * epochs ? 1 : 0.1);
    loss = 2.5 * exp(-(e + 1) * lr * 2000 * (0.5 + f)) + 0.3;
    m = 0.6 * (1 - exp(-(e + 1) * lr * 1500)) * (sched == "cosine" ? 1.04 : 1);
    em = m * (e > 1 ? 1.02 : 0.9);
    printf "{\"train_lr\": %g, \"train_loss\": %.4f, \"test_loss\": %.4f, \"epoch\": %d, ", lr, loss, loss + 0.1, e;
    printf "\"test_coco_eval_bbox\": [%.4f, %.4f, %.4f, -1.0, %.4f, %.4f, 0.1, 0.3, 0.32, -1.0, 0.4, 0.5], ", m + 0.02, m + 0.3, m, m, m;
    printf "\"test_coco_eval_masks\": [%.4f, %.4f, %.4f, -1.0, %.4f, %.4f, 0.1, 0.3, 0.30, -1.0, 0.4, 0.5], ", m, m + 0.28, m, m, m;
    printf "\"ema_test_loss\": %.4f, ", loss + 0.05;
    printf "\"ema_test_coco_eval_bbox\": [%.4f, %.4f, %.4f, -1.0, %.4f, %.4f, 0.1, 0.3, 0.32, -1.0, 0.4, 0.5], ", em + 0.02, em + 0.3, em, em, em;
    printf "\"ema_test_coco_eval_masks\": [%.4f, %.4f, %.4f, -1.0, %.4f, %.4f, 0.1, 0.3, 0.30, -1.0, 0.4, 0.5], ", em, em + 0.28, em, em, em;
    printf "\"n_parameters\": 33260851}\n";
  }
}' >> "$out/log.txt"
echo "trained $epochs epochs (lr $lr, $sched) into $out"
