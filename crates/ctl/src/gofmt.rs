//! The bits of Go's formatting that etcdctl's output depends on: `%q`
//! quoting, `time.Duration` parsing and printing, `strconv` parse errors,
//! `go-humanize`'s byte sizes, and `encoding/json` string escaping.

use std::fmt::Write as _;
use std::time::Duration;

/// Whether Go's `strconv.IsPrint` holds (close approximation: control and
/// format characters, separators other than ASCII space, and noncharacters
/// are not printable).
fn is_print(c: char) -> bool {
    let u = c as u32;
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(u,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E | 0x200B..=0x200F
        | 0x2028..=0x202E | 0x2060..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB
        | 0xE000..=0xF8FF | 0xFFFE | 0xFFFF | 0xD800..=0xDFFF)
}

/// Go's `strconv.Quote` (what `%q` prints for a string), over raw bytes.
pub fn quote(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len() + 2);
    out.push('"');
    let mut rest = b;
    while !rest.is_empty() {
        let (c, n) = match decode_utf8(rest) {
            Some(x) => x,
            None => {
                let _ = write!(out, "\\x{:02x}", rest[0]);
                rest = &rest[1..];
                continue;
            }
        };
        rest = &rest[n..];
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if is_print(c) => out.push(c),
            // Go 1.16 (etcdctl 3.5.1's) quotes DEL as \u007f
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

pub fn quote_str(s: &str) -> String {
    quote(s.as_bytes())
}

/// Decodes the first UTF-8 character of `b`: (char, its length).
fn decode_utf8(b: &[u8]) -> Option<(char, usize)> {
    let n = match b[0] {
        0x00..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return None,
    };
    if b.len() < n {
        return None;
    }
    let s = std::str::from_utf8(&b[..n]).ok()?;
    s.chars().next().map(|c| (c, n))
}

/// Go's `strconv.Unquote` for what `fmt.Sscanf("%q")` accepts: a
/// double-quoted Go string or a back-quoted raw string. Returns the
/// unquoted bytes and the rest of the input after the closing quote.
pub fn unquote_prefix(s: &str) -> Option<(Vec<u8>, &str)> {
    let s = s.trim_start_matches([' ', '\t', '\r', '\n']);
    let bytes = s.as_bytes();
    match bytes.first()? {
        b'`' => {
            let end = s[1..].find('`')? + 1;
            Some((s.as_bytes()[1..end].to_vec(), &s[end + 1..]))
        }
        b'"' => {
            let mut out = Vec::new();
            let mut i = 1;
            while i < bytes.len() {
                match bytes[i] {
                    b'"' => return Some((out, &s[i + 1..])),
                    b'\n' => return None,
                    b'\\' => {
                        i += 1;
                        let c = *bytes.get(i)?;
                        i += 1;
                        match c {
                            b'a' => out.push(7),
                            b'b' => out.push(8),
                            b'f' => out.push(12),
                            b'n' => out.push(b'\n'),
                            b'r' => out.push(b'\r'),
                            b't' => out.push(b'\t'),
                            b'v' => out.push(11),
                            b'\\' => out.push(b'\\'),
                            b'"' => out.push(b'"'),
                            b'\'' => out.push(b'\''),
                            b'x' => {
                                let h = s.get(i..i + 2)?;
                                out.push(u8::from_str_radix(h, 16).ok()?);
                                i += 2;
                            }
                            b'0'..=b'7' => {
                                let o = s.get(i - 1..i + 2)?;
                                out.push(u8::from_str_radix(o, 8).ok()?);
                                i += 2;
                            }
                            b'u' | b'U' => {
                                let n = if c == b'u' { 4 } else { 8 };
                                let h = s.get(i..i + n)?;
                                let ch = char::from_u32(u32::from_str_radix(h, 16).ok()?)?;
                                let mut buf = [0u8; 4];
                                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                                i += n;
                            }
                            _ => return None,
                        }
                    }
                    c => {
                        out.push(c);
                        i += 1;
                    }
                }
            }
            None
        }
        _ => None,
    }
}

/// Go's `time.Duration.String()`.
pub fn duration_string(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", frac(ns, 1_000));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", frac(ns, 1_000_000));
    }
    let mut out = String::new();
    let total_s = ns / 1_000_000_000;
    let h = total_s / 3600;
    let m = (total_s / 60) % 60;
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if h > 0 || m > 0 {
        let _ = write!(out, "{m}m");
    }
    let s_ns = ns % 60_000_000_000;
    let _ = write!(out, "{}s", frac(s_ns, 1_000_000_000));
    out
}

/// `v / unit` with the fraction's trailing zeros dropped, as Go prints.
fn frac(v: u128, unit: u128) -> String {
    let int = v / unit;
    let mut f = v % unit;
    if f == 0 {
        return int.to_string();
    }
    let mut digits = unit.to_string().len() - 1;
    while f.is_multiple_of(10) {
        f /= 10;
        digits -= 1;
    }
    format!("{int}.{f:0digits$}")
}

/// Go's `time.ParseDuration`. The error is Go's text.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let orig = s;
    let bad = || format!("time: invalid duration {}", quote_str(orig));
    let mut s = s;
    let mut neg = false;
    if let Some(r) = s.strip_prefix('-') {
        neg = true;
        s = r;
    } else if let Some(r) = s.strip_prefix('+') {
        s = r;
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !s.is_empty() {
        let num_len = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let num = &s[..num_len];
        if num.is_empty() || num == "." {
            return Err(bad());
        }
        let v: f64 = num.parse().map_err(|_| bad())?;
        s = &s[num_len..];
        let unit_len = s
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(s.len());
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        let mult: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => {
                return Err(format!(
                    "time: missing unit in duration {}",
                    quote_str(orig)
                ))
            }
            u => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    quote_str(u),
                    quote_str(orig)
                ))
            }
        };
        total += v * mult;
    }
    if neg {
        // A negative timeout expires at once.
        return Ok(Duration::ZERO);
    }
    Ok(Duration::from_nanos(total as u64))
}

/// Go's `strconv.ParseInt(s, base, 64)`, with Go's error text.
pub fn parse_int(s: &str, base: u32) -> Result<i64, String> {
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let syntax = || format!("strconv.ParseInt: parsing {}: invalid syntax", quote_str(s));
    let range = || {
        format!(
            "strconv.ParseInt: parsing {}: value out of range",
            quote_str(s)
        )
    };
    let (digits, base) = if base == 0 {
        if let Some(d) = digits
            .strip_prefix("0x")
            .or_else(|| digits.strip_prefix("0X"))
        {
            (d, 16)
        } else if let Some(d) = digits
            .strip_prefix("0b")
            .or_else(|| digits.strip_prefix("0B"))
        {
            (d, 2)
        } else if let Some(d) = digits
            .strip_prefix("0o")
            .or_else(|| digits.strip_prefix("0O"))
        {
            (d, 8)
        } else if digits.len() > 1 && digits.starts_with('0') {
            (&digits[1..], 8)
        } else {
            (digits, 10)
        }
    } else {
        (digits, base)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(base)) {
        return Err(syntax());
    }
    let mag = match u128::from_str_radix(digits, base) {
        Ok(v) => v,
        Err(_) => return Err(range()),
    };
    if neg {
        if mag > (i64::MAX as u128) + 1 {
            return Err(range());
        }
        Ok((-(mag as i128)) as i64)
    } else {
        if mag > i64::MAX as u128 {
            return Err(range());
        }
        Ok(mag as i64)
    }
}

/// Go's `strconv.ParseUint(s, base, 64)`, with Go's error text.
pub fn parse_uint(s: &str, base: u32) -> Result<u64, String> {
    let syntax = || {
        format!(
            "strconv.ParseUint: parsing {}: invalid syntax",
            quote_str(s)
        )
    };
    if s.is_empty() || !s.chars().all(|c| c.is_digit(base)) {
        return Err(syntax());
    }
    u64::from_str_radix(s, base).map_err(|_| {
        format!(
            "strconv.ParseUint: parsing {}: value out of range",
            quote_str(s)
        )
    })
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!(
            "strconv.ParseBool: parsing {}: invalid syntax",
            quote_str(s)
        )),
    }
}

/// `go-humanize`'s `Bytes` (SI units, as `endpoint status` prints db size).
pub fn humanize_bytes(s: u64) -> String {
    if s < 10 {
        return format!("{s} B");
    }
    let sizes = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let e = ((s as f64).ln() / 1000f64.ln()).floor();
    let suffix = sizes[e as usize];
    let val = ((s as f64) / 1000f64.powf(e) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {suffix}")
    } else {
        format!("{val:.0} {suffix}")
    }
}

/// Go's `%x` of a signed integer (a lease ID) zero-padded to 16 digits.
pub fn hex016(v: i64) -> String {
    if v < 0 {
        format!("-{:016x}", (v as i128).unsigned_abs())
    } else {
        format!("{v:016x}")
    }
}

/// Base64 (standard alphabet, padded), as Go's JSON encodes `[]byte`.
pub fn base64(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = match chunk.len() {
            3 => (chunk[0] as u32) << 16 | (chunk[1] as u32) << 8 | chunk[2] as u32,
            2 => (chunk[0] as u32) << 16 | (chunk[1] as u32) << 8,
            _ => (chunk[0] as u32) << 16,
        };
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// A JSON string as Go's `encoding/json` writes it (HTML-safe escaping,
/// invalid UTF-8 replaced by U+FFFD).
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Builds one JSON object the way Go's `encoding/json` lays out a struct:
/// fields in declaration order, `omitempty` ones skipped when zero.
#[derive(Default)]
pub struct Obj {
    buf: String,
}

impl Obj {
    pub fn new() -> Obj {
        Obj::default()
    }
    fn key(&mut self, k: &str) {
        if !self.buf.is_empty() {
            self.buf.push(',');
        }
        self.buf.push('"');
        self.buf.push_str(k);
        self.buf.push_str("\":");
    }
    /// A raw JSON value.
    pub fn raw(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k);
        self.buf.push_str(v);
        self
    }
    pub fn raw_opt(&mut self, k: &str, v: Option<String>) -> &mut Self {
        if let Some(v) = v {
            self.raw(k, &v);
        }
        self
    }
    pub fn num<T: std::fmt::Display + Default + PartialEq>(&mut self, k: &str, v: T) -> &mut Self {
        self.raw(k, &v.to_string())
    }
    pub fn num_omit<T: std::fmt::Display + Default + PartialEq>(
        &mut self,
        k: &str,
        v: T,
    ) -> &mut Self {
        if v != T::default() {
            self.num(k, v);
        }
        self
    }
    pub fn bool(&mut self, k: &str, v: bool) -> &mut Self {
        self.raw(k, if v { "true" } else { "false" })
    }
    pub fn bool_omit(&mut self, k: &str, v: bool) -> &mut Self {
        if v {
            self.bool(k, v);
        }
        self
    }
    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        let s = json_string(v);
        self.raw(k, &s)
    }
    pub fn str_omit(&mut self, k: &str, v: &str) -> &mut Self {
        if !v.is_empty() {
            self.str(k, v);
        }
        self
    }
    pub fn bytes_omit(&mut self, k: &str, v: &[u8]) -> &mut Self {
        if !v.is_empty() {
            let s = format!("\"{}\"", base64(v));
            self.raw(k, &s);
        }
        self
    }
    pub fn strs_omit(&mut self, k: &str, v: &[String]) -> &mut Self {
        if !v.is_empty() {
            let s = json_array(v.iter().map(|s| json_string(s)));
            self.raw(k, &s);
        }
        self
    }
    pub fn finish(&self) -> String {
        format!("{{{}}}", self.buf)
    }
}

pub fn json_array(items: impl Iterator<Item = String>) -> String {
    let v: Vec<String> = items.collect();
    format!("[{}]", v.join(","))
}

/// An I/O error as Go words it (`syscall.Errno`): the OS text, lower case,
/// without Rust's "(os error N)".
pub fn io_error(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = s.split(" (os error").next().unwrap_or(&s);
    let mut c = s.chars();
    c.next()
        .map(|first| first.to_lowercase().chain(c).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            duration_string(Duration::from_nanos(2_371_115)),
            "2.371115ms"
        );
        assert_eq!(duration_string(Duration::from_nanos(1_500)), "1.5µs");
        assert_eq!(duration_string(Duration::from_secs(5)), "5s");
        assert_eq!(duration_string(Duration::from_millis(61_500)), "1m1.5s");
        assert_eq!(duration_string(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(
            parse_duration("xyz").unwrap_err(),
            "time: invalid duration \"xyz\""
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(quote(b"foo"), "\"foo\"");
        assert_eq!(quote(b"a\"b\\\n\x01\xff"), "\"a\\\"b\\\\\\n\\x01\\xff\"");
        assert_eq!(quote("é".as_bytes()), "\"é\"");
        let (v, rest) = unquote_prefix("\"a\\x41\\n\") = x").unwrap();
        assert_eq!(v, b"aA\n");
        assert_eq!(rest, ") = x");
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_int("ff", 16).unwrap(), 255);
        assert_eq!(
            parse_int("zz", 16).unwrap_err(),
            "strconv.ParseInt: parsing \"zz\": invalid syntax"
        );
        assert_eq!(
            parse_int("99999999999999999999", 10).unwrap_err(),
            "strconv.ParseInt: parsing \"99999999999999999999\": value out of range"
        );
        assert_eq!(humanize_bytes(24576), "25 kB");
        assert_eq!(humanize_bytes(1_500_000), "1.5 MB");
        assert_eq!(humanize_bytes(5), "5 B");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"lk"), "bGs=");
        assert_eq!(base64(b"b"), "Yg==");
    }
}
