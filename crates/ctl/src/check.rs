//! etcdctl's `check perf` and `check datascale`.

use crate::flags::{Cmd, Parsed};
use crate::{CtlError, EXIT_ERROR};

use crate::flags::group;

pub const CHECK: Cmd = group(
    "check",
    "check <subcommand>",
    "commands for checking properties of the etcd cluster",
    &[],
);

pub async fn run(p: &mut Parsed) -> Result<(), CtlError> {
    Err(CtlError::new(
        EXIT_ERROR,
        format!("{} is not supported yet by rustcdctl", p.name()),
    ))
}
