//! `--format svg`: the collapsed graph drawn by flow itself.
//!
//! Self-contained on purpose: no Graphviz to install, no fonts or scripts fetched, so the
//! file can be attached to a report or opened on a cluster login node as it is. Presentation
//! attributes are used rather than CSS so that simple renderers draw the same picture.

use std::fmt::Write;

use flow_engine::graph::Graph;
use flow_engine::plan::Decision;

use super::Drawn;
use super::layout::{Layout, Rect, layout};
use super::model::{Collapsed, Group, Link};

const MARGIN: f64 = 20.0;
const FONT: &str = "ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', 'Liberation Mono', monospace";
/// Advance of one character of the monospace font per pixel of font size (DejaVu Sans Mono
/// and most others are 0.60-0.61), to size boxes to their text without measuring it.
const CHAR_EM: f64 = 0.62;
const NAME_SIZE: f64 = 14.0;
const TEXT_SIZE: f64 = 12.0;
const LABEL_SIZE: f64 = 11.0;
const PAD: f64 = 12.0;
const BOX_H: f64 = 60.0;
const MIN_BOX_W: f64 = 120.0;
/// Longest state label shown in a one-instance box; the full text is in its tooltip.
const MAX_LABEL_CHARS: usize = 46;
/// Non-fresh instances listed in a box's tooltip.
const TOOLTIP_INSTANCES: usize = 8;
const LEGEND_H: f64 = 64.0;
const EDGE_COLOR: &str = "#5b6270";

/// Box fill and outline for a state, and the stronger colour of its share in the state bar.
fn colors(state: Drawn) -> (&'static str, &'static str, &'static str) {
    match state {
        Drawn::Fresh => ("#d3efd3", "#3d8b3d", "#4caf50"),
        Drawn::Stale => ("#f9eca6", "#a88c12", "#e2bb1d"),
        Drawn::Failed => ("#f8beb4", "#b83227", "#d9443a"),
    }
}

/// Escapes text for XML content and attribute values (both quote kinds, so any attribute
/// quoting is safe).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters other than tab and newline are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Width in pixels of `s` at `size` in the monospace font.
fn text_width(s: &str, size: f64) -> f64 {
    s.chars().count() as f64 * size * CHAR_EM
}

/// `s` cut to `max` characters, ending in `…` when cut.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Numbers in SVG: one decimal is plenty and keeps the file small.
fn n(x: f64) -> String {
    let r = (x * 10.0).round() / 10.0;
    if r == r.trunc() {
        format!("{}", r as i64)
    } else {
        format!("{r:.1}")
    }
}

/// The two text lines of a group's box.
fn box_lines(g: &Group) -> (String, String) {
    if g.instances.len() == 1 {
        (g.name.clone(), truncate(&g.states[0].1, MAX_LABEL_CHARS))
    } else {
        (
            format!("{} ×{}", g.name, g.instances.len()),
            g.counts_label(),
        )
    }
}

/// The hover text of a group: its counts and the first few instances that are not fresh.
fn box_tooltip(g: &Group, ids: &[String]) -> String {
    let mut t = if g.instances.len() == 1 {
        format!("{}: {}", ids[0], g.states[0].1)
    } else {
        format!(
            "{}: {} instances — {}",
            g.name,
            g.instances.len(),
            g.counts_label()
        )
    };
    if g.instances.len() > 1 {
        let not_fresh: Vec<usize> = (0..g.instances.len())
            .filter(|&i| g.states[i].0 != Drawn::Fresh)
            .collect();
        for &i in not_fresh.iter().take(TOOLTIP_INSTANCES) {
            let _ = write!(t, "\n{} — {}", ids[i], g.states[i].1);
        }
        if not_fresh.len() > TOOLTIP_INSTANCES {
            let _ = write!(t, "\n… and {} more", not_fresh.len() - TOOLTIP_INSTANCES);
        }
    }
    t
}

/// What a link does, for its tooltip.
fn link_kind(l: &Link) -> &'static str {
    if l.gather {
        "gather: a downstream instance waits on several upstream instances"
    } else if l.sources == l.targets {
        "one-to-one"
    } else {
        "fan-out: an upstream instance feeds several downstream instances"
    }
}

/// The text on a link: counts, and `gather` spelled out so it does not rest on the dashes.
fn link_label(l: &Link) -> String {
    let counts = l.label();
    match (l.gather, counts.is_empty()) {
        (true, true) => "gather".into(),
        (true, false) => format!("gather {counts}"),
        (false, _) => counts,
    }
}

/// An SVG path through `points`, leaving and entering each point horizontally.
fn path_data(points: &[(f64, f64)]) -> String {
    let mut d = format!("M{},{}", n(points[0].0), n(points[0].1));
    for w in points.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        if (y0 - y1).abs() < 0.05 {
            let _ = write!(d, " L{},{}", n(x1), n(y1));
        } else {
            let dx = (x1 - x0) / 2.0;
            let _ = write!(
                d,
                " C{},{} {},{} {},{}",
                n(x0 + dx),
                n(y0),
                n(x1 - dx),
                n(y1),
                n(x1),
                n(y1)
            );
        }
    }
    d
}

/// The SVG document of `flow graph --format svg`.
pub fn standalone(graph: &Graph, decisions: &[Option<Decision>]) -> String {
    let collapsed = Collapsed::new(graph, decisions);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&render(graph, &collapsed, true));
    out
}

/// Draws the collapsed graph. `standalone` adds the XML namespace a separate `.svg` file
/// needs; inline in HTML it is left out (the HTML parser supplies it), which keeps the page
/// free of any `http://` string. Node boxes carry `data-node` so the page can find them.
pub fn render(graph: &Graph, c: &Collapsed, standalone: bool) -> String {
    let lines: Vec<(String, String)> = c.groups.iter().map(box_lines).collect();
    let sizes: Vec<(f64, f64)> = lines
        .iter()
        .map(|(a, b)| {
            let w = text_width(a, NAME_SIZE).max(text_width(b, TEXT_SIZE)) + 2.0 * PAD;
            (w.max(MIN_BOX_W).ceil(), BOX_H)
        })
        .collect();
    let edges: Vec<(usize, usize)> = c.links.iter().map(|l| (l.from, l.to)).collect();
    let lay: Layout = layout(&sizes, &edges);

    let title = format!(
        "flow graph {} — {} of {}: {}",
        graph.spec.source.name,
        plural(c.instances(), "instance"),
        plural(c.groups.len(), "node"),
        totals(c)
    );
    let legend_w = legend_width();
    let width = (lay.width.max(legend_w).max(text_width(&title, NAME_SIZE)) + 2.0 * MARGIN).ceil();
    let height = (lay.height + LEGEND_H + 2.0 * MARGIN).ceil();
    let (ox, oy) = (MARGIN, MARGIN + LEGEND_H);

    let mut s = String::new();
    let xmlns = if standalone {
        " xmlns=\"http://www.w3.org/2000/svg\""
    } else {
        ""
    };
    let _ = writeln!(
        s,
        "<svg{xmlns} class=\"flow-graph\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"{FONT}\" font-size=\"{TEXT_SIZE}\" role=\"img\" aria-label=\"{t}\">",
        w = n(width),
        h = n(height),
        t = escape(&title),
    );
    let _ = writeln!(s, "<title>{}</title>", escape(&title));
    let _ = writeln!(
        s,
        "<defs><marker id=\"flow-arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" markerUnits=\"userSpaceOnUse\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"{EDGE_COLOR}\"/></marker></defs>"
    );
    let _ = writeln!(
        s,
        "<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"#ffffff\"/>",
        n(width),
        n(height)
    );
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" font-size=\"{NAME_SIZE}\" font-weight=\"bold\" fill=\"#222\">{}</text>",
        n(MARGIN),
        n(MARGIN + 12.0),
        escape(&title)
    );
    legend(&mut s, MARGIN, MARGIN + 26.0);

    // Edges first, so boxes sit on top of their ends.
    s.push_str("<g class=\"links\" fill=\"none\">\n");
    for (l, route) in c.links.iter().zip(&lay.routes) {
        let pts: Vec<(f64, f64)> = route.iter().map(|&(x, y)| (x + ox, y + oy)).collect();
        let dash = if l.gather {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        };
        let from = &c.groups[l.from].name;
        let to = &c.groups[l.to].name;
        let _ = writeln!(
            s,
            "<g class=\"link\" data-from=\"{}\" data-to=\"{}\"><title>{}</title><path d=\"{}\" stroke=\"{EDGE_COLOR}\" stroke-width=\"1.5\"{dash} marker-end=\"url(#flow-arrow)\"/>",
            escape(from),
            escape(to),
            escape(&format!(
                "{from} → {to}: {} instance edges, {} → {} instances ({})",
                l.edges,
                l.sources,
                l.targets,
                link_kind(l)
            )),
            path_data(&pts),
        );
        let label = link_label(l);
        if !label.is_empty() {
            let (x0, y0) = pts[0];
            let (x1, y1) = pts[1];
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"{LABEL_SIZE}\" fill=\"#333\" stroke=\"#ffffff\" stroke-width=\"3\" paint-order=\"stroke\">{}</text>",
                n((x0 + x1) / 2.0),
                n((y0 + y1) / 2.0 - 4.0),
                escape(&label)
            );
        }
        s.push_str("</g>\n");
    }
    s.push_str("</g>\n");

    s.push_str("<g class=\"nodes\">\n");
    for (gi, g) in c.groups.iter().enumerate() {
        let r = lay.boxes[gi];
        let r = Rect {
            x: r.x + ox,
            y: r.y + oy,
            ..r
        };
        let ids: Vec<String> = g
            .instances
            .iter()
            .map(|&i| graph.nodes[i].id.clone())
            .collect();
        draw_box(&mut s, g, &lines[gi], &box_tooltip(g, &ids), r, standalone);
    }
    s.push_str("</g>\n</svg>\n");
    s
}

/// `1 node`, `3 nodes`.
pub fn plural(k: usize, word: &str) -> String {
    if k == 1 {
        format!("{k} {word}")
    } else {
        format!("{k} {word}s")
    }
}

/// `95 fresh, 50 stale, 5 failed` over the whole graph.
fn totals(c: &Collapsed) -> String {
    let parts: Vec<String> = Drawn::ALL
        .iter()
        .map(|&st| format!("{} {}", c.count(st), st.as_str()))
        .collect();
    parts.join(", ")
}

/// One group's box: outline and fill by its worst state, name, counts and the state bar.
fn draw_box(
    s: &mut String,
    g: &Group,
    lines: &(String, String),
    tip: &str,
    r: Rect,
    standalone: bool,
) {
    let worst = g.worst();
    let (fill, stroke, _) = colors(worst);
    // Focusable only where a page script can act on it.
    let focus = if standalone { "" } else { " tabindex=\"0\"" };
    let _ = writeln!(
        s,
        "<g class=\"node {}\" data-node=\"{}\"{focus}><title>{}</title>",
        worst.as_str(),
        escape(&g.name),
        escape(tip)
    );
    let _ = writeln!(
        s,
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"6\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"1.5\"/>",
        n(r.x),
        n(r.y),
        n(r.w),
        n(r.h)
    );
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" font-size=\"{NAME_SIZE}\" font-weight=\"bold\" fill=\"#111\">{}</text>",
        n(r.x + PAD),
        n(r.y + 22.0),
        escape(&lines.0)
    );
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" fill=\"#333\">{}</text>",
        n(r.x + PAD),
        n(r.y + 40.0),
        escape(&lines.1)
    );
    // The bar: each state's share of the instances, so a mixed node shows its mix.
    let total = g.instances.len() as f64;
    let bar_w = r.w - 2.0 * PAD;
    let mut x = r.x + PAD;
    for st in Drawn::ALL {
        let k = g.count(st);
        if k == 0 {
            continue;
        }
        let w = bar_w * k as f64 / total;
        let (_, _, strong) = colors(st);
        let _ = writeln!(
            s,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"6\" fill=\"{strong}\"/>",
            n(x),
            n(r.y + r.h - 13.0),
            n(w)
        );
        x += w;
    }
    s.push_str("</g>\n");
}

/// Legend entries: (swatch kind, text).
enum Swatch {
    State(Drawn),
    Line { dashed: bool },
}

const LEGEND: [(Swatch, &str); 5] = [
    (Swatch::State(Drawn::Fresh), "fresh"),
    (Swatch::State(Drawn::Stale), "stale"),
    (Swatch::State(Drawn::Failed), "failed"),
    (
        Swatch::Line { dashed: false },
        "needs: one-to-one / fan-out",
    ),
    (Swatch::Line { dashed: true }, "gather: many into one"),
];
const LEGEND_NOTE: &str = "one box per node: colour = its worst instance, bar = share of each state; a→b on a link = a upstream instances feed b downstream";
const SWATCH_W: f64 = 26.0;
const LEGEND_SPACING: f64 = 18.0;

fn legend_width() -> f64 {
    let row: f64 = LEGEND
        .iter()
        .map(|(_, t)| SWATCH_W + 6.0 + text_width(t, TEXT_SIZE) + LEGEND_SPACING)
        .sum();
    row.max(text_width(LEGEND_NOTE, LABEL_SIZE))
}

fn legend(s: &mut String, x0: f64, y0: f64) {
    s.push_str("<g class=\"legend\">\n");
    let mut x = x0;
    let mid = y0 + 6.0;
    for (sw, text) in &LEGEND {
        match sw {
            Swatch::State(st) => {
                let (fill, stroke, _) = colors(*st);
                let _ = writeln!(
                    s,
                    "<rect x=\"{}\" y=\"{}\" width=\"{SWATCH_W}\" height=\"14\" rx=\"3\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"1.5\"/>",
                    n(x),
                    n(mid - 7.0)
                );
            }
            Swatch::Line { dashed } => {
                let dash = if *dashed {
                    " stroke-dasharray=\"6 4\""
                } else {
                    ""
                };
                let _ = writeln!(
                    s,
                    "<path d=\"M{},{} L{},{}\" stroke=\"{EDGE_COLOR}\" stroke-width=\"1.5\"{dash} fill=\"none\" marker-end=\"url(#flow-arrow)\"/>",
                    n(x),
                    n(mid),
                    n(x + SWATCH_W),
                    n(mid)
                );
            }
        }
        x += SWATCH_W + 6.0;
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" fill=\"#222\">{}</text>",
            n(x),
            n(mid + 4.0),
            escape(text)
        );
        x += text_width(text, TEXT_SIZE) + LEGEND_SPACING;
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" font-size=\"{LABEL_SIZE}\" fill=\"#555\">{}</text>",
        n(x0),
        n(y0 + 28.0),
        escape(LEGEND_NOTE)
    );
    s.push_str("</g>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"a&b <c> "d" 'e'"#),
            "a&amp;b &lt;c&gt; &quot;d&quot; &apos;e&apos;"
        );
        assert_eq!(escape("bell\u{7}"), "bell\u{fffd}");
    }

    #[test]
    fn truncate_marks_the_cut() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(n(3.0), "3");
        assert_eq!(n(2.25), "2.3");
        assert_eq!(n(-0.04), "0");
    }

    #[test]
    fn paths_curve_between_rows_and_run_straight_along_one() {
        assert_eq!(
            path_data(&[(0.0, 0.0), (10.0, 0.0), (30.0, 20.0)]),
            "M0,0 L10,0 C20,0 20,20 30,20"
        );
    }
}
