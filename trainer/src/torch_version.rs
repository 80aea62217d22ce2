//! Reads torch's `version.py`, shared by the build script (the version built against) and
//! `flow-train doctor` (the version loaded at run time).

/// The `__version__ = '...'` value of a torch `version.py`.
pub fn parse_version_py(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let v = l
            .strip_prefix("__version__")?
            .trim()
            .strip_prefix('=')?
            .trim();
        Some(v.trim_matches(|c| c == '\'' || c == '"').to_owned())
    })
}
