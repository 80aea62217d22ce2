//! The selection `flow compare --ids ... --model-size S` makes before rendering.

use std::collections::BTreeSet;

use super::error::CompareError;
use super::run::CompareRun;
use crate::experiment::ModelSize;

/// Which runs to compare; the default keeps every run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Keep only these run ids (empty: every id). An id that matches no run is an error, so a
    /// typo is not silently a smaller comparison.
    pub ids: Vec<String>,
    /// Keep only runs of this size.
    pub model_size: Option<ModelSize>,
}

impl RunFilter {
    /// Keeps the runs that pass both conditions, in their original order.
    pub fn apply(&self, runs: Vec<CompareRun>) -> Result<Vec<CompareRun>, CompareError> {
        let wanted: BTreeSet<&str> = self.ids.iter().map(String::as_str).collect();
        let unknown: Vec<String> = wanted
            .iter()
            .filter(|id| !runs.iter().any(|r| r.id == **id))
            .map(|id| id.to_string())
            .collect();
        if !unknown.is_empty() {
            return Err(CompareError::UnknownIds { ids: unknown });
        }
        Ok(runs
            .into_iter()
            .filter(|r| wanted.is_empty() || wanted.contains(r.id.as_str()))
            .filter(|r| self.model_size.is_none_or(|s| r.model_size == s))
            .collect())
    }
}
