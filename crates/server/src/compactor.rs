//! Auto-compaction (`--auto-compaction-mode`, `--auto-compaction-retention`):
//! the leader proposes compactions, so every member compacts at the same
//! revision.
//!
//! - revision mode: every 5 minutes (as etcd), compact to the current
//!   revision minus the retention.
//! - periodic mode: sample the revision every tenth of the retention and
//!   compact to the newest sample at least one retention old, so roughly the
//!   last `retention` of history stays readable.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustcd_proto::etcdserverpb::CompactionRequest;
use rustcd_proto::rustcdpb::internal_raft_request::Request as Internal;
use tokio::sync::watch;

use crate::config::AutoCompaction;
use crate::core::Core;

const REVISION_MODE_INTERVAL: Duration = Duration::from_secs(300);

pub(crate) async fn run_compactor(core: Arc<Core>, mut shutdown: watch::Receiver<bool>) {
    let policy = match core.cfg.auto_compaction() {
        Ok(AutoCompaction::Off) => return,
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "auto-compaction disabled");
            return;
        }
    };
    let tick = match policy {
        AutoCompaction::Periodic(retention) => (retention / 10).max(Duration::from_millis(100)),
        _ => REVISION_MODE_INTERVAL,
    };
    tracing::info!(?policy, ?tick, "auto-compaction enabled");
    let mut samples: VecDeque<(Instant, i64)> = VecDeque::new();
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(tick) => {}
        }
        if !core.node.status().is_leader {
            // A new leader starts its own history of samples.
            samples.clear();
            continue;
        }
        let store = core.store();
        let current = store.current_revision();
        let target = match policy {
            AutoCompaction::Revision(keep) => current - keep,
            AutoCompaction::Periodic(retention) => {
                samples.push_back((Instant::now(), current));
                let mut target = 0;
                while let Some((at, rev)) = samples.front().copied() {
                    if at.elapsed() < retention {
                        break;
                    }
                    target = rev;
                    samples.pop_front();
                }
                target
            }
            AutoCompaction::Off => return,
        };
        if target <= store.compact_revision() || target <= 0 {
            continue;
        }
        let req = CompactionRequest {
            revision: target,
            physical: false,
        };
        match core.propose(Internal::Compaction(req)).await {
            Ok(_) => tracing::info!(revision = target, "completed auto compaction"),
            Err(e) => tracing::warn!(revision = target, error = %e, "auto compaction failed"),
        }
    }
}
