//! The RF-DETR-Seg model family (issue 8).
