//! raft-rs logs through slog; this drain forwards its records to `tracing`
//! so a member has one log stream (and one format: JSON or text).

use std::fmt::Write as _;

struct TracingDrain;

struct Fields(String);

impl slog::Serializer for Fields {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}

impl slog::Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(
        &self,
        record: &slog::Record<'_>,
        values: &slog::OwnedKVList,
    ) -> Result<(), slog::Never> {
        // raft-rs logs every message it sends and receives at debug level;
        // skip formatting what the subscriber would drop anyway (hot path).
        let enabled = match record.level() {
            slog::Level::Critical | slog::Level::Error => {
                tracing::enabled!(target: "raft", tracing::Level::ERROR)
            }
            slog::Level::Warning => tracing::enabled!(target: "raft", tracing::Level::WARN),
            slog::Level::Info => tracing::enabled!(target: "raft", tracing::Level::INFO),
            slog::Level::Debug | slog::Level::Trace => {
                tracing::enabled!(target: "raft", tracing::Level::DEBUG)
            }
        };
        if !enabled {
            return Ok(());
        }
        let mut f = Fields(String::new());
        let _ = slog::KV::serialize(&record.kv(), record, &mut f);
        let _ = slog::KV::serialize(values, record, &mut f);
        let msg = record.msg();
        match record.level() {
            slog::Level::Critical | slog::Level::Error => {
                tracing::error!(target: "raft", "{}{}", msg, f.0)
            }
            slog::Level::Warning => tracing::warn!(target: "raft", "{}{}", msg, f.0),
            slog::Level::Info => tracing::info!(target: "raft", "{}{}", msg, f.0),
            slog::Level::Debug | slog::Level::Trace => {
                tracing::debug!(target: "raft", "{}{}", msg, f.0)
            }
        }
        Ok(())
    }
}

/// A slog logger for raft-rs that writes through `tracing`.
pub fn raft_logger() -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!())
}
