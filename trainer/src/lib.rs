//! flow-train's library: the RF-DETR-Seg model family and the subcommands, kept out of
//! `main.rs` so that integration tests reach them.

pub mod eval_cmd;
pub mod model;
pub mod synth_cmd;
