//! Human-readable numbers for reports: binary byte sizes and grouped counts.

const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

/// Formats a byte count with binary units and one decimal: `512 B`, `12.3 KiB`, `4.0 MiB`.
///
/// Values that would round up to 1024 of a unit are promoted (`1.0 MiB`, never `1024.0 KiB`).
pub fn format_bytes(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if (value * 10.0).round() / 10.0 >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Formats a signed byte change: `+12.3 KiB`, `-512 B`, `0 B`.
pub fn format_bytes_delta(delta: i64) -> String {
    match delta.signum() {
        0 => "0 B".to_owned(),
        1 => format!("+{}", format_bytes(delta.unsigned_abs())),
        _ => format!("-{}", format_bytes(delta.unsigned_abs())),
    }
}

/// Formats a count with thousands separators: `1,234,567`.
pub fn format_count(count: u64) -> String {
    let digits = count.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Formats a signed count change with thousands separators: `+1,204`, `-3`, `0`.
pub fn format_count_delta(delta: i64) -> String {
    match delta.signum() {
        0 => "0".to_owned(),
        1 => format!("+{}", format_count(delta.unsigned_abs())),
        _ => format!("-{}", format_count(delta.unsigned_abs())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(1023), "1023 B");
        assert_eq!(format_bytes(1024), "1.0 KiB");
        assert_eq!(format_bytes(12_595), "12.3 KiB");
        assert_eq!(format_bytes(4 * 1024 * 1024), "4.0 MiB");
        assert_eq!(format_bytes(1024 * 1024 - 1), "1.0 MiB");
        assert_eq!(format_bytes(3 * (1 << 30) + (1 << 29)), "3.5 GiB");
        assert_eq!(format_bytes(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn deltas() {
        assert_eq!(format_bytes_delta(0), "0 B");
        assert_eq!(format_bytes_delta(2048), "+2.0 KiB");
        assert_eq!(format_bytes_delta(-100), "-100 B");
        assert_eq!(format_bytes_delta(i64::MIN), "-8.0 EiB");
        assert_eq!(format_count_delta(-1_234), "-1,234");
        assert_eq!(format_count_delta(5), "+5");
        assert_eq!(format_count_delta(0), "0");
    }

    #[test]
    fn counts() {
        assert_eq!(format_count(0), "0");
        assert_eq!(format_count(999), "999");
        assert_eq!(format_count(1_000), "1,000");
        assert_eq!(format_count(1_234_567), "1,234,567");
        assert_eq!(format_count(u64::MAX), "18,446,744,073,709,551,615");
    }
}
