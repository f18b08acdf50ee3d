//! Addresses and prefixes: [`Cidr`] (a strictly parsed IPv4/IPv6 prefix) and [`AddrSet`] (a
//! normalised union of prefixes stored as sorted, merged intervals, the representation every NSG
//! address field compiles to).
//!
//! This module knows nothing of VNets or NSGs; it owns only address arithmetic and the
//! classification of special-purpose ranges (RFC 1918, RFC 6598, loopback, ...).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Why a prefix did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// Not of the form `address/length` (or not an address at all).
    #[error("`{0}` is not a CIDR prefix (expected e.g. 10.0.1.0/24 or fd00::/64)")]
    Syntax(String),
    /// The address has bits set beyond the prefix length; Azure rejects such prefixes.
    #[error("`{given}` has host bits set; the prefix is {network}")]
    HostBitsSet {
        /// What the user wrote.
        given: String,
        /// The prefix they probably meant.
        network: String,
    },
}

/// A prefix (IPv4 or IPv6) with zero host bits, e.g. `10.0.1.0/24`. `10.0.1.7/24` is rejected
/// rather than truncated, so a typo in a fixture cannot silently become another network.
///
/// ```
/// let c: sim::Cidr = "10.0.1.0/24".parse().unwrap();
/// assert!(c.contains("10.0.1.9".parse().unwrap()));
/// assert!("10.0.1.7/24".parse::<sim::Cidr>().is_err());
/// assert_eq!(c.to_string(), "10.0.1.0/24");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr(IpNet); // invariant: host bits are zero

// === impl Cidr ===

impl Cidr {
    /// The prefix covering exactly one address (`/32` or `/128`).
    pub fn host(addr: IpAddr) -> Cidr {
        match addr {
            IpAddr::V4(a) => Cidr(IpNet::V4(
                Ipv4Net::new(a, 32).expect("32 is a valid v4 length"),
            )),
            IpAddr::V6(a) => Cidr(IpNet::V6(
                Ipv6Net::new(a, 128).expect("128 is a valid v6 length"),
            )),
        }
    }

    /// Parses either a strict prefix (`10.0.0.0/8`) or a bare address (`10.0.0.4`, taken as a
    /// single-address prefix), the two forms NSG rules accept.
    ///
    /// # Errors
    /// [`CidrError`] when the text is neither form or has host bits set.
    pub fn parse_address_or_prefix(s: &str) -> Result<Cidr, CidrError> {
        let s = s.trim();
        if s.contains('/') {
            s.parse()
        } else {
            s.parse::<IpAddr>()
                .map(Cidr::host)
                .map_err(|_| CidrError::Syntax(s.to_string()))
        }
    }

    /// The underlying `ipnet` value.
    pub fn net(&self) -> IpNet {
        self.0
    }

    /// Prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.0.prefix_len()
    }

    /// Whether this is an IPv4 prefix.
    pub fn is_ipv4(&self) -> bool {
        matches!(self.0, IpNet::V4(_))
    }

    /// First address of the prefix (the network address).
    pub fn first(&self) -> IpAddr {
        self.0.network()
    }

    /// Last address of the prefix (the broadcast address for IPv4).
    pub fn last(&self) -> IpAddr {
        self.0.broadcast()
    }

    /// Number of addresses in the prefix (saturating at `u128::MAX` for `::/0`).
    pub fn size(&self) -> u128 {
        let bits = if self.is_ipv4() { 32 } else { 128 } - u32::from(self.prefix_len());
        if bits >= 128 {
            u128::MAX
        } else {
            1u128 << bits
        }
    }

    /// Whether `addr` lies inside the prefix (always false across address families).
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.0.contains(&addr)
    }

    /// Whether `other` lies entirely inside this prefix.
    pub fn covers(&self, other: &Cidr) -> bool {
        self.0.contains(&other.0)
    }

    /// Whether the two prefixes share at least one address. Prefixes either nest or are
    /// disjoint, so this is "one contains the other".
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.covers(other) || other.covers(self)
    }

    /// The address at `offset` from the start of the prefix, if inside it.
    pub fn nth(&self, offset: u128) -> Option<IpAddr> {
        if offset >= self.size() {
            return None;
        }
        Some(match self.first() {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) + offset as u32)),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) + offset)),
        })
    }

    /// The closed interval of the prefix as integers (IPv4 in the low 32 bits).
    pub fn interval(&self) -> (u128, u128) {
        (addr_to_u128(self.first()), addr_to_u128(self.last()))
    }
}

impl FromStr for Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let t = s.trim();
        let net: IpNet = t.parse().map_err(|_| CidrError::Syntax(t.to_string()))?;
        if net.trunc() != net {
            return Err(CidrError::HostBitsSet {
                given: t.to_string(),
                network: net.trunc().to_string(),
            });
        }
        Ok(Cidr(net))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl serde::Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A prefix from an `IpNet` whose host bits are zero (decoders that build prefixes from bytes,
/// e.g. the built-in service tag table).
impl TryFrom<IpNet> for Cidr {
    type Error = CidrError;
    fn try_from(net: IpNet) -> Result<Cidr, CidrError> {
        if net.trunc() == net {
            Ok(Cidr(net))
        } else {
            Err(CidrError::HostBitsSet {
                given: net.to_string(),
                network: net.trunc().to_string(),
            })
        }
    }
}

/// An address as an integer; IPv4 occupies the low 32 bits (families are kept apart by
/// [`AddrSet`], never mixed in one interval list).
pub fn addr_to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

// === AddrSet ===

/// A set of addresses: sorted, merged, non-adjacent closed intervals, one list per family.
/// Membership is a binary search; building is `O(n log n)`.
///
/// ```
/// use sim::{AddrSet, Cidr};
/// let s = AddrSet::from_cidrs(["10.0.0.0/24", "10.0.1.0/24"].iter().map(|c| c.parse::<Cidr>().unwrap()));
/// assert!(s.contains("10.0.1.255".parse().unwrap()));
/// assert!(!s.contains("10.0.2.0".parse().unwrap()));
/// assert_eq!(s.v4_intervals().len(), 1); // merged
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AddrSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

// === impl AddrSet ===

impl AddrSet {
    /// The empty set.
    pub fn empty() -> AddrSet {
        AddrSet::default()
    }

    /// Every IPv4 and IPv6 address (`*`, `0.0.0.0/0` plus `::/0`).
    pub fn any() -> AddrSet {
        AddrSet {
            v4: vec![(0, u32::MAX)],
            v6: vec![(0, u128::MAX)],
        }
    }

    /// The union of the given prefixes.
    pub fn from_cidrs<I: IntoIterator<Item = Cidr>>(cidrs: I) -> AddrSet {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for c in cidrs {
            let (lo, hi) = c.interval();
            if c.is_ipv4() {
                v4.push((lo as u32, hi as u32));
            } else {
                v6.push((lo, hi));
            }
        }
        AddrSet {
            v4: merge(v4),
            v6: merge(v6),
        }
    }

    /// Whether the set holds no address.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Whether the set is every address of both families.
    pub fn is_any(&self) -> bool {
        self.v4 == [(0, u32::MAX)] && self.v6 == [(0, u128::MAX)]
    }

    /// Membership test: a binary search in the address's family.
    #[inline]
    pub fn contains(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(a) => contains_in(&self.v4, u32::from(a)),
            IpAddr::V6(a) => contains_in(&self.v6, u128::from(a)),
        }
    }

    /// The IPv4 intervals, sorted and merged.
    pub fn v4_intervals(&self) -> &[(u32, u32)] {
        &self.v4
    }

    /// The IPv6 intervals, sorted and merged.
    pub fn v6_intervals(&self) -> &[(u128, u128)] {
        &self.v6
    }

    /// Set union.
    pub fn union(&self, other: &AddrSet) -> AddrSet {
        let mut v4 = self.v4.clone();
        v4.extend_from_slice(&other.v4);
        let mut v6 = self.v6.clone();
        v6.extend_from_slice(&other.v6);
        AddrSet {
            v4: merge(v4),
            v6: merge(v6),
        }
    }

    /// Set difference `self − other`.
    pub fn difference(&self, other: &AddrSet) -> AddrSet {
        AddrSet {
            v4: subtract(&self.v4, &other.v4),
            v6: subtract(&self.v6, &other.v6),
        }
    }

    /// Set intersection.
    pub fn intersection(&self, other: &AddrSet) -> AddrSet {
        AddrSet {
            v4: intersect(&self.v4, &other.v4),
            v6: intersect(&self.v6, &other.v6),
        }
    }

    /// The set of the given intervals of one family (`v6` false: IPv4, values below 2^32).
    pub(crate) fn from_intervals(v6: bool, ivs: Vec<(u128, u128)>) -> AddrSet {
        if v6 {
            AddrSet {
                v4: Vec::new(),
                v6: merge(ivs),
            }
        } else {
            AddrSet {
                v4: merge(ivs.into_iter().map(|(a, b)| (a as u32, b as u32)).collect()),
                v6: Vec::new(),
            }
        }
    }

    /// One family's intervals as integers (IPv4 in the low 32 bits).
    pub(crate) fn family_intervals(&self, v6: bool) -> Vec<(u128, u128)> {
        if v6 {
            self.v6.clone()
        } else {
            self.v4
                .iter()
                .map(|&(a, b)| (u128::from(a), u128::from(b)))
                .collect()
        }
    }

    /// Whether the two sets share an address.
    pub fn intersects(&self, other: &AddrSet) -> bool {
        !intersect(&self.v4, &other.v4).is_empty() || !intersect(&self.v6, &other.v6).is_empty()
    }

    /// Number of intervals (a proxy for the cost of a membership test).
    pub fn interval_count(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.v4.capacity() * std::mem::size_of::<(u32, u32)>()
            + self.v6.capacity() * std::mem::size_of::<(u128, u128)>()
    }
}

#[inline]
fn contains_in<T: Ord + Copy>(ivs: &[(T, T)], x: T) -> bool {
    // Intervals are sorted and disjoint: find the last interval starting at or before x.
    match ivs.len() {
        0 => false,
        1 => ivs[0].0 <= x && x <= ivs[0].1,
        _ => {
            let i = ivs.partition_point(|iv| iv.0 <= x);
            i > 0 && x <= ivs[i - 1].1
        }
    }
}

/// An integer bound of a range (`u32` ports, `u128` addresses).
pub(crate) trait Bound: Ord + Copy {
    fn succ(self) -> Option<Self>;
    fn pred(self) -> Option<Self>;
}
impl Bound for u32 {
    fn succ(self) -> Option<u32> {
        self.checked_add(1)
    }
    fn pred(self) -> Option<u32> {
        self.checked_sub(1)
    }
}
impl Bound for u128 {
    fn succ(self) -> Option<u128> {
        self.checked_add(1)
    }
    fn pred(self) -> Option<u128> {
        self.checked_sub(1)
    }
}

fn merge<T: Bound>(mut ivs: Vec<(T, T)>) -> Vec<(T, T)> {
    ivs.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ivs.len());
    for (lo, hi) in ivs {
        if let Some(last) = out.last_mut() {
            // Merge overlapping or adjacent intervals.
            if last.1.succ().is_none_or(|next| lo <= next) {
                if hi > last.1 {
                    last.1 = hi;
                }
                continue;
            }
        }
        out.push((lo, hi));
    }
    out.shrink_to_fit();
    out
}

/// `a − b` for sorted, disjoint range lists.
pub(crate) fn subtract<T: Bound>(a: &[(T, T)], b: &[(T, T)]) -> Vec<(T, T)> {
    let mut out = Vec::new();
    for &(lo, hi) in a {
        let mut cur = Some(lo);
        for &(blo, bhi) in b {
            let Some(c) = cur else { break };
            if bhi < c || blo > hi {
                continue;
            }
            if blo > c {
                out.push((c, blo.pred().expect("blo > c >= 0")));
            }
            cur = bhi.succ().filter(|n| *n <= hi);
        }
        if let Some(c) = cur {
            out.push((c, hi));
        }
    }
    out
}

/// Intersection of two sorted, disjoint lists of inclusive ranges (addresses here, ports in the
/// whole-space engine).
pub(crate) fn intersect<T: Copy + Ord>(a: &[(T, T)], b: &[(T, T)]) -> Vec<(T, T)> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        let lo = a[i].0.max(b[j].0);
        let hi = a[i].1.min(b[j].1);
        if lo <= hi {
            out.push((lo, hi));
        }
        if a[i].1 < b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

// === Special ranges ===

fn cidrs(list: &[&str]) -> Vec<Cidr> {
    list.iter()
        .map(|s| s.parse().expect("built-in prefix literal is valid"))
        .collect()
}

static PRIVATE: std::sync::OnceLock<Vec<Cidr>> = std::sync::OnceLock::new();
static SPECIAL: std::sync::OnceLock<Vec<Cidr>> = std::sync::OnceLock::new();
static PUBLIC: std::sync::OnceLock<AddrSet> = std::sync::OnceLock::new();

/// Private address space that Azure treats as non-internet: RFC 1918, RFC 6598 (100.64.0.0/10,
/// "treated as a private IP address space in Azure", VNet FAQ), and IPv6 unique-local fc00::/7.
pub fn private_ranges() -> &'static [Cidr] {
    PRIVATE.get_or_init(|| {
        cidrs(&[
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "100.64.0.0/10",
            "fc00::/7",
        ])
    })
}

/// Ranges that are neither private nor internet: unspecified, loopback, link-local, multicast,
/// documentation/benchmark/reserved blocks, broadcast, their IPv6 counterparts, and the Azure
/// host node's virtual IP 168.63.129.16 ("a virtual public IP address that is used to
/// facilitate a communication channel to Azure platform resources", "What is IP address
/// 168.63.129.16?"; `ASSUMPTION_HOST_VIP_TAGS`: it is not in the Internet tag).
pub fn special_ranges() -> &'static [Cidr] {
    SPECIAL.get_or_init(|| {
        cidrs(&[
            "0.0.0.0/8",
            "127.0.0.0/8",
            "168.63.129.16/32",
            "169.254.0.0/16",
            "192.0.0.0/24",
            "192.0.2.0/24",
            "198.18.0.0/15",
            "198.51.100.0/24",
            "203.0.113.0/24",
            "224.0.0.0/4",
            "240.0.0.0/4",
            "::/128",
            "::1/128",
            "fe80::/10",
            "ff00::/8",
            "2001:db8::/32",
        ])
    })
}

/// Whether an address is in the private ranges of [`private_ranges`].
pub fn is_private(addr: IpAddr) -> bool {
    private_ranges().iter().any(|c| c.contains(addr))
}

/// Whether an address is public: neither private nor special-purpose (a scan of the two lists;
/// [`public_space`] is the same set as intervals).
pub fn is_public(addr: IpAddr) -> bool {
    !is_private(addr) && !special_ranges().iter().any(|c| c.contains(addr))
}

/// All public address space (both families), before removing any VNet's own ranges.
pub fn public_space() -> &'static AddrSet {
    PUBLIC.get_or_init(|| {
        let excluded = private_ranges().iter().chain(special_ranges()).copied();
        AddrSet::any().difference(&AddrSet::from_cidrs(excluded))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn strict_parse_rejects_host_bits() {
        // A typo must not silently become another network.
        let e = "10.0.1.7/24".parse::<Cidr>().unwrap_err();
        assert_eq!(
            e,
            CidrError::HostBitsSet {
                given: "10.0.1.7/24".into(),
                network: "10.0.1.0/24".into()
            }
        );
        assert!(matches!(
            "10.0.1.0".parse::<Cidr>(),
            Err(CidrError::Syntax(_))
        ));
        assert!(matches!(
            "10.0.1.0/33".parse::<Cidr>(),
            Err(CidrError::Syntax(_))
        ));
        assert_eq!(c("fd00::/64").to_string(), "fd00::/64");
    }

    #[test]
    fn bare_address_is_single_host() {
        let h = Cidr::parse_address_or_prefix("10.0.0.4").unwrap();
        assert_eq!(h.to_string(), "10.0.0.4/32");
        assert_eq!(h.size(), 1);
    }

    #[test]
    fn set_ops() {
        let a = AddrSet::from_cidrs([c("10.0.0.0/8")]);
        let b = AddrSet::from_cidrs([c("10.1.0.0/16")]);
        let d = a.difference(&b);
        assert!(d.contains("10.0.255.255".parse().unwrap()));
        assert!(!d.contains("10.1.2.3".parse().unwrap()));
        assert!(d.contains("10.2.0.0".parse().unwrap()));
        assert_eq!(d.v4_intervals().len(), 2);
        assert!(a.intersects(&b));
        assert!(!d.intersects(&b));
        assert!(AddrSet::any().is_any());
        assert!(AddrSet::any().contains("::1".parse().unwrap()));
    }

    #[test]
    fn public_classification() {
        assert!(is_public("13.107.21.200".parse().unwrap()));
        assert!(!is_public("172.31.0.100".parse().unwrap()));
        assert!(!is_public("100.64.0.1".parse().unwrap()));
        assert!(!is_public("127.0.0.1".parse().unwrap()));
        let p = public_space();
        assert!(p.contains("20.50.1.10".parse().unwrap()));
        assert!(!p.contains("10.0.0.1".parse().unwrap()));
        assert!(p.contains("2603:1020:206::340".parse().unwrap()));
    }
}
