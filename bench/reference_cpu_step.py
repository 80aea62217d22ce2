#!/usr/bin/env python3
"""One RF-DETR-Seg training step of the reference implementation (rfdetr 1.4.1) on the CPU,
timed, for the side-by-side comparison with flow-train (issue 10): nano, 312 px, batch 2,
forward + the full criterion (Hungarian matching per group, IA-BCE, L1, GIoU, point-sampled
mask BCE + Dice, aux and two-stage losses) + backward + clipping + AdamW + EMA.

usage: python bench/reference_cpu_step.py RFDETR_SRC [STUBS] [--threads 2] [--steps 5]
RFDETR_SRC is a folder holding the `rfdetr` package of rfdetr==1.4.1 (e.g. the unpacked
wheel); STUBS may hold a `peft.py` stand-in when peft is not installed. Needs torch 2.11.
Prints the median step time.
"""
import argparse
import statistics
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("src")
ap.add_argument("stubs", nargs="?", default=None)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--steps", type=int, default=5)
ap.add_argument("--batch", type=int, default=2)
ap.add_argument("--res", type=int, default=312)
a = ap.parse_args()
sys.path[:0] = [a.src] + ([a.stubs] if a.stubs else [])

import torch  # noqa: E402
from rfdetr.models.lwdetr import build_criterion_and_postprocessors, build_model  # noqa: E402
from rfdetr.util.misc import nested_tensor_from_tensor_list  # noqa: E402

torch.set_num_threads(a.threads)
args = argparse.Namespace(
    encoder="dinov2_windowed_small", vit_encoder_num_layers=12, pretrained_encoder=None,
    window_block_indexes=None, drop_path=0.0, hidden_dim=256, out_feature_indexes=[3, 6, 9, 12],
    projector_scale=["P4"], use_cls_token=False, position_embedding="sine", freeze_encoder=False,
    layer_norm=True, resolution=a.res, rms_norm=False, backbone_lora=False, force_no_pretrain=False,
    gradient_checkpointing=False, pretrain_weights="none", patch_size=12, num_windows=1,
    positional_encoding_size=a.res // 12, encoder_only=False, backbone_only=False, sa_nheads=8,
    ca_nheads=16, num_queries=100, dropout=0.0, dim_feedforward=2048, dec_layers=4, group_detr=13,
    two_stage=True, dec_n_points=2, lite_refpoint_refine=True, decoder_norm="LN", bbox_reparam=True,
    segmentation_head=True, mask_downsample_ratio=4, num_classes=2, device="cpu", aux_loss=True,
    set_cost_class=2, set_cost_bbox=5, set_cost_giou=2, cls_loss_coef=1.0, bbox_loss_coef=5,
    giou_loss_coef=2, mask_ce_loss_coef=5.0, mask_dice_loss_coef=5.0, focal_alpha=0.25,
    use_varifocal_loss=False, use_position_supervised_loss=False, ia_bce_loss=True,
    mask_point_sample_ratio=16, num_select=300, sum_group_losses=False,
)
torch.manual_seed(0)
model = build_model(args)
model.train()
criterion, _ = build_criterion_and_postprocessors(args)
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=1e-4)
ema = {k: v.detach().clone() for k, v in model.state_dict().items()}

images = [torch.randn(3, a.res, a.res) for _ in range(a.batch)]
targets = []
for _ in range(a.batch):
    n = 4
    boxes = torch.rand(n, 4) * 0.4 + torch.tensor([0.3, 0.3, 0.1, 0.1])
    masks = torch.zeros(n, a.res, a.res, dtype=torch.bool)
    for i, (cx, cy, w, h) in enumerate(boxes.tolist()):
        x0, x1 = int((cx - w / 2) * a.res), int((cx + w / 2) * a.res)
        y0, y1 = int((cy - h / 2) * a.res), int((cy + h / 2) * a.res)
        masks[i, y0:y1, x0:x1] = True
    targets.append({"labels": torch.randint(0, 2, (n,)), "boxes": boxes, "masks": masks,
                    "size": torch.tensor([a.res, a.res]), "orig_size": torch.tensor([a.res, a.res])})
samples = nested_tensor_from_tensor_list(images)


def step():
    out = model(samples, targets)
    losses = criterion(out, targets)
    w = criterion.weight_dict
    loss = sum(losses[k] * w[k] for k in losses if k in w)
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
    opt.step()
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                ema[k].mul_(0.993).add_(v, alpha=0.007)
    return float(loss)


step()  # warm-up
times = []
for _ in range(a.steps):
    t = time.perf_counter()
    step()
    times.append(time.perf_counter() - t)
print(f"reference rfdetr step, nano {a.res}px batch {a.batch}, {a.threads} threads: "
      f"median {statistics.median(times):.2f} s over {a.steps} steps ({', '.join(f'{x:.2f}' for x in times)})")
