//! How many threads a training process may use: the CPUs SLURM allotted to the task
//! (`SLURM_CPUS_PER_TASK`), else the machine's available parallelism. Oversubscribing
//! libtorch's OpenMP pool on a shared node is what makes CPU training ten times slower
//! (spec/libtorch.md), so both libtorch and rayon are sized from this one number.

/// The thread budget from an optional `SLURM_CPUS_PER_TASK` value.
pub fn thread_budget(slurm_cpus: Option<&str>) -> usize {
    slurm_cpus
        .and_then(|s| s.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

/// Sizes libtorch's intra-op pool and rayon's global pool to `n` threads (rayon's only if it
/// is not built yet).
pub fn apply(n: usize) {
    tch::set_num_threads(n as i32);
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
}
