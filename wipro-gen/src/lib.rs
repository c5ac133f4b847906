//! wipro-gen: the Kafka protocol page becomes a spec file (`scrape`), and the
//! spec file becomes kpax-proto's generated code (`generate`).

pub mod bnf;
pub mod scrape;
pub mod spec;

use std::path::{Path, PathBuf};

/// The spec file's path relative to the workspace root.
pub const SPEC_FILE: &str = "spec/protocol.txt";

/// The workspace root: two levels above this crate's manifest, as compiled.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Writes `contents` to `path` through a temporary file and a rename, so that
/// a failure never leaves a half-written file.
///
/// # Errors
/// The I/O error, with the path.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("tmp~");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(&tmp, contents).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| format!("cannot rename {} to {}: {e}", tmp.display(), path.display()))
}

/// A stable label for the page: its path from the `kafka-protocol` folder on
/// when it has one (so the spec does not depend on where it was checked out).
pub fn source_label(html: &Path) -> String {
    let parts: Vec<String> = html
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    match parts.iter().position(|p| p == "kafka-protocol") {
        Some(i) => parts[i..].join("/"),
        None => parts.last().cloned().unwrap_or_default(),
    }
}

/// `wipro-gen scrape`: scrapes `html` and writes the spec file under `root`.
/// Returns the summary line.
///
/// # Errors
/// A message naming file, API, version and line; the spec is left untouched.
pub fn run_scrape(root: &Path, html: &Path) -> Result<String, String> {
    let spec = scrape::scrape(html, &source_label(html)).map_err(|e| e.to_string())?;
    let text = spec.print();
    // The printed form must read back to the same spec: a scrape that cannot
    // round-trip is a bug to fix, not a file to write.
    let back = spec::Spec::parse(SPEC_FILE, &text)
        .map_err(|e| format!("internal: printed spec does not parse: {e}"))?;
    if back != spec {
        return Err("internal: printed spec does not read back to the scraped one".into());
    }
    write_atomic(&root.join(SPEC_FILE), text.as_bytes())?;
    Ok(spec.summary())
}
