//! The synthetic COCO instance-segmentation dataset (issue 9).
