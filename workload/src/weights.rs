//! Where the weights blob is. In the image it is part of `pp.efi`: the loader embeds it
//! (`include_bytes!`, 4 KiB-aligned) and so it is hashed with the rest of the file (checked by
//! OVMF against the kernel-hashes table under SEV-SNP); the firmware loads the file into
//! LOADER_CODE pages, which the loader never hands the kernel as free memory, and the loader
//! writes `PP_WEIGHTS=<addr>,<len>` (hex) at the front of the kernel command line. The workload
//! reads the blob there in place (`sys::loader_weights`, Hermit only). As a Linux process (tests),
//! `PP_WEIGHTS_FILE` names a file instead.

/// Why no blob could be found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightsError {
    /// Neither variable is set: the loader named no blob, and no file was given.
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
    #[cfg(target_os = "hermit")]
    if let Some(blob) = crate::sys::loader_weights() {
        return blob;
    }
    #[cfg(not(target_os = "hermit"))]
    if std::env::var_os("PP_WEIGHTS").is_some() {
        // A Linux process cannot read the loader's memory: use PP_WEIGHTS_FILE.
        return Err(WeightsError::BadLocation);
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
