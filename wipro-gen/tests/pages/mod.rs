//! The protocol pages `scripts/kafka-pages.sh` makes, for the tests that
//! read them: in `$KPAX_PAGES` (default ~/.cache/kpax/kafka-protocol), one
//! folder per release, never in the repository.

use std::path::PathBuf;

/// `RELEASE/rel` for each of `releases`, or `None` after printing why
/// some is missing; in CI (`CI` set) a missing one is a failure.
pub fn release_paths(releases: &[&str], rel: &str) -> Option<Vec<PathBuf>> {
    let skip = |what: String| {
        let why = format!("{what} (run scripts/kafka-pages.sh {})", releases.join(" "));
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("skipped: {why}");
        None
    };
    let Some(base) = std::env::var_os("KPAX_PAGES")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/kpax/kafka-protocol"))
        })
    else {
        return skip("neither $KPAX_PAGES nor $HOME is set".into());
    };
    let paths: Vec<PathBuf> = releases.iter().map(|r| base.join(r).join(rel)).collect();
    let missing: Vec<String> = paths
        .iter()
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if missing.is_empty() {
        Some(paths)
    } else {
        skip(format!("not found: {}", missing.join(", ")))
    }
}
