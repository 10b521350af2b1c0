//! Eight bytes at a time: the one scan under the token's dot finder ([`crate::jws`]) and the
//! quick reader's string-end finder ([`crate::quick`]).

/// A byte of ones in each lane.
pub(crate) const ONES: u64 = 0x0101_0101_0101_0101;
/// Each lane's high bit.
pub(crate) const HIGH: u64 = ONES << 7;

/// The high bit of each lane of `x` below `n` (`n` at most 0x80): exact for the lowest such
/// lane, and possibly set above it, since a borrow only ever carries upwards from a lane that
/// is below `n`. `below(x ^ (ONES * c), 1)` flags the lanes equal to `c`.
pub(crate) fn below(x: u64, n: u8) -> u64 {
    x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH
}

/// The index of the first byte at or after `from` that `hit` flags, or the length of `b`.
/// `word` gives, for eight bytes read little-endian, a mask whose lowest high bit is the
/// first flagged byte among them (as [`below`]'s masks, or several of them or-ed, give); the
/// last bytes short of a word are tried one by one with `byte`. The two must flag the same
/// bytes.
pub(crate) fn first(
    b: &[u8],
    from: usize,
    word: impl Fn(u64) -> u64,
    byte: impl Fn(u8) -> bool,
) -> usize {
    let rest = b.get(from..).unwrap_or_default();
    let mut words = rest.chunks_exact(8);
    let mut at = from;
    for chunk in &mut words {
        // (every chunk is eight bytes; were one not, the answer would be "none found")
        let Ok(w) = <[u8; 8]>::try_from(chunk) else {
            return b.len();
        };
        let hits = word(u64::from_le_bytes(w)) & HIGH;
        if hits != 0 {
            return at + (hits.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    for &c in words.remainder() {
        if byte(c) {
            return at;
        }
        at += 1;
    }
    at
}
