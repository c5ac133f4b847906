//! How results are shown: aligned tables and JSON on stdout, progress bars
//! on stderr (only when stderr is a terminal).

use crate::error::{CliError, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};

/// A table printed with aligned columns.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are blank).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, columns separated by two spaces, no trailing
    /// blanks.
    pub fn render(&self) -> String {
        let cols = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.header.len()])
            .max()
            .unwrap_or(0);
        let mut width = vec![0usize; cols];
        for r in std::iter::once(&self.header).chain(&self.rows) {
            for (i, c) in r.iter().enumerate() {
                width[i] = width[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, c) in r.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(c);
                if i + 1 < r.len() {
                    line.extend(std::iter::repeat_n(' ', width[i] - c.chars().count()));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Writes `text` to stdout; a closed pipe (`kpax ... | head`) is not an
/// error worth a message, so it ends quietly as success.
///
/// # Errors
/// Other write errors.
pub fn write_out(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(CliError::Io {
            context: "writing to stdout".into(),
            source: e,
        }),
    }
}

/// Prints one JSON value (pretty) on stdout.
///
/// # Errors
/// When stdout cannot be written.
pub fn print_json(v: &serde_json::Value) -> Result<()> {
    let mut s = serde_json::to_string_pretty(v).map_err(|e| CliError::Failed(e.to_string()))?;
    s.push('\n');
    write_out(&s)
}

/// A comma-separated list of node ids (`-` when empty).
pub fn ids(v: &[i32]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

/// A count of `total` things (or a spinner when unknown) on stderr, shown
/// only when stderr is a terminal; hidden otherwise.
pub fn progress(total: Option<u64>, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({per_sec}, {eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {msg} {pos} ({per_sec})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_message(what.to_string());
    bar
}

/// Turns per-item results into printed successes and one error naming
/// every failure.
pub fn report<T>(results: Vec<(String, kpax::Result<T>)>, done: &str) -> Result<()> {
    let mut failed = Vec::new();
    let mut out = String::new();
    for (name, r) in results {
        match r {
            Ok(_) => out.push_str(&format!("{done} {name}\n")),
            Err(e) => failed.push(format!("{name}: {e}")),
        }
    }
    write_out(&out)?;
    failures(failed)
}

/// `Ok` when nothing failed, else one error naming every failure.
///
/// # Errors
/// [`CliError::Failed`] with the failures joined by `; `.
pub fn failures(failed: Vec<String>) -> Result<()> {
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Failed(failed.join("; ")))
    }
}

/// One partition's offset before and after a reset: (partition, before
/// (`None`: none), after).
pub type OffsetMove = (i32, Option<i64>, i64);

/// The JSON rows of offset moves: `{partition, before, after}`.
pub fn moves_json(rows: &[OffsetMove]) -> Vec<serde_json::Value> {
    rows.iter()
        .map(|(p, old, new)| serde_json::json!({ "partition": p, "before": old, "after": new }))
        .collect()
}

/// The TOPIC / PARTITION / BEFORE / AFTER table of offset moves on `topic`.
pub fn moves_table(topic: &str, rows: &[OffsetMove]) -> String {
    let mut t = Table::new(&["TOPIC", "PARTITION", "BEFORE", "AFTER"]);
    for (p, old, new) in rows {
        t.row(vec![
            topic.to_string(),
            p.to_string(),
            old.map_or("-".into(), |o| o.to_string()),
            new.to_string(),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns() {
        let mut t = Table::new(&["A", "LONGER"]);
        t.row(vec!["wide-cell".into(), "x".into()]);
        assert_eq!(t.render(), "A          LONGER\nwide-cell  x\n");
    }
}
