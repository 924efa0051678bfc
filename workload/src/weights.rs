//! Where the weights blob is. In the image, the loader put the initrd (measured through the
//! kernel-hashes table under SEV-SNP) in memory the kernel never allocates from, identity-mapped,
//! and wrote `PP_WEIGHTS=<addr>,<len>` (hex) on the command line. As a Linux process (tests),
//! `PP_WEIGHTS_FILE` names a file instead.

/// Why no blob could be found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightsError {
    /// Neither variable is set: boot with `-initrd weights.bin`.
    Absent,
    /// `PP_WEIGHTS` is not `0x<addr>,0x<len>`, or the range is implausible.
    BadLocation,
    /// `PP_WEIGHTS_FILE` could not be read.
    Unreadable,
}

/// Largest blob accepted (the loader refuses more than this too).
pub const MAX_BLOB: usize = 2 << 30;

/// The blob's bytes.
pub fn locate() -> Result<&'static [u8], WeightsError> {
    if let Ok(location) = std::env::var("PP_WEIGHTS") {
        let (addr, len) = parse_location(&location).ok_or(WeightsError::BadLocation)?;
        return in_memory(addr, len);
    }
    if let Ok(path) = std::env::var("PP_WEIGHTS_FILE") {
        let bytes = std::fs::read(path).map_err(|_| WeightsError::Unreadable)?;
        return Ok(Box::leak(bytes.into_boxed_slice()));
    }
    Err(WeightsError::Absent)
}

/// Parses `0x<addr>,0x<len>`.
pub fn parse_location(text: &str) -> Option<(usize, usize)> {
    let (a, l) = text.split_once(',')?;
    let hex = |s: &str| usize::from_str_radix(s.trim().strip_prefix("0x")?, 16).ok();
    let (addr, len) = (hex(a)?, hex(l)?);
    let plausible = addr != 0 && addr % 4096 == 0 && len != 0 && len <= MAX_BLOB;
    (plausible && addr.checked_add(len).is_some()).then_some((addr, len))
}

#[cfg(target_os = "hermit")]
#[allow(unsafe_code)]
fn in_memory(addr: usize, len: usize) -> Result<&'static [u8], WeightsError> {
    // SAFETY: the loader read the initrd into LOADER_DATA pages at `addr..addr + len`, which it
    // does not list as free memory in the device tree, so the kernel never allocates them; the
    // loader's page tables (which the kernel keeps) identity-map all RAM; nothing writes there.
    Ok(unsafe { core::slice::from_raw_parts(addr as *const u8, len) })
}

#[cfg(not(target_os = "hermit"))]
fn in_memory(_addr: usize, _len: usize) -> Result<&'static [u8], WeightsError> {
    // A Linux process cannot read physical memory: use PP_WEIGHTS_FILE.
    Err(WeightsError::BadLocation)
}

#[cfg(test)]
mod tests {
    use super::parse_location;

    #[test]
    fn parses_the_loader_word() {
        assert_eq!(
            parse_location("0x7e000000,0x1000"),
            Some((0x7e00_0000, 0x1000))
        );
        for bad in [
            "",
            "0x1000",
            "7e000000,0x10",
            "0x7e000001,0x10",
            "0x0,0x10",
            "0x1000,0x0",
        ] {
            assert_eq!(parse_location(bad), None, "{bad}");
        }
        assert_eq!(parse_location("0xfffffffffffff000,0x2000"), None);
    }
}
