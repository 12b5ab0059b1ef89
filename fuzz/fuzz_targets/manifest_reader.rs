//! Manifest reader: the bytes as `manifest.json` of a real backup set in a temporary
//! directory, then `BackupManifest::read` and `verify_backup_set`. `@LOGSIG@`, `@DBSIG@` and
//! `@CRC:<file>@` in the input become the set's values (see `ese_fuzz::fill_manifest`).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

struct Dir {
    path: PathBuf,
    files: Vec<(String, Vec<u8>)>,
}

fn dir() -> &'static Dir {
    static DIR: OnceLock<Dir> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let path = root.join(format!("ese-fuzz-manifest-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        let files = ese_fuzz::write_set_dir(ese_fuzz::set(), &path).expect("writing the set");
        Dir { path, files }
    })
}

fuzz_target!(|data: &[u8]| {
    let d = dir();
    let text = ese_fuzz::fill_manifest(data, ese_fuzz::set(), &d.files);
    std::fs::write(d.path.join("manifest.json"), &text).expect("writing manifest.json");
    let _ = ese_actors::BackupManifest::read(&d.path);
    let _ = ese_actors::verify_backup_set(&d.path);
});
