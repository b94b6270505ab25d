//! A consistent-hash ring: each backend owns many points, a key belongs to the first point at
//! or after its hash. Removing a backend only moves the keys it owned, to the next owners.

/// A stable 64-bit hash (FNV-1a, then a splitmix64 finaliser to spread nearby keys), so a
/// user lands on the same backend across restarts and builds.
pub fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[derive(Debug)]
pub struct Ring {
    /// (point, backend index), sorted by point.
    points: Vec<(u64, usize)>,
    backends: usize,
}

impl Ring {
    /// Points are derived from backend names, not positions, so reordering the config keeps
    /// every user where they were.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>, virtual_nodes: usize) -> Self {
        let mut points = Vec::new();
        let mut backends = 0;
        for (index, name) in names.into_iter().enumerate() {
            backends += 1;
            for v in 0..virtual_nodes.max(1) {
                points.push((hash(format!("{name}#{v}").as_bytes()), index));
            }
        }
        points.sort_unstable();
        Self { points, backends }
    }

    /// Every backend index once, in ring order from the key's position: the owner first, then
    /// the backends that take over if it is skipped.
    pub fn walk(&self, key: u64) -> Vec<usize> {
        let mut order = Vec::with_capacity(self.backends);
        if self.points.is_empty() {
            return order;
        }
        let mut seen = vec![false; self.backends];
        let start = self.points.partition_point(|&(p, _)| p < key);
        for i in 0..self.points.len() {
            let (_, index) = self.points[(start + i) % self.points.len()];
            if !seen[index] {
                seen[index] = true;
                order.push(index);
                if order.len() == self.backends {
                    break;
                }
            }
        }
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners(ring: &Ring, users: usize) -> Vec<usize> {
        (0..users)
            .map(|u| ring.walk(hash(format!("user-{u}").as_bytes()))[0])
            .collect()
    }

    #[test]
    fn shares_are_even_enough() {
        let ring = Ring::new(["a", "b", "c", "d"], 160);
        let mut counts = [0usize; 4];
        for o in owners(&ring, 10_000) {
            counts[o] += 1;
        }
        for c in counts {
            assert!((2000..3000).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn losing_a_backend_moves_only_its_users() {
        let ring = Ring::new(["a", "b", "c", "d"], 160);
        for u in 0..2000 {
            let order = ring.walk(hash(format!("user-{u}").as_bytes()));
            assert_eq!(order.len(), 4);
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, [0, 1, 2, 3], "each backend once");
        }
        // Skipping "c" (index 2): users of others keep their owner by construction of walk().
    }

    #[test]
    fn walk_is_stable_across_config_order() {
        let a = Ring::new(["a", "b", "c"], 50);
        let b = Ring::new(["c", "a", "b"], 50);
        let names_a = ["a", "b", "c"];
        let names_b = ["c", "a", "b"];
        for u in 0..500 {
            let key = hash(format!("u{u}").as_bytes());
            assert_eq!(names_a[a.walk(key)[0]], names_b[b.walk(key)[0]]);
        }
    }

    #[test]
    fn empty_ring_walks_nowhere() {
        assert!(Ring::new([], 10).walk(42).is_empty());
    }
}
