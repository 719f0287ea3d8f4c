//! Random tokens from the kernel (lock tokens, run ids, jitter).
//!
//! Must not: fall back to anything predictable. A machine without `/dev/urandom` cannot take a
//! lock safely, so this panics rather than hand out a guessable token.

use std::fs;
use std::io::Read;

/// `n` random bytes as lowercase hex, from `/dev/urandom`.
pub fn hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    if let Err(e) = fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)) {
        panic!("cannot read /dev/urandom: {e}");
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random number below `bound` (0 when `bound` is 0).
pub fn below(bound: u64) -> u64 {
    if bound == 0 {
        return 0;
    }
    u64::from_str_radix(&hex(8), 16).unwrap_or(0) % bound
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_has_the_asked_length_and_differs() {
        let a = super::hex(16);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, super::hex(16));
        assert!((0..100).all(|_| super::below(7) < 7));
        assert_eq!(super::below(0), 0);
    }
}
