//! flow-engine: workflows as a content-hashed DAG, run make-style.
//!
//! Spec (what the files say) -> [`graph::Graph`] (the expanded DAG) -> [`plan::Plan`] (what
//! is stale and why) -> [`scheduler::Scheduler`] + [`run::execute`] (running it), with the
//! persisted [`state::State`] in an append-only journal. Knows nothing of RF-DETR.

// Spec errors carry their source text for rendering; they are returned once per command,
// so their size does not matter.
#![allow(clippy::result_large_err)]

pub mod claim;
pub mod diagnostic;
pub mod digest;
pub mod disk;
pub mod executor;
pub mod fields;
pub mod gc;
pub mod graph;
pub mod journal;
pub mod key;
pub mod key_check;
pub mod plan;
pub mod project;
pub mod reconcile;
pub mod run;
pub mod scheduler;
pub mod slurm;
pub mod slurm_config;
pub mod snapshot;
pub mod state;
pub mod submit;
pub mod task;
pub mod template;
pub mod value;
pub mod workflow;
pub mod yaml;
