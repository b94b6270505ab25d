//! Naming and creating the folder a run writes into: `<dir>/<name>-<UTC time>/`.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Creates `base/<name>-<YYYYMMDDTHHMMSSZ>` (with `-2`, `-3`... if taken), or `out` as given.
pub fn create(base: &Path, name: &str, out: Option<&Path>) -> std::io::Result<PathBuf> {
    if let Some(out) = out {
        std::fs::create_dir_all(out)?;
        return Ok(out.to_owned());
    }
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace(['-', ':'], "");
    std::fs::create_dir_all(base)?;
    for n in 1.. {
        let leaf = if n == 1 {
            format!("{name}-{stamp}")
        } else {
            format!("{name}-{stamp}-{n}")
        };
        let dir = base.join(leaf);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("some suffix is always free")
}
