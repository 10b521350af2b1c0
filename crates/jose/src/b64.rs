//! base64url, the one encoding of JOSE (token parts, JWK members).

/// base64url without padding, refusing padding and non-canonical trailing bits.
pub const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// What [`decode_into`] found wrong: the text is not unpadded, canonical base64url.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotBase64url;

/// Each byte's six bits in base64url, or `INVALID`.
const INVALID: u8 = 0xff;
#[allow(
    clippy::indexing_slicing,
    reason = "evaluated at compile time: an index out of range fails the build, never a call"
)]
const TABLE: [u8; 256] = {
    let mut t = [INVALID; 256];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut i = 0;
    while i < 64 {
        t[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// `text` decoded as [`decode_into`] decodes the parts of a token: the same answer as
/// `B64.decode`, from custody's own reader.
pub fn base64url_decode(text: &[u8]) -> Result<Vec<u8>, NotBase64url> {
    let mut out = Vec::new();
    decode_into(text, &mut out)?;
    Ok(out)
}

/// A byte outside the alphabet, in [`PLACED`]: a bit no character's six bits reach.
const BAD: u32 = 1 << 31;

/// For each place in a group of four characters, each byte's six bits moved to where they go
/// in the 24 bits the group spells, or [`BAD`]: a group is four independent lookups or-ed.
#[allow(
    clippy::indexing_slicing,
    reason = "evaluated at compile time: an index out of range fails the build, never a call"
)]
const PLACED: [[u32; 256]; 4] = {
    let mut t = [[BAD; 256]; 4];
    let mut place = 0;
    while place < 4 {
        let mut c = 0;
        while c < 256 {
            if TABLE[c] != INVALID {
                t[place][c] = (TABLE[c] as u32) << (18 - 6 * place);
            }
            c += 1;
        }
        place += 1;
    }
    t
};

/// The 24 bits four characters spell, [`BAD`] set if one is not base64url.
fn group(c: [u8; 4]) -> u32 {
    let [t0, t1, t2, t3] = &PLACED;
    let at = |t: &[u32; 256], c: u8| t.get(usize::from(c)).copied().unwrap_or(BAD);
    (at(t0, c[0]) | at(t1, c[1])) | (at(t2, c[2]) | at(t3, c[3]))
}

/// Two groups' 48 bits written at `at` as eight bytes, the last two of which the next write
/// (or the final truncation) replaces.
fn put_pair(dst: &mut [u8], at: usize, a: u32, b: u32) {
    let word = ((u64::from(a) << 24) | u64::from(b)) << 16;
    if let Some(d) = dst.get_mut(at..at + 8) {
        d.copy_from_slice(&word.to_be_bytes());
    }
}

fn sextet(c: u8) -> u8 {
    TABLE.get(usize::from(c)).copied().unwrap_or(INVALID)
}

/// The bytes `text` decodes to under [`B64`]'s rules, appended to `out`: exactly what
/// `B64.decode_vec` accepts (the `jws_decode` fuzz oracle holds the two to the same answer),
/// read four characters at a time by [`group`] up to the last seven. The token parts go
/// through here; on an error, what was appended is unspecified.
pub(crate) fn decode_into(text: &[u8], out: &mut Vec<u8>) -> Result<(), NotBase64url> {
    // a lone character after the last whole group carries six bits, less than a byte
    if text.len() % 4 == 1 {
        return Err(NotBase64url);
    }
    let len = text.len() / 4 * 3 + (text.len() % 4).saturating_sub(1);
    let start = out.len();
    // two bytes of room past the end: each group of eight characters is written as eight
    // bytes, the last two of which the next group overwrites
    out.resize(start + len + 2, 0);
    let dst = out.get_mut(start..).unwrap_or_default();
    let mut at = 0;
    let mut blocks = text.chunks_exact(16);
    // a byte outside the alphabet is looked for once, after the blocks
    let mut bad = 0;
    for block in &mut blocks {
        let Ok(b) = <&[u8; 16]>::try_from(block) else {
            return Err(NotBase64url);
        };
        let g = [
            group([b[0], b[1], b[2], b[3]]),
            group([b[4], b[5], b[6], b[7]]),
            group([b[8], b[9], b[10], b[11]]),
            group([b[12], b[13], b[14], b[15]]),
        ];
        bad |= g[0] | g[1] | g[2] | g[3];
        put_pair(dst, at, g[0], g[1]);
        put_pair(dst, at + 6, g[2], g[3]);
        at += 12;
    }
    let mut chunks = blocks.remainder().chunks_exact(8);
    for chunk in &mut chunks {
        let Ok(c) = <&[u8; 8]>::try_from(chunk) else {
            return Err(NotBase64url);
        };
        let (a, b) = (
            group([c[0], c[1], c[2], c[3]]),
            group([c[4], c[5], c[6], c[7]]),
        );
        bad |= a | b;
        put_pair(dst, at, a, b);
        at += 6;
    }
    if bad & BAD != 0 {
        return Err(NotBase64url);
    }
    // up to seven characters left (never 1 or 5: the length is not 1 more than a multiple of
    // four): their bits make whole bytes, and the 2 or 4 bits left over must be zero, as a
    // canonical encoder writes them
    let rest = chunks.remainder();
    let mut acc = 0u64;
    for &c in rest {
        let v = sextet(c);
        if v == INVALID {
            return Err(NotBase64url);
        }
        acc = (acc << 6) | u64::from(v);
    }
    let bits = 6 * rest.len();
    let (bytes, left) = (bits / 8, bits % 8);
    if acc & ((1 << left) - 1) != 0 {
        return Err(NotBase64url);
    }
    let tail = (acc >> left).to_be_bytes();
    let tail = tail.get(8 - bytes..).unwrap_or_default();
    if let Some(d) = dst.get_mut(at..at + bytes) {
        d.copy_from_slice(tail);
    }
    out.truncate(start + len);
    Ok(())
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "test code: a panic is how a broken expectation is reported"
)]
mod tests {
    use base64::Engine as _;

    use super::*;

    /// Every text of up to 3 characters over an alphabet of edge bytes, and every length to 40
    /// (and some past several sixteen-character blocks) of valid text with each position
    /// corrupted: the crate engine and this reader agree.
    #[test]
    fn agrees_with_the_engine() {
        let edge = [
            b'A', b'Q', b'g', b'_', b'-', b'9', b'=', b'.', b'+', b'/', b' ', 0x80,
        ];
        let mut texts: Vec<Vec<u8>> = vec![vec![]];
        for len in 1..=3 {
            let mut next = Vec::new();
            for t in texts.iter().filter(|t| t.len() == len - 1) {
                for &c in &edge {
                    let mut t = t.clone();
                    t.push(c);
                    next.push(t);
                }
            }
            texts.extend(next);
        }
        for len in (0..40usize).chain([47, 48, 49, 95, 96, 97]) {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8).collect();
            let good = B64.encode(&data).into_bytes();
            texts.push(good.clone());
            for at in 0..good.len() {
                for &c in &edge {
                    let mut t = good.clone();
                    t[at] = c;
                    texts.push(t);
                }
            }
        }
        for t in &texts {
            let ours = base64url_decode(t);
            let theirs = B64.decode(t).map_err(|_| NotBase64url);
            assert_eq!(ours, theirs, "{:?}", String::from_utf8_lossy(t));
        }
    }
}
