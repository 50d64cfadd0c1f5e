//! Process-wide logging, set up from `--logger` / `--log-level` /
//! `--log-format`.
//!
//! `--logger=zap` (etcd 3.5's default) writes one JSON object per line to
//! stderr, shaped like etcd's zap output so the same log tooling reads both:
//!
//! ```text
//! {"level":"info","ts":"2024-05-01T12:00:00.123456Z","logger":"rustcd_server::raft","msg":"became leader","term":2}
//! ```
//!
//! (zap's `caller` is left out; `logger` carries the tracing target.) Event
//! fields follow `msg` flattened, in the order they were recorded.
//! `--logger=capnslog` or `--log-format=console` gives tracing-subscriber's
//! compact text format instead.
//!
//! The level comes from `--log-level` (`panic` and `fatal`, which tracing
//! lacks, map to `error`); a non-empty `RUST_LOG` overrides it with full
//! `EnvFilter` syntax.

use std::fmt::{self, Write as _};
use std::io::IsTerminal;
use std::time::{SystemTime, UNIX_EPOCH};

use rustcd_server::config::LogConfig;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Does nothing if one is already installed
/// (e.g. by a test harness).
pub fn init(cfg: &LogConfig) {
    let filter = filter_for(cfg, std::env::var("RUST_LOG").ok().as_deref());
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    let _ = if cfg.json {
        builder.with_ansi(false).event_format(ZapJson).try_init()
    } else {
        builder
            .compact()
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
}

/// The tracing level directive for an etcd `--log-level`.
fn level_directive(level: &str) -> &'static str {
    match level.to_ascii_lowercase().as_str() {
        "debug" => "debug",
        "warn" | "warning" => "warn",
        "error" | "dpanic" | "panic" | "fatal" => "error",
        _ => "info",
    }
}

/// `RUST_LOG` if set (and valid), else the configured level.
fn filter_for(cfg: &LogConfig, rust_log: Option<&str>) -> EnvFilter {
    if let Some(directives) = rust_log.filter(|s| !s.trim().is_empty()) {
        match EnvFilter::try_new(directives) {
            Ok(filter) => return filter,
            Err(e) => eprintln!(
                "rustcd: ignoring invalid RUST_LOG {directives:?} ({e}); using --log-level={}",
                cfg.level
            ),
        }
    }
    EnvFilter::new(level_directive(&cfg.level))
}

/// zap's level names.
fn zap_level(level: &Level) -> &'static str {
    match *level {
        Level::TRACE | Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

/// Formats events as zap-style JSON lines.
struct ZapJson;

impl<S, N> FormatEvent<S, N> for ZapJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = JsonFields::default();
        event.record(&mut fields);
        let mut line = String::with_capacity(128 + fields.rest.len());
        line.push_str("{\"level\":\"");
        line.push_str(zap_level(meta.level()));
        line.push_str("\",\"ts\":\"");
        line.push_str(&rfc3339(SystemTime::now()));
        line.push_str("\",\"logger\":");
        push_json_str(&mut line, meta.target());
        line.push_str(",\"msg\":");
        push_json_str(&mut line, &fields.message);
        line.push_str(&fields.rest);
        line.push('}');
        writeln!(writer, "{line}")
    }
}

/// Collects an event's fields: `message` apart, the others as `,"k":v`.
#[derive(Default)]
struct JsonFields {
    message: String,
    rest: String,
}

impl JsonFields {
    fn key(&mut self, field: &Field) -> bool {
        // Fields tracing-log adds to bridged `log` records.
        if field.name().starts_with("log.") {
            return false;
        }
        self.rest.push(',');
        push_json_str(&mut self.rest, field.name());
        self.rest.push(':');
        true
    }

    fn raw(&mut self, field: &Field, value: impl fmt::Display) {
        if self.key(field) {
            let _ = write!(self.rest, "{value}");
        }
    }

    fn string(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else if self.key(field) {
            push_json_str(&mut self.rest, value);
        }
    }
}

impl Visit for JsonFields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.raw(field, value);
        } else {
            self.string(field, &value.to_string());
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.raw(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.raw(field, value);
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.raw(field, value);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.raw(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.raw(field, value);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.string(field, value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.string(field, &value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.string(field, &format!("{value:?}"));
    }
}

/// Appends `s` as a JSON string literal.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// RFC 3339 UTC with microseconds, as etcd's zap logs print it:
/// `2006-01-02T15:04:05.000000Z`.
fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, m, day) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60,
        d.subsec_micros()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn capture(json: bool, level: &str, f: impl FnOnce()) -> String {
        let buf = Buf::default();
        let out = buf.clone();
        let cfg = LogConfig {
            json,
            level: level.into(),
        };
        let builder = tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .with_env_filter(filter_for(&cfg, None))
            .with_ansi(false);
        if json {
            tracing::subscriber::with_default(builder.event_format(ZapJson).finish(), f);
        } else {
            tracing::subscriber::with_default(builder.compact().finish(), f);
        }
        let bytes = buf.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn zap_shaped_json_lines() {
        let out = capture(true, "info", || {
            tracing::info!(
                member = "etcd0",
                term = 2u64,
                ok = true,
                ratio = 0.5,
                "became \"leader\""
            );
            tracing::debug!("hidden at info");
            tracing::warn!(err = ?io::ErrorKind::NotFound, "slow\napply");
        });
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        let l = lines[0];
        assert!(l.starts_with("{\"level\":\"info\",\"ts\":\""), "{l}");
        assert!(
            l.ends_with(
                "\"logger\":\"rustcd::logging::tests\",\"msg\":\"became \\\"leader\\\"\",\"member\":\"etcd0\",\"term\":2,\"ok\":true,\"ratio\":0.5}"
            ),
            "{l}"
        );
        let ts = &l["{\"level\":\"info\",\"ts\":\"".len()..][..27];
        assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");
        assert!(lines[1].starts_with("{\"level\":\"warn\""), "{}", lines[1]);
        assert!(
            lines[1].contains("\"msg\":\"slow\\napply\",\"err\":\"NotFound\"}"),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn text_format_and_levels() {
        let out = capture(false, "debug", || {
            tracing::debug!(k = 1, "shown at debug");
        });
        assert!(
            out.contains("DEBUG") && out.contains("shown at debug") && out.contains("k=1"),
            "{out}"
        );
        let out = capture(true, "fatal", || {
            tracing::warn!("not at fatal");
            tracing::error!("shown");
        });
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.contains("\"level\":\"error\""));
    }

    #[test]
    fn level_mapping_and_rust_log() {
        assert_eq!(level_directive("debug"), "debug");
        assert_eq!(level_directive("INFO"), "info");
        assert_eq!(level_directive("warn"), "warn");
        assert_eq!(level_directive("panic"), "error");
        assert_eq!(level_directive("fatal"), "error");
        assert_eq!(level_directive("dpanic"), "error");
        let cfg = LogConfig {
            json: true,
            level: "info".into(),
        };
        assert_eq!(
            filter_for(&cfg, Some("rustcd=trace")).to_string(),
            "rustcd=trace"
        );
        assert_eq!(filter_for(&cfg, Some("  ")).to_string(), "info");
        assert_eq!(filter_for(&cfg, None).to_string(), "info");
    }

    #[test]
    fn timestamps_and_escaping() {
        let at = |s: u64, us: u64| {
            rfc3339(UNIX_EPOCH + Duration::from_secs(s) + Duration::from_micros(us))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.000007Z");
        assert_eq!(at(1_700_000_000, 123_456), "2023-11-14T22:13:20.123456Z");
        assert_eq!(at(4_102_444_799, 0), "2099-12-31T23:59:59.000000Z");
        let mut s = String::new();
        push_json_str(&mut s, "a\"b\\c\u{1}é");
        assert_eq!(s, "\"a\\\"b\\\\c\\u0001é\"");
    }
}
