//! SEV at boot (UEFI target only): detect it, check what the firmware says about it, and prepare
//! the memory shared with the host.
//!
//! Runs before ExitBootServices, so CPUID and serial output still go through OVMF's #VC handler
//! under SEV-ES/SNP.

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
    Some(SevFacts {
        level,
        c_bit,
        shared: 0..0,
    })
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

/// Which physical memory the identity map gives the C-bit (see [`sev::private_ranges`]): not
/// the shared region.
pub fn private_memory(facts: &SevFacts) -> Vec<Range<u64>> {
    let map = boot::memory_map(MemoryType::LOADER_DATA)
        .unwrap_or_else(|e| fail(format_args!("cannot read the memory map: {e:?}")));
    let firmware: &[Range<u64>] = match &facts.level {
        SevLevel::Snp(blob) => &blob.pages(),
        _ => &[],
    };
    let private = sev::private_ranges(&map_entries(&map), firmware)
        .unwrap_or_else(|e| fail(format_args!("SEV memory: {e}")));
    sev::subtract(&private, &facts.shared)
}

/// How much memory is shared with the host: the boot CPU's GHCB page and the device-buffer pool
/// (virtio rings and packet buffers: 1024 receive buffers of a header page and a packet page,
/// the transmit side and the rings fit with room to spare).
pub const SHARED_BYTES: u64 = 32 << 20;
const LARGE_PAGE: u64 = 2 << 20;

/// Set aside [`SHARED_BYTES`] of 2 MiB-aligned memory and make it shared with the host: under
/// SNP each 4 KiB page is first rescinded from the guest (`PVALIDATE`, validate = 0), then
/// assigned to the hypervisor (GHCB MSR-protocol page-state change), the order SNP requires for
/// private → shared. The identity map leaves the region without the C-bit
/// ([`private_memory`]); nothing touches it before the kernel runs on those tables.
pub fn share(facts: &mut SevFacts) {
    let pages = ((SHARED_BYTES + LARGE_PAGE) / 4096) as usize;
    let region = boot::allocate_pages(boot::AllocateType::AnyPages, MemoryType::LOADER_DATA, pages)
        .unwrap_or_else(|e| fail(format_args!("cannot allocate shared memory: {e:?}")));
    let start = (region.as_ptr() as u64).next_multiple_of(LARGE_PAGE);
    let shared = start..start + SHARED_BYTES;
    if let SevLevel::Snp(_) = facts.level
        && let Err(e) = make_shared(shared.clone())
    {
        fail(format_args!("{e}"));
    }
    facts.shared = shared;
}

/// Say what the loader found and prepared; the kernel takes it from the device tree.
pub fn report(facts: &SevFacts, tables: usize) {
    println!(
        "pp-loader: {} guest, C-bit {}, {} page tables with the C-bit, {} MiB shared at {:#x}{}",
        facts.level.name(),
        facts.c_bit,
        tables,
        (facts.shared.end - facts.shared.start) >> 20,
        facts.shared.start,
        match facts.level {
            SevLevel::Snp(blob) => alloc::format!(
                ", CPUID page at {:#x} checked, secrets page at {:#x}",
                blob.cpuid,
                blob.secrets
            ),
            _ => alloc::string::String::new(),
        }
    );
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

/// Rescind each page of `range` and assign it to the hypervisor, with interrupts off for the whole
/// loop: meanwhile the GHCB MSR holds our requests, not OVMF's GHCB address, and a #VC in an
/// interrupt handler (EOI, port I/O) would make OVMF's #VC handler use it as one. The MSR and the
/// interrupt flag are restored before returning, so an error can be printed.
fn make_shared(range: Range<u64>) -> Result<(), alloc::string::String> {
    let interrupts_were_on = rflags() & (1 << 9) != 0;
    // SAFETY: clearing IF; restored below.
    unsafe { core::arch::asm!("cli", options(nomem, nostack)) };
    let saved = rdmsr(GHCB_MSR);
    let mut outcome = Ok(());
    for page in range.step_by(4096) {
        // SAFETY: `page` lies in memory this loader just allocated and has not touched; once
        // rescinded it is not accessed through OVMF's (private) mapping again.
        let rc = unsafe { pvalidate(page, false) };
        if rc != 0 {
            outcome = Err(alloc::format!(
                "PVALIDATE (rescind) of {page:#x} failed: {rc}"
            ));
            break;
        }
        let answer = match msr::psc_request(page / 4096, msr::PscMsrOp::Shared) {
            Ok(request) => msr_protocol(request),
            Err(e) => {
                outcome = Err(alloc::format!("page-state change of {page:#x}: {e}"));
                break;
            }
        };
        if let Err(e) = msr::decode_psc_response(answer) {
            outcome = Err(alloc::format!(
                "page-state change of {page:#x} refused: {e}"
            ));
            break;
        }
    }
    // OVMF's #VC handler finds its own GHCB through this MSR: give it back, then interrupts.
    wrmsr(GHCB_MSR, saved);
    if interrupts_were_on {
        // SAFETY: restoring the interrupt flag as it was.
        unsafe { core::arch::asm!("sti", options(nomem, nostack)) };
    }
    outcome
}

fn rflags() -> u64 {
    let flags: u64;
    // SAFETY: reads RFLAGS through the stack.
    unsafe {
        core::arch::asm!("pushfq", "pop {}", out(reg) flags, options(nomem, preserves_flags))
    };
    flags
}

/// One GHCB MSR-protocol exchange: write `request`, VMGEXIT, read the answer.
fn msr_protocol(request: u64) -> u64 {
    wrmsr(GHCB_MSR, request);
    // SAFETY: under SEV-ES/SNP `rep vmmcall` is VMGEXIT: the hypervisor reads the GHCB MSR,
    // answers in it and resumes the guest here.
    unsafe { core::arch::asm!("rep vmmcall", options(nomem, nostack)) };
    rdmsr(GHCB_MSR)
}

/// `PVALIDATE` of the 4 KiB page at `addr` (identity-mapped); the instruction's return code, or
/// 255 when the RMP entry was already in the requested state (carry set).
///
/// # Safety
/// Rescinding a page makes every later private access to it fault: the caller must not use it
/// as private memory afterwards.
unsafe fn pvalidate(addr: u64, validate: bool) -> u32 {
    let rax: u64;
    let unchanged: u8;
    // SAFETY: PVALIDATE (F2 0F 01 FF) exists under SNP, the only caller's condition; RAX = the
    // page's address, ECX = 0 (4 KiB), EDX = validate; it returns its code in EAX.
    unsafe {
        core::arch::asm!(
            ".byte 0xf2, 0x0f, 0x01, 0xff",
            "setc {unchanged}",
            unchanged = out(reg_byte) unchanged,
            inout("rax") addr => rax,
            in("ecx") 0u32,
            in("edx") u32::from(validate),
            options(nostack)
        );
    }
    let rc = rax as u32;
    if rc == 0 && unchanged != 0 { 255 } else { rc }
}

fn wrmsr(msr: u32, value: u64) {
    // SAFETY: only the GHCB MSR, only under SEV-ES/SNP where it exists; writing it has no effect
    // until the next VMGEXIT or #VC.
    unsafe {
        core::arch::asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nomem, nostack))
    };
}

fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: called for SEV_STATUS only when CPUID lists SEV, where the MSR exists, and for the
    // GHCB MSR only under SNP; reading either has no side effect.
    unsafe {
        core::arch::asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}
