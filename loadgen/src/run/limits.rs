//! The process's open-file limit: raised to the hard limit at start, read when planning sockets.

/// What to assume when the limit cannot be read: Linux's usual default soft limit.
const FALLBACK: u64 = 1024;

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the limit now in force.
pub fn raise_open_files() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(FALLBACK)
}

/// The open-file limit a run can count on: the hard limit, which `raise_open_files` reaches.
pub fn open_files_limit() -> u64 {
    rlimit::Resource::NOFILE
        .get()
        .map_or(FALLBACK, |(_soft, hard)| hard)
}
