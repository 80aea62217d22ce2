//! COCO evaluation (bbox and segm) equal to pycocotools (issue 9).
