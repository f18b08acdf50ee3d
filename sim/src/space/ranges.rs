//! Interval arithmetic the space engine needs on plain integer ranges: cut points, sorted
//! merging, intersection and difference of closed ranges, and the decomposition of an address
//! interval into the fewest CIDR prefixes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::cidr::Cidr;

/// A fast, non-cryptographic hasher (the Fx hash rustc uses) for the engine's maps: their keys
/// are the engine's own values, never attacker-chosen strings, and iteration order never shows.
#[derive(Clone, Copy, Default)]
pub(crate) struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }
    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` with [`FxHasher`].
pub(crate) type FxMap<K, V> =
    std::collections::HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;

/// The largest address of a family, as an integer.
pub(crate) fn family_max(v6: bool) -> u128 {
    if v6 {
        u128::MAX
    } else {
        u128::from(u32::MAX)
    }
}

/// An integer of a family back to an address.
pub(crate) fn ip_of(v6: bool, x: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(x))
    } else {
        IpAddr::V4(Ipv4Addr::from(x as u32))
    }
}

/// Sorted, merged (overlapping or adjacent) closed ranges.
pub(crate) fn merge<T: Copy + Ord + Into<u128>>(mut v: Vec<(T, T)>) -> Vec<(T, T)> {
    v.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(v.len());
    for (lo, hi) in v {
        if let Some(last) = out.last_mut() {
            let (l, n) = (last.1.into(), lo.into());
            if n <= l || n == l + 1 {
                if hi > last.1 {
                    last.1 = hi;
                }
                continue;
            }
        }
        out.push((lo, hi));
    }
    out
}

/// Intersection of two sorted, disjoint range lists (the one in `cidr`).
pub(crate) use crate::cidr::intersect;

/// `a − b` for sorted, disjoint range lists (the one in `cidr`).
pub(crate) use crate::cidr::subtract;

/// Whether a sorted range list contains `x`.
pub(crate) fn contains<T: Copy + Ord>(ranges: &[(T, T)], x: T) -> bool {
    let i = ranges.partition_point(|r| r.0 <= x);
    i > 0 && x <= ranges[i - 1].1
}

/// The fewest prefixes covering exactly `lo..=hi` of a family.
///
/// ```text
/// 10.0.0.0 - 10.0.2.255  →  10.0.0.0/23, 10.0.2.0/24
/// ```
pub(crate) fn cidrs_of(v6: bool, lo: u128, hi: u128) -> Vec<Cidr> {
    let bits: u32 = if v6 { 128 } else { 32 };
    let mut out = Vec::new();
    let mut cur = lo;
    loop {
        // The largest aligned block starting at `cur` that does not pass `hi`.
        let align = if cur == 0 {
            bits
        } else {
            cur.trailing_zeros().min(bits)
        };
        let mut size_bits = align;
        while size_bits > 0 {
            let last = if size_bits >= 128 {
                u128::MAX
            } else {
                cur + ((1u128 << size_bits) - 1)
            };
            if last <= hi && (size_bits < 128 || cur == 0) {
                break;
            }
            size_bits -= 1;
        }
        let len = (bits - size_bits) as u8;
        let c = format!("{}/{len}", ip_of(v6, cur))
            .parse()
            .expect("an aligned block is a valid prefix");
        out.push(c);
        let last = if size_bits >= 128 {
            u128::MAX
        } else {
            cur + ((1u128 << size_bits) - 1)
        };
        if last >= hi {
            return out;
        }
        cur = last + 1;
    }
}

/// The number of values in a range list (saturating).
pub(crate) fn count(ranges: &[(u128, u128)]) -> u128 {
    ranges.iter().fold(0u128, |n, (lo, hi)| {
        n.saturating_add((hi - lo).saturating_add(1))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_decomposition() {
        let s = |v: Vec<Cidr>| v.iter().map(Cidr::to_string).collect::<Vec<_>>();
        let a = |x: &str| crate::cidr::addr_to_u128(x.parse().unwrap());
        assert_eq!(
            s(cidrs_of(false, a("10.0.0.0"), a("10.0.2.255"))),
            ["10.0.0.0/23", "10.0.2.0/24"]
        );
        assert_eq!(s(cidrs_of(false, 0, u128::from(u32::MAX))), ["0.0.0.0/0"]);
        assert_eq!(s(cidrs_of(true, 0, u128::MAX)), ["::/0"]);
        assert_eq!(s(cidrs_of(false, 1, 2)), ["0.0.0.1/32", "0.0.0.2/32"]);
        assert_eq!(
            s(cidrs_of(true, 1, u128::MAX)).len(),
            128,
            "::1 .. end needs one prefix per bit"
        );
    }

    #[test]
    fn range_ops() {
        assert_eq!(merge(vec![(5u32, 9), (1, 4), (20, 30)]), [(1, 9), (20, 30)]);
        assert_eq!(
            subtract(&[(0u32, 100)], &[(10, 20), (50, 100)]),
            [(0, 9), (21, 49)]
        );
        assert_eq!(
            intersect(&[(0u32, 10), (20, 30)], &[(5, 25)]),
            [(5, 10), (20, 25)]
        );
        assert!(contains(&[(1u32, 3), (7, 9)], 8) && !contains(&[(1u32, 3)], 4));
    }
}
