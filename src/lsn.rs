//! Log positions: ESE's `LGPOS`, here one `u64` = generation in the high 32 bits, byte offset
//! in that generation's file in the low 32 bits. Ordered across generations, so "older" is `<`.

use std::fmt;

/// A position in the log stream.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// The position `offset` bytes into generation `gen`.
    pub fn new(gen: u32, offset: u32) -> Lsn {
        Lsn(((gen as u64) << 32) | offset as u64)
    }
    /// The log generation.
    pub fn gen(self) -> u32 {
        (self.0 >> 32) as u32
    }
    /// The byte offset inside the generation's file.
    pub fn offset(self) -> u32 {
        self.0 as u32
    }
}

impl fmt::Debug for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08X}:{:08X}", self.gen(), self.offset())
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Milliseconds since the Unix epoch, the engine's one clock for log and backup times.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn orders_by_generation_then_offset() {
        assert!(Lsn::new(1, 0xFFFF_FFFF) < Lsn::new(2, 0));
        assert_eq!(Lsn::new(5, 9).gen(), 5);
        assert_eq!(Lsn::new(5, 9).offset(), 9);
    }
}
