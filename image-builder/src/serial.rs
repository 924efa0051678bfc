//! COM1 output by port I/O: works before and after ExitBootServices, needs no firmware.

use core::fmt;

const COM1: u16 = 0x3f8;
/// QEMU's `isa-debug-exit` device: a write ends QEMU with status `(value << 1) | 1`.
const DEBUG_EXIT: u16 = 0xf4;

fn outb(port: u16, value: u8) {
    // SAFETY: writing COM1's data register or the debug-exit port has no effect on memory.
    unsafe {
        core::arch::asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    }
}

fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: reading COM1's line status register has no effect on memory.
    unsafe {
        core::arch::asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack, preserves_flags))
    }
    value
}

/// The serial console (OVMF has already programmed the UART).
pub struct Serial;

impl fmt::Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for byte in s.bytes() {
            if byte == b'\n' {
                put(b'\r');
            }
            put(byte);
        }
        Ok(())
    }
}

fn put(byte: u8) {
    // Wait (bounded) for the transmit holding register to empty.
    for _ in 0..100_000 {
        if inb(COM1 + 5) & 0x20 != 0 {
            break;
        }
    }
    outb(COM1, byte);
}

#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = writeln!($crate::serial::Serial, $($arg)*);
    }};
}

/// Report a fatal error, ask QEMU to exit (if it has `isa-debug-exit`), and halt forever.
pub fn fail(args: fmt::Arguments<'_>) -> ! {
    use core::fmt::Write as _;
    let _ = writeln!(Serial, "pp-loader: error: {args}");
    let _ = writeln!(Serial, "pp-loader: halted");
    outb(DEBUG_EXIT, 0x7f);
    loop {
        // SAFETY: stopping the CPU with interrupts off is what we want here.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) }
    }
}
