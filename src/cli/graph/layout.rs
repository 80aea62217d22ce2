//! A small layered left-to-right layout for the collapsed graph.
//!
//! flow draws its own SVG so that `flow graph --format svg` works without Graphviz. The
//! collapsed graph has one box per workflow node, so it is small (tens of boxes), and a plain
//! Sugiyama-style layout is enough:
//!
//! 1. layer = longest path from a root, so every edge points right;
//! 2. an edge spanning several layers gets a waypoint in each layer it crosses, so it is
//!    routed between the boxes instead of through them;
//! 3. boxes and waypoints are ordered within their layer by barycenter sweeps, keeping the
//!    order with the fewest crossings;
//! 4. vertical positions pull each box towards its neighbours without overlaps;
//! 5. each box spreads its incoming and outgoing edges over its left and right side.

/// Horizontal space between layers, where edges curve and their labels sit.
const LAYER_GAP: f64 = 110.0;
/// Vertical space between two boxes of one layer.
const BOX_GAP: f64 = 26.0;
/// Vertical space next to a waypoint of a long edge.
const WAYPOINT_GAP: f64 = 12.0;
/// Height reserved for a waypoint: room for one edge.
const WAYPOINT_HEIGHT: f64 = 8.0;

/// A box's position: top-left corner and size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

/// Where everything goes; coordinates start at (0, 0).
#[derive(Debug)]
pub struct Layout {
    /// One per input box.
    pub boxes: Vec<Rect>,
    /// One per input edge: the points it passes through, from the upstream box's right side
    /// to the downstream box's left side. Consecutive points are joined by curves that leave
    /// and arrive horizontally.
    pub routes: Vec<Vec<(f64, f64)>>,
    /// Size of the area covered.
    pub width: f64,
    pub height: f64,
}

/// A box or a waypoint of a long edge, placed in one layer.
struct Vertex {
    layer: usize,
    height: f64,
    /// Width, zero for waypoints.
    width: f64,
    real: bool,
}

/// Lays out boxes of the given (width, height) connected by (from, to) edges. The edges
/// must form a DAG; if they do not, the boxes of a cycle end up in layer 0 and their edges
/// may point left.
pub fn layout(sizes: &[(f64, f64)], edges: &[(usize, usize)]) -> Layout {
    let n = sizes.len();
    let layers_of = longest_path_layers(n, edges);
    let mut vertices: Vec<Vertex> = sizes
        .iter()
        .zip(&layers_of)
        .map(|(&(w, h), &layer)| Vertex {
            layer,
            height: h,
            width: w,
            real: true,
        })
        .collect();
    // Each edge as a chain of vertices: its source, its waypoints, its target.
    let mut chains: Vec<Vec<usize>> = Vec::with_capacity(edges.len());
    for &(from, to) in edges {
        let mut chain = vec![from];
        let (a, b) = (layers_of[from], layers_of[to]);
        for layer in a + 1..b {
            chain.push(vertices.len());
            vertices.push(Vertex {
                layer,
                height: WAYPOINT_HEIGHT,
                width: 0.0,
                real: false,
            });
        }
        chain.push(to);
        chains.push(chain);
    }
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); vertices.len()];
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); vertices.len()];
    for chain in &chains {
        for w in chain.windows(2) {
            // Edges inside one layer (only possible with cycles) do not take part in ordering.
            if vertices[w[0]].layer < vertices[w[1]].layer {
                succs[w[0]].push(w[1]);
                preds[w[1]].push(w[0]);
            }
        }
    }
    let layer_count = vertices.iter().map(|v| v.layer + 1).max().unwrap_or(0);
    let mut layers: Vec<Vec<usize>> = vec![Vec::new(); layer_count];
    for (i, v) in vertices.iter().enumerate() {
        layers[v.layer].push(i);
    }
    order_layers(&mut layers, &preds, &succs);
    let ys = place_vertically(&layers, &vertices, &preds, &succs);

    // Columns: each layer as wide as its widest box, boxes centred in their column.
    let mut col_x = Vec::with_capacity(layer_count);
    let mut col_w = Vec::with_capacity(layer_count);
    let mut x = 0.0;
    for layer in &layers {
        let w = layer.iter().map(|&v| vertices[v].width).fold(0.0, f64::max);
        col_x.push(x);
        col_w.push(w);
        x += w + LAYER_GAP;
    }
    let width = (x - LAYER_GAP).max(0.0);
    let boxes: Vec<Rect> = (0..n)
        .map(|i| {
            let v = &vertices[i];
            Rect {
                x: col_x[v.layer] + (col_w[v.layer] - v.width) / 2.0,
                y: ys[i] - v.height / 2.0,
                w: v.width,
                h: v.height,
            }
        })
        .collect();
    let height = vertices
        .iter()
        .zip(&ys)
        .map(|(v, y)| y + v.height / 2.0)
        .fold(0.0, f64::max);

    // Ports: a box's edges leave (and arrive) in the vertical order of where they go (come
    // from), spread over the middle of its side, so that they do not cross at the box.
    let mut out_port = vec![0.0; chains.len()];
    let mut in_port = vec![0.0; chains.len()];
    for (b, r) in boxes.iter().enumerate() {
        let mut outs: Vec<usize> = (0..chains.len()).filter(|&e| chains[e][0] == b).collect();
        outs.sort_by(|&e, &f| ys[chains[e][1]].total_cmp(&ys[chains[f][1]]));
        spread(&outs, r.h, &mut out_port);
        let mut ins: Vec<usize> = (0..chains.len())
            .filter(|&e| chains[e][chains[e].len() - 1] == b)
            .collect();
        ins.sort_by(|&e, &f| {
            let pe = chains[e][chains[e].len() - 2];
            let pf = chains[f][chains[f].len() - 2];
            ys[pe].total_cmp(&ys[pf])
        });
        spread(&ins, r.h, &mut in_port);
    }
    let routes = chains
        .iter()
        .enumerate()
        .map(|(e, chain)| {
            let (from, to) = (chain[0], chain[chain.len() - 1]);
            let a = boxes[from];
            let b = boxes[to];
            let mut points = vec![(a.x + a.w, ys[from] + out_port[e])];
            for &wp in &chain[1..chain.len() - 1] {
                let l = vertices[wp].layer;
                points.push((col_x[l], ys[wp]));
                points.push((col_x[l] + col_w[l], ys[wp]));
            }
            points.push((b.x, ys[to] + in_port[e]));
            points
        })
        .collect();
    debug_assert!(vertices[..n].iter().all(|v| v.real));
    Layout {
        boxes,
        routes,
        width,
        height,
    }
}

/// Offsets from the middle of a side of height `h` for `edges`, in order, over its middle 60%.
fn spread(edges: &[usize], h: f64, port: &mut [f64]) {
    let k = edges.len();
    for (i, &e) in edges.iter().enumerate() {
        port[e] = if k == 1 {
            0.0
        } else {
            -0.3 * h + 0.6 * h * i as f64 / (k - 1) as f64
        };
    }
}

/// Layer of each box: the length of the longest path to it from a box without upstreams.
fn longest_path_layers(n: usize, edges: &[(usize, usize)]) -> Vec<usize> {
    let mut indeg = vec![0usize; n];
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in edges {
        indeg[b] += 1;
        out[a].push(b);
    }
    let mut layer = vec![0usize; n];
    let mut ready: Vec<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
    while let Some(a) = ready.pop() {
        for &b in &out[a] {
            layer[b] = layer[b].max(layer[a] + 1);
            indeg[b] -= 1;
            if indeg[b] == 0 {
                ready.push(b);
            }
        }
    }
    layer
}

/// Orders each layer to reduce edge crossings: alternating barycenter sweeps down and up,
/// keeping the best order seen.
fn order_layers(layers: &mut [Vec<usize>], preds: &[Vec<usize>], succs: &[Vec<usize>]) {
    let vertex_count = preds.len();
    let mut pos = vec![0usize; vertex_count];
    let index = |layers: &[Vec<usize>], pos: &mut [usize]| {
        for layer in layers {
            for (i, &v) in layer.iter().enumerate() {
                pos[v] = i;
            }
        }
    };
    index(layers, &mut pos);
    let mut best = layers.to_vec();
    let mut best_crossings = crossings(layers, succs, &pos);
    for round in 0..12 {
        let down = round % 2 == 0;
        let order: Vec<usize> = if down {
            (1..layers.len()).collect()
        } else {
            (0..layers.len().saturating_sub(1)).rev().collect()
        };
        for l in order {
            let neighbours = if down { preds } else { succs };
            let mut keyed: Vec<(f64, usize)> = layers[l]
                .iter()
                .map(|&v| {
                    let ns = &neighbours[v];
                    let key = if ns.is_empty() {
                        pos[v] as f64
                    } else {
                        ns.iter().map(|&u| pos[u] as f64).sum::<f64>() / ns.len() as f64
                    };
                    (key, v)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
            layers[l] = keyed.into_iter().map(|(_, v)| v).collect();
            for (i, &v) in layers[l].iter().enumerate() {
                pos[v] = i;
            }
        }
        let c = crossings(layers, succs, &pos);
        if c < best_crossings {
            best_crossings = c;
            best = layers.to_vec();
        }
    }
    layers.clone_from_slice(&best);
}

/// Edge crossings between adjacent layers for the current positions.
fn crossings(layers: &[Vec<usize>], succs: &[Vec<usize>], pos: &[usize]) -> usize {
    let mut total = 0;
    for layer in layers {
        let edges: Vec<(usize, usize)> = layer
            .iter()
            .flat_map(|&u| succs[u].iter().map(move |&v| (pos[u], pos[v])))
            .collect();
        for (i, a) in edges.iter().enumerate() {
            for b in &edges[i + 1..] {
                if (a.0 < b.0 && a.1 > b.1) || (a.0 > b.0 && a.1 < b.1) {
                    total += 1;
                }
            }
        }
    }
    total
}

/// Centre y of every vertex: each layer keeps its order and spacing, and vertices are pulled
/// towards the mean of their neighbours, alternately those on the left and on the right.
fn place_vertically(
    layers: &[Vec<usize>],
    vertices: &[Vertex],
    preds: &[Vec<usize>],
    succs: &[Vec<usize>],
) -> Vec<f64> {
    let mut y = vec![0.0; vertices.len()];
    // Offsets of each vertex from the first of its layer when packed tightly.
    let mut offset = vec![0.0; vertices.len()];
    for layer in layers {
        let mut at = 0.0;
        for (i, &v) in layer.iter().enumerate() {
            if i > 0 {
                at += separation(&vertices[layer[i - 1]], &vertices[v]);
            }
            offset[v] = at;
        }
        // Start packed and centred on 0.
        for &v in layer {
            y[v] = offset[v] - at / 2.0;
        }
    }
    for round in 0..10 {
        let (sweep, use_preds, use_succs): (Vec<usize>, bool, bool) = match round % 3 {
            0 => ((0..layers.len()).collect(), true, false),
            1 => ((0..layers.len()).rev().collect(), false, true),
            _ => ((0..layers.len()).collect(), true, true),
        };
        for l in sweep {
            let layer = &layers[l];
            let desired: Vec<f64> = layer
                .iter()
                .map(|&v| {
                    let mut ns: Vec<usize> = Vec::new();
                    if use_preds {
                        ns.extend(&preds[v]);
                    }
                    if use_succs {
                        ns.extend(&succs[v]);
                    }
                    if ns.is_empty() {
                        y[v]
                    } else {
                        ns.iter().map(|&u| y[u]).sum::<f64>() / ns.len() as f64
                    }
                })
                .collect();
            let placed = pack(
                &layer.iter().map(|&v| offset[v]).collect::<Vec<_>>(),
                &desired,
            );
            for (&v, p) in layer.iter().zip(placed) {
                y[v] = p;
            }
        }
    }
    // Shift everything down so the top edge is at 0.
    let top = vertices
        .iter()
        .zip(&y)
        .map(|(v, y)| y - v.height / 2.0)
        .fold(f64::INFINITY, f64::min);
    if top.is_finite() {
        for y in &mut y {
            *y -= top;
        }
    }
    y
}

/// Centre-to-centre distance needed between two neighbours in a layer.
fn separation(a: &Vertex, b: &Vertex) -> f64 {
    let gap = if a.real && b.real {
        BOX_GAP
    } else {
        WAYPOINT_GAP
    };
    (a.height + b.height) / 2.0 + gap
}

/// Positions as close as possible (least squares) to `desired` while keeping the order and
/// at least the spacing given by the packed `offsets`: with `w = desired - offset` the
/// constraint is that `w` is non-decreasing, which pool-adjacent-violators solves exactly.
fn pack(offsets: &[f64], desired: &[f64]) -> Vec<f64> {
    // Blocks of consecutive vertices that sit packed together: (sum of w, count).
    let mut blocks: Vec<(f64, usize)> = Vec::new();
    for (o, d) in offsets.iter().zip(desired) {
        blocks.push((d - o, 1));
        while blocks.len() > 1 {
            let (s2, n2) = blocks[blocks.len() - 1];
            let (s1, n1) = blocks[blocks.len() - 2];
            if s1 / n1 as f64 > s2 / n2 as f64 {
                blocks.pop();
                let last = blocks.len() - 1;
                blocks[last] = (s1 + s2, n1 + n2);
            } else {
                break;
            }
        }
    }
    let mut out = Vec::with_capacity(offsets.len());
    let mut i = 0;
    for (s, n) in blocks {
        let base = s / n as f64;
        for _ in 0..n {
            out.push(base + offsets[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_overlaps(l: &Layout) {
        for (i, a) in l.boxes.iter().enumerate() {
            for b in &l.boxes[i + 1..] {
                let apart =
                    a.x + a.w <= b.x || b.x + b.w <= a.x || a.y + a.h <= b.y || b.y + b.h <= a.y;
                assert!(apart, "{a:?} overlaps {b:?}");
            }
        }
    }

    #[test]
    fn layers_are_longest_paths_and_edges_point_right() {
        // 0 -> 1 -> 2, and 0 -> 2 directly: 2 is in layer 2, not 1.
        let l = layout(&[(50.0, 30.0); 3], &[(0, 1), (1, 2), (0, 2)]);
        assert!(l.boxes[0].x < l.boxes[1].x && l.boxes[1].x < l.boxes[2].x);
        for route in &l.routes {
            for w in route.windows(2) {
                assert!(w[0].0 <= w[1].0, "{route:?}");
            }
        }
        // The long edge gets a waypoint through layer 1: start, 2 points, end.
        assert_eq!(l.routes[2].len(), 4);
        no_overlaps(&l);
    }

    #[test]
    fn a_layer_of_many_boxes_does_not_overlap() {
        let mut edges = Vec::new();
        for i in 1..9 {
            edges.push((0, i));
            edges.push((i, 9));
        }
        let l = layout(&[(80.0, 40.0); 10], &edges);
        no_overlaps(&l);
        assert!(l.height >= 8.0 * 40.0);
        // The fan is centred on its source and sink.
        let mid = |r: &Rect| r.y + r.h / 2.0;
        let first = mid(&l.boxes[1]);
        let last = mid(&l.boxes[8]);
        assert!((mid(&l.boxes[0]) - (first + last) / 2.0).abs() < 1.0);
    }

    #[test]
    fn pack_keeps_order_and_spacing() {
        // All want to be at 0: they are packed around it.
        let p = pack(&[0.0, 10.0, 20.0], &[0.0, 0.0, 0.0]);
        assert_eq!(p, vec![-10.0, 0.0, 10.0]);
        // Far apart already: untouched.
        let p = pack(&[0.0, 10.0], &[-50.0, 50.0]);
        assert_eq!(p, vec![-50.0, 50.0]);
    }

    #[test]
    fn empty_and_single() {
        let l = layout(&[], &[]);
        assert_eq!(l.boxes.len(), 0);
        let l = layout(&[(10.0, 10.0)], &[]);
        assert_eq!(
            l.boxes[0],
            Rect {
                x: 0.0,
                y: 0.0,
                w: 10.0,
                h: 10.0
            }
        );
        assert_eq!((l.width, l.height), (10.0, 10.0));
    }
}
