//! etcdctl's `user`, `role` and `auth` commands.

use crate::flags::{Cmd, Parsed};
use crate::{CtlError, EXIT_ERROR};

use crate::flags::group;

pub const USER: Cmd = group("user", "user <subcommand>", "User related commands", &[]);
pub const ROLE: Cmd = group("role", "role <subcommand>", "Role related commands", &[]);
pub const AUTH: Cmd = group(
    "auth",
    "auth <enable or disable>",
    "Enable or disable authentication",
    &[],
);

pub async fn run(p: &mut Parsed) -> Result<(), CtlError> {
    Err(CtlError::new(
        EXIT_ERROR,
        format!("{} is not supported yet by rustcdctl", p.name()),
    ))
}
