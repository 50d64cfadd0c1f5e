//! etcdctl's `make-mirror`: copies a prefix to another cluster, then follows it with a watch.

use crate::flags::{Cmd, Parsed};
use crate::{CtlError, EXIT_ERROR};

use crate::flags::leaf;

pub const MAKE_MIRROR: Cmd = leaf(
    "make-mirror",
    "make-mirror [options] <destination>",
    "Makes a mirror at the destination etcd cluster",
    &[],
);

pub async fn run(p: &mut Parsed) -> Result<(), CtlError> {
    Err(CtlError::new(
        EXIT_ERROR,
        format!("{} is not supported yet by rustcdctl", p.name()),
    ))
}
