//! The `slurm:` sections of `configs/flow.yaml` and of workflows, and a node's
//! `resources:`, read into one shape with located errors.

use crate::diagnostic::SpecError;
use crate::fields::{Fields, expect_string, expect_u32, type_error};
use crate::slurm::Resources;
use crate::yaml::{Source, Yaml, YamlKind};

/// An unquoted YAML boolean (`true`/`false`, as YAML 1.2 spells them).
fn expect_bool(source: &Source, node: &Yaml, what: &str) -> Result<bool, SpecError> {
    match &node.kind {
        YamlKind::Scalar(s) if !s.quoted => match s.text.as_str() {
            "true" | "True" | "TRUE" => Ok(true),
            "false" | "False" | "FALSE" => Ok(false),
            _ => Err(type_error(source, node, what, "`true` or `false`")),
        },
        _ => Err(type_error(source, node, what, "`true` or `false`")),
    }
}

/// Keys of a node's `resources:` or a `slurm:` section that layer per node: the resource
/// request, and the requeue switch and budget (`requeue`, `max_requeues`).
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
    "requeue",
    "max_requeues",
];

/// Keys of a `slurm:` section besides the resource keys.
pub const SUBMIT_KEYS: &[&str] = &[
    "preamble",
    "max_array_size",
    "throttle",
    "requeue_signal_secs",
];

/// Settings of a `slurm:` section.
#[derive(Debug, Clone, Default)]
pub struct SlurmSection {
    /// The request, and the per-node settings that layer with it: `requeue` (whether jobs
    /// requeue themselves shortly before their time limit and resume, DESIGN §6; `None`:
    /// the task kind decides) and `max_requeues` (the retry budget).
    pub resources: Resources,
    /// Job environment preamble (module loads, virtualenv activation), run before commands.
    pub preamble: Option<String>,
    /// Lowers the cluster's MaxArraySize for chunking arrays.
    pub max_array_size: Option<u32>,
    /// `%` throttle of job arrays: at most this many tasks of one array run at once.
    pub throttle: Option<u32>,
    /// How many seconds before its time limit a requeueing job is signalled
    /// (`--signal=B:USR1@N`); long enough to write a checkpoint and requeue.
    pub requeue_signal_secs: Option<u32>,
}

impl SlurmSection {
    /// This layer with `higher` on top.
    pub fn overlay(&self, higher: &SlurmSection) -> SlurmSection {
        SlurmSection {
            resources: self.resources.overlay(&higher.resources),
            preamble: higher.preamble.clone().or_else(|| self.preamble.clone()),
            max_array_size: higher.max_array_size.or(self.max_array_size),
            throttle: higher.throttle.or(self.throttle),
            requeue_signal_secs: higher.requeue_signal_secs.or(self.requeue_signal_secs),
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
        requeue: fields
            .get("requeue")
            .map(|v| expect_bool(src, v, "requeue"))
            .transpose()?,
        max_requeues: n("max_requeues")?,
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
        requeue_signal_secs: match fields.u32("requeue_signal_secs")? {
            Some((0, _)) => {
                return Err(SpecError::at(
                    source,
                    fields
                        .get("requeue_signal_secs")
                        .map_or(node.span, |v| v.span),
                    "invalid requeue_signal_secs 0: the job would be signalled at its time limit",
                    "give the seconds a job needs to checkpoint and requeue, e.g. 300",
                ));
            }
            other => other.map(|(n, _)| n),
        },
    })
}
