//! SEV at boot (UEFI target only): detect it, check what the firmware says about it, and stop
//! cleanly while the kernel cannot run as an SEV guest.
//!
//! Runs before ExitBootServices, so CPUID and serial output still go through OVMF's #VC handler
//! under SEV-ES/SNP. The checks are the real ones a supported boot will need; only the final
//! stop ([`stop_unsupported`]) is temporary.

use alloc::vec::Vec;
use core::ops::Range;

use uefi::boot::{self, MemoryType};
use uefi::mem::memory_map::MemoryMap;

use crate::serial::fail;
use crate::sev::{self, CC_BLOB_LEN, CcBlob, MapEntry, SevFacts, SevLevel};
use crate::snp::cpuid::CpuidPage;
use crate::snp::msr::{self, Detected, GHCB_MSR, SEV_STATUS_MSR, TerminationReason};

/// What SEV mode this guest runs in, from CPUID 0x8000_001F and `SEV_STATUS`; under SNP also the
/// firmware's confidential-computing blob and a checked CPUID page. `None` without SEV.
pub fn detect() -> Option<SevFacts> {
    let max_ext = cpuid(0x8000_0000)[0];
    let leaf = (max_ext >= msr::MEMORY_ENCRYPTION_LEAF).then(|| cpuid(msr::MEMORY_ENCRYPTION_LEAF));
    // The MSR exists only where CPUID lists SEV (EAX bit 1); elsewhere `rdmsr` faults.
    let status = leaf
        .filter(|l| l[0] & 2 != 0)
        .map(|_| rdmsr(SEV_STATUS_MSR));
    let detected = msr::detect(max_ext, leaf, status)
        .unwrap_or_else(|e| fail(format_args!("SEV facts do not agree: {e}")));
    let Detected {
        level,
        c_bit: Some(c_bit),
        ..
    } = detected
    else {
        return None;
    };
    let level = match level {
        msr::SevLevel::None => return None,
        msr::SevLevel::Sev => SevLevel::Sev,
        msr::SevLevel::SevEs => SevLevel::SevEs,
        msr::SevLevel::SevSnp => SevLevel::Snp(snp_blob(c_bit, &detected)),
    };
    Some(SevFacts { level, c_bit })
}

/// The confidential-computing blob, and the CPUID page it names checked against the C-bit.
fn snp_blob(c_bit: u8, detected: &Detected) -> CcBlob {
    let terminate = |what: core::fmt::Arguments<'_>| -> ! {
        println!("pp-loader: error: {what}");
        terminate(detected, TerminationReason::PP_CPUID_PAGE)
    };
    let address = uefi::system::with_config_table(|tables| {
        tables
            .iter()
            .find(|t| t.guid == sev::CC_BLOB_GUID)
            .map(|t| t.address as usize)
    })
    .unwrap_or_else(|| {
        terminate(format_args!(
            "SEV-SNP is active but OVMF published no confidential-computing blob"
        ))
    });
    // SAFETY: OVMF installed this configuration table; it points at a packed blob of
    // `CC_BLOB_LEN` bytes in memory the firmware keeps for the guest's lifetime.
    let bytes = unsafe { core::slice::from_raw_parts(address as *const u8, CC_BLOB_LEN) };
    let blob = CcBlob::parse(bytes)
        .unwrap_or_else(|e| terminate(format_args!("confidential-computing blob: {e:?}")));
    // SAFETY: the blob names the CPUID page, a 4 KiB private page the firmware validated and
    // identity-maps; the loader only reads it.
    let page = unsafe { core::slice::from_raw_parts(blob.cpuid as *const u8, 4096) };
    let checked = CpuidPage::parse(page).and_then(|p| p.check_c_bit(c_bit));
    if let Err(e) = checked {
        terminate(format_args!("SNP CPUID page at {:#x}: {e}", blob.cpuid));
    }
    blob
}

/// The memory map as [`MapEntry`]s.
pub fn map_entries(map: &impl MemoryMap) -> Vec<MapEntry> {
    map.entries()
        .map(|d| {
            MapEntry::from_efi(d.phys_start, d.page_count, d.ty.0)
                .unwrap_or_else(|e| fail(format_args!("memory map: {e}")))
        })
        .collect()
}

/// Which physical memory the identity map gives the C-bit (see [`sev::private_ranges`]).
pub fn private_memory(facts: &SevFacts) -> Vec<Range<u64>> {
    let map = boot::memory_map(MemoryType::LOADER_DATA)
        .unwrap_or_else(|e| fail(format_args!("cannot read the memory map: {e:?}")));
    let firmware: &[Range<u64>] = match &facts.level {
        SevLevel::Snp(blob) => &blob.pages(),
        _ => &[],
    };
    sev::private_ranges(&map_entries(&map), firmware)
        .unwrap_or_else(|e| fail(format_args!("SEV memory: {e}")))
}

/// Stop: the Hermit kernel in this image does not yet run as an SEV guest (no C-bit in its own
/// mappings, no #VC handler, no shared DMA buffers). Under SEV-ES/SNP the guest asks the
/// hypervisor to terminate it (GHCB MSR protocol) with reason set 1, code 7.
pub fn stop_unsupported(facts: &SevFacts, detected_tables: usize) -> ! {
    println!(
        "pp-loader: {} guest, C-bit {}, {} page tables with the C-bit built{}",
        facts.level.name(),
        facts.c_bit,
        detected_tables,
        match facts.level {
            SevLevel::Snp(blob) => alloc::format!(
                ", CPUID page at {:#x} checked, secrets page at {:#x}",
                blob.cpuid,
                blob.secrets
            ),
            _ => alloc::string::String::new(),
        }
    );
    println!(
        "pp-loader: error: this image's kernel cannot run as an SEV guest yet; stopping before it starts"
    );
    match facts.level {
        SevLevel::Sev => fail(format_args!("halted under SEV")),
        SevLevel::SevEs | SevLevel::Snp(_) => {
            ghcb_terminate(TerminationReason::PP_KERNEL_UNSUPPORTED)
        }
    }
}

fn terminate(detected: &Detected, reason: TerminationReason) -> ! {
    match detected.level {
        msr::SevLevel::SevEs | msr::SevLevel::SevSnp => ghcb_terminate(reason),
        _ => fail(format_args!("halted")),
    }
}

/// Ask the hypervisor to end this guest: a GHCB MSR-protocol termination request, then VMGEXIT.
fn ghcb_terminate(reason: TerminationReason) -> ! {
    let request = reason.request();
    // SAFETY: only reached under SEV-ES/SNP, where the GHCB MSR exists and `rep vmmcall` is
    // VMGEXIT; the request makes the hypervisor stop the guest, and nothing runs afterwards.
    unsafe {
        core::arch::asm!(
            "wrmsr",
            "rep vmmcall",
            in("ecx") GHCB_MSR,
            in("eax") request as u32,
            in("edx") (request >> 32) as u32,
            options(nomem, nostack)
        );
    }
    fail(format_args!(
        "the hypervisor ignored the termination request"
    ))
}

fn cpuid(leaf: u32) -> [u32; 4] {
    // SAFETY: CPUID exists on every x86-64 CPU; before ExitBootServices OVMF handles the #VC it
    // raises under SEV-ES/SNP.
    #[allow(unused_unsafe)]
    let r = unsafe { core::arch::x86_64::__cpuid_count(leaf, 0) };
    [r.eax, r.ebx, r.ecx, r.edx]
}

fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: called only for SEV_STATUS and only when CPUID lists SEV, where the MSR exists; it
    // is read-only and not intercepted under SEV-ES/SNP.
    unsafe {
        core::arch::asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}
