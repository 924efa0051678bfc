//! The flattened device tree the Hermit kernel reads under UEFI: memory, bootargs and the RSDP,
//! and under SEV what the workload needs to know about it.

use alloc::format;
use alloc::vec::Vec;
use core::ops::Range;

use vm_fdt::FdtWriter;

use crate::sev::{SevFacts, SevLevel};

/// Build the FDT: root `compatible = "hermit,uefi"`, one `memory@` node per free range,
/// `/chosen/bootargs`, `/hermit,rsdp@ADDR`, and under SEV `/pp,sev`:
///
/// - `pp,sev-level`: "sev", "sev-es" or "sev-snp";
/// - `pp,c-bit`: u32, the C-bit position in page-table entries;
/// - SNP only: `pp,snp-secrets` and `pp,snp-cpuid`, u64 physical addresses of the 4 KiB pages;
/// - `pp,shared`: (address, length) of the memory shared with the host (first page: the boot
///   CPU's GHCB; the rest: the device-buffer pool).
///
/// A root node of its own (like `hermit,rsdp@`) rather than `/chosen` properties: the facts stay
/// together, the kernel's `/chosen` parsing is untouched, and without SEV it is simply absent,
/// leaving the tree byte-identical to the one built before SEV support.
pub fn build(
    memory: &[Range<u64>],
    bootargs: &str,
    rsdp: u64,
    sev: Option<&SevFacts>,
) -> Result<Vec<u8>, vm_fdt::Error> {
    let mut fdt = FdtWriter::new()?;
    let root = fdt.begin_node("")?;
    fdt.property_string("compatible", "hermit,uefi")?;
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;

    for range in memory {
        let node = fdt.begin_node(&format!("memory@{:x}", range.start))?;
        fdt.property_string("device_type", "memory")?;
        fdt.property_array_u64("reg", &[range.start, range.end - range.start])?;
        fdt.end_node(node)?;
    }

    let chosen = fdt.begin_node("chosen")?;
    fdt.property_string("bootargs", bootargs)?;
    fdt.end_node(chosen)?;

    let rsdp_node = fdt.begin_node(&format!("hermit,rsdp@{rsdp:x}"))?;
    fdt.property_array_u64("reg", &[rsdp, 1])?;
    fdt.end_node(rsdp_node)?;

    if let Some(sev) = sev {
        let node = fdt.begin_node("pp,sev")?;
        fdt.property_string("pp,sev-level", sev.level.name())?;
        fdt.property_u32("pp,c-bit", u32::from(sev.c_bit))?;
        if let SevLevel::Snp(blob) = sev.level {
            fdt.property_u64("pp,snp-secrets", blob.secrets)?;
            fdt.property_u64("pp,snp-cpuid", blob.cpuid)?;
        }
        if sev.shared.start < sev.shared.end {
            fdt.property_array_u64(
                "pp,shared",
                &[sev.shared.start, sev.shared.end - sev.shared.start],
            )?;
        }
        fdt.end_node(node)?;
    }

    fdt.end_node(root)?;
    fdt.finish()
}

#[cfg(test)]
// Lists of address ranges are the data here, one-element lists included.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn contains_what_the_kernel_reads() {
        let memory = vec![0x10_0000..0x8000_0000, 0x1_0000_0000..0x1_8000_0000];
        let blob = build(&memory, "env=A=1", 0x7fbf_e014, None).unwrap();
        assert_eq!(&blob[..4], &[0xd0, 0x0d, 0xfe, 0xed]);
        let has = |needle: &[u8]| blob.windows(needle.len()).any(|w| w == needle);
        assert!(has(b"hermit,uefi\0"));
        assert!(has(b"memory@100000\0"));
        assert!(has(b"memory@100000000\0"));
        assert!(has(b"hermit,rsdp@7fbfe014\0"));
        assert!(has(b"env=A=1\0"));
        assert!(!has(b"pp,sev"));
    }

    /// `build` as it was before SEV support, verbatim.
    fn build_before_sev(memory: &[Range<u64>], bootargs: &str, rsdp: u64) -> Vec<u8> {
        let mut fdt = FdtWriter::new().unwrap();
        let root = fdt.begin_node("").unwrap();
        fdt.property_string("compatible", "hermit,uefi").unwrap();
        fdt.property_u32("#address-cells", 2).unwrap();
        fdt.property_u32("#size-cells", 2).unwrap();
        for range in memory {
            let node = fdt
                .begin_node(&format!("memory@{:x}", range.start))
                .unwrap();
            fdt.property_string("device_type", "memory").unwrap();
            fdt.property_array_u64("reg", &[range.start, range.end - range.start])
                .unwrap();
            fdt.end_node(node).unwrap();
        }
        let chosen = fdt.begin_node("chosen").unwrap();
        fdt.property_string("bootargs", bootargs).unwrap();
        fdt.end_node(chosen).unwrap();
        let rsdp_node = fdt.begin_node(&format!("hermit,rsdp@{rsdp:x}")).unwrap();
        fdt.property_array_u64("reg", &[rsdp, 1]).unwrap();
        fdt.end_node(rsdp_node).unwrap();
        fdt.end_node(root).unwrap();
        fdt.finish().unwrap()
    }

    #[test]
    fn without_sev_the_tree_is_unchanged() {
        let memory = vec![0x10_0000..0x8000_0000, 0x1_0000_0000..0x1_8000_0000];
        let new = build(&memory, "env=A=1 -- x", 0x7fbf_e014, None).unwrap();
        assert_eq!(new, build_before_sev(&memory, "env=A=1 -- x", 0x7fbf_e014));
        assert_eq!(
            build(&[], "", 0, None).unwrap(),
            build_before_sev(&[], "", 0)
        );
    }

    /// The value of property `name`, found by walking the struct block (FDT_BEGIN_NODE 1,
    /// FDT_END_NODE 2, FDT_PROP 3 with length and name offset, FDT_NOP 4, FDT_END 9).
    fn property<'a>(blob: &'a [u8], name: &str) -> Option<&'a [u8]> {
        let be = |at: usize| u32::from_be_bytes(blob[at..at + 4].try_into().unwrap()) as usize;
        let (structs, strings) = (be(8), be(12));
        let mut offset = 0;
        let name_at = blob[strings..].split(|&b| b == 0).find_map(|s| {
            let at = offset;
            offset += s.len() + 1;
            (s == name.as_bytes()).then_some(at)
        })?;
        let mut at = structs;
        loop {
            match be(at) {
                1 => at += (5 + blob[at + 4..].iter().position(|&b| b == 0)?).next_multiple_of(4),
                2 | 4 => at += 4,
                3 if be(at + 8) == name_at => return Some(&blob[at + 12..at + 12 + be(at + 4)]),
                3 => at += (12 + be(at + 4)).next_multiple_of(4),
                _ => return None,
            }
        }
    }

    #[test]
    fn describes_sev() {
        let memory = [0x10_0000..0x8000_0000];
        let snp = crate::sev::CcBlob {
            version: 1,
            secrets: 0x80_d000,
            cpuid: 0x80_e000,
        };
        let facts = SevFacts {
            level: SevLevel::Snp(snp),
            c_bit: 51,
            shared: 0x4000_0000..0x4200_0000,
        };
        let blob = build(&memory, "", 0x7fbf_e014, Some(&facts)).unwrap();
        assert_eq!(property(&blob, "pp,sev-level"), Some(&b"sev-snp\0"[..]));
        assert_eq!(property(&blob, "pp,c-bit"), Some(&51u32.to_be_bytes()[..]));
        let secrets = 0x80_d000u64.to_be_bytes();
        assert_eq!(property(&blob, "pp,snp-secrets"), Some(&secrets[..]));
        let cpuid = 0x80_e000u64.to_be_bytes();
        assert_eq!(property(&blob, "pp,snp-cpuid"), Some(&cpuid[..]));
        assert!(blob.windows(7).any(|w| w == b"pp,sev\0"));
        let mut shared = 0x4000_0000u64.to_be_bytes().to_vec();
        shared.extend(0x200_0000u64.to_be_bytes());
        assert_eq!(property(&blob, "pp,shared"), Some(&shared[..]));

        let facts = SevFacts {
            level: SevLevel::SevEs,
            c_bit: 47,
            shared: 0..0,
        };
        let blob = build(&memory, "", 0x7fbf_e014, Some(&facts)).unwrap();
        assert_eq!(property(&blob, "pp,sev-level"), Some(&b"sev-es\0"[..]));
        assert_eq!(property(&blob, "pp,c-bit"), Some(&47u32.to_be_bytes()[..]));
        assert_eq!(property(&blob, "pp,snp-secrets"), None);
        assert_eq!(property(&blob, "pp,snp-cpuid"), None);
        assert_eq!(property(&blob, "pp,shared"), None);
    }
}
