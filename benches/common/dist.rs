//! The image's build of kubemind (`cargo build --profile dist`, which `make bench` runs first),
//! for the benches that measure what ships.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// `target/dist/kubemind` beside the `target/release` binary, where it was built after the
/// last change to the sources (an older one would not be the code under test).
pub fn dist_binary(release: &Path) -> Option<PathBuf> {
    let dist = release.parent()?.parent()?.join("dist").join("kubemind");
    let built = std::fs::metadata(&dist).and_then(|m| m.modified()).ok()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sources = [
        root.join("src"),
        root.join("Cargo.toml"),
        root.join("Cargo.lock"),
    ];
    (newest_change(&sources)? <= built).then_some(dist)
}

/// The latest modification time of `paths` and everything under them.
fn newest_change(paths: &[PathBuf]) -> Option<SystemTime> {
    let mut newest = None;
    let mut left = paths.to_vec();
    while let Some(path) = left.pop() {
        let metadata = std::fs::metadata(&path).ok()?;
        newest = newest.max(Some(metadata.modified().ok()?));
        if metadata.is_dir() {
            for entry in std::fs::read_dir(&path).ok()? {
                left.push(entry.ok()?.path());
            }
        }
    }
    newest
}
