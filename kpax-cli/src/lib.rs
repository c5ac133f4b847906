//! The parts of the `kpax` command-line tool that read what users type or
//! pipe in, as a library so that fuzz targets and tests reach them: see
//! [`input`]. The tool itself is the `kpax` binary (`src/main.rs`).
#![warn(missing_docs)]

pub mod input;
