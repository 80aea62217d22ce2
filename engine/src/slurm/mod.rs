//! The SLURM executor's building blocks (DESIGN §6): resource requests, batch scripts,
//! exit markers, reading `sacct`/`squeue`/`scontrol`, and a fakeable wrapper of the tools.
//!
//! Each piece is pure (text in, text out) except [`cli`], which runs the tools; the
//! executor that submits a stale sub-DAG and reconciles it is built from these, so each
//! rule (quoting, state mapping, chunking) is tested on its own, without a cluster.

pub mod cli;
pub mod marker;
pub mod resources;
pub mod sacct;
pub mod script;

pub use cli::{FakeSlurm, SlurmCli, SlurmError, SystemSlurm};
pub use marker::{BudgetSpent, ExitMarker, RequeueNote};
pub use resources::{ResourceError, Resources};
pub use sacct::{JobStatus, SlurmState};
pub use script::{BatchScript, ScriptError, ScriptTask};
