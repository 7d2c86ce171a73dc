//! The threads argon2 runs on: one per core, each keeping its own working
//! memory between hashes ([`HashMemory`]). Hashing is tens of ms of CPU and
//! 19 MiB at a time; on tokio's blocking pool it spread over as many threads
//! as a login storm woke, each leaving a freed 19 MiB buffer in its own
//! allocator arena (RSS 53 MB → ~800 MB, for good). Here the memory is one
//! buffer per core, whatever the storm, and a storm queues in the channel
//! while decisions keep running on the async workers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use super::password::{HashMemory, PasswordHasher};

type Job = Box<dyn FnOnce(&PasswordHasher, &mut HashMemory) + Send>;

/// A fixed set of hashing threads fed by one queue. The threads end when
/// the pool is dropped.
pub struct HashPool {
    jobs: Mutex<mpsc::Sender<Job>>,
    /// Jobs admitted and not yet finished, against `capacity`.
    admitted: Arc<AtomicUsize>,
    capacity: usize,
}

/// The pool is full: the caller answers "busy" instead of waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the service is busy checking passwords; try again in a moment")]
pub struct HashBusy;

/// A place in the pool's queue, taken before a job is queued (so a caller
/// can learn the pool is full before doing anything else) and given back
/// when the job finishes or the slot is dropped unused.
pub struct HashSlot {
    admitted: Arc<AtomicUsize>,
}

impl Drop for HashSlot {
    fn drop(&mut self) {
        self.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HashPool {
    /// `threads` hashing threads (at least one), each with `hasher` and the
    /// nice value `nice`, taking at most `capacity` jobs waiting or running
    /// at once.
    pub fn new(
        hasher: &PasswordHasher,
        threads: usize,
        capacity: usize,
        nice: u8,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let (rx, hasher) = (rx.clone(), hasher.clone());
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    if let Err(e) = lower_priority(nice) {
                        tracing::warn!(error = %e, nice, "the hashing thread keeps the service's priority");
                    }
                    let mut memory = HashMemory::default();
                    loop {
                        // The lock is held only while waiting for the next
                        // job, never while hashing.
                        let job = rx
                            .lock()
                            .map_err(|_| ())
                            .and_then(|r| r.recv().map_err(|_| ()));
                        match job {
                            Ok(job) => job(&hasher, &mut memory),
                            Err(()) => return,
                        }
                    }
                })?;
        }
        Ok(Self {
            jobs: Mutex::new(tx),
            admitted: Arc::default(),
            capacity: capacity.max(1),
        })
    }

    /// A place for one job, or [`HashBusy`] when `capacity` jobs are
    /// already waiting or running.
    pub fn slot(&self) -> Result<HashSlot, HashBusy> {
        let admitted = self.admitted.clone();
        admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .map_err(|_| HashBusy)?;
        Ok(HashSlot { admitted })
    }

    /// Runs `job` on a hashing thread, in the place `slot` holds, and waits
    /// for it without blocking the async runtime.
    pub async fn run<T: Send + 'static>(
        &self,
        slot: HashSlot,
        job: impl FnOnce(&PasswordHasher, &mut HashMemory) -> T + Send + 'static,
    ) -> T {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |hasher, memory| {
            let _ = tx.send(job(hasher, memory));
            drop(slot);
        });
        self.jobs
            .lock()
            .expect("hash queue lock is never poisoned")
            .send(job)
            .expect("hashing threads outlive the pool");
        rx.await.expect("argon2 work does not panic")
    }
}

/// Lowers the calling thread's priority by `nice` below the service's: on
/// Linux a nice value belongs to a thread (the id `setpriority` takes is
/// the thread's), so the service's other threads keep theirs. Relative, not
/// absolute (red team): a service started at nice 15 would otherwise have
/// put its hashing *above* its decisions, and one run unprivileged could
/// not have set it at all; raising a nice value needs no privilege. At most
/// 19, the lowest priority there is.
fn lower_priority(nice: u8) -> std::io::Result<()> {
    if nice == 0 {
        return Ok(());
    }
    let this_thread = Some(rustix::thread::gettid());
    let now = rustix::process::getpriority_process(this_thread)?;
    rustix::process::setpriority_process(this_thread, (now + i32::from(nice)).min(19))?;
    Ok(())
}

/// The calling thread's nice value.
#[cfg(test)]
fn priority() -> i32 {
    rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::HashCost;

    /// argon2 at a cost a test can afford.
    fn light() -> PasswordHasher {
        PasswordHasher::new(HashCost {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn hashes_and_verifies_on_the_pool_with_reused_memory() {
        let hasher = light();
        let pool = HashPool::new(&hasher, 2, 8, 0).unwrap();
        let phc = pool
            .run(pool.slot().unwrap(), |h, m| h.hash_in("Tax@2026pass", m))
            .await;
        let p = phc.clone();
        assert!(
            pool.run(pool.slot().unwrap(), move |h, m| h.verify_in(
                "Tax@2026pass",
                &p,
                m
            ))
            .await
        );
        let p = phc.clone();
        assert!(
            !pool
                .run(pool.slot().unwrap(), move |h, m| h.verify_in(
                    "Tax@2026pasS",
                    &p,
                    m
                ))
                .await
        );
        // A hash made by argon2's own allocation path verifies here too.
        assert!(hasher.verify("Tax@2026pass", &phc));
    }

    #[test]
    fn a_full_pool_refuses_a_slot_until_one_is_given_back() {
        let hasher = light();
        let pool = HashPool::new(&hasher, 1, 2, 0).unwrap();
        let a = pool.slot().unwrap();
        let _b = pool.slot().unwrap();
        assert_eq!(pool.slot().err(), Some(HashBusy));
        drop(a);
        assert!(pool.slot().is_ok());
    }

    #[tokio::test]
    async fn hashing_threads_run_at_their_nice_value_and_only_they_do() {
        let hasher = light();
        let ours = priority();
        let pool = HashPool::new(&hasher, 2, 8, 10).unwrap();
        let theirs = pool.run(pool.slot().unwrap(), |_, _| priority()).await;
        assert_eq!(theirs, (ours + 10).min(19));
        assert_eq!(priority(), ours, "the caller's thread keeps its priority");
        let plain = HashPool::new(&hasher, 1, 8, 0).unwrap();
        assert_eq!(
            plain.run(plain.slot().unwrap(), |_, _| priority()).await,
            ours
        );
    }

    /// Relative to the thread that made the pool: a service started at a
    /// lower priority keeps its hashing below its decisions (red team: an
    /// absolute value put hashing above them under `nice -n 15`).
    #[test]
    fn the_hashing_threads_nice_value_is_added_to_the_services() {
        std::thread::spawn(|| {
            let me = Some(rustix::thread::gettid());
            let started = priority();
            rustix::process::setpriority_process(me, (started + 5).min(19)).unwrap();
            let service = priority();
            let hasher = light();
            let pool = HashPool::new(&hasher, 1, 8, 10).unwrap();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let theirs = runtime.block_on(pool.run(pool.slot().unwrap(), |_, _| priority()));
            assert_eq!(theirs, (service + 10).min(19));
        })
        .join()
        .unwrap();
    }
}
