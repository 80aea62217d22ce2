//! The best-epoch rule (DESIGN §5, RF-DETR's own): the highest mask AP@[.5:.95] over the regular
//! and EMA evaluations of every epoch. A later epoch or the EMA track wins only when strictly
//! better, as RF-DETR saves `checkpoint_best_*` only on improvement and evaluates regular first.

use super::model::{Best, EpochMetrics, Track};

/// The best epoch, or `None` when no epoch has a finite mask AP.
pub fn best_epoch(epochs: &[EpochMetrics]) -> Option<Best> {
    let mut best: Option<Best> = None;
    for e in epochs {
        let tracks = [
            (Track::Regular, &e.segm, &e.bbox),
            (Track::Ema, &e.ema_segm, &e.ema_bbox),
        ];
        for (track, segm, bbox) in tracks {
            let Some(mask_map) = segm.as_ref().and_then(|s| s.ap()) else {
                continue;
            };
            if best.is_none_or(|b| mask_map > b.mask_map) {
                best = Some(Best {
                    epoch: e.epoch,
                    mask_map,
                    bbox_map: bbox.as_ref().and_then(|b| b.ap()),
                    track,
                });
            }
        }
    }
    best
}
