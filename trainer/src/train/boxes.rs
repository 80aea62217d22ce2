//! Box geometry of the matcher and the losses: (cx, cy, w, h) ↔ (x0, y0, x1, y1), pairwise and
//! element-wise IoU and generalised IoU (the reference's `util/box_ops.py`).

use tch::Tensor;

/// (cx, cy, w, h) → (x0, y0, x1, y1), last dimension.
pub fn cxcywh_to_xyxy(b: &Tensor) -> Tensor {
    let (cx, cy) = (b.select(-1, 0), b.select(-1, 1));
    let (hw, hh) = (b.select(-1, 2) * 0.5, b.select(-1, 3) * 0.5);
    Tensor::stack(&[&cx - &hw, &cy - &hh, &cx + &hw, &cy + &hh], -1)
}

fn area(b: &Tensor) -> Tensor {
    (b.select(-1, 2) - b.select(-1, 0)) * (b.select(-1, 3) - b.select(-1, 1))
}

/// Pairwise IoU and union of xyxy boxes `a` [N, 4] and `b` [M, 4]: ([N, M], [N, M]).
pub fn box_iou(a: &Tensor, b: &Tensor) -> (Tensor, Tensor) {
    let (area_a, area_b) = (area(a), area(b));
    let lt = a
        .slice(-1, 0, 2, 1)
        .unsqueeze(1)
        .maximum(&b.slice(-1, 0, 2, 1).unsqueeze(0));
    let rb = a
        .slice(-1, 2, 4, 1)
        .unsqueeze(1)
        .minimum(&b.slice(-1, 2, 4, 1).unsqueeze(0));
    let wh = (rb - lt).clamp_min(0.0);
    let inter = wh.select(-1, 0) * wh.select(-1, 1);
    let union = area_a.unsqueeze(1) + area_b.unsqueeze(0) - &inter;
    (inter / &union, union)
}

/// Pairwise generalised IoU of xyxy boxes: [N, M].
pub fn generalized_box_iou(a: &Tensor, b: &Tensor) -> Tensor {
    let (iou, union) = box_iou(a, b);
    let lt = a
        .slice(-1, 0, 2, 1)
        .unsqueeze(1)
        .minimum(&b.slice(-1, 0, 2, 1).unsqueeze(0));
    let rb = a
        .slice(-1, 2, 4, 1)
        .unsqueeze(1)
        .maximum(&b.slice(-1, 2, 4, 1).unsqueeze(0));
    let wh = (rb - lt).clamp_min(0.0);
    let hull = wh.select(-1, 0) * wh.select(-1, 1);
    &iou - (&hull - &union) / hull
}

/// Element-wise (IoU, GIoU) of matched xyxy boxes `a` [K, 4] and `b` [K, 4]: ([K], [K]).
/// The losses need only the diagonal, which this computes without the K × K matrix.
pub fn paired_iou_giou(a: &Tensor, b: &Tensor) -> (Tensor, Tensor) {
    let (area_a, area_b) = (area(a), area(b));
    let lt = a.slice(-1, 0, 2, 1).maximum(&b.slice(-1, 0, 2, 1));
    let rb = a.slice(-1, 2, 4, 1).minimum(&b.slice(-1, 2, 4, 1));
    let wh = (rb - lt).clamp_min(0.0);
    let inter = wh.select(-1, 0) * wh.select(-1, 1);
    let union = area_a + area_b - &inter;
    let iou = &inter / &union;
    let lt = a.slice(-1, 0, 2, 1).minimum(&b.slice(-1, 0, 2, 1));
    let rb = a.slice(-1, 2, 4, 1).maximum(&b.slice(-1, 2, 4, 1));
    let wh = (rb - lt).clamp_min(0.0);
    let hull = wh.select(-1, 0) * wh.select(-1, 1);
    let giou = &iou - (&hull - &union) / hull;
    (iou, giou)
}
