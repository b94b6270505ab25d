//! Admission control: a bounded number of upstream slots plus a bounded wait queue for them.
//!
//! Past the queue bound a request is shed at once: answering 503 quickly is better for callers
//! (and for the backends) than letting an unbounded backlog build up behind slow generations.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::QueueMetrics;

/// The right to one upstream slot; the slot frees when this is dropped.
pub type Slot = OwnedSemaphorePermit;

/// The wait queue was full, so the request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("wait queue full")]
pub struct QueueFull;

#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    max_queue: usize,
    queued: AtomicUsize,
    metrics: QueueMetrics,
}

impl Admission {
    /// `max_inflight` is clamped to what a semaphore can hold rather than trusted blindly.
    pub fn new(max_inflight: usize, max_queue: usize, metrics: QueueMetrics) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(
                max_inflight.clamp(1, Semaphore::MAX_PERMITS),
            )),
            max_queue,
            queued: AtomicUsize::new(0),
            metrics,
        }
    }

    /// Waits for a slot if the queue has room; otherwise fails immediately.
    ///
    /// Dropping the returned future while it waits (client gone, timeout) leaves the queue.
    pub async fn admit(&self) -> Result<Slot, QueueFull> {
        // tokio's semaphore hands freed permits to waiters first, so this cannot jump the queue.
        if let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(slot);
        }
        let place = self.enter_queue()?;
        let slot = Arc::clone(&self.slots).acquire_owned().await;
        drop(place);
        // The semaphore is never closed, so this branch is unreachable in practice.
        slot.map_err(|_| QueueFull)
    }

    fn enter_queue(&self) -> Result<QueuePlace<'_>, QueueFull> {
        let depth = self.queued.fetch_add(1, Ordering::AcqRel) + 1;
        if depth > self.max_queue {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            self.metrics.shed.inc();
            return Err(QueueFull);
        }
        self.metrics.depth.inc();
        let depth = i64::try_from(depth).unwrap_or(i64::MAX);
        self.metrics
            .depth_max
            .inner()
            .fetch_max(depth, Ordering::Relaxed);
        Ok(QueuePlace { admission: self })
    }

    /// Requests waiting for a slot right now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Slots not currently held.
    pub fn free_slots(&self) -> usize {
        self.slots.available_permits()
    }
}

/// A place in the wait queue, given up on drop whether the wait succeeded or was abandoned.
struct QueuePlace<'a> {
    admission: &'a Admission,
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.admission.queued.fetch_sub(1, Ordering::AcqRel);
        self.admission.metrics.depth.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    /// Polls a future once without a runtime: enough to put it in the semaphore's queue.
    fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[tokio::test]
    async fn admits_up_to_max_inflight_then_queues_then_sheds() {
        let metrics = QueueMetrics::default();
        let adm = Admission::new(2, 1, metrics.clone());
        let a = adm.admit().await.unwrap();
        let _b = adm.admit().await.unwrap();
        assert_eq!(adm.free_slots(), 0);

        let mut waiting = pin!(adm.admit());
        assert!(poll_once(waiting.as_mut()).is_pending());
        assert_eq!(adm.queued(), 1);
        assert_eq!(metrics.depth.get(), 1);

        // Queue (size 1) is full now.
        assert_eq!(adm.admit().await.unwrap_err(), QueueFull);
        assert_eq!(metrics.shed.get(), 1);

        // Releasing a slot hands it to the waiter.
        drop(a);
        let c = waiting.await.unwrap();
        assert_eq!(adm.queued(), 0);
        assert_eq!(metrics.depth.get(), 0);
        assert_eq!(metrics.depth_max.get(), 1);
        drop(c);
        assert_eq!(adm.free_slots(), 1);
    }

    #[tokio::test]
    async fn zero_queue_sheds_as_soon_as_slots_are_busy() {
        let metrics = QueueMetrics::default();
        let adm = Admission::new(1, 0, metrics.clone());
        let slot = adm.admit().await.unwrap();
        assert_eq!(adm.admit().await.unwrap_err(), QueueFull);
        drop(slot);
        assert!(adm.admit().await.is_ok());
        assert_eq!(metrics.shed.get(), 1);
        assert_eq!(metrics.depth_max.get(), 0);
    }

    #[tokio::test]
    async fn abandoned_waiter_leaves_the_queue() {
        let metrics = QueueMetrics::default();
        let adm = Admission::new(1, 1, metrics.clone());
        let slot = adm.admit().await.unwrap();
        {
            let mut waiting = pin!(adm.admit());
            assert!(poll_once(waiting.as_mut()).is_pending());
            assert_eq!(adm.queued(), 1);
        }
        assert_eq!(adm.queued(), 0);
        assert_eq!(metrics.depth.get(), 0);
        // The abandoned waiter must not have taken the slot with it.
        drop(slot);
        assert_eq!(adm.free_slots(), 1);
    }

    #[test]
    fn absurd_max_inflight_does_not_panic() {
        let adm = Admission::new(usize::MAX, usize::MAX, QueueMetrics::default());
        assert_eq!(adm.free_slots(), Semaphore::MAX_PERMITS);
    }
}
