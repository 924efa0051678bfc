//! The logic of the #VC (vector 29) handler of an SEV-ES/SNP guest, without hardware access.
//!
//! Under SEV-ES/SNP the hypervisor cannot read the guest's registers, so an intercepted
//! instruction raises #VC in the guest with the SVM exit code as the error code. The handler
//! decodes the instruction at RIP, hands the hypervisor only what it needs through the GHCB, and
//! writes the answer back into the saved registers. The kernel's part is: save the registers
//! into [`Regs`], read up to 15 bytes at RIP, call [`decode`] and [`prepare`], execute `VMGEXIT`
//! if [`prepare`] returns [`Step::Exit`] and then call [`complete`], and restore the registers.
//!
//! Every [`VcError`] means the kernel terminates the guest: the instruction was not emulated, and
//! returning to it would raise #VC again or run on with wrong register values. Never continue.
//!
//! Supported (what a unikernel executes): CPUID, RDMSR/WRMSR, IN/OUT with an immediate or DX port
//! (no string I/O), and MMIO by `MOV` to or from a register or of an immediate, and `MOVZX`.
//! Protocol checked against Linux `arch/x86/coco/sev/` (`vc_handle_ioio`, `vc_ioio_exitinfo`,
//! `vc_handle_msr`, `vc_do_mmio`, `vc_handle_mmio`, `snp_cpuid`, `vc_handle_exitcode`) and edk2
//! `OvmfPkg/Library/CcExitLib/CcExitVcHandler.c` (`MmioExit`).

use super::cpuid::CpuidPage;
use super::ghcb::{Field, Ghcb, GhcbError, IoDirection, IoSize, exit_code};
use core::fmt;

/// The #VC error code of an MMIO access: SVM exit NPF (a nested page fault on a page the
/// hypervisor maps with reserved bits). The hardware gives only this code, not the address.
pub const EXIT_NPF: u64 = 0x400;

/// The longest x86 instruction: [`decode`] looks at no more bytes.
pub const MAX_INSN_LEN: usize = 15;

/// The registers the kernel's entry stub saves (RSP stays in the interrupt frame: it is never
/// written here).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Regs {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub rflags: u64,
}

impl Regs {
    /// Register `n` in ModRM numbering (0 RAX, 1 RCX, 2 RDX, 3 RBX, 4 RSP, 5 RBP, 6 RSI, 7 RDI,
    /// 8–15 R8–R15); `None` for RSP and numbers above 15.
    pub fn gpr_mut(&mut self, n: u8) -> Option<&mut u64> {
        Some(match n {
            0 => &mut self.rax,
            1 => &mut self.rcx,
            2 => &mut self.rdx,
            3 => &mut self.rbx,
            5 => &mut self.rbp,
            6 => &mut self.rsi,
            7 => &mut self.rdi,
            8 => &mut self.r8,
            9 => &mut self.r9,
            10 => &mut self.r10,
            11 => &mut self.r11,
            12 => &mut self.r12,
            13 => &mut self.r13,
            14 => &mut self.r14,
            15 => &mut self.r15,
            _ => return None,
        })
    }

    /// The value of register `n` (see [`Regs::gpr_mut`]).
    pub fn gpr(&self, n: u8) -> Option<u64> {
        let mut copy = *self;
        copy.gpr_mut(n).map(|r| *r)
    }
}

/// A register operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reg {
    /// Register 0–15 in ModRM numbering, accessed from its low end.
    Gpr(u8),
    /// AH, CH, DH, BH (0–3): bits 15:8 of RAX, RCX, RDX, RBX. ModRM register 4–7 of a byte
    /// operand means these when the instruction has no REX prefix (with one: SPL, BPL, SIL, DIL).
    HighByte(u8),
}

/// The port of an IN/OUT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortSource {
    Imm(u8),
    Dx,
}

/// What an MMIO write stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioSource {
    Reg(Reg),
    /// The immediate, already extended to the access size (imm32 sign-extended for 64 bits).
    Imm(u64),
}

/// The operation of a decoded instruction. MMIO sizes are in bytes: 1, 2, 4 or 8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Cpuid,
    Rdmsr,
    Wrmsr,
    In {
        port: PortSource,
        size: IoSize,
    },
    Out {
        port: PortSource,
        size: IoSize,
    },
    /// `size` bytes read into `reg`, which is written at `dest_size` bytes: equal for `MOV`,
    /// larger for `MOVZX` (zero extension). A 4-byte destination zero-extends to 64 bits.
    MmioRead {
        reg: Reg,
        size: u8,
        dest_size: u8,
    },
    MmioWrite {
        source: MmioSource,
        size: u8,
    },
}

/// The memory operand of an MMIO instruction, from which the kernel computes the address it
/// translates to the GPA ([`Insn::effective_address`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemOperand {
    /// Register number, 0–15 (4 is RSP).
    pub base: Option<u8>,
    pub index: Option<u8>,
    /// 1, 2, 4 or 8.
    pub scale: u8,
    pub disp: i32,
    /// `[rip + disp]`, relative to the end of the instruction.
    pub rip_relative: bool,
}

/// A decoded instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    /// Its length: what RIP advances by.
    pub len: u8,
    pub op: Op,
    /// For MMIO only.
    pub mem: Option<MemOperand>,
}

impl Insn {
    /// The linear address of the memory operand (MMIO only), given the registers and the
    /// interrupted RSP (from the interrupt frame). Segment bases are 0: CS/DS/ES/SS overrides
    /// are ignored in 64-bit mode and FS/GS are refused by [`decode`]. The kernel translates the
    /// result through its page tables into `Context::mmio_gpa`, as Linux `vc_do_mmio` does.
    pub fn effective_address(&self, regs: &Regs, rsp: u64) -> Option<u64> {
        let m = self.mem?;
        let reg = |n: u8| if n == 4 { Some(rsp) } else { regs.gpr(n) };
        let mut addr = i64::from(m.disp) as u64;
        if m.rip_relative {
            addr = addr.wrapping_add(regs.rip.wrapping_add(self.len.into()));
        }
        if let Some(b) = m.base {
            addr = addr.wrapping_add(reg(b)?);
        }
        if let Some(i) = m.index {
            addr = addr.wrapping_add(reg(i)?.wrapping_mul(m.scale.into()));
        }
        Some(addr)
    }
}

/// Why a #VC was not handled. Each one is fatal: the kernel terminates the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VcError {
    /// The bytes end before the instruction does.
    Truncated,
    /// An exit code, instruction, prefix or operand this handler does not emulate (string I/O,
    /// LOCK/REP, FS/GS, register-only ModRM, RSP as destination, longer than 15 bytes, ...).
    Unsupported,
    /// The instruction is not one that raises this exit code.
    Mismatch,
    /// The hypervisor's answer is an error or lacks a field.
    Ghcb(GhcbError),
    /// The CPUID page cannot answer leaf 0xD subleaf 0/1 for the current XCR0/XSS (Linux:
    /// fatal too).
    CpuidPage,
    /// RDRAND or RDSEED at RIP: never answered through the GHCB, whatever the exit code.
    Entropy,
}

impl fmt::Display for VcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Truncated => "#VC: instruction bytes truncated",
            Self::Unsupported => "#VC: unsupported exit code or instruction",
            Self::Mismatch => "#VC: instruction does not match the exit code",
            Self::Ghcb(_) => "#VC: hypervisor returned an error or an incomplete answer",
            Self::CpuidPage => "#VC: CPUID page cannot compute the XSAVE size for XCR0/XSS",
            Self::Entropy => "#VC: RDRAND/RDSEED is never emulated by the hypervisor",
        })
    }
}

impl From<GhcbError> for VcError {
    fn from(e: GhcbError) -> Self {
        Self::Ghcb(e)
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn byte(&mut self) -> Result<u8, VcError> {
        if self.pos >= MAX_INSN_LEN {
            return Err(VcError::Unsupported);
        }
        let b = *self.bytes.get(self.pos).ok_or(VcError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }
    /// `n` (1, 2 or 4) little-endian bytes, sign-extended.
    fn signed(&mut self, n: usize) -> Result<i64, VcError> {
        let mut v = 0u64;
        for i in 0..n {
            v |= u64::from(self.byte()?) << (8 * i);
        }
        let shift = 64 - 8 * n as u32;
        Ok(((v << shift) as i64) >> shift)
    }
}

/// ModRM, SIB and displacement (64-bit addressing): the register field (with REX.R) and the
/// memory operand. `mod` = 11 (a register, which cannot fault on memory) is refused.
fn modrm(c: &mut Cursor<'_>, rex: u8) -> Result<(u8, MemOperand), VcError> {
    let m = c.byte()?;
    let (md, reg, rm) = (m >> 6, (m >> 3) & 7, m & 7);
    if md == 3 {
        return Err(VcError::Unsupported);
    }
    let (rex_r, rex_x, rex_b) = ((rex >> 2) & 1, (rex >> 1) & 1, rex & 1);
    let mut mem = MemOperand {
        scale: 1,
        ..MemOperand::default()
    };
    let mut disp32 = md == 2;
    if rm == 4 {
        let sib = c.byte()?;
        mem.scale = 1 << (sib >> 6);
        let index = ((sib >> 3) & 7) | (rex_x << 3);
        // Index 100 without REX.X: none.
        mem.index = (index != 4).then_some(index);
        if sib & 7 == 5 && md == 0 {
            disp32 = true;
        } else {
            mem.base = Some((sib & 7) | (rex_b << 3));
        }
    } else if rm == 5 && md == 0 {
        mem.rip_relative = true;
        disp32 = true;
    } else {
        mem.base = Some(rm | (rex_b << 3));
    }
    if md == 1 {
        mem.disp = c.signed(1)? as i32;
    } else if disp32 {
        mem.disp = c.signed(4)? as i32;
    }
    Ok((reg | (rex_r << 3), mem))
}

/// Decodes the instruction at RIP (`bytes`: up to 15 bytes from RIP, 64-bit mode) for the #VC
/// error code `exit_code`: [`exit_code::CPUID`], [`exit_code::MSR`], [`exit_code::IOIO`], or
/// [`EXIT_NPF`] for MMIO (also accepted: [`exit_code::MMIO_READ`] for a read and
/// [`exit_code::MMIO_WRITE`] for a write).
///
/// Prefixes: REX (directly before the opcode) everywhere; `66` and the segment overrides
/// `26`/`2E`/`36`/`3E` (ignored) on I/O and MMIO. Anything else (`F0`, `F2`, `F3`, `64`, `65`,
/// `67`, a prefix after REX) is [`VcError::Unsupported`]. RDRAND and RDSEED are
/// [`VcError::Entropy`] under any exit code (SVM cannot intercept them; see `entropy.rs`).
pub fn decode(bytes: &[u8], exit_code: u64) -> Result<Insn, VcError> {
    use exit_code::{CPUID, IOIO, MMIO_READ, MMIO_WRITE, MSR};
    if super::entropy::rng_instruction(bytes).is_some() {
        return Err(VcError::Entropy);
    }
    if ![CPUID, IOIO, MSR, EXIT_NPF, MMIO_READ, MMIO_WRITE].contains(&exit_code) {
        return Err(VcError::Unsupported);
    }
    let mut c = Cursor { bytes, pos: 0 };
    let (mut opsize16, mut segment, mut rex) = (false, false, 0u8);
    let opcode = loop {
        match c.byte()? {
            0x66 if rex == 0 => opsize16 = true,
            0x26 | 0x2E | 0x36 | 0x3E if rex == 0 => segment = true,
            b @ 0x40..=0x4F if rex == 0 => rex = b,
            b => break b,
        }
    };
    // The operand size of the non-byte forms (REX.W wins over 66).
    let wide = match (rex & 8 != 0, opsize16) {
        (true, _) => 8,
        (_, true) => 2,
        _ => 4,
    };
    let byte_reg = |reg: u8| match reg {
        4..=7 if rex == 0 => Reg::HighByte(reg - 4),
        _ => Reg::Gpr(reg),
    };
    let read = |reg, size, dest_size| Op::MmioRead {
        reg,
        size,
        dest_size,
    };
    let write = |source, size| Op::MmioWrite { source, size };
    let mut mem = None;
    let op = match opcode {
        0x0F => match c.byte()? {
            0xA2 | 0x32 | 0x30 if opsize16 || segment => return Err(VcError::Unsupported),
            0xA2 => Op::Cpuid,
            0x32 => Op::Rdmsr,
            0x30 => Op::Wrmsr,
            op2 @ (0xB6 | 0xB7) => {
                let (reg, m) = modrm(&mut c, rex)?;
                mem = Some(m);
                read(Reg::Gpr(reg), if op2 == 0xB6 { 1 } else { 2 }, wide)
            }
            _ => return Err(VcError::Unsupported),
        },
        0xE4..=0xE7 | 0xEC..=0xEF => {
            let port = match opcode {
                0xE4..=0xE7 => PortSource::Imm(c.byte()?),
                _ => PortSource::Dx,
            };
            let size = match (opcode & 1, wide) {
                (0, _) => IoSize::Byte,
                (_, 2) => IoSize::Word,
                // IN/OUT have no 64-bit form: REX.W leaves 32 bits.
                _ => IoSize::Dword,
            };
            match opcode & 2 {
                0 => Op::In { port, size },
                _ => Op::Out { port, size },
            }
        }
        0x88..=0x8B => {
            let (reg, m) = modrm(&mut c, rex)?;
            mem = Some(m);
            let (size, r) = match opcode & 1 {
                0 => (1, byte_reg(reg)),
                _ => (wide, Reg::Gpr(reg)),
            };
            match opcode & 2 {
                0 => write(MmioSource::Reg(r), size),
                _ => read(r, size, size),
            }
        }
        0xC6 | 0xC7 => {
            let (reg, m) = modrm(&mut c, rex)?;
            // Only /0 is MOV.
            if reg & 7 != 0 {
                return Err(VcError::Unsupported);
            }
            mem = Some(m);
            let size = if opcode == 0xC6 { 1 } else { wide };
            let imm = c.signed(size.min(4).into())?;
            write(MmioSource::Imm(imm as u64 & mask(size)), size)
        }
        // Everything else, string I/O (INS/OUTS, 6C–6F) and unhandled prefixes included.
        _ => return Err(VcError::Unsupported),
    };
    let fits = match op {
        Op::Cpuid => exit_code == CPUID,
        Op::Rdmsr | Op::Wrmsr => exit_code == MSR,
        Op::In { .. } | Op::Out { .. } => exit_code == IOIO,
        Op::MmioRead { .. } => matches!(exit_code, EXIT_NPF | MMIO_READ),
        Op::MmioWrite { .. } => matches!(exit_code, EXIT_NPF | MMIO_WRITE),
    };
    if !fits {
        return Err(VcError::Mismatch);
    }
    let len = c.pos as u8;
    Ok(Insn { len, op, mem })
}

/// What [`prepare`] needs besides the registers.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The SNP CPUID page; `None` under SEV-ES (CPUID then goes to the hypervisor).
    pub cpuid_page: Option<CpuidPage<'a>>,
    /// XCR0 (1 if CR4.OSXSAVE is clear) and IA32_XSS, for CPUID leaf 0xD.
    pub xcr0: u64,
    pub xss: u64,
    /// CR4: CPUID answers from the page report OSXSAVE and OSPKE as CR4 has them.
    pub cr4: u64,
    /// The GHCB page's GPA: its shared buffer carries MMIO data (`SW_SCRATCH`).
    pub ghcb_gpa: u64,
    /// MMIO: the GPA of the access, from [`Insn::effective_address`] translated by the kernel's
    /// page tables (the hardware does not report it). Must be a shared (unencrypted) page.
    pub mmio_gpa: u64,
}

/// The outcome of [`prepare`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Handled without the hypervisor (CPUID from the CPUID page): the registers and RIP are
    /// updated; no `VMGEXIT`, no [`complete`]. (The GHCB is cleared, so a stray [`complete`]
    /// fails rather than applies stale data.)
    Done,
    /// The GHCB holds the request: execute `VMGEXIT`, then call [`complete`].
    Exit,
}

/// The CPUID bits that mirror the guest's own CR4 and that the firmware's table cannot know, as
/// Linux `snp_cpuid_postprocess` sets them: leaf 1 ECX.OSXSAVE (bit 27) = CR4.OSXSAVE (bit 18),
/// leaf 7 subleaf 0 ECX.OSPKE (bit 4) = CR4.PKE (bit 22). The APIC IDs the table holds are taken
/// as they are (this guest runs on one CPU).
pub fn os_bits(leaf: u32, subleaf: u32, mut out: [u32; 4], cr4: u64) -> [u32; 4] {
    let copy = |reg: &mut u32, bit: u32, cr4_bit: u32| {
        *reg = (*reg & !(1 << bit)) | (u32::from(cr4 & (1 << cr4_bit) != 0) << bit);
    };
    match (leaf, subleaf) {
        (1, _) => copy(&mut out[2], 27, 18),
        (7, 0) => copy(&mut out[2], 4, 22),
        _ => {}
    }
    out
}

fn io_port(port: PortSource, regs: &Regs) -> u16 {
    match port {
        PortSource::Imm(p) => p.into(),
        PortSource::Dx => regs.rdx as u16,
    }
}

/// The low `size` bytes (1 to 8).
fn mask(size: u8) -> u64 {
    u64::MAX >> (64 - 8 * u32::from(size.clamp(1, 8)))
}

/// The value of a register operand, truncated to `size` bytes.
fn read_reg(regs: &Regs, reg: Reg, size: u8) -> Result<u64, VcError> {
    let v = match reg {
        Reg::Gpr(n) => regs.gpr(n).ok_or(VcError::Unsupported)?,
        Reg::HighByte(n) => regs.gpr(n & 3).map_or(0, |v| v >> 8),
    };
    Ok(v & mask(size))
}

/// Writes `value` into a register as a `size`-byte MOV does: 1 and 2 bytes (AH..BH included) keep
/// the rest of the register, 4 bytes zero-extend to 64, 8 bytes replace it.
fn write_reg(regs: &mut Regs, reg: Reg, size: u8, value: u64) -> Result<(), VcError> {
    let (n, shift) = match reg {
        Reg::HighByte(n) => (n & 3, 8),
        Reg::Gpr(n) => (n, 0),
    };
    let r = regs.gpr_mut(n).ok_or(VcError::Unsupported)?;
    let keep = if size < 4 { !(mask(size) << shift) } else { 0 };
    *r = (*r & keep) | ((value & mask(size)) << shift);
    Ok(())
}

/// Step one: fills the GHCB for the hypervisor ([`Step::Exit`]) or, for CPUID with a CPUID page,
/// answers at once ([`Step::Done`]).
///
/// CPUID from the page: the values as the table has them (the guest takes the table's values as
/// they are: no APIC-ID or OSXSAVE adjustment), EAX..EDX zero-extended into RAX..RDX. A leaf the
/// page lacks but within a range is all zeros; out of range, all zeros too, as Linux `snp_cpuid`
/// (where [`CpuidPage::lookup`] says `None`). Leaf 0xD subleaf 0/1 whose size the page cannot
/// compute is [`VcError::CpuidPage`].
///
/// MMIO (as Linux `vc_do_mmio` and edk2 `MmioExit`): `SW_EXIT_INFO_1` = `ctx.mmio_gpa`,
/// `SW_EXIT_INFO_2` = the size, `SW_SCRATCH` = the GPA of the shared buffer, which holds the data
/// (a write's value, little-endian, truncated to the size).
pub fn prepare(
    insn: &Insn,
    regs: &mut Regs,
    ghcb: &mut Ghcb,
    ctx: &Context<'_>,
) -> Result<Step, VcError> {
    match insn.op {
        Op::Cpuid => {
            let (leaf, subleaf) = (regs.rax as u32, regs.rcx as u32);
            let Some(page) = ctx.cpuid_page else {
                ghcb.prepare_cpuid(leaf, subleaf, ctx.xcr0);
                if leaf == 0xD && subleaf == 1 {
                    ghcb.set(Field::Xss, ctx.xss);
                }
                return Ok(Step::Exit);
            };
            let out = match page.lookup(leaf, subleaf, ctx.xcr0, ctx.xss) {
                Some(out) => out,
                None if !page.in_range(leaf) => [0; 4],
                None => return Err(VcError::CpuidPage),
            };
            let out = os_bits(leaf, subleaf, out, ctx.cr4);
            ghcb.clear();
            [regs.rax, regs.rbx, regs.rcx, regs.rdx] = out.map(u64::from);
            regs.rip = regs.rip.wrapping_add(insn.len.into());
            return Ok(Step::Done);
        }
        Op::Rdmsr => ghcb.prepare_msr_read(regs.rcx as u32),
        Op::Wrmsr => {
            let value = (regs.rdx << 32) | (regs.rax & 0xFFFF_FFFF);
            ghcb.prepare_msr_write(regs.rcx as u32, value);
        }
        Op::In { port, size } => ghcb.prepare_io(io_port(port, regs), size, IoDirection::In, 0),
        Op::Out { port, size } => {
            let port = io_port(port, regs);
            ghcb.prepare_io(port, size, IoDirection::Out, regs.rax as u32);
        }
        Op::MmioRead { reg, size, .. } => {
            // Refuse an unwritable destination before the device sees the read.
            read_reg(regs, reg, 1)?;
            prepare_mmio(ghcb, ctx, exit_code::MMIO_READ, size);
        }
        Op::MmioWrite { source, size } => {
            let value = match source {
                MmioSource::Reg(r) => read_reg(regs, r, size)?,
                MmioSource::Imm(v) => v,
            };
            prepare_mmio(ghcb, ctx, exit_code::MMIO_WRITE, size);
            let bytes = value.to_le_bytes().into_iter().take(size.into());
            for (d, s) in ghcb.shared_buffer_mut().iter_mut().zip(bytes) {
                *d = s;
            }
        }
    }
    Ok(Step::Exit)
}

fn prepare_mmio(ghcb: &mut Ghcb, ctx: &Context<'_>, code: u64, size: u8) {
    ghcb.clear();
    ghcb.set_exit(code, ctx.mmio_gpa, size.into());
    ghcb.set(Field::SwScratch, Ghcb::shared_buffer_gpa(ctx.ghcb_gpa));
}

/// Step two, after `VMGEXIT`: checks the hypervisor's answer, writes the results into `regs` as
/// the instruction would, and advances RIP. On error nothing is written.
///
/// IN: AL/AX keep the rest of RAX, EAX zero-extends (the CPU's rule; Linux instead replaces all
/// of RAX). RDMSR: EDX:EAX, each zero-extended. MMIO read: see [`Op::MmioRead`].
pub fn complete(insn: &Insn, regs: &mut Regs, ghcb: &Ghcb) -> Result<(), VcError> {
    ghcb.check_response()?;
    let mut out = *regs;
    match insn.op {
        Op::Cpuid => {
            let r = ghcb.cpuid_result()?;
            [out.rax, out.rbx, out.rcx, out.rdx] = r.map(u64::from);
        }
        Op::Rdmsr => {
            let v = ghcb.msr_read_result()?;
            (out.rax, out.rdx) = (v & 0xFFFF_FFFF, v >> 32);
        }
        Op::In { size, .. } => {
            let v = ghcb.io_in_result(size)?;
            let bytes = match size {
                IoSize::Byte => 1,
                IoSize::Word => 2,
                IoSize::Dword => 4,
            };
            write_reg(&mut out, Reg::Gpr(0), bytes, v.into())?;
        }
        Op::MmioRead {
            reg,
            size,
            dest_size,
        } => {
            let mut b = [0u8; 8];
            for (d, s) in b.iter_mut().zip(ghcb.shared_buffer()).take(size.into()) {
                *d = *s;
            }
            write_reg(&mut out, reg, dest_size, u64::from_le_bytes(b))?;
        }
        Op::Wrmsr | Op::Out { .. } | Op::MmioWrite { .. } => {}
    }
    out.rip = out.rip.wrapping_add(insn.len.into());
    *regs = out;
    Ok(())
}

#[cfg(test)]
#[path = "vc_emulate_tests.rs"]
mod emulate_tests;
#[cfg(test)]
#[path = "vc_tests.rs"]
mod tests;
