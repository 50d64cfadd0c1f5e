//! etcdctl's `lock` and `elect`: clientv3's concurrency recipes (lease + txn + watch), so they work against any etcd v3 server.

use crate::flags::{Cmd, Parsed};
use crate::{CtlError, EXIT_ERROR};

use crate::flags::leaf;

pub const LOCK: Cmd = leaf(
    "lock",
    "lock <lockname> [exec-command arg1 arg2 ...]",
    "Acquires a named lock",
    &[],
);
pub const ELECT: Cmd = leaf(
    "elect",
    "elect <election-name> [proposal]",
    "Observes and participates in leader election",
    &[],
);

pub async fn run(p: &mut Parsed) -> Result<(), CtlError> {
    Err(CtlError::new(
        EXIT_ERROR,
        format!("{} is not supported yet by rustcdctl", p.name()),
    ))
}
