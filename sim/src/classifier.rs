//! A first-match packet classifier by bit-vector intersection (the family of Lakshman–Stiliadis
//! "bit vector" search and nftables' `pipapo`), used by [`crate::nsg::CompiledNsg`] for long
//! rule lists.
//!
//! Each field (source/destination address per family, source/destination port, protocol) is cut
//! into *elementary intervals* at every rule boundary; each interval carries the bit set of rules
//! that match it. Rules are stored in priority order, so the lowest set bit of the AND of the
//! fields' bit sets is the first match.
//!
//! Layout, chosen from profiles of the 1,000-rule / 4,000-prefix benchmark:
//! * Bit sets are **deduplicated** per dimension: an interval stores a `u32` row id, and many
//!   intervals (every gap between a rule's prefixes, say) share one row. Fewer distinct rows means
//!   less memory and fewer cache misses.
//! * IPv4 addresses and ports are found with a **two-level index**: a direct table on the top
//!   `k` bits (`2^k` ≈ the number of intervals) gives the interval at the bucket's start and where
//!   the bucket's own boundaries begin; most buckets have none, so a lookup is one table read
//!   instead of a ~14-step binary search of dependent loads. The tables span only the values
//!   where boundaries lie (a VNet's `/24`s need one level, not three). IPv6 keeps a binary
//!   search.
//! * Protocol and source port are **pre-combined** into one row (`protocol × source-port row`),
//!   so a lookup ANDs four rows, not five; the source-port lookup is skipped when every rule has
//!   the same source ports (Azure rules nearly always say `*`).
//! * Each row's first cache line (8 words, 512 rules) is stored apart from the rest of the row:
//!   the first line decides most flows, and the lines a lookup usually reads fill half the bytes.
//! * The AND of the rows' first cache line runs without a branch per word
//!   (where the first match lies varies per flow, and a mispredicted exit would stall the next
//!   flow's independent loads), two words per SSE2 instruction on x86-64; past it, word by
//!   word up to the first non-zero word.
//! * **Few instructions per lookup.** A lookup is a short chain of dependent loads, and the CPU
//!   overlaps consecutive flows only as far as its reorder window reaches: every instruction
//!   counts (callgrind: 320 → 230 per flow at 1,000 rules). So the first lines are a typed
//!   array of 64-byte [`Line`]s (one index, no stride arithmetic), and the lookups read the
//!   index tables, the interval windows and the lines **without bounds checks**: every index
//!   they can compute is checked once, when the classifier is built
//!   (`IndexedField::indices_in_bounds`, `Classifier::row_ids_in_bounds`), and a classifier
//!   that fails the check is not used (the caller keeps the linear scan).
//!
//! Cost: four independent table lookups, then `≤ rules / 64` words per row, no allocation.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

use crate::cidr::AddrSet;
use crate::flow::FlowKey;
use crate::proto::{PortSet, Protocol, NO_PORT};

/// Distinct rule bit sets of `width` words each: row `i` is `words[off + i * stride..][..width]`.
/// Rows start on 64-byte cache-line boundaries (`stride` is a power of two up to 8 words, then
/// a multiple of 8; `off` skips to the first aligned word), so reading the first words of a row
/// touches one line, not two.
#[derive(Debug, Default)]
struct Rows {
    width: usize,
    stride: usize,
    off: usize,
    words: Vec<u64>,
}

impl Clone for Rows {
    fn clone(&self) -> Rows {
        let mut r = Rows::new(self.width);
        for i in 0..self.len() as u32 {
            r.push(self.row(i));
        }
        r.finish()
    }
}

impl Rows {
    fn new(width: usize) -> Rows {
        let stride = if width < 8 {
            width.next_power_of_two()
        } else {
            width.div_ceil(8) * 8
        };
        Rows {
            width,
            stride,
            off: 0,
            words: Vec::new(),
        }
    }

    #[inline(always)]
    fn row(&self, id: u32) -> &[u64] {
        &self.words[self.off + id as usize * self.stride..][..self.width]
    }

    fn len(&self) -> usize {
        (self.words.len() - self.off) / self.stride.max(1)
    }

    fn push(&mut self, row: &[u64]) {
        self.words.extend_from_slice(row);
        self.words
            .resize(self.words.len() + self.stride - self.width, 0);
    }

    /// Copies the rows into an allocation with room to start them on a cache line.
    fn finish(self) -> Rows {
        let n = self.words.len() - self.off;
        let mut words: Vec<u64> = Vec::with_capacity(n + 7);
        let misalign = (words.as_ptr() as usize / 8) % 8;
        let off = (8 - misalign) % 8;
        words.resize(off, 0);
        words.extend_from_slice(&self.words[self.off..]);
        Rows {
            width: self.width,
            stride: self.stride,
            off,
            words,
        }
    }

    fn heap_bytes(&self) -> usize {
        self.words.capacity() * 8
    }
}

/// One cache line of a row: [`LINE`] words, 512 rules, aligned to 64 bytes.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(64))]
struct Line([u64; LINE]);

/// [`Rows`] as the lookup reads them. Rows of at least a line are split: each row's first cache
/// line in an array of [`Line`]s, the rest of the row in another array. The first line decides
/// most flows (rules are in priority order and the early ones match most), so the lines a lookup
/// usually touches sit together in half the bytes, and the cache holds twice as many of them;
/// reaching a row's line is one index into a typed array (no stride arithmetic, no slice length
/// to check). Narrower rows are kept whole.
#[derive(Clone, Debug, Default)]
struct Planes {
    /// Rows narrower than a line, whole (empty otherwise).
    narrow: Rows,
    /// The first line of each row at least a line wide (empty otherwise).
    lines: Vec<Line>,
    /// The words of each row past its first line (`None` when rows fit in one line).
    tail: Option<Rows>,
}

impl Planes {
    fn new(rows: &Rows) -> Planes {
        if rows.width < LINE {
            return Planes {
                narrow: rows.clone(),
                lines: Vec::new(),
                tail: None,
            };
        }
        let mut lines = Vec::with_capacity(rows.len());
        let mut tail = (rows.width > LINE).then(|| Rows::new(rows.width - LINE));
        for i in 0..rows.len() as u32 {
            let (h, t) = rows.row(i).split_at(LINE);
            lines.push(Line(h.try_into().expect("rows of at least LINE words")));
            if let Some(tail) = &mut tail {
                tail.push(t);
            }
        }
        Planes {
            narrow: Rows::new(rows.width),
            lines,
            tail: tail.map(Rows::finish),
        }
    }

    /// Row `id`, whole, of rows narrower than a line.
    #[inline(always)]
    fn narrow(&self, id: u32) -> &[u64] {
        self.narrow.row(id)
    }

    /// The first line of row `id`, of rows at least a line wide.
    ///
    /// # Safety
    /// `id < self.len()` (a row id answered by a field whose ids [`Classifier::build`] checked).
    #[inline(always)]
    unsafe fn line_unchecked(&self, id: u32) -> &[u64; LINE] {
        debug_assert!((id as usize) < self.lines.len());
        // SAFETY: the caller's contract.
        unsafe { &self.lines.get_unchecked(id as usize).0 }
    }

    /// The words of row `id` past its first line (empty when rows fit in one line).
    #[inline(always)]
    fn tail(&self, id: u32) -> &[u64] {
        self.tail.as_ref().map_or(&[], |t| t.row(id))
    }

    fn len(&self) -> usize {
        self.lines.len().max(self.narrow.len())
    }

    fn heap_bytes(&self) -> usize {
        self.narrow.heap_bytes()
            + self.lines.capacity() * std::mem::size_of::<Line>()
            + self.tail.as_ref().map_or(0, Rows::heap_bytes)
    }
}

/// Row hashes are computed by the caller; the map only passes them through.
#[derive(Default)]
struct PassThrough(u64);
impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys")
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = x;
    }
}

/// A hash of a row from its set bits (the XOR of their [`zobrist`] keys).
fn row_hash(row: &[u64]) -> u64 {
    let mut h = 0u64;
    for (i, &w) in row.iter().enumerate() {
        let mut w = w;
        while w != 0 {
            h ^= zobrist(i as u32 * 64 + w.trailing_zeros());
            w &= w - 1;
        }
    }
    h
}

/// Builds a [`Rows`] store, interning equal rows to one id.
struct RowsBuilder {
    rows: Rows,
    ids: HashMap<u64, u32, BuildHasherDefault<PassThrough>>,
}

impl RowsBuilder {
    fn new(width: usize) -> RowsBuilder {
        RowsBuilder {
            rows: Rows::new(width),
            ids: HashMap::default(),
        }
    }

    /// The id of `row`, whose hash is `h` (equal rows must have equal hashes).
    fn intern(&mut self, row: &[u64], h: u64) -> u32 {
        if let Some(&id) = self.ids.get(&h) {
            if self.rows.row(id) == row {
                return id;
            }
            // A hash collision between different rows: keep the row un-shared (still correct).
        }
        let id = self.rows.len() as u32;
        self.rows.push(row);
        self.ids.entry(h).or_insert(id);
        id
    }

    fn finish(self) -> Rows {
        self.rows.finish()
    }

    /// The rows split for lookup (each plane aligned once; no aligned copy of the whole rows
    /// first).
    fn planes(self) -> Planes {
        Planes::new(&self.rows)
    }
}

trait Point: Copy + Ord + Default {
    /// A sort key for a boundary event; removals sort before additions at one position.
    type Key: Copy + Ord;
    fn next(self) -> Option<Self>;
    fn key(self, add: bool, rule: u32) -> Self::Key;
    fn unkey(k: Self::Key) -> (Self, bool, u32);
}
impl Point for u32 {
    type Key = u64;
    fn next(self) -> Option<u32> {
        self.checked_add(1)
    }
    #[inline]
    fn key(self, add: bool, rule: u32) -> u64 {
        (u64::from(self) << 32) | (u64::from(add) << 31) | u64::from(rule)
    }
    #[inline]
    fn unkey(k: u64) -> (u32, bool, u32) {
        (
            (k >> 32) as u32,
            k & (1 << 31) != 0,
            (k as u32) & !(1 << 31),
        )
    }
}
impl Point for u128 {
    type Key = (u128, bool, u32);
    fn next(self) -> Option<u128> {
        self.checked_add(1)
    }
    fn key(self, add: bool, rule: u32) -> (u128, bool, u32) {
        (self, add, rule)
    }
    fn unkey(k: (u128, bool, u32)) -> (u128, bool, u32) {
        k
    }
}

/// Zobrist keys: a row's hash is the XOR of its rules' keys, updated per event in O(1).
fn zobrist(rule: u32) -> u64 {
    let mut z = u64::from(rule)
        .wrapping_add(1)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Cuts one field into elementary intervals from each rule's sorted, disjoint intervals:
/// `(start, row id)` in ascending order, the first starting at the domain's minimum, adjacent
/// intervals with the same rule set merged. Points above `max` are never looked up: no interval
/// starts there.
fn sweep<T: Point>(rules: &[&[(T, T)]], max: T, rows: &mut RowsBuilder) -> Vec<(T, u32)> {
    let width = rows.rows.width;
    let mut events: Vec<T::Key> =
        Vec::with_capacity(2 * rules.iter().map(|r| r.len()).sum::<usize>());
    for (r, ivs) in rules.iter().enumerate() {
        let r = r as u32;
        for &(lo, hi) in ivs.iter() {
            events.push(lo.key(true, r));
            if let Some(end) = hi.next().filter(|e| *e <= max) {
                events.push(end.key(false, r));
            }
        }
    }
    events.sort_unstable();
    let mut out: Vec<(T, u32)> = Vec::new();
    let mut cur = vec![0u64; width];
    let mut hash = 0u64;
    let mut prev_hash = 0u64;
    let mut prev_id = u32::MAX;
    let mut i = 0;
    let mut pos = T::default();
    loop {
        while let Some(&k) = events.get(i) {
            let (p, add, r) = T::unkey(k);
            if p != pos {
                break;
            }
            let (w, b) = (r as usize / 64, r % 64);
            if add {
                cur[w] |= 1 << b;
            } else {
                cur[w] &= !(1 << b);
            }
            hash ^= zobrist(r);
            i += 1;
        }
        // Merge with the previous interval when the rule set did not change.
        if prev_id == u32::MAX || hash != prev_hash || rows.rows.row(prev_id) != cur {
            prev_id = rows.intern(&cur, hash);
            prev_hash = hash;
            out.push((pos, prev_id));
        }
        match events.get(i) {
            Some(&k) => pos = T::unkey(k).0,
            None => break,
        }
    }
    out.shrink_to_fit();
    out
}

/// A `u32` field (IPv4 addresses, ports) with a direct table on the top bits. A bucket holding
/// more than [`IndexedField::SCAN`] interval starts gets a table of its own on the next bits, so
/// a lookup is a few table reads and a fixed-length, branch-free scan, whatever the
/// distribution. Every level lives in one array and every level's entries index the one
/// interval array, so descending a level is a single dependent load (no per-table header).
///
/// The tables span only the points where intervals start: a value is first made relative to
/// the point before the first boundary and clamped to the span. Addresses cluster — a rule
/// list on a VNet's subnets has every boundary inside `10.0.0.0/16` — and a table over the whole
/// address space would put them all in one top-level bucket and need two more levels to tell
/// the `/24`s apart; over the span, one level does.
#[derive(Clone, Debug, Default)]
struct IndexedField {
    /// Subtracted from a value (saturating) before the lookup: one below the second interval's
    /// start, so every value below it lands on the first interval.
    base: u32,
    /// The largest relative value the tables hold (`2^bits - 1`); larger values are clamped to
    /// it (no interval starts past it, so they belong to the last interval).
    max: u32,
    /// The top level's bucket of a relative value `x` is `x >> top_shift`.
    top_shift: u32,
    /// The top level (`table[..2^k]`), then the sub-tables. An entry is either the number `n`
    /// of intervals starting at or before the bucket's first point (interval `n - 1` holds that
    /// point, and at most `SCAN` intervals from `n` on start inside the bucket), or
    /// `SUB | m << SUB_BITS_AT | at`: the bucket is split on its next `m` bits by the sub-table
    /// at `table[at..at + 2^m]`.
    table: Vec<u32>,
    /// `(start, row)` of every interval, ascending, starts relative to `base`, then `SCAN`
    /// padding entries repeating the last row, so that a scan never runs off the end (and a
    /// padding entry counted at `x == u32::MAX` still answers the last row).
    intervals: Vec<(u32, u32)>,
    /// Number of sub-tables.
    subs: usize,
}

impl IndexedField {
    /// Buckets with at most this many interval starts are scanned.
    const SCAN: usize = 4;
    const SUB: u32 = 1 << 31;
    /// Where a sub-table entry keeps its bit count (5 bits).
    const SUB_BITS_AT: u32 = 26;
    /// A sub-table entry's offset into `table`.
    const AT_MASK: u32 = (1 << Self::SUB_BITS_AT) - 1;

    /// `intervals` start at 0, ascending. `None` when the tables would outgrow the entry
    /// encoding (tens of millions of intervals; the caller then keeps a linear scan).
    fn new(mut intervals: Vec<(u32, u32)>) -> Option<IndexedField> {
        let n = intervals.len();
        if n == 0 || n >= Self::AT_MASK as usize {
            return None;
        }
        // Relative to one below the second start, the first interval still starts at 0 and
        // the others keep their order.
        let base = intervals.get(1).map_or(0, |iv| iv.0.saturating_sub(1));
        for iv in &mut intervals[1..] {
            iv.0 -= base;
        }
        let last = intervals[n - 1].0;
        let bits = (u32::BITS - last.leading_zeros()).max(1);
        // About one bucket per interval, at most 2^16 buckets per level.
        let k = (usize::BITS - n.leading_zeros()).clamp(1, bits.min(16));
        let mut f = IndexedField {
            base,
            max: u32::MAX >> (u32::BITS - bits),
            top_shift: bits - k,
            table: vec![0; 1 << k],
            intervals: Vec::new(),
            subs: 0,
        };
        f.fill(&intervals, 0, 0, bits - k, k, 0)?;
        let last = intervals[n - 1].1;
        intervals.extend([(u32::MAX, last); Self::SCAN]);
        intervals.shrink_to_fit();
        f.table.shrink_to_fit();
        f.intervals = intervals;
        f.indices_in_bounds().then_some(f)
    }

    /// Whether every index [`IndexedField::row`] can compute lies inside `table` and
    /// `intervals`: the top-level index of any value up to `max`, each sub-table (`at + 2^m`
    /// entries), each bucket's window (`lo - 1 ..= lo + SCAN - 1`). Checked once when the field
    /// is built, so that the lookup can skip the bounds checks (a third of its instructions);
    /// the fields never change afterwards.
    fn indices_in_bounds(&self) -> bool {
        let (table, intervals) = (self.table.len(), self.intervals.len());
        ((self.max >> self.top_shift) as usize) < table
            && self.table.iter().all(|&e| {
                if e & Self::SUB != 0 {
                    let m = (e >> Self::SUB_BITS_AT) & 31;
                    (e & Self::AT_MASK) as usize + (1usize << m) <= table
                } else {
                    e >= 1 && e as usize + Self::SCAN <= intervals
                }
            })
    }

    /// Fills `table[at..at + 2^k]`: the buckets of `2^shift` points from `first` on. `from` is
    /// the number of intervals starting before `first` (a cursor: each level walks its
    /// intervals once).
    fn fill(
        &mut self,
        ivs: &[(u32, u32)],
        at: usize,
        first: u64,
        shift: u32,
        k: u32,
        from: usize,
    ) -> Option<()> {
        let mut j = from;
        for h in 0..1u64 << k {
            let start = first + (h << shift);
            let end = start + (1u64 << shift) - 1;
            while j < ivs.len() && u64::from(ivs[j].0) <= start {
                j += 1;
            }
            // Intervals starting at or before the bucket's first point (`>= 1`: the first
            // interval starts at 0).
            let lo = j;
            while j < ivs.len() && u64::from(ivs[j].0) <= end {
                j += 1;
            }
            let inside = j - lo;
            if inside <= Self::SCAN || shift == 0 {
                self.table[at + h as usize] = u32::try_from(lo).ok()?;
                continue;
            }
            let m = (usize::BITS - inside.leading_zeros()).clamp(1, shift.min(16));
            let sub = self.table.len();
            if sub + (1 << m) > Self::AT_MASK as usize {
                return None;
            }
            self.table.resize(sub + (1 << m), 0);
            self.subs += 1;
            self.table[at + h as usize] = Self::SUB | m << Self::SUB_BITS_AT | sub as u32;
            // The sub-table's first point is `start`: `lo - 1` intervals start before it.
            self.fill(ivs, sub, start, shift - m, m, lo.saturating_sub(1))?;
        }
        Some(())
    }

    /// Row id of the interval holding `x`.
    #[inline(always)]
    fn row(&self, x: u32) -> u32 {
        let x = x.saturating_sub(self.base).min(self.max);
        let mut shift = self.top_shift;
        // SAFETY: `x <= max`, so `x >> top_shift <= max >> top_shift`, which `new` checked is
        // inside `table` (`indices_in_bounds`); the fields never change after `new`.
        let mut e = unsafe { *self.table.get_unchecked((x >> shift) as usize) };
        while e & Self::SUB != 0 {
            let m = (e >> Self::SUB_BITS_AT) & 31;
            shift -= m;
            let h = (x >> shift) & ((1 << m) - 1);
            // SAFETY: `h < 2^m`, and `new` checked `at + 2^m <= table.len()` for every
            // sub-table entry.
            e = unsafe {
                *self
                    .table
                    .get_unchecked((e & Self::AT_MASK) as usize + h as usize)
            };
        }
        let lo = e as usize;
        // Interval `lo - 1` holds the bucket's first point; at most `SCAN` more start inside the
        // bucket, and every later one starts past the bucket, so past `x`.
        // SAFETY: `new` checked `1 <= lo` and `lo + SCAN <= intervals.len()` for every bucket
        // entry, so the `SCAN + 1` entries from `lo - 1` are inside `intervals`.
        let w: &[(u32, u32); Self::SCAN + 1] = unsafe {
            &*self
                .intervals
                .as_ptr()
                .add(lo - 1)
                .cast::<[(u32, u32); Self::SCAN + 1]>()
        };
        let c: usize = w[1..].iter().map(|iv| usize::from(iv.0 <= x)).sum();
        w[c].1
    }

    /// Number of intervals (without padding).
    fn len(&self) -> usize {
        self.intervals.len() - Self::SCAN
    }

    fn heap_bytes(&self) -> usize {
        self.table.capacity() * 4 + self.intervals.capacity() * 8
    }
}

/// Whether every row id of `(start, row)` intervals (of any field) is below `rows`.
fn rows_below<T>(intervals: &[(T, u32)], rows: usize) -> bool {
    intervals.iter().all(|iv| (iv.1 as usize) < rows)
}

/// A field searched by binary search (IPv6 addresses).
#[derive(Clone, Debug, Default)]
struct SortedField {
    intervals: Vec<(u128, u32)>,
}

impl SortedField {
    #[inline]
    fn row(&self, x: u128) -> u32 {
        let i = self.intervals.partition_point(|iv| iv.0 <= x);
        self.intervals[i.saturating_sub(1)].1
    }

    fn heap_bytes(&self) -> usize {
        self.intervals.capacity() * std::mem::size_of::<(u128, u32)>()
    }
}

/// The compiled classifier of one NSG direction. Rule `i` is the `i`-th rule in priority order.
#[derive(Clone, Debug)]
pub(crate) struct Classifier {
    width: usize,
    /// Row (in `proto_sport_rows`) of each `protocol × source-port row` pair.
    proto_sport: Vec<u32>,
    proto_sport_rows: Planes,
    /// `None` when every rule has the same source ports (one source-port row).
    sport: Option<IndexedField>,
    sport_count: usize,
    src4: IndexedField,
    src6: SortedField,
    src_rows: Planes,
    dst4: IndexedField,
    dst6: SortedField,
    dst_rows: Planes,
    dport: IndexedField,
    dport_rows: Planes,
}

/// What the classifier needs of a rule.
pub(crate) struct RuleFields<'a> {
    pub proto_mask: u8,
    pub src: &'a AddrSet,
    pub dst: &'a AddrSet,
    pub sport: &'a PortSet,
    pub dport: &'a PortSet,
}

/// Words of a row in one cache line.
const LINE: usize = 8;

/// Bit `2 * i` is set when word `i` of the AND of four lines is non-zero (the other bits are
/// clear). SSE2 (every x86-64): the lines are ANDed two words at a time, and one compare and one
/// mask move per pair of words tell which 32-bit halves are zero — about 40 instructions where
/// the word-by-word loop took 58.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn nonzero_words(d: &[u64; LINE], dp: &[u64; LINE], s: &[u64; LINE], ps: &[u64; LINE]) -> u32 {
    use std::arch::x86_64::{
        _mm_and_si128, _mm_castsi128_ps, _mm_cmpeq_epi32, _mm_movemask_ps, _mm_set_epi64x,
        _mm_setzero_si128,
    };
    // SAFETY: SSE2 is part of the x86-64 baseline, so these intrinsics exist on every CPU this
    // code runs on; none of them touches memory (the words are read by safe indexing).
    let zero_halves = unsafe {
        // Two adjacent words as one vector (LLVM turns the two loads into one).
        let pair = |l: &[u64; LINE], k: usize| _mm_set_epi64x(l[2 * k + 1] as i64, l[2 * k] as i64);
        let mut zero_halves = 0u32;
        for k in 0..LINE / 2 {
            let x = _mm_and_si128(
                _mm_and_si128(pair(d, k), pair(dp, k)),
                _mm_and_si128(pair(s, k), pair(ps, k)),
            );
            let z = _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(x, _mm_setzero_si128())));
            zero_halves |= (z as u32) << (4 * k);
        }
        zero_halves
    };
    // Word `i` is zero when both its halves (bits `2i`, `2i + 1`) are.
    !(zero_halves & (zero_halves >> 1)) & 0x5555
}

/// [`nonzero_words`] word by word (other targets; and the oracle of its test).
#[cfg_attr(all(target_arch = "x86_64", not(test)), allow(dead_code))]
#[inline(always)]
fn nonzero_words_scalar(
    d: &[u64; LINE],
    dp: &[u64; LINE],
    s: &[u64; LINE],
    ps: &[u64; LINE],
) -> u32 {
    let mut nonzero = 0u32;
    for i in 0..LINE {
        nonzero |= u32::from(d[i] & dp[i] & s[i] & ps[i] != 0) << (2 * i);
    }
    nonzero
}

#[cfg(not(target_arch = "x86_64"))]
use nonzero_words_scalar as nonzero_words;

/// Position of the first bit set in all four rows, counting from word `from`.
#[inline(always)]
fn first_set(from: usize, d: &[u64], dp: &[u64], s: &[u64], ps: &[u64]) -> Option<usize> {
    for (i, (((d, dp), s), ps)) in d.iter().zip(dp).zip(s).zip(ps).enumerate() {
        let x = d & dp & s & ps;
        if x != 0 {
            return Some((from + i) * 64 + x.trailing_zeros() as usize);
        }
    }
    None
}

impl Classifier {
    /// Builds the classifier for rules in priority order (`None` when a field's tables would
    /// outgrow their encoding: the caller keeps the linear scan).
    pub(crate) fn build(rules: &[RuleFields<'_>]) -> Option<Classifier> {
        let width = rules.len().div_ceil(64).max(1);

        let sport_iv: Vec<&[(u32, u32)]> = rules.iter().map(|r| r.sport.ranges()).collect();
        let mut sport_b = RowsBuilder::new(width);
        let sport_field = IndexedField::new(sweep(&sport_iv, NO_PORT, &mut sport_b))?;
        let sport_rows = sport_b.finish();
        let sport_count = sport_rows.len();

        let mut ps_b = RowsBuilder::new(width);
        let mut proto_sport = Vec::with_capacity(Protocol::ALL.len() * sport_count);
        let mut row = vec![0u64; width];
        for p in Protocol::ALL {
            for s in 0..sport_count as u32 {
                row.copy_from_slice(sport_rows.row(s));
                for (r, rule) in rules.iter().enumerate() {
                    if rule.proto_mask & p.bit() == 0 {
                        row[r / 64] &= !(1 << (r % 64));
                    }
                }
                proto_sport.push(ps_b.intern(&row, row_hash(&row)));
            }
        }

        let mut src_b = RowsBuilder::new(width);
        let src4: Vec<&[(u32, u32)]> = rules.iter().map(|r| r.src.v4_intervals()).collect();
        let src6: Vec<&[(u128, u128)]> = rules.iter().map(|r| r.src.v6_intervals()).collect();
        let src4 = IndexedField::new(sweep(&src4, u32::MAX, &mut src_b))?;
        let src6 = SortedField {
            intervals: sweep(&src6, u128::MAX, &mut src_b),
        };
        let mut dst_b = RowsBuilder::new(width);
        let dst4: Vec<&[(u32, u32)]> = rules.iter().map(|r| r.dst.v4_intervals()).collect();
        let dst6: Vec<&[(u128, u128)]> = rules.iter().map(|r| r.dst.v6_intervals()).collect();
        let dst4 = IndexedField::new(sweep(&dst4, u32::MAX, &mut dst_b))?;
        let dst6 = SortedField {
            intervals: sweep(&dst6, u128::MAX, &mut dst_b),
        };
        let mut dport_b = RowsBuilder::new(width);
        let dport: Vec<&[(u32, u32)]> = rules.iter().map(|r| r.dport.ranges()).collect();
        let dport = IndexedField::new(sweep(&dport, NO_PORT, &mut dport_b))?;

        let c = Classifier {
            width,
            proto_sport,
            proto_sport_rows: ps_b.planes(),
            sport: (sport_count > 1).then_some(sport_field),
            sport_count,
            src4,
            src6,
            src_rows: src_b.planes(),
            dst4,
            dst6,
            dst_rows: dst_b.planes(),
            dport,
            dport_rows: dport_b.planes(),
        };
        c.row_ids_in_bounds().then_some(c)
    }

    /// Whether every row id a lookup can read is below its planes' length: what lets
    /// [`Classifier::first_match`] read the rows' first lines without bounds checks. (The
    /// builders only hand out ids of rows they hold; this is checked, not assumed.)
    fn row_ids_in_bounds(&self) -> bool {
        let (d, dp, s, ps) = (
            self.dst_rows.len(),
            self.dport_rows.len(),
            self.src_rows.len(),
            self.proto_sport_rows.len(),
        );
        rows_below(&self.dst4.intervals, d)
            && rows_below(&self.dst6.intervals, d)
            && rows_below(&self.dport.intervals, dp)
            && rows_below(&self.src4.intervals, s)
            && rows_below(&self.src6.intervals, s)
            && self.proto_sport.iter().all(|&r| (r as usize) < ps)
            && self
                .sport
                .as_ref()
                .is_none_or(|f| rows_below(&f.intervals, self.sport_count))
    }

    /// Position (in priority order) of the first rule matching `f`, if any. Allocates nothing.
    #[inline]
    pub(crate) fn first_match(&self, f: &FlowKey) -> Option<usize> {
        // Four independent lookups; the CPU overlaps their loads.
        let d = match f.destination {
            IpAddr::V4(a) => self.dst4.row(u32::from(a)),
            IpAddr::V6(a) => self.dst6.row(u128::from(a)),
        };
        let dp = self.dport.row(f.destination_port.min(NO_PORT));
        let s = match f.source {
            IpAddr::V4(a) => self.src4.row(u32::from(a)),
            IpAddr::V6(a) => self.src6.row(u128::from(a)),
        };
        let sp = match &self.sport {
            Some(field) => field.row(f.source_port.min(NO_PORT)) as usize,
            None => 0,
        };
        let ps = self.proto_sport[f.protocol as usize * self.sport_count + sp];
        let rows = [
            (&self.dst_rows, d),
            (&self.dport_rows, dp),
            (&self.src_rows, s),
            (&self.proto_sport_rows, ps),
        ];
        if self.width < LINE {
            let [d, dp, s, ps] = rows.map(|(planes, id)| planes.narrow(id));
            return first_set(0, d, dp, s, ps);
        }
        // The first cache line of each row without a branch per word: which word holds the
        // first match varies from flow to flow, and a mispredicted exit would stall the next
        // flow's independent loads.
        // SAFETY: every row id a field answers, and every `proto_sport` entry, is below its
        // planes' length (`Classifier::build` checked; the classifier never changes after).
        let [d, dp, s, ps] = rows.map(|(planes, id)| unsafe { planes.line_unchecked(id) });
        let nonzero = nonzero_words(d, dp, s, ps);
        if nonzero != 0 {
            // The picked word is ANDed again from the rows (lines already in L1) rather than
            // kept in an array: reading it back from the stack waited on the stores.
            let i = nonzero.trailing_zeros() as usize / 2;
            let x = d[i] & dp[i] & s[i] & ps[i];
            return Some(i * 64 + x.trailing_zeros() as usize);
        }
        let [d, dp, s, ps] = rows.map(|(planes, id)| planes.tail(id));
        first_set(LINE, d, dp, s, ps)
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.proto_sport.capacity() * 4
            + self.proto_sport_rows.heap_bytes()
            + self.sport.as_ref().map_or(0, IndexedField::heap_bytes)
            + self.src4.heap_bytes()
            + self.src6.heap_bytes()
            + self.src_rows.heap_bytes()
            + self.dst4.heap_bytes()
            + self.dst6.heap_bytes()
            + self.dst_rows.heap_bytes()
            + self.dport.heap_bytes()
            + self.dport_rows.heap_bytes()
    }

    /// A one-line description: intervals and distinct rows per field.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} rule words; intervals/distinct rows: dst {}+{}/{}, dport {}/{}, src {}+{}/{}, \
             sport {}, proto×sport rows {}; sub-tables dst {}, dport {}, src {}",
            self.width,
            self.dst4.len(),
            self.dst6.intervals.len(),
            self.dst_rows.len(),
            self.dport.len(),
            self.dport_rows.len(),
            self.src4.len(),
            self.src6.intervals.len(),
            self.src_rows.len(),
            self.sport_count,
            self.proto_sport_rows.len(),
            self.dst4.subs,
            self.dport.subs,
            self.src4.subs,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two-level index answers like a scan of the intervals, at bucket edges and domain ends.
    #[test]
    fn indexed_field_matches_a_scan() {
        let rules: Vec<Vec<(u32, u32)>> = vec![
            vec![(0, 0), (5, 9), (4096, 8191)],
            vec![(1, 4095), (u32::MAX - 3, u32::MAX)],
            vec![(8192, 8192), (1 << 31, (1 << 31) + 63)],
            vec![(0, u32::MAX)],
        ];
        let refs: Vec<&[(u32, u32)]> = rules.iter().map(Vec::as_slice).collect();
        let mut b = RowsBuilder::new(1);
        let ivs = sweep(&refs, u32::MAX, &mut b);
        let rows = b.finish();
        let field = IndexedField::new(ivs).unwrap();
        let expect = |x: u32| -> u64 {
            (0..rules.len())
                .filter(|&r| rules[r].iter().any(|&(lo, hi)| lo <= x && x <= hi))
                .fold(0, |m, r| m | 1 << r)
        };
        let mut probes = vec![0, 1, 4, 5, 9, 10, 4095, 4096, 8191, 8192, 8193, u32::MAX];
        probes.extend([(1 << 31) - 1, 1 << 31, (1 << 31) + 63, (1 << 31) + 64]);
        probes.extend((0..64).map(|i| i << 26));
        probes.extend((0..64u32).map(|i| (i << 26).wrapping_sub(1)));
        for x in probes {
            assert_eq!(rows.row(field.row(x)), [expect(x)], "{x}");
        }
    }

    /// Clustered starts (every /24 of one /16, as a VNet's subnets) need no sub-table: the
    /// tables span only the cluster. Two clusters far apart get nested bucket tables.
    #[test]
    fn clustered_intervals() {
        let cluster = |base: u32| -> Vec<Vec<(u32, u32)>> {
            (0..64u32)
                .map(|i| {
                    let at = base + i * 1024;
                    vec![(at, at + 255), (at + 300 + i, at + 300 + i)]
                })
                .collect()
        };
        let vnet = 0x0A00_0000u32;
        let other = 0xAC10_0000u32;
        for (rules, subs) in [
            (cluster(vnet), false),
            ([cluster(vnet), cluster(other)].concat(), true),
        ] {
            let refs: Vec<&[(u32, u32)]> = rules.iter().map(Vec::as_slice).collect();
            let mut b = RowsBuilder::new(rules.len().div_ceil(64));
            let field = IndexedField::new(sweep(&refs, u32::MAX, &mut b)).unwrap();
            let rows = b.finish();
            assert_eq!(field.subs > 0, subs, "{} rules", rules.len());
            let probes = [vnet, other]
                .into_iter()
                .flat_map(|c| (c - 5..c + 70_000).step_by(3));
            for x in probes.chain([0, 1, vnet - 1, other - 1, u32::MAX]) {
                let mut expect = vec![0u64; rules.len().div_ceil(64)];
                for (r, ivs) in rules.iter().enumerate() {
                    if ivs.iter().any(|&(lo, hi)| lo <= x && x <= hi) {
                        expect[r / 64] |= 1 << (r % 64);
                    }
                }
                assert_eq!(rows.row(field.row(x)), expect, "{x}");
            }
        }
    }

    /// The SSE2 mask of non-zero words equals the word-by-word loop: every word zero, only its
    /// low half, only its high half, or both halves set, in each position, and seeded random
    /// lines.
    #[test]
    fn nonzero_words_matches_the_scalar_loop() {
        let ones = [!0u64; LINE];
        let mut cases: Vec<[u64; LINE]> = vec![[0; LINE], ones];
        for i in 0..LINE {
            for w in [1u64, 1 << 31, 1 << 32, 1 << 63, 0xFFFF_FFFF_0000_0000] {
                let mut l = [0; LINE];
                l[i] = w;
                cases.push(l);
            }
        }
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..2000 {
            let mut l = [0u64; LINE];
            for w in &mut l {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Sparse words, so that the AND of four is often zero in one half only.
                *w = x & (x >> 3) & (x >> 5);
            }
            cases.push(l);
        }
        for (k, d) in cases.iter().enumerate() {
            let dp = &cases[(k * 7 + 1) % cases.len()];
            for (dp, s, ps) in [(&ones, &ones, &ones), (dp, &ones, &ones), (dp, d, &ones)] {
                assert_eq!(
                    nonzero_words(d, dp, s, ps),
                    nonzero_words_scalar(d, dp, s, ps),
                    "{d:x?} {dp:x?} {s:x?}"
                );
            }
        }
    }

    /// The bounds the unchecked lookups rely on are checked, not assumed: a table entry past
    /// the intervals, a sub-table running off the table, or a row id past the rows is caught.
    #[test]
    fn out_of_bounds_indices_are_caught() {
        let rules: Vec<Vec<(u32, u32)>> = (0..40u32)
            .map(|i| vec![(i * 1000, i * 1000 + 9), (i << 26, (i << 26) + 99)])
            .collect();
        let refs: Vec<&[(u32, u32)]> = rules.iter().map(Vec::as_slice).collect();
        let mut b = RowsBuilder::new(1);
        let field = IndexedField::new(sweep(&refs, u32::MAX, &mut b)).unwrap();
        let rows = b.finish().len();
        assert!(field.subs > 0 && field.indices_in_bounds() && rows_below(&field.intervals, rows));
        assert!(!rows_below(&field.intervals, rows - 1));

        let leaf = field
            .table
            .iter()
            .position(|e| e & IndexedField::SUB == 0)
            .unwrap();
        let sub = field
            .table
            .iter()
            .position(|e| e & IndexedField::SUB != 0)
            .unwrap();
        let mut bad = field.clone();
        bad.table[leaf] = (bad.intervals.len() - IndexedField::SCAN + 1) as u32;
        assert!(!bad.indices_in_bounds(), "a window past the intervals");
        let mut bad = field.clone();
        bad.table[leaf] = 0;
        assert!(
            !bad.indices_in_bounds(),
            "a window before the first interval"
        );
        let mut bad = field.clone();
        let m = (bad.table[sub] >> IndexedField::SUB_BITS_AT) & 31;
        let at = bad.table.len() - (1 << m) + 1;
        bad.table[sub] = IndexedField::SUB | m << IndexedField::SUB_BITS_AT | at as u32;
        assert!(
            !bad.indices_in_bounds(),
            "a sub-table running off the table"
        );
        let mut bad = field.clone();
        bad.top_shift = 0;
        assert!(!bad.indices_in_bounds(), "a top level wider than the table");
    }

    /// Equal rows share one id; a port field is cut only up to `NO_PORT`.
    #[test]
    fn rows_are_deduplicated() {
        let rules: Vec<Vec<(u32, u32)>> =
            vec![vec![(10, 19), (30, 39), (50, 59)], vec![(0, NO_PORT)]];
        let refs: Vec<&[(u32, u32)]> = rules.iter().map(Vec::as_slice).collect();
        let mut b = RowsBuilder::new(1);
        let ivs = sweep(&refs, NO_PORT, &mut b);
        assert_eq!(ivs.len(), 7);
        assert_eq!(b.finish().len(), 2);
    }
}
