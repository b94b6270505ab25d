//! Figures scraped from the forwarder's Prometheus `/metrics` once a second.

/// The forwarder's view of the run at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ForwarderFigures {
    pub inflight: f64,
    pub queue_depth: f64,
    /// Highest queue depth since the forwarder started (catches spikes between scrapes).
    pub queue_depth_max: f64,
    pub shed_total: f64,
    /// Bit `i` set: `forwarder_breaker_state{backend="backend-<i>"}` reads 1 (open).
    pub breakers_open: u64,
    /// Bit `i` set: `forwarder_backend_up{backend="backend-<i>"}` reads 0 (its health check
    /// failed).
    pub backends_down: u64,
    /// Response-cache lookups since start, by result.
    pub cache_hits: f64,
    pub cache_misses: f64,
}

impl ForwarderFigures {
    /// Share of cache lookups that hit, in percent; `None` before any lookup (cache off).
    pub fn cache_hit_rate(&self) -> Option<f64> {
        let lookups = self.cache_hits + self.cache_misses;
        (lookups > 0.0).then(|| 100.0 * self.cache_hits / lookups)
    }

    /// The indexes of the backends whose breaker is open.
    pub fn open_breakers(&self) -> impl Iterator<Item = u32> + '_ {
        (0..64).filter(|i| self.breakers_open & (1 << i) != 0)
    }
}

impl ForwarderFigures {
    /// Reads the figures from Prometheus text; a metric with labels is summed over them.
    pub fn parse(text: &str) -> ForwarderFigures {
        let mut figures = ForwarderFigures::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.trim().parse::<f64>() else {
                continue;
            };
            let name = series.split('{').next().unwrap_or(series).trim();
            if name == "forwarder_breaker_state" {
                if let Some(bit) = backend_index(series).filter(|&i| i < 64)
                    && value == 1.0
                {
                    figures.breakers_open |= 1 << bit;
                }
                continue;
            }
            if name == "forwarder_backend_up" {
                if let Some(bit) = backend_index(series).filter(|&i| i < 64)
                    && value == 0.0
                {
                    figures.backends_down |= 1 << bit;
                }
                continue;
            }
            if name == "forwarder_cache_requests_total" {
                if series.contains("result=\"hit\"") {
                    figures.cache_hits += value;
                } else if series.contains("result=\"miss\"") {
                    figures.cache_misses += value;
                }
                continue;
            }
            let slot = match name {
                "forwarder_inflight_requests" => &mut figures.inflight,
                "forwarder_queue_depth" => &mut figures.queue_depth,
                "forwarder_queue_depth_max" => &mut figures.queue_depth_max,
                "forwarder_shed_total" => &mut figures.shed_total,
                _ => continue,
            };
            *slot += value;
        }
        figures
    }
}

/// `N` of a `backend="backend-N"` label, the forwarder's name for its N-th `--backend`.
fn backend_index(series: &str) -> Option<usize> {
    let rest = &series[series.find("backend=\"backend-")? + "backend=\"backend-".len()..];
    rest[..rest.find('"')?].parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn breakers_and_cache_are_read_too() {
        let text = "forwarder_breaker_state{backend=\"backend-0\"} 0\n\
                    forwarder_breaker_state{backend=\"backend-2\"} 1\n\
                    forwarder_backend_up{backend=\"backend-0\"} 1\n\
                    forwarder_backend_up{backend=\"backend-3\"} 0\n\
                    forwarder_cache_requests_total{result=\"hit\"} 30\n\
                    forwarder_cache_requests_total{result=\"miss\"} 10\n";
        let f = super::ForwarderFigures::parse(text);
        assert_eq!(f.open_breakers().collect::<Vec<_>>(), vec![2]);
        assert_eq!(f.backends_down, 0b1000);
        assert_eq!(f.cache_hit_rate(), Some(75.0));
    }

    #[test]
    fn figures_are_read_from_prometheus_text() {
        let text = "# HELP forwarder_queue_depth x\n# TYPE forwarder_queue_depth gauge\n\
                    forwarder_queue_depth 3\nforwarder_queue_depth_max 17\n\
                    forwarder_inflight_requests 120\nforwarder_shed_total 4\n\
                    forwarder_backend_up{backend=\"a\"} 1\n# EOF\n";
        let f = super::ForwarderFigures::parse(text);
        assert_eq!(f.cache_hit_rate(), None, "no cache lookups yet");
        assert_eq!(
            (f.queue_depth, f.queue_depth_max, f.inflight, f.shed_total),
            (3.0, 17.0, 120.0, 4.0)
        );
    }

    #[test]
    fn open_breakers_are_read_per_backend() {
        let text = "forwarder_breaker_state{backend=\"backend-0\"} 0
                    forwarder_breaker_state{backend=\"backend-2\"} 1
                    forwarder_breaker_state{backend=\"backend-3\"} 2
";
        assert_eq!(super::ForwarderFigures::parse(text).breakers_open, 0b100);
    }
}
