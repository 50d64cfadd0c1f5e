//! The apply thread: it owns the [`StateMachine`] and applies committed
//! entries handed over by the Raft thread, in log order.
//!
//! Apply used to run on the Raft thread, so a slow batch (a big txn, a redb
//! commit, a compaction step) delayed heartbeats and the next fsync; under
//! CPU pressure followers then lost their leader. Here the Raft thread only
//! persists and replicates: it queues committed entries, and this thread
//! reports each applied index back through the inbox (raft-rs's
//! `advance_apply_to`). While the state machine applies batch N, the Raft
//! thread is already writing and syncing batch N+1.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use raft::eraftpb::Snapshot;

use crate::node::{Committed, Inbox, Msg, StateMachine};

/// Work for the apply thread, taken in order.
pub(crate) enum Task {
    Apply(Vec<Committed>),
    /// Replace the whole state (after everything queued before it); the
    /// Raft thread waits for the answer before it records the snapshot in
    /// its WAL, so a crash never leaves a WAL ahead of the state machine.
    Restore(Box<Snapshot>, mpsc::Sender<Result<(), String>>),
    /// Make everything applied durable, answered with `Msg::Flushed`.
    Flush,
    /// Flush and end.
    Stop,
}

/// The Raft thread's side of the apply thread.
pub(crate) struct Applier {
    tx: mpsc::Sender<Task>,
    thread: Option<JoinHandle<()>>,
}

/// How many queued batches one state-machine call may merge: merged batches
/// share one store transaction, which is where the time goes under load.
const MAX_MERGED_BATCHES: usize = 64;

impl Applier {
    pub(crate) fn start(
        sm: Box<dyn StateMachine>,
        inbox: Inbox,
        tick: Duration,
    ) -> Result<Applier, String> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("apply".into())
            .spawn(move || run(sm, rx, inbox, tick))
            .map_err(|e| format!("starting the apply thread: {e}"))?;
        Ok(Applier {
            tx,
            thread: Some(thread),
        })
    }

    /// Queues a task; false if the apply thread has ended (it failed).
    pub(crate) fn send(&self, t: Task) -> bool {
        self.tx.send(t).is_ok()
    }

    /// Replaces the state with `snap` once everything queued is applied,
    /// and waits for it.
    pub(crate) fn restore(&self, snap: Snapshot) -> Result<(), String> {
        let (reply, rx) = mpsc::channel();
        if !self.send(Task::Restore(Box::new(snap), reply)) {
            return Err("apply thread stopped".into());
        }
        rx.recv()
            .unwrap_or_else(|_| Err("apply thread stopped".into()))
    }

    /// Applies what is queued, flushes, and waits for the thread to end.
    pub(crate) fn stop(&mut self) {
        let _ = self.tx.send(Task::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Applier {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(mut sm: Box<dyn StateMachine>, rx: mpsc::Receiver<Task>, inbox: Inbox, tick: Duration) {
    let mut next_tick = Instant::now() + tick;
    // A task taken while merging batches, handled next.
    let mut held: Option<Task> = None;
    // The state machine has upkeep left (a physical compaction): an idle
    // thread carries on with it between tasks instead of once per tick.
    let mut upkeep = false;
    loop {
        let wait = if upkeep {
            Duration::ZERO
        } else {
            next_tick.saturating_duration_since(Instant::now())
        };
        let task = match held.take() {
            Some(t) => t,
            None => match rx.recv_timeout(wait) {
                Ok(t) => t,
                Err(RecvTimeoutError::Timeout) => {
                    upkeep = sm.on_tick();
                    next_tick = Instant::now() + tick;
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            },
        };
        let result = match task {
            Task::Apply(mut entries) => {
                for _ in 1..MAX_MERGED_BATCHES {
                    match rx.try_recv() {
                        Ok(Task::Apply(more)) => entries.extend(more),
                        Ok(other) => {
                            held = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let last = entries.last().map_or(0, |c| c.entry.index);
                sm.apply(entries).map(|()| {
                    inbox.send(Msg::Applied(last));
                })
            }
            Task::Restore(snap, reply) => {
                let index = snap.get_metadata().index;
                let r = sm.restore(&snap);
                let ok = r.is_ok();
                let _ = reply.send(r);
                if ok {
                    inbox.send(Msg::Applied(index));
                }
                Ok(())
            }
            Task::Flush => sm.flush().map(|durable| {
                inbox.send(Msg::Flushed(durable));
            }),
            Task::Stop => {
                if let Err(e) = sm.flush() {
                    tracing::error!(error = %e, "flushing applied state on stop failed");
                }
                return;
            }
        };
        if let Err(e) = result {
            // Like etcd, a member that cannot apply stops rather than serve
            // a state that diverged from its log.
            tracing::error!(error = %e, "apply failed; member stops");
            inbox.send(Msg::ApplyFailed(e));
            return;
        }
        if Instant::now() >= next_tick {
            upkeep = sm.on_tick();
            next_tick = Instant::now() + tick;
        }
    }
}
