//! The scheduler: a state machine over the planned instances, with no IO inside.
//!
//! want -> ready -> running -> done. The driver asks for the next instance to start within
//! the job and GPU limits and reports how each one ended; a failure blocks its dependents
//! and, unless keep-going is set, stops new starts.

use std::collections::VecDeque;

use crate::graph::{Graph, NodeId};

/// Where an instance is in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not part of this run (fresh, or not selected).
    Idle,
    /// Waiting for this many upstream instances of the run.
    Waiting(usize),
    Ready,
    Running,
    /// Ran and succeeded.
    Succeeded,
    /// Re-checked when ready and found fresh: an upstream re-ran with identical outputs.
    UpToDate,
    Failed,
    /// An upstream failed, or the run stopped before it started.
    Skipped,
}

impl Status {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            Status::Succeeded | Status::UpToDate | Status::Failed | Status::Skipped
        )
    }
}

/// How an instance ended, as reported by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    UpToDate,
    Failed,
}

/// Limits on what runs at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub jobs: usize,
    pub gpus: u32,
}

/// The run's state machine.
pub struct Scheduler {
    status: Vec<Status>,
    gpus_needed: Vec<u32>,
    dependents: Vec<Vec<NodeId>>,
    ready: VecDeque<NodeId>,
    running: usize,
    /// GPU slot indices currently free.
    free_gpus: Vec<u32>,
    assigned: Vec<Vec<u32>>,
    limits: Limits,
    keep_going: bool,
    stopped: bool,
    remaining: usize,
}

impl Scheduler {
    /// `want[i]` marks the instances this run may execute.
    pub fn new(graph: &Graph, want: &[bool], limits: Limits, keep_going: bool) -> Self {
        let n = graph.nodes.len();
        let mut status = vec![Status::Idle; n];
        let mut ready = VecDeque::new();
        let mut remaining = 0;
        for id in 0..n {
            if !want[id] {
                continue;
            }
            remaining += 1;
            let waiting = graph.nodes[id].deps.iter().filter(|&&d| want[d]).count();
            status[id] = if waiting == 0 {
                ready.push_back(id);
                Status::Ready
            } else {
                Status::Waiting(waiting)
            };
        }
        Scheduler {
            status,
            gpus_needed: graph.nodes.iter().map(|n| n.gpus).collect(),
            dependents: graph.nodes.iter().map(|n| n.dependents.clone()).collect(),
            ready,
            running: 0,
            free_gpus: (0..limits.gpus).collect(),
            assigned: vec![Vec::new(); n],
            limits,
            keep_going,
            stopped: false,
            remaining,
        }
    }

    pub fn status(&self, id: NodeId) -> Status {
        self.status[id]
    }

    /// The GPU slots given to a running instance.
    pub fn gpus_of(&self, id: NodeId) -> &[u32] {
        &self.assigned[id]
    }

    pub fn running(&self) -> usize {
        self.running
    }

    /// True when nothing is running and nothing more can start.
    pub fn is_done(&self) -> bool {
        self.running == 0 && (self.ready.is_empty() || self.stopped)
    }

    /// Instances not yet finished.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// The next instance to start, if the limits allow one. Ready instances that need more
    /// GPUs than are free wait while others go ahead.
    pub fn start_next(&mut self) -> Option<NodeId> {
        if self.stopped || self.running >= self.limits.jobs.max(1) {
            return None;
        }
        let free = self.free_gpus.len() as u32;
        let pos = self
            .ready
            .iter()
            .position(|&id| self.gpus_needed[id] <= free)?;
        let id = self.ready.remove(pos)?;
        let need = self.gpus_needed[id] as usize;
        self.assigned[id] = self.free_gpus.drain(..need).collect();
        self.status[id] = Status::Running;
        self.running += 1;
        Some(id)
    }

    /// Records how a started instance ended; returns instances skipped because of it.
    pub fn finish(&mut self, id: NodeId, outcome: Outcome) -> Vec<NodeId> {
        debug_assert_eq!(self.status[id], Status::Running);
        self.running -= 1;
        self.remaining -= 1;
        let mut slots = std::mem::take(&mut self.assigned[id]);
        self.free_gpus.append(&mut slots);
        self.free_gpus.sort_unstable();
        match outcome {
            Outcome::Succeeded | Outcome::UpToDate => {
                self.status[id] = if outcome == Outcome::Succeeded {
                    Status::Succeeded
                } else {
                    Status::UpToDate
                };
                for i in 0..self.dependents[id].len() {
                    let d = self.dependents[id][i];
                    if let Status::Waiting(n) = self.status[d] {
                        self.status[d] = if n == 1 {
                            self.ready.push_back(d);
                            Status::Ready
                        } else {
                            Status::Waiting(n - 1)
                        };
                    }
                }
                Vec::new()
            }
            Outcome::Failed => {
                self.status[id] = Status::Failed;
                if !self.keep_going {
                    self.stopped = true;
                }
                self.skip_dependents(id)
            }
        }
    }

    /// Stops starting new instances (Ctrl-C, or a failure without keep-going).
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// Marks everything that never started as skipped; returns those instances.
    pub fn skip_unstarted(&mut self) -> Vec<NodeId> {
        let mut out = Vec::new();
        for id in 0..self.status.len() {
            if matches!(self.status[id], Status::Waiting(_) | Status::Ready) {
                self.status[id] = Status::Skipped;
                self.remaining -= 1;
                out.push(id);
            }
        }
        self.ready.clear();
        out
    }

    fn skip_dependents(&mut self, id: NodeId) -> Vec<NodeId> {
        let mut out = Vec::new();
        let mut stack = self.dependents[id].clone();
        while let Some(d) = stack.pop() {
            if matches!(self.status[d], Status::Waiting(_) | Status::Ready) {
                if self.status[d] == Status::Ready {
                    self.ready.retain(|&r| r != d);
                }
                self.status[d] = Status::Skipped;
                self.remaining -= 1;
                out.push(d);
                stack.extend(self.dependents[d].iter().copied());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::fake::MemDisk;

    fn graph(yaml: &str) -> Graph {
        crate::task::testing::graph(yaml, &MemDisk::default())
    }

    const DIAMOND: &str = "nodes:\n  a: {run: x}\n  b: {run: x, needs: [a]}\n  c: {run: x, needs: [a]}\n  d: {run: x, needs: [b, c]}\n  e: {run: x}\n";

    fn drain(s: &mut Scheduler, g: &Graph, fail: &[&str]) -> Vec<String> {
        let mut order = Vec::new();
        while !s.is_done() {
            let id = s.start_next().expect("a ready node while not done");
            order.push(g.nodes[id].id.clone());
            let outcome = if fail.contains(&g.nodes[id].id.as_str()) {
                Outcome::Failed
            } else {
                Outcome::Succeeded
            };
            s.finish(id, outcome);
        }
        order
    }

    #[test]
    fn runs_upstream_first() {
        let g = graph(DIAMOND);
        let mut s = Scheduler::new(&g, &[true; 5], Limits { jobs: 1, gpus: 0 }, false);
        let order = drain(&mut s, &g, &[]);
        assert_eq!(order, ["a", "e", "b", "c", "d"]);
    }

    #[test]
    fn keep_going_skips_only_dependents() {
        let g = graph(DIAMOND);
        let mut s = Scheduler::new(&g, &[true; 5], Limits { jobs: 1, gpus: 0 }, true);
        let order = drain(&mut s, &g, &["b"]);
        assert_eq!(order, ["a", "e", "b", "c"]);
        assert_eq!(s.status(3), Status::Skipped);
        assert_eq!(s.status(2), Status::Succeeded);
    }

    #[test]
    fn failure_stops_new_starts_without_keep_going() {
        let g = graph(DIAMOND);
        let mut s = Scheduler::new(&g, &[true; 5], Limits { jobs: 1, gpus: 0 }, false);
        let order = drain(&mut s, &g, &["a"]);
        assert_eq!(order, ["a"]);
        let skipped = s.skip_unstarted();
        assert_eq!(skipped.len(), 1, "e never started");
        assert_eq!(s.remaining(), 0);
    }

    #[test]
    fn respects_job_and_gpu_limits() {
        let g = graph(
            "nodes:\n  a: {run: x, resources: {gpus: 2}}\n  b: {run: x, resources: {gpus: 1}}\n  c: {run: x}\n",
        );
        let mut s = Scheduler::new(&g, &[true; 3], Limits { jobs: 3, gpus: 2 }, false);
        assert_eq!(s.start_next(), Some(0));
        assert_eq!(s.gpus_of(0), &[0, 1]);
        // b needs a GPU, none is free: c goes ahead.
        assert_eq!(s.start_next(), Some(2));
        assert_eq!(s.start_next(), None);
        s.finish(0, Outcome::Succeeded);
        assert_eq!(s.start_next(), Some(1));
        assert_eq!(s.gpus_of(1), &[0]);
    }
}
