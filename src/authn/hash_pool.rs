//! The threads argon2 runs on: one per core, each keeping its own working
//! memory between hashes ([`HashMemory`]). Hashing is tens of ms of CPU and
//! 19 MiB at a time; on tokio's blocking pool it spread over as many threads
//! as a login storm woke, each leaving a freed 19 MiB buffer in its own
//! allocator arena (RSS 53 MB → ~800 MB, for good). Here the memory is one
//! buffer per core, whatever the storm, and a storm queues in the channel
//! while decisions keep running on the async workers.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use super::password::{HashMemory, PasswordHasher};

type Job = Box<dyn FnOnce(&PasswordHasher, &mut HashMemory) + Send>;

/// A fixed set of hashing threads fed by one queue. The threads end when
/// the pool is dropped.
pub struct HashPool {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl HashPool {
    /// `threads` hashing threads (at least one), each with `hasher`.
    pub fn new(hasher: &PasswordHasher, threads: usize) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let (rx, hasher) = (rx.clone(), hasher.clone());
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
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
        })
    }

    /// Runs `job` on a hashing thread and waits for it without blocking
    /// the async runtime.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&PasswordHasher, &mut HashMemory) -> T + Send + 'static,
    ) -> T {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |hasher, memory| {
            let _ = tx.send(job(hasher, memory));
        });
        self.jobs
            .lock()
            .expect("hash queue lock is never poisoned")
            .send(job)
            .expect("hashing threads outlive the pool");
        rx.await.expect("argon2 work does not panic")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::HashCost;

    #[tokio::test]
    async fn hashes_and_verifies_on_the_pool_with_reused_memory() {
        let hasher = PasswordHasher::new(HashCost {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap();
        let pool = HashPool::new(&hasher, 2).unwrap();
        let phc = pool.run(|h, m| h.hash_in("Tax@2026pass", m)).await;
        let p = phc.clone();
        assert!(
            pool.run(move |h, m| h.verify_in("Tax@2026pass", &p, m))
                .await
        );
        let p = phc.clone();
        assert!(
            !pool
                .run(move |h, m| h.verify_in("Tax@2026pasS", &p, m))
                .await
        );
        // A hash made by argon2's own allocation path verifies here too.
        assert!(hasher.verify("Tax@2026pass", &phc));
    }
}
