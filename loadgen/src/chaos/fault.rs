//! A fault as the run uses it: resolved targets, absolute times, and what to do.

use std::net::SocketAddr;
use std::time::Duration;

use super::proxy::Toxic;
use crate::mock::chaos::HttpFault;

/// One scheduled fault, checked and resolved against the stack.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    /// Unique within the scenario; names the fault in faults.csv, timeseries.csv and the mock.
    pub name: String,
    /// From the start of the load.
    pub at: Duration,
    /// `None`: until the end of the run.
    pub duration: Option<Duration>,
    pub target: Target,
    pub kind: FaultKind,
}

/// What a fault acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Indexes into the stack's backends (healthy ones first, then the degraded groups), which
    /// is also the forwarder's `backend-<index>` naming.
    Backends(Vec<usize>),
    Forwarder,
    /// A `loadgen chaos-proxy` someone else runs, driven through its control API.
    Proxy {
        name: String,
        control: SocketAddr,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum FaultKind {
    Process {
        action: ProcessAction,
        /// Start the child again (same arguments, same port) when the fault ends.
        restart: bool,
    },
    /// Switched on in the targeted mocks through their `/_chaos` control.
    Http(HttpFault),
    /// Set on the fault proxies in front of the targeted backends.
    Network(Toxic),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessAction {
    /// SIGKILL.
    Crash,
    /// SIGTERM: the child drains and exits.
    Stop,
    /// SIGSTOP, and SIGCONT when the fault ends.
    Hang,
}

impl Fault {
    /// When the fault ends, given when the run ends.
    pub fn end(&self, run_end: Duration) -> Duration {
        self.duration.map_or(run_end, |d| self.at + d).min(run_end)
    }

    /// Stretches or squeezes the fault's times by `factor` (the `--duration` squeeze).
    pub fn scale(&mut self, factor: f64) {
        if !factor.is_finite() || factor <= 0.0 {
            return;
        }
        self.at = self.at.mul_f64(factor);
        self.duration = self.duration.map(|d| d.mul_f64(factor));
    }

    /// Whether the forwarder must notice the fault: its targeted backends stop answering
    /// altogether (crashed, stopped, hung, down, black-holed), or every request to them fails
    /// with a 5xx. Noticing is the first of a breaker opening or a health check marking the
    /// backend down, whichever the forwarder does first (see the timeline's watch).
    pub fn must_be_noticed(&self) -> bool {
        matches!(self.target, Target::Backends(_))
            && match &self.kind {
                FaultKind::Process { .. } => true,
                FaultKind::Http(HttpFault::Error {
                    status, toxicity, ..
                }) => *status >= 500 && *toxicity >= 1.0,
                FaultKind::Http(_) => false,
                FaultKind::Network(Toxic::Down {}) => true,
                FaultKind::Network(Toxic::Timeout { toxicity, .. }) => *toxicity >= 1.0,
                FaultKind::Network(_) => false,
            }
    }

    pub fn is_network(&self) -> bool {
        matches!(self.kind, FaultKind::Network(_))
    }

    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            FaultKind::Process { action, .. } => match action {
                ProcessAction::Crash => "crash",
                ProcessAction::Stop => "stop",
                ProcessAction::Hang => "hang",
            },
            FaultKind::Http(http) => match http {
                HttpFault::Error { .. } => "error",
                HttpFault::Delay { .. } => "delay",
                HttpFault::SlowFirstToken { .. } => "slow_first_token",
                HttpFault::CutStream { .. } => "cut_stream",
            },
            FaultKind::Network(toxic) => match toxic {
                Toxic::Latency { .. } => "latency",
                Toxic::Bandwidth { .. } => "bandwidth",
                Toxic::Slicer { .. } => "slicer",
                Toxic::LimitData { .. } => "limit_data",
                Toxic::SlowClose { .. } => "slow_close",
                Toxic::ResetPeer { .. } => "reset_peer",
                Toxic::Timeout { .. } => "timeout",
                Toxic::Down {} => "down",
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crash(at: u64, duration: Option<u64>) -> Fault {
        Fault {
            name: "c".into(),
            at: Duration::from_secs(at),
            duration: duration.map(Duration::from_secs),
            target: Target::Backends(vec![0]),
            kind: FaultKind::Process {
                action: ProcessAction::Crash,
                restart: true,
            },
        }
    }

    #[test]
    fn squeezing_scales_start_and_length() {
        let mut f = crash(600, Some(300));
        f.scale(1.0 / 15.0);
        assert_eq!(f.at, Duration::from_secs(40));
        assert_eq!(f.duration, Some(Duration::from_secs(20)));
        f.scale(0.0);
        assert_eq!(
            f.at,
            Duration::from_secs(40),
            "a bad factor changes nothing"
        );
    }

    #[test]
    fn open_ended_faults_last_until_the_run_ends() {
        let end = Duration::from_secs(100);
        assert_eq!(crash(10, None).end(end), end);
        assert_eq!(crash(10, Some(20)).end(end), Duration::from_secs(30));
        assert_eq!(crash(90, Some(20)).end(end), end);
    }
}
