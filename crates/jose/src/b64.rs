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

/// Sixteen characters' six bits each, and whether all sixteen are base64url: one comparison
/// per range for every byte, written so that the compiler does all sixteen at once in vector
/// registers.
fn classify(block: &[u8]) -> ([u8; 16], bool) {
    let mut out = [0u8; 16];
    let mut bad = 0u8;
    for (o, &c) in out.iter_mut().zip(block) {
        let upper = c.wrapping_sub(b'A') < 26;
        let lower = c.wrapping_sub(b'a') < 26;
        let digit = c.wrapping_sub(b'0') < 10;
        let (dash, underscore) = (c == b'-', c == b'_');
        *o = match () {
            () if upper => c.wrapping_sub(b'A'),
            () if lower => c.wrapping_sub(b'a' - 26),
            () if digit => c.wrapping_add(52 - b'0'),
            () if dash => 62,
            () if underscore => 63,
            () => 0,
        };
        bad |= u8::from(!(upper | lower | digit | dash | underscore));
    }
    (out, bad == 0 && block.len() == 16)
}

/// Eight sextets, one a byte from the most significant, as the 48 bits they spell (in the low
/// 48 bits): pairs joined into 12 bits, those into 24, those into 48.
fn pack(x: u64) -> u64 {
    let pairs = ((x & 0x3f00_3f00_3f00_3f00) >> 2) | (x & 0x003f_003f_003f_003f);
    let quads = ((pairs & 0x0fff_0000_0fff_0000) >> 4) | (pairs & 0x0000_0fff_0000_0fff);
    ((quads >> 32) << 24) | (quads & 0x00ff_ffff)
}

fn sextet(c: u8) -> u8 {
    TABLE.get(usize::from(c)).copied().unwrap_or(INVALID)
}

/// The bytes `text` decodes to under [`B64`]'s rules, appended to `out`: exactly what
/// `B64.decode_vec` accepts (the `jws_decode` fuzz oracle holds the two to the same answer),
/// read eight characters at a time. The token parts go through here; on an error, what was
/// appended is unspecified.
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
    for block in &mut blocks {
        let (sextets, valid) = classify(block);
        if !valid {
            return Err(NotBase64url);
        }
        for half in sextets.chunks_exact(8) {
            let word = <[u8; 8]>::try_from(half).map_err(|_| NotBase64url)?;
            if let Some(d) = dst.get_mut(at..at + 8) {
                d.copy_from_slice(&(pack(u64::from_be_bytes(word)) << 16).to_be_bytes());
            }
            at += 6;
        }
    }
    let mut chunks = blocks.remainder().chunks_exact(8);
    for chunk in &mut chunks {
        let mut acc = 0u64;
        let mut seen = 0u8;
        for &c in chunk {
            let v = sextet(c);
            seen |= v;
            acc = (acc << 6) | u64::from(v);
        }
        if seen & 0x80 != 0 {
            return Err(NotBase64url);
        }
        if let Some(d) = dst.get_mut(at..at + 8) {
            d.copy_from_slice(&(acc << 16).to_be_bytes());
        }
        at += 6;
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
