//! `snapshot status` and `snapshot restore` for rustcd's snapshot format.

use crate::flags::{Cmd, Parsed};
use crate::{CtlError, EXIT_ERROR};

use crate::flags::leaf;

pub const STATUS: Cmd = leaf(
    "status",
    "status <filename>",
    "[deprecated] Gets backend snapshot status of a given file",
    &[],
);
pub const RESTORE: Cmd = leaf(
    "restore",
    "restore <filename> [options]",
    "Restores an etcd member snapshot to an etcd directory",
    &[],
);

pub async fn run(p: &mut Parsed) -> Result<(), CtlError> {
    Err(CtlError::new(
        EXIT_ERROR,
        format!("{} is not supported yet by rustcdctl", p.name()),
    ))
}
