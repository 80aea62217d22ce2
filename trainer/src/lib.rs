//! flow-train's library: the RF-DETR-Seg model family, the experiment config, training and
//! the subcommands, kept out of `main.rs` so that integration tests reach them.

pub mod bench_cmd;
pub mod config;
pub mod cuda_graph;
pub mod device;
pub mod eval_cmd;
pub mod model;
pub mod synth_cmd;
pub mod torch_ext;
pub mod train;
