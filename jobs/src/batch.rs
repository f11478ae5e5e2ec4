//! Writes of running jobs, and their ends, in batches: River's completer, generalised.
//!
//! Every running job of a process sends its writes to one [`Writes`] and its end to one
//! [`Ends`]. Each is a task that takes whatever has queued up, sends it to the store in one
//! call (one statement, or one short transaction on SQLite), and answers every caller. While
//! batches are at the database (at most [`IN_FLIGHT`] at once) the next one gathers, so an idle
//! process writes at once and a busy one writes many jobs per round trip — group commit,
//! without a timer. A job waits for its own write before making the next (its context holds a
//! lock across it), so no two batches hold writes of one job and a job's writes land in the
//! order it made them.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::job::{Control, Finish, Write};
use crate::store::JobStore;

/// The most requests one batch carries.
pub const BATCH_MAX: usize = 256;
/// Batches at the database at once: while one waits for its round trip, the next may go.
pub const IN_FLIGHT: usize = 4;

type Reply<T> = oneshot::Sender<Result<T, String>>;

struct Batcher<Req, Resp> {
    tx: mpsc::UnboundedSender<(Req, Reply<Resp>)>,
}

impl<Req, Resp> Clone for Batcher<Req, Resp> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone() }
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> Batcher<Req, Resp> {
    /// Starts the task that sends batches through `send`; it ends when the last handle is
    /// dropped.
    fn spawn<F, Fut>(send: F) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<Resp>, String>> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Req, Reply<Resp>)>();
        let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let slot = slots.clone().acquire_owned().await.expect("never closed");
                let mut batch = vec![first];
                while batch.len() < BATCH_MAX {
                    match rx.try_recv() {
                        Ok(more) => batch.push(more),
                        Err(_) => break,
                    }
                }
                let (requests, replies): (Vec<Req>, Vec<Reply<Resp>>) = batch.into_iter().unzip();
                let sent = send(requests);
                tokio::spawn(async move {
                    match sent.await {
                        Ok(answers) => {
                            for (reply, answer) in replies.into_iter().zip(answers) {
                                let _ = reply.send(Ok(answer));
                            }
                        }
                        Err(e) => {
                            for reply in replies {
                                let _ = reply.send(Err(e.clone()));
                            }
                        }
                    }
                    drop(slot);
                });
            }
        });
        Self { tx }
    }

    async fn call(&self, request: Req) -> Result<Resp, String> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((request, reply)).map_err(|_| "the batch writer has stopped".to_string())?;
        answer.await.map_err(|_| "the batch writer has stopped".to_string())?
    }
}

/// Batched fenced writes of running jobs' progress and checkpoints.
#[derive(Clone)]
pub struct Writes(Batcher<Write, Option<Control>>);

impl Writes {
    pub fn new(store: Arc<dyn JobStore>) -> Self {
        Self(Batcher::spawn(move |writes: Vec<Write>| {
            let store = store.clone();
            async move { store.write(&writes).await.map_err(|e| e.to_string()) }
        }))
    }

    /// The job's control after the write, or `None` when its fence no longer holds.
    pub async fn write(&self, write: Write) -> Result<Option<Control>, String> {
        self.0.call(write).await
    }
}

/// Batched final writes of running jobs: the completer.
#[derive(Clone)]
pub struct Ends(Batcher<Finish, bool>);

impl Ends {
    pub fn new(store: Arc<dyn JobStore>) -> Self {
        Self(Batcher::spawn(move |finishes: Vec<Finish>| {
            let store = store.clone();
            async move { store.finish(&finishes).await.map_err(|e| e.to_string()) }
        }))
    }

    /// Whether the job's fence held.
    pub async fn finish(&self, finish: Finish) -> Result<bool, String> {
        self.0.call(finish).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A burst of requests that queue up while the writer is busy goes out in full batches of
    /// at most `BATCH_MAX`, and every caller gets the answer to its own request.
    #[tokio::test(flavor = "current_thread")]
    async fn a_burst_goes_out_in_full_batches_and_each_caller_gets_its_own_answer() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let batcher = Batcher::spawn(move |requests: Vec<u32>| {
            seen.lock().unwrap().push(requests.len());
            async move { Ok(requests.into_iter().map(|r| r * 10).collect()) }
        });
        // On one thread, every call is queued before the writer's task first runs.
        let n = 2 * BATCH_MAX as u32 + 88;
        let answers = futures::future::join_all((0..n).map(|r| batcher.call(r))).await;
        assert_eq!(answers, (0..n).map(|r| Ok(r * 10)).collect::<Vec<_>>());
        assert_eq!(*sizes.lock().unwrap(), [BATCH_MAX, BATCH_MAX, 88]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failed_batch_fails_every_caller_in_it() {
        let batcher: Batcher<u32, u32> = Batcher::spawn(|_| async { Err("the database is gone".to_string()) });
        let answers = futures::future::join_all((0..3).map(|r| batcher.call(r))).await;
        assert_eq!(answers, vec![Err("the database is gone".to_string()); 3]);
    }
}
