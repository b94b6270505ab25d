//! The open-file limit: every client and upstream connection is a file descriptor, and a
//! default soft limit of 1024 would cap the forwarder far below what it can serve.

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the limit now in force (1024, the
/// usual default, when it cannot be read).
pub fn raise_open_files() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_limit_is_at_least_what_it_was() {
        assert!(super::raise_open_files() >= 64);
    }
}
