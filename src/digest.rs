//! Hex and SHA-256 helpers shared by password hashing, token hashing,
//! exports (binary values as hex) and the definition hashes of Glue
//! resources and lock names.

use std::fmt::Write as _;

use sha2::{Digest as _, Sha256};

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// SHA-256(`data`).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Hex of the first `bytes` bytes (at most 32) of SHA-256(`data`).
pub fn sha256_hex(data: &[u8], bytes: usize) -> String {
    let digest = sha256(data);
    hex(&digest[..bytes.min(digest.len())])
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_values() {
        assert_eq!(super::hex(&[0x78, 0x9c, 0x00]), "789c00");
        assert_eq!(super::sha256_hex(b"abc", 4), "ba7816bf");
    }
}
