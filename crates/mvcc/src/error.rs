//! The crate's error type.

/// Errors returned by the store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The requested revision is older than the compact revision; its history is gone.
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    /// The requested revision is newer than the store's current revision.
    #[error("mvcc: required revision is a future revision")]
    FutureRev,
    /// The database file is not a rustcd database, or it cannot be read.
    #[error("mvcc: corrupt or unreadable database: {0}")]
    Corrupt(String),
    /// Any other storage (redb) failure, with context.
    #[error("mvcc: storage error: {0}")]
    Storage(String),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches context to a redb error and turns it into [`Error::Storage`].
pub(crate) trait StorageContext<T> {
    fn ctx(self, what: &str) -> Result<T>;
}

impl<T, E: std::fmt::Display> StorageContext<T> for std::result::Result<T, E> {
    fn ctx(self, what: &str) -> Result<T> {
        self.map_err(|e| Error::Storage(format!("{what}: {e}")))
    }
}
