//! wipro-gen: the Kafka protocol page becomes a spec file (`scrape`), and the
//! spec file becomes kpax-proto's generated code (`generate`).

pub mod bnf;
pub mod emit;
pub mod merge;
pub mod model;
pub mod overlay;
pub mod scrape;
pub mod spec;
pub mod stamp;

use std::path::{Path, PathBuf};

/// The spec file's path relative to the workspace root.
pub const SPEC_FILE: &str = "spec/protocol.txt";
/// The overlay file's path relative to the workspace root.
pub const OVERLAY_FILE: &str = "spec/overlay.txt";
/// The generated tree's path relative to the workspace root.
pub const GENERATED_DIR: &str = "kpax-proto/src/generated";

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

/// Scrapes each page and, for more than one, merges them (see [`merge`]).
///
/// # Errors
/// A message naming file, API, version and line, or the disagreement.
pub fn scrape_pages(html: &[PathBuf]) -> Result<spec::Spec, String> {
    let pages = html
        .iter()
        .map(|h| scrape::scrape(h, &source_label(h)).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    merge::merge(pages)
}

/// `wipro-gen scrape`: scrapes the pages (several are merged, later ones
/// newer) and writes the spec file under `root`. Returns the summary line.
///
/// # Errors
/// A message naming file, API, version and line; the spec is left untouched.
pub fn run_scrape(root: &Path, html: &[PathBuf]) -> Result<String, String> {
    let spec = scrape_pages(html)?;
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

/// The model of every API, from the spec and overlay under `root`: what the
/// generated code types (for cross-checks against other sources).
///
/// # Errors
/// As [`generate_files`].
pub fn build_models(root: &Path) -> Result<(spec::Spec, Vec<model::ApiModel>), String> {
    let read = |rel: &str| {
        std::fs::read_to_string(root.join(rel))
            .map_err(|e| format!("cannot read {}: {e}", root.join(rel).display()))
    };
    build_models_from(&read(SPEC_FILE)?, &read(OVERLAY_FILE)?)
}

fn build_models_from(
    spec_text: &str,
    overlay_text: &str,
) -> Result<(spec::Spec, Vec<model::ApiModel>), String> {
    let mut spec = spec::Spec::parse(SPEC_FILE, spec_text).map_err(|e| e.to_string())?;
    let facts = overlay::parse(OVERLAY_FILE, overlay_text).map_err(|e| e.to_string())?;
    let (facts, skipped) = overlay::reconcile(&mut spec, &facts)?;
    for line in &skipped {
        eprintln!("{line}");
    }
    let apis = model::build(&spec, &facts).map_err(|e| e.to_string())?;
    Ok((spec, apis))
}

/// Reads the spec and overlay under `root` and produces every generated
/// file: `(name, text)` pairs plus the STAMP text.
///
/// # Errors
/// A message naming the file and line, or the message and field.
pub fn generate_files(root: &Path) -> Result<(Vec<emit::File>, String), String> {
    let read = |rel: &str| {
        std::fs::read_to_string(root.join(rel))
            .map_err(|e| format!("cannot read {}: {e}", root.join(rel).display()))
    };
    let spec_text = read(SPEC_FILE)?;
    let overlay_text = read(OVERLAY_FILE)?;
    let (spec, apis) = build_models_from(&spec_text, &overlay_text)?;
    let headers = [
        model::build_header(&spec, spec::Direction::Request).map_err(|e| e.to_string())?,
        model::build_header(&spec, spec::Direction::Response).map_err(|e| e.to_string())?,
    ];
    let spec_hash = format!(
        "spec fnv1a {:016x}",
        stamp::fnv1a(&[spec_text.as_bytes(), overlay_text.as_bytes()])
    );
    let mut files = emit::emit_all(&spec, &apis, &headers, &spec_hash)?;
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let refs: Vec<&[u8]> = files.iter().map(|f| f.text.as_bytes()).collect();
    let stamp = stamp::stamp_text(&[spec_text.as_bytes(), overlay_text.as_bytes()], &refs);
    Ok((files, stamp))
}

/// `wipro-gen generate`: rewrites the generated tree; returns a summary.
///
/// # Errors
/// As [`generate_files`], or an I/O error; nothing is written on a model error.
pub fn run_generate(root: &Path) -> Result<String, String> {
    let (files, stamp) = generate_files(root)?;
    let dir = root.join(GENERATED_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let keep: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    for entry in std::fs::read_dir(&dir)
        .map_err(|e| e.to_string())?
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".rs") && !keep.contains(&name.as_str()) {
            std::fs::remove_file(entry.path()).map_err(|e| e.to_string())?;
        }
    }
    let mut lines = 0;
    for f in &files {
        lines += f.text.lines().count();
        let path = dir.join(&f.name);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(f.text.as_str()) {
            write_atomic(&path, f.text.as_bytes())?;
        }
    }
    write_atomic(&dir.join("STAMP"), stamp.as_bytes())?;
    Ok(format!(
        "generated {} files, {lines} lines, in {}",
        files.len(),
        dir.display()
    ))
}

/// `wipro-gen check`: what would change if the spec were rescraped from
/// the pages `html` (when any) and the code regenerated. Returns the changed paths.
///
/// # Errors
/// As [`run_scrape`] and [`generate_files`].
pub fn run_check(root: &Path, html: &[PathBuf]) -> Result<Vec<String>, String> {
    let mut stale = Vec::new();
    if !html.is_empty() {
        let spec = scrape_pages(html)?;
        if std::fs::read_to_string(root.join(SPEC_FILE)).ok() != Some(spec.print()) {
            stale.push(SPEC_FILE.to_string());
        }
    }
    let (files, stamp) = generate_files(root)?;
    let dir = root.join(GENERATED_DIR);
    for f in &files {
        if std::fs::read_to_string(dir.join(&f.name)).ok().as_deref() != Some(f.text.as_str()) {
            stale.push(format!("{GENERATED_DIR}/{}", f.name));
        }
    }
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.ends_with(".rs") && !files.iter().any(|f| f.name == n) {
                stale.push(format!("{GENERATED_DIR}/{n} (not generated any more)"));
            }
        }
    }
    if std::fs::read_to_string(dir.join("STAMP")).ok().as_deref() != Some(stamp.as_str()) {
        stale.push(format!("{GENERATED_DIR}/STAMP"));
    }
    Ok(stale)
}
