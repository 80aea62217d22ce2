"""The oracle of tests/pycocotools_crosscheck.rs: pycocotools' numbers for generated cases.

Usage (with the python of scripts/coco/install):
    pycocotools_eval.py eval GT.json RESULTS.json IOU:MAXDETS:SUMMARIZE:FEED ...
        prints a JSON list with pycocotools' 12 `stats` per configuration, where
        IOU is bbox|segm, SUMMARIZE is stock|rfdetr and FEED is rfdetr|as-loaded.
    pycocotools_eval.py polygons CASES.json
        CASES is a list of {"h", "w", "polys"}; prints the compressed counts of
        merge(frPyObjects(polys, h, w)) for each.

FEED=rfdetr feeds the detections as RF-DETR's CocoEvaluator does (for bbox only their box, for
segm only their mask); as-loaded passes the file unchanged to loadRes. SUMMARIZE=rfdetr is
RF-DETR 1.4.1's summarize, whose only change is that the first number (AP) is taken at the
last max detections instead of a hard-coded 100.
"""
import contextlib
import copy
import io
import json
import sys

import numpy as np
import pycocotools.mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def quiet(fn, *args):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


def fed(detections, iou_type, feed):
    out = copy.deepcopy(detections)
    if feed == "rfdetr":
        drop = "segmentation" if iou_type == "bbox" else "bbox"
        for det in out:
            det.pop(drop, None)
    return out


def evaluate(gt_path, results_path, config):
    iou_type, max_dets, summarize, feed = config.split(":")
    with open(results_path) as f:
        detections = json.load(f)
    gt = quiet(COCO, gt_path)
    dt = quiet(gt.loadRes, fed(detections, iou_type, feed))
    ev = COCOeval(gt, dt, iouType=iou_type)
    ev.params.maxDets = [1, 10, int(max_dets)]
    quiet(ev.evaluate)
    quiet(ev.accumulate)
    quiet(ev.summarize)
    stats = [float(v) for v in ev.stats]
    if summarize == "rfdetr":
        # AP over all thresholds, area "all" (index 0), the last max detections.
        s = ev.eval["precision"][:, :, :, 0, len(ev.params.maxDets) - 1]
        stats[0] = float(np.mean(s[s > -1])) if (s > -1).any() else -1.0
    return stats


def polygons(cases_path):
    with open(cases_path) as f:
        cases = json.load(f)
    out = []
    for case in cases:
        rle = mask_utils.merge(mask_utils.frPyObjects(case["polys"], case["h"], case["w"]))
        out.append(rle["counts"].decode())
    return out


def main():
    if sys.argv[1] == "eval":
        gt_path, results_path = sys.argv[2], sys.argv[3]
        print(json.dumps([evaluate(gt_path, results_path, c) for c in sys.argv[4:]]))
    elif sys.argv[1] == "polygons":
        print(json.dumps(polygons(sys.argv[2])))
    else:
        sys.exit("usage: pycocotools_eval.py eval|polygons ...")


if __name__ == "__main__":
    main()
