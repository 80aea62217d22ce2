//! `leaderboard.csv`: one line per run in leaderboard order, for spreadsheets and scripts.

use super::leaderboard::{Entry, track_name};

/// The CSV header; the key hyperparameters follow `gpu_hours`.
pub(crate) fn header() -> Vec<&'static str> {
    let mut h = vec![
        "rank",
        "id",
        "name",
        "model_size",
        "mask_mAP",
        "bbox_mAP",
        "best_epoch",
        "best_track",
        "gpu_hours",
    ];
    h.extend(
        crate::compare::Hyperparameters::default()
            .key_columns()
            .iter()
            .map(|(k, _)| *k),
    );
    h.extend(["status", "note"]);
    h
}

/// The cells of one entry, in [`header`] order; numbers as Rust's shortest round-trip form.
pub(crate) fn cells(e: &Entry<'_>) -> Vec<String> {
    let best = e.best.as_ref();
    let mut row = vec![
        e.rank.map(|r| r.to_string()).unwrap_or_default(),
        inert(&e.run.id),
        inert(&e.run.name),
        e.run.model_size.as_str().to_string(),
        best.map(|b| b.mask_map.to_string()).unwrap_or_default(),
        best.and_then(|b| b.bbox_map)
            .map(|v| v.to_string())
            .unwrap_or_default(),
        best.map(|b| b.epoch.to_string()).unwrap_or_default(),
        best.map(|b| track_name(b.track).to_string())
            .unwrap_or_default(),
        e.run
            .gpu_hours
            .map(|h| format!("{h:.2}"))
            .unwrap_or_default(),
    ];
    row.extend(
        e.run
            .hyperparameters
            .key_columns()
            .into_iter()
            .map(|(_, v)| v),
    );
    row.push(e.status.label().to_string());
    row.push(inert(e.status.note()));
    row
}

/// A text cell a spreadsheet will not run as a formula: one that starts with `=`, `+`, `-`
/// or `@` gets a leading `'` (the usual guard against CSV formula injection through run
/// names).
fn inert(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

/// The whole file (RFC 4180 quoting, `\n` line ends).
pub(crate) fn leaderboard_csv(entries: &[Entry<'_>]) -> String {
    let mut out = String::new();
    push_row(&mut out, header().iter().map(|s| s.to_string()));
    for e in entries {
        push_row(&mut out, cells(e).into_iter());
    }
    out
}

fn push_row(out: &mut String, cells: impl Iterator<Item = String>) {
    for (i, c) in cells.enumerate() {
        if i > 0 {
            out.push(',');
        }
        if c.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&c.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&c);
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    #[test]
    fn formula_like_text_is_made_inert() {
        assert_eq!(super::inert("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(super::inert("@cmd"), "'@cmd");
        assert_eq!(super::inert("nano-baseline"), "nano-baseline");
    }
}
