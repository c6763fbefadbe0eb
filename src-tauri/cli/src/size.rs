//! Human byte sizes on the command line: `8MiB`, `512k`, `1GB`, `1048576`.

/// Parses a byte count with an optional binary or decimal unit.
pub fn parse(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 8MiB or 1048576"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "kb" => 1000,
        "m" | "mib" => 1 << 20,
        "mb" => 1_000_000,
        "g" | "gib" => 1 << 30,
        "gb" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (use B, KiB, MiB, GiB, KB, MB, GB)"
            ))
        }
    };
    let v = n * mult as f64;
    if !v.is_finite() || v < 0.0 || v > u64::MAX as f64 {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(v as u64)
}

/// Formats bytes for people (the engine's wording, so notes and the CLI agree).
pub use tusker_core::error::explain::human_bytes as human;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse("8MiB").unwrap(), 8 << 20);
        assert_eq!(parse("8m").unwrap(), 8 << 20);
        assert_eq!(parse("1048576").unwrap(), 1 << 20);
        assert_eq!(parse("1.5KiB").unwrap(), 1536);
        assert_eq!(parse("2MB").unwrap(), 2_000_000);
        assert!(parse("eight").is_err());
        assert!(parse("8XB").is_err());
        assert_eq!(human(1536), "1.5 KiB");
    }
}
