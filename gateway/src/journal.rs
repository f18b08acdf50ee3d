//! The request journal: every request through the front door, recorded when its response ends
//! (or fails), in a ring buffer of `[gateway] journal_size` entries (default
//! [`DEFAULT_JOURNAL_SIZE`]; 0 turns it off) that counts what it dropped. `GET /admin/journal`
//! and [`crate::GatewayHandle::journal`] read it, oldest first.
//!
//! Recording is a push of a small [`Record`] (shared names are `Arc`s, nothing is formatted);
//! [`JournalEntry`] is rendered only when someone reads the journal.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;
use crate::flows::FlowHop;
use crate::lock;

/// Entries the journal keeps when `[gateway] journal_size` is not given.
pub const DEFAULT_JOURNAL_SIZE: usize = 10_000;

/// One request as the journal shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// When the request head arrived, RFC 3339 UTC with milliseconds.
    pub time: String,
    /// The API it was routed to (`null`: no API matched, or refused before routing).
    pub api: Option<String>,
    /// The backend authority (`orders.internal.contoso.com:443`).
    pub backend: Option<String>,
    /// The status the client got: the backend's, or the gateway's with `code`.
    pub status: u16,
    /// `Allow` (a new flow), `Established` (a pooled one), `Deny` or `Unreachable` (refused
    /// by `sim`); `null` when the request never reached admission.
    pub verdict: Option<String>,
    /// The gateway's code when it answered itself (`BACKEND_RESET`, `NSG_DENIED`, ...).
    pub code: Option<String>,
    /// The deciding rule of a refusal (`securityRules/deny-x`); for an allowed flow, the rule
    /// that allowed it at the last NSG on the path (`null` when no NSG is on it).
    pub rule: Option<String>,
    /// The fault rule applied to the request or to its new connection.
    pub fault: Option<String>,
    /// Response body bytes sent to the client.
    pub bytes: u64,
    /// From the request head to the end of the response body (or its failure), ms.
    pub duration_ms: f64,
}

/// The journal as `GET /admin/journal` answers it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JournalPage {
    /// Oldest first.
    pub entries: Vec<JournalEntry>,
    /// Entries pushed out of the ring buffer since start.
    pub dropped: u64,
}

/// What is known of a request when its response ends.
#[derive(Clone, Debug)]
pub(crate) struct Record {
    pub(crate) at: SystemTime,
    pub(crate) api: Option<Arc<str>>,
    pub(crate) backend: Option<Arc<str>>,
    pub(crate) status: u16,
    pub(crate) verdict: Option<&'static str>,
    pub(crate) code: Option<ErrorCode>,
    /// A refusal's deciding rule.
    pub(crate) rule: Option<String>,
    /// An allowed flow's hops (the rule is the last hop's).
    pub(crate) hops: Option<Arc<[FlowHop]>>,
    pub(crate) fault: Option<Arc<str>>,
    pub(crate) bytes: u64,
    pub(crate) duration: Duration,
}

/// The ring buffer.
#[derive(Default)]
pub(crate) struct Journal {
    ring: Mutex<VecDeque<Record>>,
    dropped: AtomicU64,
}

impl Journal {
    /// Records `r` in a buffer of `cap` entries (0: not recorded).
    pub(crate) fn push(&self, r: Record, cap: usize) {
        if cap == 0 {
            return;
        }
        let mut q = lock(&self.ring);
        let mut dropped = 0;
        while q.len() >= cap {
            q.pop_front();
            dropped += 1;
        }
        q.push_back(r);
        drop(q);
        if dropped > 0 {
            self.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
    }

    /// Every entry, oldest first.
    pub(crate) fn page(&self) -> JournalPage {
        let records: Vec<Record> = lock(&self.ring).iter().cloned().collect();
        JournalPage {
            entries: records.iter().map(entry).collect(),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

fn entry(r: &Record) -> JournalEntry {
    let rule = r.rule.clone().or_else(|| {
        r.hops
            .as_ref()
            .and_then(|h| h.last())
            .map(|h| h.rule.clone())
    });
    JournalEntry {
        time: rfc3339(r.at),
        api: r.api.as_deref().map(str::to_string),
        backend: r.backend.as_deref().map(str::to_string),
        status: r.status,
        verdict: r.verdict.map(str::to_string),
        code: r.code.map(|c| c.as_str().to_string()),
        rule,
        fault: r.fault.as_deref().map(str::to_string),
        bytes: r.bytes,
        duration_ms: r.duration.as_secs_f64() * 1e3,
    }
}

/// `2026-12-06T12:00:00.123Z`.
fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, dd) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!(
        "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: u16) -> Record {
        Record {
            at: UNIX_EPOCH + Duration::from_millis(1_780_000_000_123),
            api: Some(Arc::from("orders")),
            backend: None,
            status,
            verdict: Some("Allow"),
            code: None,
            rule: None,
            hops: None,
            fault: None,
            bytes: 3,
            duration: Duration::from_micros(1500),
        }
    }

    #[test]
    fn ring_keeps_the_newest_and_counts_the_dropped() {
        let j = Journal::default();
        for s in 200..205 {
            j.push(record(s), 3);
        }
        let p = j.page();
        let statuses: Vec<u16> = p.entries.iter().map(|e| e.status).collect();
        assert_eq!(statuses, [202, 203, 204]);
        assert_eq!(p.dropped, 2);
        j.push(record(299), 0);
        assert_eq!(j.page().entries.len(), 3, "size 0 records nothing");
        assert_eq!(p.entries[0].duration_ms, 1.5);
    }

    proptest::proptest! {
        /// The ring keeps the newest `min(n, cap)` records in push order and counts the rest.
        #[test]
        fn the_ring_keeps_the_newest(n in 0u16..60, cap in 1usize..20) {
            let j = Journal::default();
            for i in 0..n {
                j.push(record(i), cap);
            }
            let p = j.page();
            let kept = usize::from(n).min(cap);
            proptest::prop_assert_eq!(p.entries.len(), kept);
            proptest::prop_assert_eq!(p.dropped, (usize::from(n) - kept) as u64);
            let statuses: Vec<u16> = p.entries.iter().map(|e| e.status).collect();
            let expected: Vec<u16> = (n - u16::try_from(kept).unwrap()..n).collect();
            proptest::prop_assert_eq!(statuses, expected);
        }
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // 2026-05-28T20:26:40.123Z
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_millis(1_780_000_000_123)),
            "2026-05-28T20:26:40.123Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }
}
