//! The collapsed graph: one group per workflow node, one link per pair of connected nodes.
//!
//! A sweep of a few hundred instances drawn instance by instance is a wall of boxes; what a
//! person wants to see is the shape of the workflow and where the stale and failed instances
//! are. So instances are grouped by the node they come from and only their counts by state
//! are kept, and the instance edges between two nodes become one link that says whether it
//! is a gather (many instances into one) or one-to-one/broadcast.

use std::collections::{BTreeMap, BTreeSet};

use flow_engine::graph::{Graph, NodeId};
use flow_engine::plan::Decision;

use super::{Drawn, state_of};

/// All instances of one workflow node.
pub struct Group {
    /// The node's name as written in the workflow.
    pub name: String,
    /// Its instances, in graph order.
    pub instances: Vec<NodeId>,
    /// Each instance's state and one-line label, parallel to `instances`.
    pub states: Vec<(Drawn, String)>,
}

impl Group {
    /// How many instances are in `state`.
    pub fn count(&self, state: Drawn) -> usize {
        self.states.iter().filter(|(s, _)| *s == state).count()
    }

    /// The state that needs attention first: failed over stale over fresh.
    pub fn worst(&self) -> Drawn {
        self.states
            .iter()
            .map(|(s, _)| *s)
            .max()
            .unwrap_or(Drawn::Fresh)
    }

    /// `35 fresh, 4 stale, 1 failed`, states with no instance left out.
    pub fn counts_label(&self) -> String {
        let parts: Vec<String> = Drawn::ALL
            .iter()
            .map(|&s| (s, self.count(s)))
            .filter(|&(_, n)| n > 0)
            .map(|(s, n)| format!("{n} {}", s.as_str()))
            .collect();
        parts.join(", ")
    }
}

/// The instance edges from one node's instances to another node's instances.
pub struct Link {
    /// Index of the upstream group.
    pub from: usize,
    /// Index of the downstream group.
    pub to: usize,
    /// Some downstream instance depends on several upstream instances (or the workflow
    /// declares a `gather:`): drawn dashed, because one instance waits on many.
    pub gather: bool,
    /// Distinct upstream instances on this link.
    pub sources: usize,
    /// Distinct downstream instances on this link.
    pub targets: usize,
    /// Instance edges collapsed into this link.
    pub edges: usize,
}

impl Link {
    /// `40→1`: how many instances feed how many; empty for the plain one-instance case.
    pub fn label(&self) -> String {
        if self.sources == 1 && self.targets == 1 {
            String::new()
        } else {
            format!("{}→{}", self.sources, self.targets)
        }
    }
}

/// The graph as drawn by the svg and html formats.
pub struct Collapsed {
    /// One per workflow node, in workflow order.
    pub groups: Vec<Group>,
    /// One per connected (upstream, downstream) pair of groups.
    pub links: Vec<Link>,
}

impl Collapsed {
    /// Groups the instances of `graph` by node and counts their states from `decisions`.
    pub fn new(graph: &Graph, decisions: &[Option<Decision>]) -> Self {
        // Workflow order, so the drawing follows the file.
        let mut by_spec: Vec<Vec<NodeId>> = vec![Vec::new(); graph.spec.nodes.len()];
        for (i, inst) in graph.nodes.iter().enumerate() {
            by_spec[inst.spec].push(i);
        }
        let mut group_of_spec = vec![usize::MAX; graph.spec.nodes.len()];
        let mut groups: Vec<Group> = Vec::new();
        for (s, instances) in by_spec.into_iter().enumerate() {
            if instances.is_empty() {
                continue;
            }
            group_of_spec[s] = groups.len();
            groups.push(Group {
                name: graph.spec.nodes[s].name.clone(),
                states: instances.iter().map(|&i| state_of(&decisions[i])).collect(),
                instances,
            });
        }

        struct Acc {
            sources: BTreeSet<NodeId>,
            targets: BTreeSet<NodeId>,
            edges: usize,
            max_fan_in: usize,
        }
        let mut acc: BTreeMap<(usize, usize), Acc> = BTreeMap::new();
        for (i, inst) in graph.nodes.iter().enumerate() {
            let to = group_of_spec[inst.spec];
            let mut per_from: BTreeMap<usize, usize> = BTreeMap::new();
            for &d in &inst.deps {
                let from = group_of_spec[graph.nodes[d].spec];
                *per_from.entry(from).or_default() += 1;
                let a = acc.entry((from, to)).or_insert_with(|| Acc {
                    sources: BTreeSet::new(),
                    targets: BTreeSet::new(),
                    edges: 0,
                    max_fan_in: 0,
                });
                a.sources.insert(d);
                a.targets.insert(i);
                a.edges += 1;
            }
            for (from, n) in per_from {
                let a = acc.get_mut(&(from, to)).expect("inserted above");
                a.max_fan_in = a.max_fan_in.max(n);
            }
        }
        let links = acc
            .into_iter()
            .map(|((from, to), a)| {
                let spec = &graph.spec.nodes[graph.nodes[groups[to].instances[0]].spec];
                let declared = spec.gather.iter().any(|r| r.name == groups[from].name);
                Link {
                    from,
                    to,
                    gather: declared || a.max_fan_in > 1,
                    sources: a.sources.len(),
                    targets: a.targets.len(),
                    edges: a.edges,
                }
            })
            .collect();
        Collapsed { groups, links }
    }

    /// Number of instances over all groups.
    pub fn instances(&self) -> usize {
        self.groups.iter().map(|g| g.instances.len()).sum()
    }

    /// Instances in `state` over all groups.
    pub fn count(&self, state: Drawn) -> usize {
        self.groups.iter().map(|g| g.count(state)).sum()
    }
}
