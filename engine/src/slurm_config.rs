//! The `slurm:` sections of `configs/flow.yaml` and of workflows, and a node's
//! `resources:`, read into one shape with located errors.

use crate::diagnostic::SpecError;
use crate::fields::{Fields, expect_string, expect_u32};
use crate::slurm::Resources;
use crate::yaml::{Source, Yaml};

/// Keys that request resources, in a node's `resources:` or a `slurm:` section.
pub const RESOURCE_KEYS: &[&str] = &[
    "gpus",
    "gpu_type",
    "partition",
    "account",
    "qos",
    "cpus_per_task",
    "mem",
    "time",
    "mail_user",
    "mail_type",
    "extra",
];

/// Keys of a `slurm:` section besides the resource keys.
pub const SUBMIT_KEYS: &[&str] = &["preamble", "max_array_size", "throttle"];

/// Settings of a `slurm:` section.
#[derive(Debug, Clone, Default)]
pub struct SlurmSection {
    pub resources: Resources,
    /// Job environment preamble (module loads, virtualenv activation), run before commands.
    pub preamble: Option<String>,
    /// Lowers the cluster's MaxArraySize for chunking arrays.
    pub max_array_size: Option<u32>,
    /// `%` throttle of job arrays: at most this many tasks of one array run at once.
    pub throttle: Option<u32>,
}

impl SlurmSection {
    /// This layer with `higher` on top.
    pub fn overlay(&self, higher: &SlurmSection) -> SlurmSection {
        SlurmSection {
            resources: self.resources.overlay(&higher.resources),
            preamble: higher.preamble.clone().or_else(|| self.preamble.clone()),
            max_array_size: higher.max_array_size.or(self.max_array_size),
            throttle: higher.throttle.or(self.throttle),
        }
    }
}

/// Reads resource keys from a mapping already checked against the allowed keys.
pub fn read_resources(fields: &Fields<'_>) -> Result<Resources, SpecError> {
    let src = fields.source;
    let s = |k: &str| -> Result<Option<String>, SpecError> {
        fields.get(k).map(|v| expect_string(src, v, k)).transpose()
    };
    let n = |k: &str| -> Result<Option<u32>, SpecError> {
        fields.get(k).map(|v| expect_u32(src, v, k)).transpose()
    };
    let resources = Resources {
        partition: s("partition")?,
        account: s("account")?,
        qos: s("qos")?,
        gpus: n("gpus")?,
        gpu_type: s("gpu_type")?,
        cpus_per_task: n("cpus_per_task")?,
        mem: s("mem")?,
        time: s("time")?,
        mail_user: s("mail_user")?,
        mail_type: s("mail_type")?,
        extra: fields
            .strings("extra")?
            .into_iter()
            .map(|(v, _)| v)
            .collect(),
    };
    if let Err(e) = resources.validate() {
        return Err(SpecError::at(
            src,
            fields.node.span,
            e.to_string(),
            "fix the value; SLURM settings are validated before anything is submitted",
        ));
    }
    Ok(resources)
}

/// Reads a `slurm:` section.
pub fn read_section(source: &Source, node: &Yaml, what: &str) -> Result<SlurmSection, SpecError> {
    let mut allowed: Vec<&str> = RESOURCE_KEYS.to_vec();
    allowed.extend_from_slice(SUBMIT_KEYS);
    let fields = Fields::new(source, node, what, &allowed)?;
    Ok(SlurmSection {
        resources: read_resources(&fields)?,
        preamble: fields.string("preamble")?.map(|(p, _)| p),
        max_array_size: fields.u32("max_array_size")?.map(|(n, _)| n),
        throttle: fields.u32("throttle")?.map(|(n, _)| n),
    })
}
