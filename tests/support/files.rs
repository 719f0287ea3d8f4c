//! Files tests write for a run to work on: a large incompressible file (so `rsync --bwlimit`
//! paces a copy for a predictable while) and a backdated mtime (for stale lock files); and
//! what a directory holds, by name.
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// A file of `len` pseudo-random bytes (rsync can neither compress nor skip it), made with its
/// parent directories.
pub fn big_file(path: &Path, len: usize) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    fs::create_dir_all(path.parent().expect("a file path has a parent")).unwrap();
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Sets `path`'s mtime to `ago` before now.
pub fn set_mtime_ago(path: &Path, ago: Duration) {
    fs::File::options()
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
        .set_modified(SystemTime::now() - ago)
        .unwrap();
}

/// The names in `dir`, sorted.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
