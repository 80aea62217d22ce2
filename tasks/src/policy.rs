//! The SLURM policy for training jobs (DESIGN §5): resources by model size, and the batch
//! halving the team's cluster needs.

use flow_engine::slurm::Resources;

use crate::experiment::{ExperimentConfig, ModelSize};

/// What a training job of this size asks for unless a config, the workflow, the node or
/// the command line says otherwise: 1 A100, 8 CPU cores, memory and time by size.
pub fn resources_for(size: ModelSize) -> Resources {
    let (mem, time) = match size {
        ModelSize::Nano | ModelSize::Small | ModelSize::Tiny => ("48G", "8:00:00"),
        ModelSize::Medium => ("64G", "12:00:00"),
        ModelSize::Large => ("64G", "16:00:00"),
        ModelSize::XLarge | ModelSize::XXLarge => ("80G", "24:00:00"),
    };
    Resources {
        gpus: Some(1),
        gpu_type: Some("a100".to_string()),
        cpus_per_task: Some(8),
        mem: Some(mem.to_string()),
        time: Some(time.to_string()),
        ..Default::default()
    }
}

/// How the batch is adapted on SLURM, where the cluster runs with cuDNN disabled and so
/// needs more memory per image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchPolicy {
    /// Halve `batch_size`, double `grad_accum_steps`: the effective batch is unchanged.
    Halve,
    /// Train with the config's numbers.
    Keep,
}

impl BatchPolicy {
    /// The environment variable that switches the policy (`halve`, the default on SLURM,
    /// or `keep`); set it in `configs/flow.yaml`'s `slurm.preamble` or the job environment.
    pub const ENV: &'static str = "FLOW_BATCH_POLICY";

    pub fn as_str(self) -> &'static str {
        match self {
            BatchPolicy::Halve => "halve",
            BatchPolicy::Keep => "keep",
        }
    }

    /// The policy for a run: `halve` inside a SLURM job unless `FLOW_BATCH_POLICY=keep`.
    pub fn for_environment(in_slurm_job: bool, setting: Option<&str>) -> Result<Self, String> {
        match setting {
            Some("keep") => Ok(BatchPolicy::Keep),
            Some("halve") => Ok(if in_slurm_job {
                BatchPolicy::Halve
            } else {
                BatchPolicy::Keep
            }),
            None | Some("") => Ok(if in_slurm_job {
                BatchPolicy::Halve
            } else {
                BatchPolicy::Keep
            }),
            Some(other) => Err(format!(
                "{}={other:?} is not a batch policy; use `halve` or `keep`",
                BatchPolicy::ENV
            )),
        }
    }

    /// Applies the policy; returns what was applied. An odd batch (or 1) cannot be halved
    /// without changing the effective batch, so it is kept.
    pub fn apply(self, config: &mut ExperimentConfig) -> BatchPolicy {
        let t = &mut config.training;
        match (self, BatchPolicy::halved(t.batch_size, t.grad_accum_steps)) {
            (BatchPolicy::Halve, Some((batch, accum))) => {
                t.batch_size = batch;
                t.grad_accum_steps = accum;
                BatchPolicy::Halve
            }
            _ => BatchPolicy::Keep,
        }
    }

    /// `(batch_size, grad_accum_steps)` after halving, when the batch can be halved with the
    /// effective batch unchanged (even and at least 2).
    pub fn halved(batch_size: u32, grad_accum_steps: u32) -> Option<(u32, u32)> {
        (batch_size >= 2 && batch_size.is_multiple_of(2))
            .then(|| (batch_size / 2, grad_accum_steps * 2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_get_the_documented_requests() {
        let r = resources_for(ModelSize::Medium);
        assert_eq!(r.mem.as_deref(), Some("64G"));
        assert_eq!(r.time.as_deref(), Some("12:00:00"));
        assert_eq!(
            resources_for(ModelSize::XXLarge).mem.as_deref(),
            Some("80G")
        );
        assert_eq!(
            resources_for(ModelSize::Large).time.as_deref(),
            Some("16:00:00")
        );
        assert_eq!(resources_for(ModelSize::Nano).gpus, Some(1));
        assert_eq!(resources_for(ModelSize::Tiny).cpus_per_task, Some(8));
    }

    #[test]
    fn policy_follows_the_environment() {
        assert_eq!(
            BatchPolicy::for_environment(true, None),
            Ok(BatchPolicy::Halve)
        );
        assert_eq!(
            BatchPolicy::for_environment(false, None),
            Ok(BatchPolicy::Keep)
        );
        assert_eq!(
            BatchPolicy::for_environment(true, Some("keep")),
            Ok(BatchPolicy::Keep)
        );
        assert!(BatchPolicy::for_environment(true, Some("half")).is_err());
    }
}
