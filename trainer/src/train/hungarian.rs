//! Exact minimum-cost assignment (scipy's `linear_sum_assignment`, which the reference's
//! matcher calls): shortest augmenting paths with potentials (Jonker–Volgenant style), O(n²m)
//! for n rows ≤ m columns. Written here because the matcher runs it per image, per query group
//! and per decoder output on every step, on the CPU, and needs no dependency for that.

/// Assigns every row of the `rows × cols` cost matrix (row-major) to a distinct column when
/// rows ≤ cols, or every column to a distinct row otherwise, minimising the total cost.
/// Returns (row, column) pairs sorted by row, as scipy does. Costs must be finite.
pub fn linear_sum_assignment(cost: &[f64], rows: usize, cols: usize) -> Vec<(usize, usize)> {
    assert_eq!(
        cost.len(),
        rows * cols,
        "cost matrix has rows * cols entries"
    );
    if rows == 0 || cols == 0 {
        return Vec::new();
    }
    if rows > cols {
        let mut t = vec![0.0; rows * cols];
        for r in 0..rows {
            for c in 0..cols {
                t[c * rows + r] = cost[r * cols + c];
            }
        }
        let mut pairs: Vec<(usize, usize)> = solve(&t, cols, rows)
            .into_iter()
            .map(|(c, r)| (r, c))
            .collect();
        pairs.sort_unstable();
        return pairs;
    }
    solve(cost, rows, cols)
}

/// n ≤ m; every row gets a column. 1-based arrays with a virtual column 0, as in the classic
/// formulation: `u`, `v` are the dual potentials, `p[j]` the row assigned to column j.
fn solve(a: &[f64], n: usize, m: usize) -> Vec<(usize, usize)> {
    let mut u = vec![0.0f64; n + 1];
    let mut v = vec![0.0f64; m + 1];
    let mut p = vec![0usize; m + 1];
    let mut way = vec![0usize; m + 1];
    let mut minv = vec![0.0f64; m + 1];
    let mut used = vec![false; m + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0usize;
        minv.fill(f64::INFINITY);
        used.fill(false);
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0usize;
            let row = &a[(i0 - 1) * m..i0 * m];
            for j in 1..=m {
                if used[j] {
                    continue;
                }
                let cur = row[j - 1] - u[i0] - v[j];
                if cur < minv[j] {
                    minv[j] = cur;
                    way[j] = j0;
                }
                if minv[j] < delta {
                    delta = minv[j];
                    j1 = j;
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut pairs: Vec<(usize, usize)> = (1..=m)
        .filter(|&j| p[j] != 0)
        .map(|j| (p[j] - 1, j - 1))
        .collect();
    pairs.sort_unstable();
    pairs
}
