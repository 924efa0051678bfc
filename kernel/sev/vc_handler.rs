//! The #VC (vector 29) handler under SEV-ES/SNP: an entry stub that saves the registers, the
//! decoding and GHCB logic of `vc.rs`, and `VMGEXIT` on the boot CPU's GHCB page (the first page
//! of the loader's shared region). Anything it cannot handle terminates the guest with a GHCB
//! termination request; it never continues past an instruction it did not emulate.
//!
//! Limits, by design for now: one GHCB (the boot CPU's; under SEV-ES/SNP only one vCPU runs, as
//! SNP AP creation is not implemented), and the handler must not itself raise #VC (it logs
//! nothing: a nested #VC would find the GHCB in use).

use core::arch::naked_asm;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use x86_64::structures::paging::Translate;
use x86_64::structures::paging::mapper::TranslateResult;

use super::cpuid::CpuidPage;
use super::msr::{self, GHCB_MSR, TerminationReason};
use super::vc::{self, Context, Regs, Step};
use super::{ghcb::Ghcb, paging};

/// The interrupt stack (TSS IST slot) #VC runs on once the kernel's TSS exists; the kernel's own
/// handlers use slot 0, slots 1–3 are otherwise unused.
pub(crate) const IST_INDEX: usize = 3;

static ACTIVE: AtomicBool = AtomicBool::new(false);
static TSS_READY: AtomicBool = AtomicBool::new(false);
static GHCB_GPA: AtomicU64 = AtomicU64::new(0);
static CPUID_PAGE: AtomicU64 = AtomicU64::new(0);

/// Whether #VC is handled here (SEV-ES or SNP).
pub(crate) fn active() -> bool {
    ACTIVE.load(Ordering::Acquire)
}

/// Negotiate the GHCB protocol, register the GHCB page (SNP) and install the #VC handler in the
/// kernel's IDT, which is loaded right away: from here on the kernel's port I/O, CPUID and MSR
/// accesses work. `cpuid_page` is the SNP CPUID page (checked by the loader), `None` under SEV-ES.
pub(crate) fn init(ghcb_gpa: u64, cpuid_page: Option<u64>, snp: bool) {
    let info = msr::SevInfo::decode(msr_protocol(msr::sev_info_request()))
        .unwrap_or_else(|_| terminate(TerminationReason::PROTOCOL_UNSUPPORTED));
    if !info.supports(super::ghcb::GHCB_PROTOCOL_VERSION) {
        terminate(TerminationReason::PROTOCOL_UNSUPPORTED);
    }
    if snp {
        // Under SNP every CPUID is answered from the checked page, never by the hypervisor.
        match cpuid_page {
            Some(page) if parse_cpuid_page(page).is_some() => {
                CPUID_PAGE.store(page, Ordering::Relaxed)
            }
            _ => terminate(TerminationReason::PP_CPUID_PAGE),
        }
        let gfn = ghcb_gpa / 4096;
        let request = msr::ghcb_gpa_register_request(gfn)
            .unwrap_or_else(|_| terminate(TerminationReason::PP_GHCB_REGISTRATION));
        if msr::decode_ghcb_gpa_register_response(msr_protocol(request), gfn).is_err() {
            terminate(TerminationReason::PP_GHCB_REGISTRATION);
        }
    }
    wrmsr(GHCB_MSR, ghcb_gpa);
    GHCB_GPA.store(ghcb_gpa, Ordering::Relaxed);
    ACTIVE.store(true, Ordering::Release);
    install(&mut crate::arch::x86_64::kernel::interrupts::IDT.lock());
    crate::arch::x86_64::kernel::interrupts::load_idt();
}

/// After the kernel loaded its GDT and TSS: point vector 29 at the kernel's code selector (the
/// early entry carries the firmware's, which the new GDT lacks) and at [`IST_INDEX`].
pub(crate) fn after_gdt() {
    if active() {
        TSS_READY.store(true, Ordering::Release);
        install(&mut crate::arch::x86_64::kernel::interrupts::IDT.lock());
    }
}

/// The GHCB page's address (identity-mapped, shared).
pub(crate) fn ghcb_gpa() -> u64 {
    GHCB_GPA.load(Ordering::Relaxed)
}

/// Hand the GHCB page, already filled, to the hypervisor and wait for its answer.
pub(crate) fn exit_with_ghcb() {
    wrmsr(GHCB_MSR, ghcb_gpa());
    vmgexit();
}

/// Point vector 29 at the entry stub with the current code selector. Before the kernel's TSS
/// exists it runs on the interrupted stack (only kernel code, which keeps no red zone, runs then);
/// afterwards on its own interrupt stack, [`IST_INDEX`], never slot 0: the kernel's other
/// handlers run there and raise #VC themselves (EOI, port I/O).
pub(crate) fn install(idt: &mut x86_64::structures::idt::InterruptDescriptorTable) {
    if !active() {
        return;
    }
    let entry = x86_64::VirtAddr::new(vc_entry as usize as u64);
    // SAFETY: `vc_entry` is an exception entry point with an error code, returning with iretq;
    // the IST slot holds a stack the kernel allocated for this core (gdt.rs).
    unsafe {
        let options = idt.vmm_communication_exception.set_handler_addr(entry);
        if TSS_READY.load(Ordering::Acquire) {
            options.set_stack_index(IST_INDEX as u16);
        }
    }
}

/// Ask the hypervisor to end this guest (GHCB MSR protocol), and never return.
pub(crate) fn terminate(reason: TerminationReason) -> ! {
    wrmsr(GHCB_MSR, reason.request());
    vmgexit();
    loop {
        // SAFETY: stopping this CPU for good.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// The registers as the entry stub leaves them on the stack: the general-purpose registers in
/// `vc::Regs` order, then the CPU's exception frame.
#[repr(C)]
struct Frame {
    gprs: [u64; 15],
    error_code: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

/// Save RAX..R15 (in `Frame` order), call [`handle`] with a pointer to them (stack 16-aligned:
/// the CPU's 6 words plus 15 pushes leave it 8 off), restore, drop the error code, return.
#[unsafe(naked)]
unsafe extern "C" fn vc_entry() {
    naked_asm!(
        "push r15", "push r14", "push r13", "push r12", "push r11", "push r10", "push r9",
        "push r8", "push rbp", "push rdi", "push rsi", "push rdx", "push rcx", "push rbx",
        "push rax",
        "mov rdi, rsp",
        "cld",
        "sub rsp, 8",
        "call {handle}",
        "add rsp, 8",
        "pop rax", "pop rbx", "pop rcx", "pop rdx", "pop rsi", "pop rdi", "pop rbp", "pop r8",
        "pop r9", "pop r10", "pop r11", "pop r12", "pop r13", "pop r14", "pop r15",
        "add rsp, 8",
        "iretq",
        handle = sym handle,
    )
}

extern "C" fn handle(frame: &mut Frame) {
    if let Err(reason) = emulate(frame) {
        terminate(reason);
    }
}

fn emulate(frame: &mut Frame) -> Result<(), TerminationReason> {
    let g = frame.gprs;
    let mut regs = Regs {
        rax: g[0],
        rbx: g[1],
        rcx: g[2],
        rdx: g[3],
        rsi: g[4],
        rdi: g[5],
        rbp: g[6],
        r8: g[7],
        r9: g[8],
        r10: g[9],
        r11: g[10],
        r12: g[11],
        r13: g[12],
        r14: g[13],
        r15: g[14],
        rip: frame.rip,
        rflags: frame.rflags,
    };
    // SAFETY: RIP points at the kernel instruction that raised #VC, inside the kernel image; 15
    // bytes (the longest x86 instruction) stay inside its mapped text.
    let bytes = unsafe { core::slice::from_raw_parts(frame.rip as *const u8, vc::MAX_INSN_LEN) };
    // RDRAND/RDSEED (which SVM cannot intercept) are never answered by the hypervisor: its value
    // would be the enclave's randomness. Anything else undecodable is an unhandled #VC.
    let insn = vc::decode(bytes, frame.error_code).map_err(|e| match e {
        vc::VcError::Entropy => TerminationReason::PP_ENTROPY,
        _ => TerminationReason::PP_UNHANDLED_VC,
    })?;
    let mmio_gpa = match insn.mem {
        Some(_) => mmio_target(insn.effective_address(&regs, frame.rsp))?,
        None => 0,
    };
    let cpuid_addr = CPUID_PAGE.load(Ordering::Relaxed);
    let cpuid_page = match (insn.op, cpuid_addr) {
        (vc::Op::Cpuid, page) if page != 0 => {
            Some(parse_cpuid_page(page).ok_or(TerminationReason::PP_CPUID_PAGE)?)
        }
        _ => None,
    };
    let ghcb_gpa = GHCB_GPA.load(Ordering::Relaxed);
    let ctx = Context {
        cpuid_page,
        xcr0: xcr0(),
        xss: 0,
        cr4: x86_64::registers::control::Cr4::read_raw(),
        ghcb_gpa,
        mmio_gpa,
    };
    // SAFETY: the GHCB is the first page of the loader's shared region, identity-mapped without
    // the C-bit and used by nothing else; `Ghcb` is plain bytes, any content is valid.
    let ghcb = unsafe { &mut *(ghcb_gpa as *mut Ghcb) };
    let step = vc::prepare(&insn, &mut regs, ghcb, &ctx)
        .map_err(|_| TerminationReason::PP_UNHANDLED_VC)?;
    if step == Step::Exit {
        exit_with_ghcb();
        vc::complete(&insn, &mut regs, ghcb).map_err(|_| TerminationReason::PP_GHCB_RESPONSE)?;
    }
    frame.gprs = [
        regs.rax, regs.rbx, regs.rcx, regs.rdx, regs.rsi, regs.rdi, regs.rbp, regs.r8, regs.r9,
        regs.r10, regs.r11, regs.r12, regs.r13, regs.r14, regs.r15,
    ];
    frame.rip = regs.rip;
    Ok(())
}

/// The SNP CPUID page at `addr`, checked.
fn parse_cpuid_page(addr: u64) -> Option<CpuidPage<'static>> {
    // SAFETY: the CPUID page is a private 4 KiB page the firmware validated, identity-mapped and
    // never written for the guest's lifetime.
    let bytes = unsafe { core::slice::from_raw_parts(addr as *const u8, 4096) };
    CpuidPage::parse(bytes).ok()
}

/// The guest-physical address of an MMIO access at `va`: it must be mapped, and shared (no
/// C-bit) — emulating an access to private memory would hand its data to the hypervisor.
fn mmio_target(va: Option<u64>) -> Result<u64, TerminationReason> {
    let va = va
        .and_then(|a| x86_64::VirtAddr::try_new(a).ok())
        .ok_or(TerminationReason::PP_UNHANDLED_VC)?;
    // SAFETY: the kernel's page tables, read-only walk.
    let pt = unsafe { crate::arch::x86_64::mm::paging::identity_mapped_page_table() };
    match pt.translate(va) {
        TranslateResult::Mapped { frame, offset, .. } => {
            let pa = frame.start_address().as_u64() + offset;
            if pa & paging::c_bit() != 0 {
                Err(TerminationReason::PP_UNHANDLED_VC)
            } else {
                Ok(pa)
            }
        }
        _ => Err(TerminationReason::PP_UNHANDLED_VC),
    }
}

fn xcr0() -> u64 {
    use x86_64::registers::control::{Cr4, Cr4Flags};
    if Cr4::read().contains(Cr4Flags::OSXSAVE) {
        x86_64::registers::xcontrol::XCr0::read_raw()
    } else {
        1
    }
}

/// One GHCB MSR-protocol exchange.
fn msr_protocol(request: u64) -> u64 {
    wrmsr(GHCB_MSR, request);
    vmgexit();
    rdmsr(GHCB_MSR)
}

fn vmgexit() {
    // SAFETY: under SEV-ES/SNP `rep vmmcall` is VMGEXIT: the hypervisor handles the request in
    // the GHCB MSR or page and resumes the guest after it.
    unsafe { core::arch::asm!("rep vmmcall", options(nostack)) };
}

fn wrmsr(msr: u32, value: u64) {
    // SAFETY: only the GHCB MSR, which exists under SEV-ES/SNP and is not intercepted.
    unsafe { x86_64::registers::model_specific::Msr::new(msr).write(value) };
}

fn rdmsr(msr: u32) -> u64 {
    // SAFETY: only the GHCB MSR, as above.
    unsafe { x86_64::registers::model_specific::Msr::new(msr).read() }
}
