//! LEB128 varints, zigzag and a bounds-checked byte reader.
//!
//! Every column of the file is a run of varints; the reader is the only place that turns
//! untrusted bytes into numbers, so it never panics and never reads past its slice.

/// Longest valid encoding of a `u64` (7 payload bits per byte).
pub const MAX_VARINT_LEN: usize = 10;

/// Appends `value` as an unsigned LEB128 varint.
#[inline]
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Maps signed to unsigned so that small magnitudes of either sign stay small.
#[inline]
pub fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

#[inline]
pub fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// Decodes the varint at the start of `window`: its value and length in bytes.
#[inline(always)]
fn decode_window(window: &[u8; MAX_VARINT_LEN]) -> Result<(u64, usize), ReadError> {
    let mut value = 0u64;
    for (i, &byte) in window.iter().enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            // The tenth byte may only carry the top bit of a u64.
            if i == MAX_VARINT_LEN - 1 && byte > 1 {
                return Err(ReadError::Overlong);
            }
            return Ok((value, i + 1));
        }
    }
    Err(ReadError::Overlong)
}

/// Why a read from a [`ByteReader`] failed; the caller adds which column it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// The slice ended inside a value.
    EndOfData,
    /// A varint longer than 10 bytes or wider than 64 bits.
    Overlong,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::EndOfData => f.write_str("data ends inside a value"),
            ReadError::Overlong => f.write_str("a varint is longer than 64 bits"),
        }
    }
}

/// Sequential reader over a decompressed section payload.
pub struct ByteReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> ByteReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        ByteReader { bytes, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub fn is_at_end(&self) -> bool {
        self.pos == self.bytes.len()
    }

    pub fn u8(&mut self) -> Result<u8, ReadError> {
        let byte = *self.bytes.get(self.pos).ok_or(ReadError::EndOfData)?;
        self.pos += 1;
        Ok(byte)
    }

    pub fn take(&mut self, len: usize) -> Result<&'a [u8], ReadError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(ReadError::EndOfData)?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    #[inline(always)]
    pub fn varint(&mut self) -> Result<u64, ReadError> {
        // Most values of most columns take one byte: decoded here, inline, with one branch.
        if let Some(&byte) = self.bytes.get(self.pos) {
            if byte < 0x80 {
                self.pos += 1;
                return Ok(u64::from(byte));
            }
        }
        self.multi_byte_varint()
    }

    #[inline(never)]
    fn multi_byte_varint(&mut self) -> Result<u64, ReadError> {
        let rest = &self.bytes[self.pos..];
        // Away from the end, a fixed-size window lets the compiler unroll the loop and drop
        // the bounds checks: this is the reader's hottest loop.
        if let Some(window) = rest.first_chunk::<MAX_VARINT_LEN>() {
            let (value, len) = decode_window(window)?;
            self.pos += len;
            return Ok(value);
        }
        let mut window = [0u8; MAX_VARINT_LEN];
        window[..rest.len()].copy_from_slice(rest);
        match decode_window(&window) {
            // The zero padding ended the value: it was cut off.
            Ok((_, len)) if len > rest.len() => Err(ReadError::EndOfData),
            Ok((value, len)) => {
                self.pos += len;
                Ok(value)
            }
            Err(e) => Err(e),
        }
    }

    /// A varint that must fit in a `u32` (indices, counts of 32-bit things).
    pub fn varint_u32(&mut self) -> Result<u32, ReadError> {
        let value = self.varint()?;
        u32::try_from(value).map_err(|_| ReadError::Overlong)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_every_width() {
        let mut values = vec![
            0u64,
            1,
            127,
            128,
            255,
            300,
            16_383,
            16_384,
            u64::MAX,
            u64::MAX - 1,
        ];
        values.extend((0..64).map(|bit| 1u64 << bit));
        values.extend((1..64).map(|bit| (1u64 << bit) - 1));
        let mut buf = Vec::new();
        for v in &values {
            put_varint(&mut buf, *v);
        }
        let mut reader = ByteReader::new(&buf);
        for v in &values {
            assert_eq!(reader.varint(), Ok(*v));
        }
        assert!(reader.is_at_end());
    }

    #[test]
    fn zigzag_round_trips_extremes() {
        for v in [0i64, 1, -1, 63, -64, i64::MAX, i64::MIN] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
    }

    #[test]
    fn rejects_truncated_and_overlong_varints() {
        assert_eq!(ByteReader::new(&[0x80]).varint(), Err(ReadError::EndOfData));
        assert_eq!(ByteReader::new(&[]).varint(), Err(ReadError::EndOfData));
        let eleven = [0xffu8; 11];
        assert_eq!(ByteReader::new(&eleven).varint(), Err(ReadError::Overlong));
        // Ten bytes whose last one carries more than the 64th bit.
        let mut too_wide = [0xffu8; 10];
        too_wide[9] = 0x02;
        assert_eq!(
            ByteReader::new(&too_wide).varint(),
            Err(ReadError::Overlong)
        );
        let mut buf = Vec::new();
        put_varint(&mut buf, u64::from(u32::MAX) + 1);
        assert_eq!(ByteReader::new(&buf).varint_u32(), Err(ReadError::Overlong));
    }

    #[test]
    fn take_refuses_to_run_past_the_end() {
        let mut reader = ByteReader::new(&[1, 2, 3]);
        assert_eq!(reader.take(2), Ok(&[1u8, 2][..]));
        assert_eq!(reader.take(2), Err(ReadError::EndOfData));
        assert_eq!(reader.take(usize::MAX), Err(ReadError::EndOfData));
        assert_eq!(reader.u8(), Ok(3));
        assert_eq!(reader.u8(), Err(ReadError::EndOfData));
    }
}
