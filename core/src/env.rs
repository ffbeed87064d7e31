//! Time and identifiers, supplied by the host.
//!
//! With the `os` feature, [`SystemEnv`] reads the system clock and makes UUIDv7 ids. Without it
//! (`wasm32-unknown-unknown`), the host implements [`Environment`] (e.g. with `Date.now()` and
//! `crypto.getRandomValues`).

/// Where an engine gets the time and fresh ids.
pub trait Environment: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// A fresh unique id (decision ids, event ids).
    fn new_id(&self) -> String;
}

/// The system clock and UUIDv7 ids.
#[cfg(feature = "os")]
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemEnv;

#[cfg(feature = "os")]
impl Environment for SystemEnv {
    fn now_ms(&self) -> i64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
    }

    fn new_id(&self) -> String {
        let ms = u64::try_from(self.now_ms()).unwrap_or_default();
        let (a, b) = fast_random();
        let mut random = [0u8; 10];
        for (dst, src) in random
            .iter_mut()
            .zip(a.to_le_bytes().into_iter().chain(b.to_le_bytes()))
        {
            *dst = src;
        }
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        uuid::Builder::from_unix_timestamp_millis(ms, &random)
            .into_uuid()
            .hyphenated()
            .encode_lower(&mut text)
            .to_owned()
    }
}

/// Bumped by [`reseed_ids_after_fork`]: threads reseed their id generator when it changes.
#[cfg(feature = "os")]
static ID_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Call in a forked child (the Python binding does, from `os.register_at_fork`): the child then
/// draws fresh randomness for its ids instead of continuing its parent's sequence. Even without
/// it, every id also mixes in the nanosecond clock, so parent and child ids differ.
#[cfg(feature = "os")]
pub fn reseed_ids_after_fork() {
    ID_GENERATION.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

/// 128 random bits for ids: SplitMix64 per thread, seeded from the OS, mixed with the clock.
#[cfg(feature = "os")]
fn fast_random() -> (u64, u64) {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    }
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let generation = ID_GENERATION.load(std::sync::atomic::Ordering::Relaxed);
    STATE.with(|cell| {
        let (seen, mut state) = cell.get();
        if seen != generation {
            let mut seed = [0u8; 8];
            // Without OS randomness, the clock and pid still keep ids unique.
            if getrandom::fill(&mut seed).is_err() {
                seed = (nanos ^ u64::from(std::process::id()) << 32).to_le_bytes();
            }
            state = u64::from_le_bytes(seed);
        }
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let a = mix(state ^ nanos);
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let b = mix(state);
        cell.set((generation, state));
        (a, b)
    })
}

/// A fixed clock and counting ids, for tests and conformance cases.
#[derive(Debug, Default)]
pub struct FixedEnv {
    now_ms: std::sync::atomic::AtomicI64,
    next: std::sync::atomic::AtomicU64,
}

impl FixedEnv {
    /// A clock stopped at `now_ms`.
    pub fn new(now_ms: i64) -> Self {
        FixedEnv {
            now_ms: now_ms.into(),
            next: 1.into(),
        }
    }

    /// Moves the clock.
    pub fn set_now_ms(&self, now_ms: i64) {
        self.now_ms
            .store(now_ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Environment for FixedEnv {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn new_id(&self) -> String {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        format!("00000000-0000-7000-8000-{n:012x}")
    }
}

/// RFC 3339 UTC timestamp with milliseconds (`2026-11-23T06:14:23.123Z`), for years 0..=9999.
///
/// Written by hand (days → civil date, Howard Hinnant's algorithm) because it sits on the
/// decision path; a test checks it against `jiff` over a wide range.
pub fn format_ts(now_ms: i64) -> String {
    const MAX_MS: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
    let ms = now_ms.clamp(0, MAX_MS);
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, sec, milli) = (
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000,
    );
    // Digits written directly into a buffer: `format!` padding, or a push per character, cost
    // more than the date arithmetic.
    let mut out = *b"0000-00-00T00:00:00.000Z";
    for (value, at, width) in [
        (year, 0, 4),
        (month, 5, 2),
        (day, 8, 2),
        (h, 11, 2),
        (m, 14, 2),
        (sec, 17, 2),
        (milli, 20, 3),
    ] {
        put_digits(out.get_mut(at..at + width).unwrap_or_default(), value);
    }
    String::from_utf8(out.to_vec()).unwrap_or_default()
}

/// The last `to.len()` decimal digits of `value` (non-negative), zero-padded, into `to`.
fn put_digits(to: &mut [u8], value: i64) {
    // Least significant first, by constant divisions (a power of ten per digit cost more than
    // the rest of the timestamp).
    let mut v = value.unsigned_abs();
    for d in to.iter_mut().rev() {
        *d = b'0' + u8::try_from(v % 10).unwrap_or(0);
        v /= 10;
    }
}

/// Parses an RFC 3339 timestamp into unix milliseconds.
pub fn parse_ts(ts: &str) -> Option<i64> {
    ts.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_ts_agrees_with_jiff() {
        let mut ms: i64 = 0;
        while ms < 253_402_300_799_999 {
            let ts = jiff::Timestamp::from_millisecond(ms).map(|t| format!("{t:.3}"));
            assert_eq!(Ok(format_ts(ms)), ts.map_err(|_| ()), "{ms}");
            assert_eq!(parse_ts(&format_ts(ms)), Some(ms));
            ms += 86_399_999_987; // ~1 day minus a little: walks every field
        }
        assert_eq!(format_ts(1_767_614_400_123), "2026-01-05T12:00:00.123Z");
        assert_eq!(format_ts(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
