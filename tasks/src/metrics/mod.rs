//! Training metrics read from run directories (RF-DETR log.txt / metrics.csv, flow-train).
