//! The GHCB page (GHCB spec, AMD 56421, §2.2 and table "GHCB Layout", protocol version 2) and the
//! requests the guest makes through it.
//!
//! The guest fills the page, writes its GPA to the GHCB MSR, executes `VMGEXIT`, and reads the
//! hypervisor's answer from the page. Every save-area field the guest sets is marked in the valid
//! bitmap (bit n covers the quadword at offset 8n); a field read back from the hypervisor counts
//! only if the hypervisor marked it valid. The page is shared (unencrypted), so [`Ghcb::clear`]
//! zeroes it before each request: no stale register value leaks to the host.
//!
//! Offsets checked against edk2 `MdePkg/Include/Register/Amd/Ghcb.h` (`GHCB_SAVE_AREA`), Linux
//! `struct ghcb_save_area` (`arch/x86/include/asm/svm.h`), exit codes against Linux
//! `arch/x86/include/uapi/asm/svm.h`, the response protocol against Linux `verify_exception_info`
//! and `snp_issue_guest_request` (`arch/x86/coco/sev/`).

use core::fmt;

/// The size of the GHCB page.
pub const GHCB_SIZE: usize = 4096;
/// The GHCB protocol version this crate speaks (SEV-SNP needs version 2).
pub const GHCB_PROTOCOL_VERSION: u16 = 2;
/// `GHCB_USAGE` 0: the standard GHCB layout.
pub const GHCB_USAGE_STANDARD: u32 = 0;
/// Size of the shared buffer, `0x800..0xFF0`.
pub const SHARED_BUFFER_SIZE: usize = 2032;
/// Size of the save area that precedes the shared buffer.
const SAVE_AREA_SIZE: usize = 0x800;

/// Byte offsets in the GHCB page (GHCB spec table "GHCB Layout").
pub mod offset {
    pub const CPL: usize = 0x0CB;
    pub const XSS: usize = 0x140;
    pub const DR7: usize = 0x160;
    pub const RAX: usize = 0x1F8;
    pub const RCX: usize = 0x308;
    pub const RDX: usize = 0x310;
    pub const RBX: usize = 0x318;
    pub const SW_EXIT_CODE: usize = 0x390;
    pub const SW_EXIT_INFO_1: usize = 0x398;
    pub const SW_EXIT_INFO_2: usize = 0x3A0;
    pub const SW_SCRATCH: usize = 0x3A8;
    pub const XCR0: usize = 0x3E8;
    /// 16 bytes; bit n = the quadword at offset 8n is valid.
    pub const VALID_BITMAP: usize = 0x3F0;
    /// 2032 bytes, up to 0xFF0.
    pub const SHARED_BUFFER: usize = 0x800;
    /// u16.
    pub const PROTOCOL_VERSION: usize = 0xFFA;
    /// u32.
    pub const GHCB_USAGE: usize = 0xFFC;
}

/// `SW_EXIT_CODE` values: SVM exit codes (APM vol 2 Appendix C) and the GHCB spec's software
/// exits (§4, table "List of Supported Non-Automatic Events").
pub mod exit_code {
    pub const CPUID: u64 = 0x72;
    pub const IOIO: u64 = 0x7B;
    pub const MSR: u64 = 0x7C;
    pub const VMMCALL: u64 = 0x81;
    pub const MMIO_READ: u64 = 0x8000_0001;
    pub const MMIO_WRITE: u64 = 0x8000_0002;
    pub const NMI_COMPLETE: u64 = 0x8000_0003;
    pub const AP_HLT_LOOP: u64 = 0x8000_0004;
    pub const AP_JUMP_TABLE: u64 = 0x8000_0005;
    pub const SNP_PAGE_STATE_CHANGE: u64 = 0x8000_0010;
    pub const SNP_GUEST_REQUEST: u64 = 0x8000_0011;
    pub const SNP_EXT_GUEST_REQUEST: u64 = 0x8000_0012;
    pub const SNP_AP_CREATION: u64 = 0x8000_0013;
    pub const HYPERVISOR_FEATURES: u64 = 0x8000_FFFD;
    pub const TERMINATION: u64 = 0x8000_FFFE;
    pub const UNSUPPORTED: u64 = 0x8000_FFFF;
}

/// Reasons in `SW_EXIT_INFO_2` when `SW_EXIT_INFO_1[31:0]` = 2 (Linux `GHCB_ERR_*`).
pub mod input_error {
    pub const NOT_REGISTERED: u64 = 1;
    pub const INVALID_USAGE: u64 = 2;
    pub const INVALID_SCRATCH_AREA: u64 = 3;
    pub const MISSING_INPUT: u64 = 4;
    pub const INVALID_INPUT: u64 = 5;
    pub const INVALID_EVENT: u64 = 6;
}

/// The save-area fields this module reads and writes; the discriminant is the byte offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Field {
    /// One byte.
    Cpl = offset::CPL,
    Xss = offset::XSS,
    Dr7 = offset::DR7,
    Rax = offset::RAX,
    Rcx = offset::RCX,
    Rdx = offset::RDX,
    Rbx = offset::RBX,
    SwExitCode = offset::SW_EXIT_CODE,
    SwExitInfo1 = offset::SW_EXIT_INFO_1,
    SwExitInfo2 = offset::SW_EXIT_INFO_2,
    SwScratch = offset::SW_SCRATCH,
    Xcr0 = offset::XCR0,
}

impl Field {
    /// The field's byte offset in the page.
    pub const fn offset(self) -> usize {
        self as usize
    }
    /// Its bit in the valid bitmap: the index of the quadword holding it.
    pub const fn valid_bit(self) -> usize {
        self.offset() / 8
    }
}

/// An event the hypervisor asks the guest to take (`SW_EXIT_INFO_2` with result 1; the
/// `EVENTINJ` format of APM vol 2 §15.20).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventInjection(pub u64);

impl EventInjection {
    /// Bits 7:0.
    pub const fn vector(self) -> u8 {
        self.0 as u8
    }
    /// Bits 10:8: 0 interrupt, 2 NMI, 3 exception, 4 software interrupt.
    pub const fn kind(self) -> u8 {
        ((self.0 >> 8) & 0x7) as u8
    }
    /// Bit 31 (valid) and bit 11 (error code valid): bits 63:32.
    pub const fn error_code(self) -> Option<u32> {
        if self.0 & (1 << 11) != 0 {
            Some((self.0 >> 32) as u32)
        } else {
            None
        }
    }
    /// Bit 31.
    pub const fn valid(self) -> bool {
        self.0 & (1 << 31) != 0
    }
}

/// A GHCB answer that is an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GhcbError {
    /// A field the guest needs was not marked valid by the hypervisor.
    NotValid(Field),
    /// `SW_EXIT_INFO_1[31:0]` = 1: the hypervisor asks to inject this event.
    Exception(EventInjection),
    /// `SW_EXIT_INFO_1[31:0]` = 2: the hypervisor rejected the GHCB input; the reason (see
    /// [`input_error`]) is `SW_EXIT_INFO_2`.
    InvalidInput { reason: u64 },
    /// `SW_EXIT_INFO_1[31:0]` is neither 0, 1 nor 2.
    UnknownResult { code: u32 },
}

impl fmt::Display for GhcbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotValid(_) => "GHCB response field not marked valid by the hypervisor",
            Self::Exception(_) => "hypervisor requested an exception for the GHCB request",
            Self::InvalidInput { .. } => "hypervisor rejected the GHCB input",
            Self::UnknownResult { .. } => "GHCB response has an unknown SW_EXITINFO1 result",
        })
    }
}

/// A failed SNP guest request (GHCB spec "SNP Guest Request" NAE event; `SW_EXIT_INFO_2` holds the
/// hypervisor's error in bits 63:32 and the firmware's in bits 31:0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestRequestError {
    /// The `VMGEXIT` itself failed.
    Ghcb(GhcbError),
    /// Extended request: the certificate buffer is too small; RBX holds the pages needed.
    InvalidLength { pages: u64 },
    /// Hypervisor error 2: busy, retry.
    Busy,
    /// Another nonzero hypervisor error (1 on a standard request included).
    Hypervisor { code: u32 },
    /// Nonzero firmware status (SEV-SNP ABI spec 56860, "Status Codes").
    Firmware { code: u32 },
}

impl fmt::Display for GuestRequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ghcb(e) => e.fmt(f),
            Self::InvalidLength { .. } => {
                f.write_str("certificate buffer too small for the extended guest request")
            }
            Self::Busy => f.write_str("hypervisor busy: retry the guest request"),
            Self::Hypervisor { .. } => f.write_str("hypervisor failed the guest request"),
            Self::Firmware { .. } => f.write_str("SNP firmware failed the guest request"),
        }
    }
}

impl From<GhcbError> for GuestRequestError {
    fn from(e: GhcbError) -> Self {
        Self::Ghcb(e)
    }
}

/// Operand size of an IN/OUT; the discriminant is its SZ8/SZ16/SZ32 bit in the exit information.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum IoSize {
    Byte = 1 << 4,
    Word = 1 << 5,
    Dword = 1 << 6,
}

impl IoSize {
    const fn mask(self) -> u64 {
        match self {
            Self::Byte => 0xFF,
            Self::Word => 0xFFFF,
            Self::Dword => 0xFFFF_FFFF,
        }
    }
}

/// IN (port to guest, TYPE bit 1) or OUT (guest to port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum IoDirection {
    In = 1,
    Out = 0,
}

/// `SW_EXIT_INFO_1` of an IOIO exit (APM vol 2 §15.10.2, "IOIO Intercept Information"): bit 0
/// TYPE (1 = IN), bits 4/5/6 SZ8/SZ16/SZ32, bits 31:16 the port. For plain IN/OUT only: STR (bit
/// 2), REP (bit 3), the address size (bits 9:7) and the segment (bits 12:10) stay 0.
pub const fn ioio_exit_info(port: u16, size: IoSize, direction: IoDirection) -> u64 {
    ((port as u64) << 16) | size as u64 | direction as u64
}

/// The GHCB page: a 4 KiB, page-aligned block of bytes, laid out as the spec says. The kernel
/// places it in a shared page and registers its GFN (`super::msr::ghcb_gpa_register_request`).
#[derive(Clone)]
#[repr(C, align(4096))]
pub struct Ghcb {
    /// `0x000..0x800`.
    save_area: [u8; SAVE_AREA_SIZE],
    /// `0x800..0xFF0`.
    shared_buffer: [u8; SHARED_BUFFER_SIZE],
    /// `0xFF0..0x1000`: 10 reserved bytes, `PROTOCOL_VERSION`, `GHCB_USAGE`.
    footer: [u8; 16],
}

const _: () = assert!(core::mem::size_of::<Ghcb>() == GHCB_SIZE);

impl Default for Ghcb {
    fn default() -> Self {
        Self::new()
    }
}

impl Ghcb {
    /// An all-zero page.
    pub const fn new() -> Self {
        Self {
            save_area: [0; SAVE_AREA_SIZE],
            shared_buffer: [0; SHARED_BUFFER_SIZE],
            footer: [0; 16],
        }
    }

    /// A page holding a copy of `bytes`.
    pub fn from_bytes(bytes: &[u8; GHCB_SIZE]) -> Self {
        let mut g = Self::new();
        let (save, rest) = bytes.split_at(SAVE_AREA_SIZE);
        let (shared, footer) = rest.split_at(SHARED_BUFFER_SIZE);
        g.save_area.copy_from_slice(save);
        g.shared_buffer.copy_from_slice(shared);
        g.footer.copy_from_slice(footer);
        g
    }

    /// A copy of the page's bytes.
    pub fn as_bytes(&self) -> [u8; GHCB_SIZE] {
        let mut out = [0; GHCB_SIZE];
        let (save, rest) = out.split_at_mut(SAVE_AREA_SIZE);
        let (shared, footer) = rest.split_at_mut(SHARED_BUFFER_SIZE);
        save.copy_from_slice(&self.save_area);
        shared.copy_from_slice(&self.shared_buffer);
        footer.copy_from_slice(&self.footer);
        out
    }

    /// Zeroes the whole page, valid bitmap included (before each request).
    pub fn clear(&mut self) {
        *self = Self::new();
    }

    /// Zeroes everything but the shared buffer: for requests whose input is already there (page
    /// state change) or that are re-issued on the same buffer.
    pub fn clear_save_area(&mut self) {
        self.save_area = [0; SAVE_AREA_SIZE];
        self.footer = [0; 16];
    }

    /// The shared buffer (page state change entries, string I/O data).
    pub fn shared_buffer(&self) -> &[u8; SHARED_BUFFER_SIZE] {
        &self.shared_buffer
    }
    pub fn shared_buffer_mut(&mut self) -> &mut [u8; SHARED_BUFFER_SIZE] {
        &mut self.shared_buffer
    }

    /// The shared buffer's GPA, for `SW_SCRATCH`, given the GHCB's (page-aligned) GPA.
    pub const fn shared_buffer_gpa(ghcb_gpa: u64) -> u64 {
        (ghcb_gpa & !0xFFF) | offset::SHARED_BUFFER as u64
    }

    /// Writes a field and marks it valid.
    pub fn set(&mut self, field: Field, value: u64) {
        let off = field.offset();
        if field == Field::Cpl {
            if let Some(b) = self.save_area.get_mut(off) {
                *b = value as u8;
            }
        } else if let Some(s) = self.save_area.get_mut(off..off + 8) {
            s.copy_from_slice(&value.to_le_bytes());
        }
        let bit = field.valid_bit();
        if let Some(b) = self.save_area.get_mut(offset::VALID_BITMAP + bit / 8) {
            *b |= 1 << (bit % 8);
        }
    }

    /// Whether the field is marked valid.
    pub fn is_valid(&self, field: Field) -> bool {
        let bit = field.valid_bit();
        self.save_area
            .get(offset::VALID_BITMAP + bit / 8)
            .is_some_and(|b| b & (1 << (bit % 8)) != 0)
    }

    /// A field's value whether or not it is marked valid.
    pub fn raw(&self, field: Field) -> u64 {
        let off = field.offset();
        if field == Field::Cpl {
            return self.save_area.get(off).map_or(0, |&b| u64::from(b));
        }
        let mut b = [0; 8];
        if let Some(s) = self.save_area.get(off..off + 8) {
            b.copy_from_slice(s);
        }
        u64::from_le_bytes(b)
    }

    /// A field the hypervisor returned: an error unless marked valid.
    pub fn get(&self, field: Field) -> Result<u64, GhcbError> {
        if self.is_valid(field) {
            Ok(self.raw(field))
        } else {
            Err(GhcbError::NotValid(field))
        }
    }

    /// `PROTOCOL_VERSION` (u16 at 0xFFA).
    pub fn protocol_version(&self) -> u16 {
        let [.., a, b, _, _, _, _] = self.footer;
        u16::from_le_bytes([a, b])
    }
    /// `GHCB_USAGE` (u32 at 0xFFC).
    pub fn usage(&self) -> u32 {
        let [.., a, b, c, d] = self.footer;
        u32::from_le_bytes([a, b, c, d])
    }

    /// Sets the protocol version ([`GHCB_PROTOCOL_VERSION`]: check `super::msr::SevInfo::supports`
    /// first), the usage (standard), the exit code and exit information. Clear the page first.
    pub fn set_exit(&mut self, exit_code: u64, info_1: u64, info_2: u64) {
        self.footer[10..12].copy_from_slice(&GHCB_PROTOCOL_VERSION.to_le_bytes());
        self.footer[12..16].copy_from_slice(&GHCB_USAGE_STANDARD.to_le_bytes());
        self.set(Field::SwExitCode, exit_code);
        self.set(Field::SwExitInfo1, info_1);
        self.set(Field::SwExitInfo2, info_2);
    }

    /// Checks the result in `SW_EXIT_INFO_1[31:0]`: 0 success, 1 an event to inject (in
    /// `SW_EXIT_INFO_2`), 2 a GHCB input error (reason in `SW_EXIT_INFO_2`). Exit information is
    /// read whether or not marked valid, as Linux does: it is always an output.
    pub fn check_response(&self) -> Result<(), GhcbError> {
        let info_2 = self.raw(Field::SwExitInfo2);
        match self.raw(Field::SwExitInfo1) as u32 {
            0 => Ok(()),
            1 => Err(GhcbError::Exception(EventInjection(info_2))),
            2 => Err(GhcbError::InvalidInput { reason: info_2 }),
            code => Err(GhcbError::UnknownResult { code }),
        }
    }

    /// CPUID (GHCB spec, table "List of Supported Non-Automatic Events"): RAX = leaf, RCX =
    /// subleaf, XCR0 (1 if CR4.OSXSAVE is clear). Add XSS with [`Ghcb::set`] for leaf 0xD
    /// subleaf 1.
    pub fn prepare_cpuid(&mut self, leaf: u32, subleaf: u32, xcr0: u64) {
        self.clear();
        self.set_exit(exit_code::CPUID, 0, 0);
        self.set(Field::Rax, leaf.into());
        self.set(Field::Rcx, subleaf.into());
        self.set(Field::Xcr0, xcr0);
    }

    /// The CPUID answer `[eax, ebx, ecx, edx]`; all four registers must be valid.
    pub fn cpuid_result(&self) -> Result<[u32; 4], GhcbError> {
        self.check_response()?;
        Ok([
            self.get(Field::Rax)? as u32,
            self.get(Field::Rbx)? as u32,
            self.get(Field::Rcx)? as u32,
            self.get(Field::Rdx)? as u32,
        ])
    }

    /// Port I/O: exit information from [`ioio_exit_info`]; RAX = the value for OUT (truncated
    /// to `size`), 0 for IN.
    pub fn prepare_io(&mut self, port: u16, size: IoSize, direction: IoDirection, value: u32) {
        self.clear();
        self.set_exit(exit_code::IOIO, ioio_exit_info(port, size, direction), 0);
        let rax = match direction {
            IoDirection::Out => u64::from(value) & size.mask(),
            IoDirection::In => 0,
        };
        self.set(Field::Rax, rax);
    }

    /// The value an IN read: RAX (valid), truncated to `size`.
    pub fn io_in_result(&self, size: IoSize) -> Result<u32, GhcbError> {
        self.check_response()?;
        Ok((self.get(Field::Rax)? & size.mask()) as u32)
    }

    /// RDMSR: exit information 1 = 0, RCX = the MSR.
    pub fn prepare_msr_read(&mut self, msr: u32) {
        self.clear();
        self.set_exit(exit_code::MSR, 0, 0);
        self.set(Field::Rcx, msr.into());
    }

    /// The RDMSR value: `RDX[31:0] << 32 | RAX[31:0]`, both valid.
    pub fn msr_read_result(&self) -> Result<u64, GhcbError> {
        self.check_response()?;
        let (rax, rdx) = (self.get(Field::Rax)?, self.get(Field::Rdx)?);
        Ok((rdx << 32) | (rax & 0xFFFF_FFFF))
    }

    /// WRMSR: exit information 1 = 1, RCX = the MSR, RAX/RDX = the low/high halves.
    pub fn prepare_msr_write(&mut self, msr: u32, value: u64) {
        self.clear();
        self.set_exit(exit_code::MSR, 1, 0);
        self.set(Field::Rcx, msr.into());
        self.set(Field::Rax, value & 0xFFFF_FFFF);
        self.set(Field::Rdx, value >> 32);
    }

    /// SNP page state change (GHCB spec §4.1.6 "SNP Page State Change"): the entries are already
    /// in the shared buffer (`super::psc`); `SW_SCRATCH` = its GPA. Keeps the shared buffer,
    /// clears the rest, so it also re-issues a request the hypervisor left unfinished.
    pub fn prepare_psc(&mut self, ghcb_gpa: u64) {
        self.clear_save_area();
        self.set_exit(exit_code::SNP_PAGE_STATE_CHANGE, 0, 0);
        self.set(Field::SwScratch, Self::shared_buffer_gpa(ghcb_gpa));
    }

    /// SNP guest request (GHCB spec "SNP Guest Request"): exit information 1/2 = the GPAs of the
    /// request and response pages. `exit_code` is [`exit_code::SNP_GUEST_REQUEST`] or
    /// [`exit_code::SNP_EXT_GUEST_REQUEST`].
    pub fn prepare_guest_request(&mut self, exit_code: u64, req_gpa: u64, resp_gpa: u64) {
        self.clear();
        self.set_exit(exit_code, req_gpa, resp_gpa);
    }

    /// SNP extended guest request (GHCB spec "SNP Extended Guest Request"): also RAX = the
    /// certificate buffer's GPA and RBX = its size in pages.
    pub fn prepare_ext_guest_request(
        &mut self,
        req_gpa: u64,
        resp_gpa: u64,
        certs_gpa: u64,
        pages: u64,
    ) {
        self.prepare_guest_request(exit_code::SNP_EXT_GUEST_REQUEST, req_gpa, resp_gpa);
        self.set(Field::Rax, certs_gpa);
        self.set(Field::Rbx, pages);
    }

    /// The result of a standard guest request.
    pub fn guest_request_result(&self) -> Result<(), GuestRequestError> {
        self.guest_request_status(false)
    }

    /// The result of an extended guest request; on [`GuestRequestError::InvalidLength`] the
    /// page count comes from RBX (which must be valid); the caller bounds it.
    pub fn ext_guest_request_result(&self) -> Result<(), GuestRequestError> {
        self.guest_request_status(true)
    }

    /// `SW_EXIT_INFO_2`: 0 success; hypervisor error in bits 63:32 (1 invalid length, 2 busy;
    /// Linux `SNP_GUEST_VMM_ERR_*`); otherwise the firmware status in bits 31:0.
    fn guest_request_status(&self, extended: bool) -> Result<(), GuestRequestError> {
        self.check_response()?;
        let info_2 = self.raw(Field::SwExitInfo2);
        match ((info_2 >> 32) as u32, info_2 as u32) {
            (0, 0) => Ok(()),
            (0, code) => Err(GuestRequestError::Firmware { code }),
            (1, _) if extended => Err(GuestRequestError::InvalidLength {
                pages: self.get(Field::Rbx)?,
            }),
            (2, _) => Err(GuestRequestError::Busy),
            (code, _) => Err(GuestRequestError::Hypervisor { code }),
        }
    }

    /// Termination through the GHCB (exit 0x8000_FFFE): `SW_EXIT_INFO_1` = set in bits 3:0, code
    /// in bits 11:4 (Linux `SVM_VMGEXIT_TERM_REASON`; the MSR request uses other bits).
    pub fn prepare_termination(&mut self, reason: super::msr::TerminationReason) {
        self.clear();
        let info_1 = u64::from(reason.set & 0xF) | (u64::from(reason.code) << 4);
        self.set_exit(exit_code::TERMINATION, info_1, 0);
    }
}

#[cfg(test)]
#[path = "ghcb_tests.rs"]
mod tests;
