//! The SEV-SNP `TCB_VERSION`: the security patch levels of the AMD firmware and microcode.
//!
//! A `TCB_VERSION` is a little-endian `u64`. On **Milan and Genoa** (the only layout supported here)
//! its bytes are:
//!
//! | byte | field |
//! |------|-------|
//! | 0 | `BOOT_LOADER` — SVN of the PSP bootloader |
//! | 1 | `TEE` — SVN of the PSP operating system |
//! | 2..=5 | reserved (the VCEK certificate carries them as `spl4`..`spl7`) |
//! | 6 | `SNP` — SVN of the SNP firmware |
//! | 7 | `MICROCODE` — lowest microcode patch level of all cores |
//!
//! **Turin is not supported**: it moves the fields (`FMC` at byte 0, bootloader at 1, TEE at 2,
//! SNP at 3) and its VCEKs carry an `fmcSPL` extension. A Turin report read with this layout
//! gives wrong numbers, which is why the verifier refuses VCEKs whose product name is not Milan or
//! Genoa and trusts only the Milan and Genoa roots by default.

/// A `TCB_VERSION` in the Milan/Genoa layout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcbVersion {
    /// SVN of the PSP bootloader (byte 0).
    pub boot_loader: u8,
    /// SVN of the PSP operating system (byte 1).
    pub tee: u8,
    /// Reserved bytes 2..=5, kept so that a report round-trips byte for byte.
    pub reserved: [u8; 4],
    /// SVN of the SNP firmware (byte 6).
    pub snp: u8,
    /// Lowest microcode patch level of all cores (byte 7).
    pub microcode: u8,
}

/// One component of a [`TcbVersion`], named when a minimum is not met.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcbComponent {
    /// The PSP bootloader.
    BootLoader,
    /// The PSP operating system.
    Tee,
    /// The SNP firmware.
    Snp,
    /// The CPU microcode.
    Microcode,
}

impl TcbComponent {
    /// The component's name as the report and the VCEK spell it: `boot_loader`, `tee`, `snp`,
    /// `microcode`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BootLoader => "boot_loader",
            Self::Tee => "tee",
            Self::Snp => "snp",
            Self::Microcode => "microcode",
        }
    }

    /// Every component, in layout order.
    pub const ALL: [TcbComponent; 4] = [Self::BootLoader, Self::Tee, Self::Snp, Self::Microcode];
}

impl core::fmt::Display for TcbComponent {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TcbVersion {
    /// A TCB version with the four named components and zero reserved bytes.
    pub const fn new(boot_loader: u8, tee: u8, snp: u8, microcode: u8) -> Self {
        Self {
            boot_loader,
            tee,
            reserved: [0; 4],
            snp,
            microcode,
        }
    }

    /// Reads the Milan/Genoa layout from the raw little-endian value.
    pub const fn from_u64(raw: u64) -> Self {
        let b = raw.to_le_bytes();
        Self {
            boot_loader: b[0],
            tee: b[1],
            reserved: [b[2], b[3], b[4], b[5]],
            snp: b[6],
            microcode: b[7],
        }
    }

    /// The raw value in the Milan/Genoa layout.
    pub const fn to_u64(self) -> u64 {
        let r = self.reserved;
        u64::from_le_bytes([
            self.boot_loader,
            self.tee,
            r[0],
            r[1],
            r[2],
            r[3],
            self.snp,
            self.microcode,
        ])
    }

    /// The value of one named component.
    pub const fn component(&self, component: TcbComponent) -> u8 {
        match component {
            TcbComponent::BootLoader => self.boot_loader,
            TcbComponent::Tee => self.tee,
            TcbComponent::Snp => self.snp,
            TcbComponent::Microcode => self.microcode,
        }
    }

    /// `Ok` if every named component is at least the one in `minimum` (the reserved bytes are not
    /// compared); otherwise the first component that is lower.
    pub fn meets(&self, minimum: &TcbVersion) -> Result<(), TcbComponent> {
        let pairs = [
            (
                self.boot_loader,
                minimum.boot_loader,
                TcbComponent::BootLoader,
            ),
            (self.tee, minimum.tee, TcbComponent::Tee),
            (self.snp, minimum.snp, TcbComponent::Snp),
            (self.microcode, minimum.microcode, TcbComponent::Microcode),
        ];
        match pairs.into_iter().find(|(have, want, _)| have < want) {
            Some((_, _, component)) => Err(component),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_milan_genoa() {
        let tcb = TcbVersion::from_u64(0xD118_0000_0000_0403);
        assert_eq!(tcb, TcbVersion::new(3, 4, 0x18, 0xD1));
        assert_eq!(tcb.to_u64(), 0xD118_0000_0000_0403);
        let with_reserved = TcbVersion::from_u64(0x0102_0304_0506_0708);
        assert_eq!(with_reserved.reserved, [6, 5, 4, 3]);
        assert_eq!(with_reserved.to_u64(), 0x0102_0304_0506_0708);
    }

    #[test]
    fn meets_compares_each_component() {
        let min = TcbVersion::new(3, 0, 8, 115);
        assert_eq!(TcbVersion::new(3, 0, 8, 115).meets(&min), Ok(()));
        assert_eq!(TcbVersion::new(9, 9, 9, 200).meets(&min), Ok(()));
        assert_eq!(
            TcbVersion::new(2, 9, 9, 200).meets(&min),
            Err(TcbComponent::BootLoader)
        );
        assert_eq!(
            TcbVersion::new(3, 0, 7, 200).meets(&min),
            Err(TcbComponent::Snp)
        );
        assert_eq!(
            TcbVersion::new(3, 0, 8, 114).meets(&min),
            Err(TcbComponent::Microcode)
        );
    }
}
