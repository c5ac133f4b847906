//! The hash stamp that ties `kpax-proto/src/generated/` to `spec/`. Shared,
//! by path, with the workspace's `build.rs`, so both compute it one way.

use std::path::Path;

/// FNV-1a, 64 bits: cheap, stable, and dependency-free (not cryptographic;
/// it only detects a stale or hand-edited tree).
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // separate parts so that moving bytes between files changes the hash
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The stamp file's text for the spec files and generated files given.
pub fn stamp_text(spec: &[&[u8]], generated: &[&[u8]]) -> String {
    format!(
        "spec {:016x}\ngenerated {:016x}\n",
        fnv1a(spec),
        fnv1a(generated)
    )
}

/// Reads the inputs under `root` and computes the stamp that the generated
/// tree should carry: `(expected stamp, the one on disk)`.
pub fn check_tree(root: &Path) -> std::io::Result<(String, String)> {
    let spec_a = std::fs::read(root.join("spec/protocol.txt"))?;
    let spec_b = std::fs::read(root.join("spec/overlay.txt"))?;
    let dir = root.join("kpax-proto/src/generated");
    let mut names: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".rs"))
        .collect();
    names.sort();
    let mut files = Vec::new();
    for n in &names {
        files.push(std::fs::read(dir.join(n))?);
    }
    let refs: Vec<&[u8]> = files.iter().map(Vec::as_slice).collect();
    let expected = stamp_text(&[&spec_a, &spec_b], &refs);
    let on_disk = std::fs::read_to_string(dir.join("STAMP")).unwrap_or_default();
    Ok((expected, on_disk))
}
