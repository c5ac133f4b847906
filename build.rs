//! Refuses to build the workspace's tests against a stale generated protocol
//! tree: the hash stamp in kpax-proto/src/generated/STAMP must match spec/
//! and the generated files. No generation happens here.

#[path = "wipro-gen/src/stamp.rs"]
mod stamp;

fn main() {
    println!("cargo:rerun-if-changed=spec");
    println!("cargo:rerun-if-changed=kpax-proto/src/generated");
    println!("cargo:rerun-if-changed=build.rs");
    let root = std::path::PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    match stamp::check_tree(&root) {
        Ok((expected, on_disk)) if expected == on_disk => {}
        Ok(_) => {
            eprintln!(
                "error: kpax-proto/src/generated is stale or was edited by hand: it does not match spec/ \
                 (kpax-proto/src/generated/STAMP). Run `cargo run -p wipro-gen` and commit the result."
            );
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("error: cannot check kpax-proto/src/generated against spec/: {e}");
            std::process::exit(1);
        }
    }
}
