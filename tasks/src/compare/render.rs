//! The entry point: rank, prepare each output's data, render the stale outputs in parallel,
//! then the report, then record the state.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use base64::Engine as _;
use rayon::prelude::*;

use super::atomic::write_atomic;
use super::csv::leaderboard_csv;
use super::digest::{Digest, content_digest};
use super::error::CompareError;
use super::leaderboard::{self, Status};
use super::options::CompareOptions;
use super::output::{CompareSummary, Output};
use super::palette::Colors;
use super::plot::{bars, curves, scatter, sizes};
use super::report::report_html;
use super::run::CompareRun;
use super::state::{Record, State};

/// Enters every input digest: bump it whenever a change to the code changes what an output
/// looks like, so existing outputs are re-rendered once.
pub const RENDERER_VERSION: u64 = 1;

/// What one output needs to be rendered, already reduced to exactly the data it shows.
enum Job {
    Csv(String),
    Curves(curves::CurvesData),
    Bars(bars::BarsData),
    Sizes(sizes::SizesData),
    Scatter(scatter::ScatterData),
}

impl Job {
    fn output(&self) -> Output {
        match self {
            Job::Csv(_) => Output::Leaderboard,
            Job::Curves(_) => Output::TrainingCurves,
            Job::Bars(_) => Output::MetricsBar,
            Job::Sizes(_) => Output::ModelSize,
            Job::Scatter(_) => Output::LrScatter,
        }
    }

    fn digest(&self) -> String {
        match self {
            Job::Csv(text) => Digest::new(Output::Leaderboard.file_name())
                .bytes(text.as_bytes())
                .finish(),
            Job::Curves(d) => d.digest(),
            Job::Bars(d) => d.digest(),
            Job::Sizes(d) => d.digest(),
            Job::Scatter(d) => d.digest(),
        }
    }

    fn message(&self) -> Option<String> {
        match self {
            Job::Csv(_) => None,
            Job::Curves(d) => d.message(),
            Job::Bars(d) => d.message(),
            Job::Sizes(d) => d.message(),
            Job::Scatter(d) => d.message(),
        }
    }

    fn bytes(&self) -> Result<Vec<u8>, CompareError> {
        match self {
            Job::Csv(text) => Ok(text.as_bytes().to_vec()),
            Job::Curves(d) => d.draw(),
            Job::Bars(d) => d.draw(),
            Job::Sizes(d) => d.draw(),
            Job::Scatter(d) => d.draw(),
        }
    }
}

/// The outcome of one output: its file content and whether it was written this time.
struct Done {
    output: Output,
    record: Record,
    bytes: Vec<u8>,
    rendered: bool,
}

/// Writes the compare outputs for `runs` into `out` (created if missing), re-rendering only
/// the outputs whose input digest changed or whose file is missing or modified.
///
/// Runs with unusable metrics are flagged in the outputs, never an error. Errors are about the
/// output directory (cannot write), duplicate run ids, or a state file from a newer flow. When
/// one output fails, the others that were written are still recorded, so the next call does
/// not redo them.
pub fn render(
    runs: &[CompareRun],
    out: &Path,
    opts: &CompareOptions,
) -> Result<CompareSummary, CompareError> {
    let mut seen = HashSet::new();
    if let Some(dup) = runs.iter().find(|r| !seen.insert(r.id.as_str())) {
        return Err(CompareError::DuplicateRunId { id: dup.id.clone() });
    }
    std::fs::create_dir_all(out).map_err(|source| CompareError::CreateDir {
        path: out.to_path_buf(),
        source,
    })?;
    let previous = State::load(out)?;
    let Prepared {
        entries,
        colors,
        jobs,
        notes,
    } = prepare(runs, opts);
    let results: Vec<Result<Done, CompareError>> = jobs
        .par_iter()
        .map(|job| {
            let output = job.output();
            produce(out, output, job.digest(), &previous, opts, || job.bytes())
        })
        .collect();

    let mut done: BTreeMap<Output, Done> = BTreeMap::new();
    let mut first_error = None;
    for r in results {
        match r {
            Ok(d) => {
                done.insert(d.output, d);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }

    if first_error.is_none() {
        // The page without its images, with each image's content digest in its place, is
        // exactly what the report depends on.
        let placeholder = |o: Output| {
            done.get(&o)
                .map(|d| format!("blake3:{}", d.record.content))
                .unwrap_or_default()
        };
        let inputs = Digest::new(Output::Report.file_name())
            .bytes(report_html(&entries, &colors, &placeholder, &notes).as_bytes())
            .finish();
        let real = |o: Output| {
            done.get(&o)
                .map(|d| {
                    format!(
                        "data:image/png;base64,{}",
                        base64::engine::general_purpose::STANDARD.encode(&d.bytes)
                    )
                })
                .unwrap_or_default()
        };
        match produce(out, Output::Report, inputs, &previous, opts, || {
            Ok(report_html(&entries, &colors, &real, &notes).into_bytes())
        }) {
            Ok(d) => {
                done.insert(Output::Report, d);
            }
            Err(e) => first_error = Some(e),
        }
    }

    let mut state = State::empty();
    let mut summary = CompareSummary {
        runs: runs.len(),
        flagged: entries
            .iter()
            .filter(|e| matches!(e.status, Status::Flagged(_)))
            .count(),
        ..CompareSummary::default()
    };
    for (output, d) in done {
        state
            .outputs
            .insert(output.file_name().to_string(), d.record);
        if d.rendered {
            summary.rendered.push(output);
        } else {
            summary.up_to_date.push(output);
        }
    }
    state.save(out)?;
    match first_error {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}

/// Reuses `output`'s file when its recorded input digest equals `inputs` and its content is
/// the content recorded; otherwise renders it and writes it atomically.
/// The ranked runs, their colours and each output's drawing job: what both [`render`] and
/// [`preview`] start from.
struct Prepared<'a> {
    entries: Vec<leaderboard::Entry<'a>>,
    colors: Colors,
    jobs: Vec<Job>,
    notes: BTreeMap<Output, String>,
}

fn prepare<'a>(runs: &'a [CompareRun], opts: &CompareOptions) -> Prepared<'a> {
    let entries = leaderboard::rank(runs);
    let n_ranked = entries.iter().take_while(|e| e.best.is_some()).count();
    let ranked = &entries[..n_ranked];
    let colors = Colors::assign(ranked, opts);
    let jobs = vec![
        Job::Csv(leaderboard_csv(&entries)),
        Job::Curves(curves::prepare(ranked, &colors, opts)),
        Job::Bars(bars::prepare(ranked, &colors, opts)),
        Job::Sizes(sizes::prepare(ranked, &colors, opts)),
        Job::Scatter(scatter::prepare(ranked, &colors, opts)),
    ];
    let notes = jobs
        .iter()
        .filter_map(|j| j.message().map(|m| (j.output(), m)))
        .collect();
    Prepared {
        entries,
        colors,
        jobs,
        notes,
    }
}

/// Which outputs [`render`] would draw again for `runs`, without drawing anything: what
/// `flow run -n` shows for a stale compare node. The report counts as changed when any plot
/// does or when its own page would differ.
pub fn preview(
    runs: &[CompareRun],
    out: &Path,
    opts: &CompareOptions,
) -> Result<Vec<Output>, CompareError> {
    let previous = State::load(out)?;
    let Prepared {
        entries,
        colors,
        jobs,
        notes,
    } = prepare(runs, opts);
    let intact = |output: Output, inputs: &str| -> Option<String> {
        let rec = previous.outputs.get(output.file_name())?;
        let bytes = std::fs::read(out.join(output.file_name())).ok()?;
        (!opts.force && rec.inputs == inputs && content_digest(&bytes) == rec.content)
            .then(|| rec.content.clone())
    };
    let mut changed = Vec::new();
    let mut contents: BTreeMap<Output, String> = BTreeMap::new();
    for job in &jobs {
        match intact(job.output(), &job.digest()) {
            Some(c) => {
                contents.insert(job.output(), c);
            }
            None => changed.push(job.output()),
        }
    }
    let report_same = changed.is_empty() && {
        let placeholder = |o: Output| {
            contents
                .get(&o)
                .map(|c| format!("blake3:{c}"))
                .unwrap_or_default()
        };
        let inputs = Digest::new(Output::Report.file_name())
            .bytes(report_html(&entries, &colors, &placeholder, &notes).as_bytes())
            .finish();
        intact(Output::Report, &inputs).is_some()
    };
    if !report_same {
        changed.push(Output::Report);
    }
    Ok(changed)
}

fn produce(
    out: &Path,
    output: Output,
    inputs: String,
    previous: &State,
    opts: &CompareOptions,
    render: impl FnOnce() -> Result<Vec<u8>, CompareError>,
) -> Result<Done, CompareError> {
    let path = out.join(output.file_name());
    if !opts.force
        && let Some(rec) = previous.outputs.get(output.file_name())
        && rec.inputs == inputs
        && let Ok(bytes) = std::fs::read(&path)
        && content_digest(&bytes) == rec.content
    {
        return Ok(Done {
            output,
            record: rec.clone(),
            bytes,
            rendered: false,
        });
    }
    let bytes = render()?;
    write_atomic(&path, &bytes)?;
    Ok(Done {
        output,
        record: Record {
            inputs,
            content: content_digest(&bytes),
        },
        bytes,
        rendered: true,
    })
}
