//! C2SP `tlog-tiles` entry bundles (<https://c2sp.org/tlog-tiles>): the log's entries in tiles
//! of [`TILE_WIDTH`], read as `tile/entries/<N>` (full) or `tile/entries/<N>.p/<W>` (the
//! partial last tile of `W` entries). A bundle is its entries in order, each prefixed with its
//! length as a big-endian `uint16`.
//!
//! Devices read entries by tile so that a request names only a tile index (and, for the last
//! tile, the width of the head the log just served), not the size this device accepted before.

/// Entries per full tile.
pub const TILE_WIDTH: u64 = 256;

/// Largest entry bundle: a full tile of entries of the largest length. A tile of release
/// manifests (about 6 KiB each) is about 1.5 MiB, so readers of tiles take this bound rather
/// than a smaller one of their own.
pub const MAX_BUNDLE_LEN: usize = TILE_WIDTH as usize * (2 + u16::MAX as usize);

/// The path-encoded tile index: zero-padded 3-digit elements, all but the last prefixed with
/// `x` (1234067 is `x001/x234/067`).
pub fn encode_index(n: u64) -> String {
    let mut groups = vec![n % 1000];
    let mut rest = n / 1000;
    while rest > 0 {
        groups.push(rest % 1000);
        rest /= 1000;
    }
    let last = groups.len() - 1;
    groups
        .iter()
        .rev()
        .enumerate()
        .map(|(i, g)| {
            if i == last {
                format!("{g:03}")
            } else {
                format!("x{g:03}")
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The path (below the log's prefix, no leading `/`) of entry tile `n` holding `width`
/// entries (1..=[`TILE_WIDTH`]; below it, a partial tile).
pub fn entries_path(n: u64, width: u64) -> String {
    if width >= TILE_WIDTH {
        format!("tile/entries/{}", encode_index(n))
    } else {
        format!("tile/entries/{}.p/{width}", encode_index(n))
    }
}

/// Parses the path after `tile/entries/` into (tile index, width); `None` for anything that is
/// not the spec's exact encoding (no leading zeros elided, no extra elements).
pub fn parse_entries_path(rest: &str) -> Option<(u64, u64)> {
    let (index, width) = match rest.split_once(".p/") {
        Some((index, w)) => {
            let digits =
                w.len() <= 3 && !w.starts_with('0') && w.bytes().all(|b| b.is_ascii_digit());
            let w: u64 = if digits { w.parse().ok()? } else { return None };
            if !(1..TILE_WIDTH).contains(&w) {
                return None;
            }
            (index, w)
        }
        None => (rest, TILE_WIDTH),
    };
    let elements: Vec<&str> = index.split('/').collect();
    let last = elements.len() - 1;
    let mut n: u64 = 0;
    for (i, e) in elements.iter().enumerate() {
        let digits = if i == last {
            Some(*e)
        } else {
            e.strip_prefix('x')
        }?;
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // The first element of a multi-element index has no leading zero group.
        if i == 0 && last > 0 && digits == "000" {
            return None;
        }
        n = n.checked_mul(1000)?.checked_add(digits.parse().ok()?)?;
    }
    Some((n, width))
}

/// Encodes entries as a bundle. Entries longer than `u16::MAX` bytes cannot be in a log
/// (see [`crate::MAX_ENTRY_LEN`]).
pub fn encode_bundle<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for e in entries {
        let len = u16::try_from(e.len())
            .map_err(|_| format!("an entry of {} bytes does not fit a tile", e.len()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// Splits a bundle that must hold exactly `width` entries.
pub fn parse_bundle(bytes: &[u8], width: u64) -> Result<Vec<Vec<u8>>, String> {
    let mut entries = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        if entries.len() as u64 == width {
            return Err(format!("the entry bundle holds more than {width} entries"));
        }
        let (len, tail) = rest
            .split_first_chunk::<2>()
            .ok_or("the entry bundle ends inside a length prefix")?;
        let len = usize::from(u16::from_be_bytes(*len));
        if tail.len() < len {
            return Err("the entry bundle ends inside an entry".into());
        }
        let (entry, tail) = tail.split_at(len);
        entries.push(entry.to_vec());
        rest = tail;
    }
    if entries.len() as u64 != width {
        return Err(format!(
            "the entry bundle holds {} entries, not {width}",
            entries.len()
        ));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_spec_encoding() {
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(67), "067");
        assert_eq!(encode_index(1234067), "x001/x234/067");
        assert_eq!(entries_path(1234067, 256), "tile/entries/x001/x234/067");
        assert_eq!(entries_path(2, 5), "tile/entries/002.p/5");
        for n in [0, 7, 999, 1000, 1234067, u64::MAX / 256] {
            for w in [1, 255, 256] {
                let p = entries_path(n, w);
                let rest = p.strip_prefix("tile/entries/").unwrap();
                assert_eq!(parse_entries_path(rest), Some((n, w)), "{p}");
            }
        }
        for bad in [
            "1",
            "0001",
            "x000/001",
            "001/002",
            "x1/001",
            "002.p/0",
            "002.p/256",
            "002.p/05",
            "",
            "002/",
        ] {
            assert_eq!(parse_entries_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn bundles_round_trip_and_refuse_a_wrong_count() {
        let entries: [&[u8]; 3] = [b"a", b"", b"ccc"];
        let b = encode_bundle(entries).unwrap();
        assert_eq!(b, b"\x00\x01a\x00\x00\x00\x03ccc");
        assert_eq!(
            parse_bundle(&b, 3).unwrap(),
            vec![b"a".to_vec(), vec![], b"ccc".to_vec()]
        );
        assert!(parse_bundle(&b, 2).unwrap_err().contains("more than 2"));
        assert!(parse_bundle(&b, 4).unwrap_err().contains("holds 3 entries"));
        assert!(parse_bundle(&b[..b.len() - 1], 3).is_err());
        assert!(encode_bundle([&vec![0u8; 65_536][..]]).is_err());
    }
}
