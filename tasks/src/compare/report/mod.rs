//! `report.html`: one self-contained page (inline CSS and JS, plots as data URIs, a
//! Content-Security-Policy that forbids any network access) with the sortable leaderboard, the
//! plots and every run's hyperparameters and provenance.

mod escape;

use std::collections::BTreeMap;
use std::fmt::Write;

pub(crate) use escape::escape;

use super::csv;
use super::leaderboard::{Entry, Status, track_name};
use super::output::Output;
use super::palette::{Colors, hex};
use crate::experiment::ModelSize;

const CSS: &str = include_str!("report.css");
const JS: &str = include_str!("report.js");

/// How a leaderboard column sorts in the browser.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Num,
    Text,
}

/// Builds the page. `images` gives each plot's `src`: a data URI when writing the file, or a
/// stand-in naming the image's digest when computing the report's input digest (the page is
/// otherwise a pure function of the entries, so hashing it is hashing exactly its inputs).
pub(crate) fn report_html(
    entries: &[Entry<'_>],
    colors: &Colors,
    images: &dyn Fn(Output) -> String,
    notes: &BTreeMap<Output, String>,
) -> String {
    let flagged = entries
        .iter()
        .filter(|e| matches!(e.status, Status::Flagged(_)))
        .count();
    let mut h = String::with_capacity(4096 + entries.len() * 2048);
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n",
    );
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    h.push_str("<title>flow compare</title>\n");
    // Collects script errors for the self-test before the main script runs.
    h.push_str(
        "<script>window.__compareErrors=[];window.addEventListener('error',function(e)\
         {window.__compareErrors.push(String(e.message));});</script>\n",
    );
    let _ = write!(h, "<style>\n{CSS}</style>\n</head>\n<body>\n");
    h.push_str("<h1>flow compare</h1>\n");
    let _ = writeln!(
        h,
        "<p class=\"summary\">{} run{} compared, {} ranked by best mask mAP (AP@[.5:.95]), {} \
         flagged. Click a column header to sort.</p>",
        entries.len(),
        plural(entries.len()),
        entries.len() - flagged,
        flagged
    );
    if flagged > 0 {
        let _ = writeln!(
            h,
            "<p class=\"alert\" id=\"flagged-alert\"><strong>{flagged} run{} flagged</strong>: \
             {} no usable metrics; listed at the bottom of the leaderboard with the reason.</p>",
            plural(flagged),
            if flagged == 1 { "it has" } else { "they have" }
        );
    }
    h.push_str("<h2>Leaderboard</h2>\n");
    leaderboard(&mut h, entries, colors);
    h.push_str("<h2>Plots</h2>\n<div class=\"plots\">\n");
    for plot in Output::PLOTS {
        let note = notes
            .get(&plot)
            .map(|n| format!(" <span class=\"plot-note\">{}</span>", escape(n)))
            .unwrap_or_default();
        let _ = writeln!(
            h,
            "<figure id=\"plot-{}\"><img src=\"{}\" alt=\"{}\">\
             <figcaption>{}{note}</figcaption></figure>",
            plot.file_name().trim_end_matches(".png"),
            escape(&images(plot)),
            caption(plot),
            plot.file_name()
        );
    }
    h.push_str("</div>\n<h2>Runs</h2>\n");
    for (i, e) in entries.iter().enumerate() {
        run_details(&mut h, i, e, colors);
    }
    h.push_str("<pre id=\"selftest-result\"></pre>\n<pre id=\"selftest-errors\"></pre>\n");
    let _ = write!(h, "<script>\n{JS}</script>\n</body>\n</html>\n");
    h
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn caption(plot: Output) -> &'static str {
    match plot {
        Output::TrainingCurves => "Training loss and mask mAP per epoch, top runs",
        Output::MetricsBar => "Best mask and bbox mAP, top runs",
        Output::ModelSize => "Best run per model size",
        Output::LrScatter => "Learning rate against best mask mAP",
        Output::Leaderboard | Output::Report => "",
    }
}

fn swatch(colors: &Colors, id: &str) -> String {
    match colors.get(id) {
        Some(c) => format!(
            "<span class=\"swatch\" style=\"background:{}\" title=\"colour in the plots\"></span>",
            hex(c)
        ),
        None => "<span class=\"swatch none\"></span>".to_string(),
    }
}

fn leaderboard(h: &mut String, entries: &[Entry<'_>], colors: &Colors) {
    let header = csv::header();
    h.push_str("<div class=\"scroll\">\n<table class=\"lb\" id=\"leaderboard\">\n<thead><tr>");
    for key in header.iter().filter(|k| **k != "note") {
        let kind = column_kind(key);
        let _ = write!(
            h,
            "<th data-key=\"{key}\" data-type=\"{}\" tabindex=\"0\"{}>{key}</th>",
            if kind == Kind::Num { "num" } else { "text" },
            if *key == "rank" {
                " aria-sort=\"ascending\""
            } else {
                ""
            },
        );
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    for (i, e) in entries.iter().enumerate() {
        let cells = csv::cells(e);
        let flagged = matches!(e.status, Status::Flagged(_));
        let _ = write!(
            h,
            "<tr data-i=\"{i}\" data-id=\"{}\"{}>",
            escape(&e.run.id),
            if flagged { " class=\"flagged\"" } else { "" }
        );
        for (key, cell) in header.iter().zip(&cells) {
            match *key {
                "note" => {}
                "id" => {
                    let _ = write!(
                        h,
                        "<td><a href=\"#run-{i}\"><code>{}</code></a></td>",
                        escape(cell)
                    );
                }
                "name" => {
                    let _ = write!(
                        h,
                        "<td data-v=\"{}\">{}{}</td>",
                        escape(cell),
                        swatch(colors, &e.run.id),
                        escape(cell)
                    );
                }
                "model_size" => {
                    let order = ModelSize::ALL
                        .iter()
                        .position(|s| *s == e.run.model_size)
                        .unwrap_or(0);
                    let _ = write!(h, "<td data-v=\"{order}\">{}</td>", escape(cell));
                }
                "status" => {
                    let label = e.status.label();
                    let _ = write!(
                        h,
                        "<td data-v=\"{label}\"><span class=\"badge {label}\">{}</span>",
                        if flagged { "⚠ flagged" } else { label }
                    );
                    if !e.status.note().is_empty() {
                        let _ = write!(h, "<div class=\"note\">{}</div>", escape(e.status.note()));
                    }
                    h.push_str("</td>");
                }
                "mask_mAP" | "bbox_mAP" if !cell.is_empty() => {
                    let v: f64 = cell.parse().unwrap_or(f64::NAN);
                    let _ = write!(
                        h,
                        "<td class=\"num\" data-v=\"{}\">{v:.4}</td>",
                        escape(cell)
                    );
                }
                k if column_kind(k) == Kind::Num => {
                    let _ = write!(h, "<td class=\"num\">{}</td>", escape(cell));
                }
                _ => {
                    let _ = write!(h, "<td>{}</td>", escape(cell));
                }
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody>\n</table>\n</div>\n");
}

/// Text columns sort as text; every other column, model_size included (by its position in
/// nano..2xlarge, through `data-v`), sorts as a number.
fn column_kind(key: &str) -> Kind {
    match key {
        "id" | "name" | "best_track" | "lr_scheduler" | "status" | "note" => Kind::Text,
        _ => Kind::Num,
    }
}

fn run_details(h: &mut String, i: usize, e: &Entry<'_>, colors: &Colors) {
    let run = e.run;
    let flagged = matches!(e.status, Status::Flagged(_));
    let _ = write!(
        h,
        "<details class=\"run{}\" id=\"run-{i}\"><summary>{}<strong>{}</strong> <code>{}</code> · {} · ",
        if flagged { " flagged" } else { "" },
        swatch(colors, &run.id),
        escape(&run.name),
        escape(&run.id),
        run.model_size.as_str(),
    );
    match (&e.best, &e.status) {
        (Some(b), _) => {
            let _ = write!(
                h,
                "mask mAP {:.4} (epoch {}, {})",
                b.mask_map,
                b.epoch,
                track_name(b.track)
            );
        }
        (None, _) => h.push_str("<span class=\"badge flagged\">⚠ flagged</span>"),
    }
    h.push_str("</summary>\n<div class=\"cols\">");
    let mut hp: Vec<(String, String)> = run
        .hyperparameters
        .key_columns()
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    hp.extend(
        run.hyperparameters
            .other
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    kv_table(
        h,
        "Hyperparameters",
        hp.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let mut prov: Vec<(&str, String)> = run
        .provenance
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    if let Some(g) = run.gpu_hours {
        prov.push(("gpu_hours", format!("{g:.2}")));
    }
    kv_table(h, "Provenance", prov.iter().map(|(k, v)| (*k, v.as_str())));
    h.push_str("</div>");
    if !e.status.note().is_empty() {
        let _ = write!(
            h,
            "<p class=\"note\">{}: {}</p>",
            if flagged { "flagged" } else { "problems" },
            escape(e.status.note())
        );
    }
    h.push_str("</details>\n");
}

fn kv_table<'a>(h: &mut String, caption: &str, rows: impl Iterator<Item = (&'a str, &'a str)>) {
    let _ = write!(h, "<table class=\"kv\"><caption>{caption}</caption>");
    let mut any = false;
    for (k, v) in rows {
        any = true;
        let _ = write!(h, "<tr><td>{}</td><td>{}</td></tr>", escape(k), escape(v));
    }
    if !any {
        h.push_str("<tr><td colspan=\"2\">none recorded</td></tr>");
    }
    h.push_str("</table>");
}
