//! The built-in service tag table's binary form: the whole dated `ServiceTags_Public` file,
//! written by `tools/gen-service-tags.py` and embedded with `include_bytes!`. This module only
//! decodes; [`super::ServiceTagTable::builtin`] decodes once per process.
//!
//! Format, version 1 (the generator's docstring describes the same bytes). Every integer is an
//! unsigned LEB128 varint unless said otherwise; a string is a varint byte length followed by
//! that many UTF-8 bytes.
//!
//! ```text
//! magic          4 bytes  b"VNST"
//! version        1 byte   1
//! change_number  varint   the file's changeNumber
//! cloud          string   "Public"
//! date           string   "2025-10-28" (from the file name)
//! file           string   "ServiceTags_Public_20251028.json"
//! strings        varint n, then n strings: every distinct name part and region
//! tags           varint n, then n tags, in file order:
//!     base           varint  string index of the name before the first '.' ("Storage")
//!     suffix         varint  0 = none, else 1 + string index of the rest ("EastAsia")
//!     region         varint  string index of the region ("eastasia"; "" for global tags)
//!     change_number  varint  the tag's own changeNumber
//!     prefixes       varint n, then n prefixes:
//!         length byte  L: 0..=32 is IPv4 /L, 64..=192 is IPv6 /(L-64); anything else is invalid
//!         address      ceil(len/8) bytes: the network address's leading bytes (the rest are
//!                      zero); bits past the prefix length in the last byte must be zero
//! checksum       8 bytes  FNV-1a 64 (little-endian) of every byte before it
//! ```
//!
//! Every read is bounds-checked and every failure is a [`BlobError`] naming the byte offset, so
//! a truncated or corrupted blob is an error, never a panic. Counts are checked against the bytes
//! left before anything is allocated, so a corrupt count cannot ask for gigabytes.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::ServiceTag;
use crate::cidr::Cidr;

/// The built-in table: `ServiceTags_Public_20251028.json` (changeNumber 375), whole.
pub(crate) static BUILTIN: &[u8] = include_bytes!("service_tags.bin");

const MAGIC: &[u8; 4] = b"VNST";
const VERSION: u8 = 1;
const CHECKSUM_LEN: usize = 8;
/// First IPv6 length code: `64 + len` for `len` in 0..=128.
const V6_BASE: u8 = 64;

/// Why a service tag blob could not be decoded (`at` is a byte offset into the blob).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    /// Shorter than the fixed header and checksum.
    #[error("{len} bytes is too short for a service tag table")]
    TooShort {
        /// The blob's length.
        len: usize,
    },
    /// Does not start with `VNST`.
    #[error("not a vnetsim service tag table (bad magic)")]
    Magic,
    /// A version this decoder does not know.
    #[error("service tag table format version {0} is not supported (expected 1)")]
    Version(u8),
    /// The trailing checksum does not match the content.
    #[error("checksum mismatch: the table is corrupt")]
    Checksum,
    /// A field runs past the end of the table.
    #[error("byte {at}: {what} runs past the end of the table")]
    Truncated {
        /// Offset of the field.
        at: usize,
        /// Which field.
        what: &'static str,
    },
    /// A varint longer than 64 bits.
    #[error("byte {at}: integer does not fit 64 bits")]
    Varint {
        /// Offset of the varint.
        at: usize,
    },
    /// A count larger than the bytes left could hold.
    #[error("byte {at}: {what} count {count} exceeds what the remaining bytes can hold")]
    Count {
        /// Offset of the count.
        at: usize,
        /// What is counted.
        what: &'static str,
        /// The count read.
        count: u64,
    },
    /// A string that is not UTF-8.
    #[error("byte {at}: string is not UTF-8")]
    Utf8 {
        /// Offset of the string.
        at: usize,
    },
    /// A string index past the string table.
    #[error("byte {at}: string index {index} is out of range ({len} strings)")]
    StringIndex {
        /// Offset of the index.
        at: usize,
        /// The index read.
        index: u64,
        /// Strings in the table.
        len: usize,
    },
    /// A prefix length code that is neither IPv4 nor IPv6.
    #[error("byte {at}: prefix length code {code} is neither IPv4 (0..=32) nor IPv6 (64..=192)")]
    PrefixLength {
        /// Offset of the code.
        at: usize,
        /// The code read.
        code: u8,
    },
    /// A prefix with bits set past its length.
    #[error("byte {at}: prefix {prefix} has bits set past its length")]
    HostBits {
        /// Offset of the prefix.
        at: usize,
        /// The prefix as read.
        prefix: String,
    },
    /// Bytes left between the last tag and the checksum.
    #[error("{0} unexpected bytes after the last tag")]
    Trailing(usize),
}

/// The decoded table.
#[derive(Debug)]
pub(crate) struct Decoded {
    pub change_number: u64,
    pub cloud: String,
    pub date: String,
    pub file: String,
    pub tags: Vec<ServiceTag>,
}

/// FNV-1a 64, the blob's checksum (the generator computes the same).
fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], BlobError> {
        let at = self.pos;
        let end = at
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(BlobError::Truncated { at, what })?;
        self.pos = end;
        Ok(&self.buf[at..end])
    }

    fn byte(&mut self, what: &'static str) -> Result<u8, BlobError> {
        Ok(self.bytes(1, what)?[0])
    }

    fn varint(&mut self, what: &'static str) -> Result<u64, BlobError> {
        let at = self.pos;
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte(what)?;
            let part = u64::from(b & 0x7f);
            if shift == 63 && part > 1 {
                return Err(BlobError::Varint { at });
            }
            v |= part << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(BlobError::Varint { at })
    }

    /// A count of items that each take at least `min_bytes`, checked against the bytes left.
    fn count(&mut self, what: &'static str, min_bytes: usize) -> Result<usize, BlobError> {
        let at = self.pos;
        let count = self.varint(what)?;
        usize::try_from(count)
            .ok()
            .filter(|&n| n.checked_mul(min_bytes).is_some_and(|b| b <= self.left()))
            .ok_or(BlobError::Count { at, what, count })
    }

    fn string(&mut self, what: &'static str) -> Result<&'a str, BlobError> {
        let len = self.count(what, 1)?;
        let at = self.pos;
        std::str::from_utf8(self.bytes(len, what)?).map_err(|_| BlobError::Utf8 { at })
    }

    fn index<'s>(&mut self, strings: &[&'s str], what: &'static str) -> Result<&'s str, BlobError> {
        let at = self.pos;
        let index = self.varint(what)?;
        usize::try_from(index)
            .ok()
            .and_then(|i| strings.get(i).copied())
            .ok_or(BlobError::StringIndex {
                at,
                index,
                len: strings.len(),
            })
    }

    fn prefix(&mut self) -> Result<Cidr, BlobError> {
        let at = self.pos;
        let code = self.byte("prefix length")?;
        let (len, v6) = match code {
            0..=32 => (code, false),
            V6_BASE..=192 => (code - V6_BASE, true),
            _ => return Err(BlobError::PrefixLength { at, code }),
        };
        let significant = self.bytes(usize::from(len).div_ceil(8), "prefix address")?;
        let net = if v6 {
            let mut a = [0u8; 16];
            a[..significant.len()].copy_from_slice(significant);
            Ipv6Net::new(Ipv6Addr::from(a), len).map(IpNet::V6)
        } else {
            let mut a = [0u8; 4];
            a[..significant.len()].copy_from_slice(significant);
            Ipv4Net::new(Ipv4Addr::from(a), len).map(IpNet::V4)
        }
        .map_err(|_| BlobError::PrefixLength { at, code })?;
        Cidr::try_from(net).map_err(|_| BlobError::HostBits {
            at,
            prefix: format!("{}/{len}", net.addr()),
        })
    }
}

/// Decodes a table written by `tools/gen-service-tags.py`.
///
/// # Errors
/// [`BlobError`] for any truncation, corruption or unknown version.
pub(crate) fn decode(blob: &[u8]) -> Result<Decoded, BlobError> {
    if blob.len() < MAGIC.len() + 1 + CHECKSUM_LEN {
        return Err(BlobError::TooShort { len: blob.len() });
    }
    if &blob[..MAGIC.len()] != MAGIC {
        return Err(BlobError::Magic);
    }
    let (body, sum) = blob.split_at(blob.len() - CHECKSUM_LEN);
    let version = body[MAGIC.len()];
    if version != VERSION {
        return Err(BlobError::Version(version));
    }
    let sum: [u8; CHECKSUM_LEN] = sum.try_into().expect("split at CHECKSUM_LEN from the end");
    if fnv1a64(body) != u64::from_le_bytes(sum) {
        return Err(BlobError::Checksum);
    }
    let mut r = Reader {
        buf: body,
        pos: MAGIC.len() + 1,
    };
    let change_number = r.varint("changeNumber")?;
    let cloud = r.string("cloud")?.to_string();
    let date = r.string("date")?.to_string();
    let file = r.string("file name")?.to_string();
    let n = r.count("string table", 1)?;
    let mut strings = Vec::with_capacity(n);
    for _ in 0..n {
        strings.push(r.string("string")?);
    }
    // A tag takes at least five bytes: base, suffix, region, changeNumber, prefix count.
    let n = r.count("tag", 5)?;
    let mut tags = Vec::with_capacity(n);
    for _ in 0..n {
        let base = r.index(&strings, "tag base name")?;
        let at = r.pos;
        let suffix = match r.varint("tag name suffix")? {
            0 => None,
            i => Some(
                usize::try_from(i - 1)
                    .ok()
                    .and_then(|i| strings.get(i).copied())
                    .ok_or(BlobError::StringIndex {
                        at,
                        index: i - 1,
                        len: strings.len(),
                    })?,
            ),
        };
        let region = r.index(&strings, "tag region")?;
        let tag_change = r.varint("tag changeNumber")?;
        let np = r.count("prefix", 1)?;
        let mut prefixes = Vec::with_capacity(np);
        for _ in 0..np {
            prefixes.push(r.prefix()?);
        }
        tags.push(ServiceTag {
            name: suffix.map_or_else(|| base.to_string(), |s| format!("{base}.{s}")),
            region: region.to_string(),
            change_number: Some(tag_change),
            prefixes,
        });
    }
    if r.left() != 0 {
        return Err(BlobError::Trailing(r.left()));
    }
    Ok(Decoded {
        change_number,
        cloud,
        date,
        file,
        tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_blob_decodes() {
        let d = decode(BUILTIN).expect("the committed blob is valid");
        assert_eq!(d.change_number, 375);
        assert_eq!(d.cloud, "Public");
        assert_eq!(d.date, "2025-10-28");
        assert_eq!(d.file, "ServiceTags_Public_20251028.json");
        // The counts SOURCE.md states for the file: 3039 tags, 93,362 prefixes.
        assert_eq!(d.tags.len(), 3039);
        assert_eq!(
            d.tags.iter().map(|t| t.prefixes.len()).sum::<usize>(),
            93_362
        );
    }

    /// Re-stamps the checksum so a corruption reaches the field decoders behind it.
    fn resum(mut b: Vec<u8>) -> Vec<u8> {
        let n = b.len() - CHECKSUM_LEN;
        let s = fnv1a64(&b[..n]).to_le_bytes();
        b[n..].copy_from_slice(&s);
        b
    }

    #[test]
    fn truncated_or_corrupt_blobs_are_errors_not_panics() {
        // Every truncation of the header and string table, and a spread of cut points over the
        // tags (each decode of the whole blob costs ~60 ms unoptimised; the suite stays fast).
        let spread = BUILTIN.len() / 16;
        let cuts = (0..64).chain((64..BUILTIN.len()).step_by(spread));
        for cut in cuts {
            assert!(decode(&BUILTIN[..cut]).is_err(), "cut at {cut} decoded");
            // Truncated, with a checksum that matches what is left: a field runs past the end.
            if cut > 16 {
                let mut b = BUILTIN[..cut].to_vec();
                b.extend_from_slice(&[0; CHECKSUM_LEN]);
                assert!(decode(&resum(b)).is_err(), "resummed cut at {cut} decoded");
            }
        }
        // A flipped bit anywhere is caught by the checksum.
        for at in (0..BUILTIN.len() - CHECKSUM_LEN).step_by(spread / 2 + 1) {
            let mut b = BUILTIN.to_vec();
            b[at] ^= 0x10;
            assert!(decode(&b).is_err(), "flip at {at} decoded");
        }
        let mut b = BUILTIN.to_vec();
        b[0] = b'X';
        assert_eq!(decode(&b).unwrap_err(), BlobError::Magic);
        let mut b = BUILTIN.to_vec();
        b[4] = 2;
        assert_eq!(decode(&b).unwrap_err(), BlobError::Version(2));
        assert_eq!(decode(b"VN").unwrap_err(), BlobError::TooShort { len: 2 });
    }

    /// A hand-built blob: header, `strings`, then `tags` bytes, checksummed.
    fn blob(strings: &[&str], tags: &[u8]) -> Vec<u8> {
        let mut b = b"VNST\x01".to_vec();
        b.push(7); // changeNumber
        for s in ["Public", "2025-01-01", "f.json"] {
            b.push(s.len() as u8);
            b.extend_from_slice(s.as_bytes());
        }
        b.push(strings.len() as u8);
        for s in strings {
            b.push(s.len() as u8);
            b.extend_from_slice(s.as_bytes());
        }
        b.extend_from_slice(tags);
        b.extend_from_slice(&[0; CHECKSUM_LEN]);
        resum(b)
    }

    #[test]
    fn field_errors_name_the_fault() {
        let strings = ["", "Storage", "WestEurope", "westeurope"];
        // One tag: Storage.WestEurope, region westeurope, changeNumber 3, 10.0.0.0/8 and fd00::/8.
        let good = [1, 3, 3, 3, 2, 8, 10, 64 + 8, 0xfd];
        let d = decode(&blob(&strings, &{
            let mut t = vec![1];
            t.extend_from_slice(&good);
            t
        }))
        .unwrap();
        assert_eq!(d.tags[0].name, "Storage.WestEurope");
        assert_eq!(d.tags[0].region, "westeurope");
        assert_eq!(d.tags[0].change_number, Some(3));
        let shown: Vec<String> = d.tags[0].prefixes.iter().map(|p| p.to_string()).collect();
        assert_eq!(shown, ["10.0.0.0/8", "fd00::/8"]);

        let with = |tag: &[u8]| {
            let mut t = vec![1];
            t.extend_from_slice(tag);
            decode(&blob(&strings, &t)).unwrap_err()
        };
        assert!(matches!(
            with(&[9, 3, 3, 3, 0]),
            BlobError::StringIndex { index: 9, .. }
        ));
        assert!(matches!(
            with(&[1, 9, 3, 3, 0]),
            BlobError::StringIndex { index: 8, .. }
        ));
        assert!(matches!(
            with(&[1, 3, 3, 3, 1, 33, 0, 0, 0, 0, 0]),
            BlobError::PrefixLength { code: 33, .. }
        ));
        assert!(matches!(
            with(&[1, 3, 3, 3, 1, 7, 0x0b]),
            BlobError::HostBits { .. }
        ));
        assert!(matches!(
            with(&[1, 3, 3, 3, 1, 24, 10, 0]),
            BlobError::Truncated { .. }
        ));
        assert!(matches!(
            with(&[1, 3, 3, 3, 200, 1, 8]),
            BlobError::Count { count: 200, .. }
        ));
        assert!(matches!(
            with(&[1, 3, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0]),
            BlobError::Varint { .. }
        ));
        let mut extra = vec![1];
        extra.extend_from_slice(&good);
        extra.push(0);
        assert_eq!(
            decode(&blob(&strings, &extra)).unwrap_err(),
            BlobError::Trailing(1)
        );
        // A tag count no blob of this size could hold is refused before anything is allocated.
        assert!(matches!(
            decode(&blob(&strings, &[0xff, 0xff, 0xff, 0x7f])).unwrap_err(),
            BlobError::Count { what: "tag", .. }
        ));
        let bad_utf8 = blob(&["\u{e9}"], &[0]);
        let mut b = bad_utf8.clone();
        let at = b.len() - CHECKSUM_LEN - 3; // the string's two bytes, then the tag count
        b[at] = 0xff;
        assert!(matches!(
            decode(&resum(b)).unwrap_err(),
            BlobError::Utf8 { .. }
        ));
    }
}
