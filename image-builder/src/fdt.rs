//! The flattened device tree the Hermit kernel reads under UEFI: memory, bootargs and the RSDP.

use alloc::format;
use alloc::vec::Vec;
use core::ops::Range;

use vm_fdt::FdtWriter;

/// Build the FDT: root `compatible = "hermit,uefi"`, one `memory@` node per free range,
/// `/chosen/bootargs`, and `/hermit,rsdp@ADDR`.
pub fn build(memory: &[Range<u64>], bootargs: &str, rsdp: u64) -> Result<Vec<u8>, vm_fdt::Error> {
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

    fdt.end_node(root)?;
    fdt.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn contains_what_the_kernel_reads() {
        let memory = vec![0x10_0000..0x8000_0000, 0x1_0000_0000..0x1_8000_0000];
        let blob = build(&memory, "env=A=1", 0x7fbf_e014).unwrap();
        assert_eq!(&blob[..4], &[0xd0, 0x0d, 0xfe, 0xed]);
        let has = |needle: &[u8]| blob.windows(needle.len()).any(|w| w == needle);
        assert!(has(b"hermit,uefi\0"));
        assert!(has(b"memory@100000\0"));
        assert!(has(b"memory@100000000\0"));
        assert!(has(b"hermit,rsdp@7fbfe014\0"));
        assert!(has(b"env=A=1\0"));
    }
}
