//! The boot sequence proper (UEFI target only).

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::mem::MaybeUninit;
use core::ptr::NonNull;

use hermit_entry::boot_info::{
    BootInfo, DeviceTreeAddress, HardwareInfo, PlatformInfo, RawBootInfo, SerialPortBase,
};
use hermit_entry::elf::{KernelObject, LoadedKernel};
use uefi::boot::{self, AllocateType, MemoryType};
use uefi::mem::memory_map::MemoryMap;
use uefi::prelude::*;
use uefi::proto::loaded_image::LoadedImage;
use uefi::table::cfg::{ACPI_GUID, ACPI2_GUID};

use crate::bump::Bump;
use crate::paging::{self, Encryption, Layout, PAGE_SIZE, Table};
use crate::serial::fail;
use crate::{cmdline, fdt, memory, sev_boot};

/// The loader's own heap (FDT, boot info, strings), reserved before ExitBootServices.
const HEAP_PAGES: usize = 256;
/// The kernel's `_start` adds 32 KiB to the stack pointer it is given: we give it the bottom of
/// a 32 KiB region we own.
const BOOT_STACK_PAGES: usize = 8;
const KERNEL_ALIGN: usize = 2 << 20;
const COM1: u16 = 0x3f8;

#[global_allocator]
static HEAP: Bump = Bump::new();

/// `hermit-entry` needs the ELF 4 KiB-aligned.
#[repr(C, align(4096))]
struct Aligned<T: ?Sized>(T);

static WORKLOAD: &Aligned<[u8]> = &Aligned(*include_bytes!(env!("PP_WORKLOAD_ELF")));

/// The model weights blob, measured with the rest of this file. It stays where the firmware
/// loaded this image (LOADER_CODE memory, which the kernel is never given), identity-mapped; the
/// workload learns where from `env=PP_WEIGHTS=<addr>,<len>` at the front of the command line.
static WEIGHTS: &Aligned<[u8]> = &Aligned(*include_bytes!(env!("PP_WEIGHTS_BLOB")));

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    // Only the location: the loader handles no request data, but keep messages fixed anyway.
    match info.location() {
        Some(l) => fail(format_args!("panic at {}:{}", l.file(), l.line())),
        None => fail(format_args!("panic")),
    }
}

fn pages(ty: MemoryType, count: usize, what: &str) -> NonNull<u8> {
    boot::allocate_pages(AllocateType::AnyPages, ty, count).unwrap_or_else(|e| {
        fail(format_args!(
            "cannot allocate {count} pages for {what}: {e:?}"
        ))
    })
}

#[entry]
fn main() -> Status {
    println!("pp-loader: {} starting", env!("CARGO_PKG_VERSION"));
    let mut sev = sev_boot::detect();
    let heap = pages(MemoryType::LOADER_DATA, HEAP_PAGES, "the loader heap");
    HEAP.init(heap.as_ptr() as usize, HEAP_PAGES * PAGE_SIZE as usize);

    // Where the weights are goes first on the command line (before any `--`, after which words
    // are the application's arguments).
    let weights = alloc::format!(
        "env=PP_WEIGHTS={:#x},{:#x}",
        WEIGHTS.0.as_ptr() as u64,
        WEIGHTS.0.len()
    );
    let bootargs = match read_cmdline() {
        given if given.is_empty() => weights,
        given => alloc::format!("{weights} {given}"),
    };
    let rsdp =
        find_rsdp().unwrap_or_else(|| fail(format_args!("the firmware published no ACPI RSDP")));

    let object = KernelObject::parse(&WORKLOAD.0).unwrap_or_else(|e| {
        fail(format_args!(
            "the embedded workload is not a Hermit image: {e}"
        ))
    });
    let size = object.mem_size();
    let region = pages(
        MemoryType::LOADER_DATA,
        (size + KERNEL_ALIGN).div_ceil(PAGE_SIZE as usize),
        "the kernel image",
    );
    let start = (region.as_ptr() as usize).next_multiple_of(KERNEL_ALIGN);
    // SAFETY: `start..start + size` lies inside the region just allocated for the kernel.
    let memory = unsafe { core::slice::from_raw_parts_mut(start as *mut MaybeUninit<u8>, size) };
    let LoadedKernel {
        load_info,
        entry_point,
    } = object.load_kernel(memory, start as u64);
    let stack = pages(MemoryType::LOADER_DATA, BOOT_STACK_PAGES, "the boot stack");

    let top_of_ram = top_of_ram();
    let layout = Layout::new(top_of_ram, phys_bits());
    if let Some(facts) = &mut sev {
        sev_boot::share(facts);
    }
    let private = sev
        .as_ref()
        .map(sev_boot::private_memory)
        .unwrap_or_default();
    let encryption = match &sev {
        Some(facts) => Encryption::new(1 << facts.c_bit, &private),
        None => Ok(Encryption::NONE),
    }
    .unwrap_or_else(|e| fail(format_args!("memory encryption: {e}")));
    let table_count = layout
        .tables_needed(&encryption)
        .unwrap_or_else(|e| fail(format_args!("page tables: {e}")));
    let tables_ptr = pages(MemoryType::LOADER_DATA, table_count, "page tables");
    // SAFETY: the allocation holds `table_count` 4 KiB pages, page-aligned, used by nothing else.
    let tables = unsafe {
        core::slice::from_raw_parts_mut(tables_ptr.as_ptr().cast::<Table>(), table_count)
    };
    let cr3 = paging::build(tables, tables_ptr.as_ptr() as u64, layout, &encryption);
    if let Some(facts) = &sev {
        sev_boot::report(facts, table_count);
    }
    println!(
        "pp-loader: workload {} KiB at {start:#x}, entry {entry_point:#x}, RAM top {top_of_ram:#x}, mapped to {:#x}",
        size / 1024,
        layout.limit
    );

    // SAFETY: no boot-services protocol or pool memory is used after this point: everything
    // allocated so far is in LOADER_DATA pages, and output goes straight to COM1.
    let map = unsafe { boot::exit_boot_services(Some(MemoryType::LOADER_DATA)) };
    crate::sev::refuse_unaccepted(&sev_boot::map_entries(&map))
        .unwrap_or_else(|e| fail(format_args!("{e}")));
    let free: Vec<_> = map
        .entries()
        .filter(|d| {
            matches!(
                d.ty,
                MemoryType::CONVENTIONAL
                    | MemoryType::BOOT_SERVICES_CODE
                    | MemoryType::BOOT_SERVICES_DATA
            )
        })
        .map(|d| d.phys_start..d.phys_start + d.page_count * PAGE_SIZE)
        .collect();
    let free = memory::merge(free);
    let fdt = fdt::build(&free, &bootargs, rsdp, sev.as_ref())
        .unwrap_or_else(|e| fail(format_args!("cannot build the device tree: {e:?}")))
        .leak();
    let boot_info = BootInfo {
        hardware_info: HardwareInfo {
            phys_addr_range: 0..top_of_ram,
            serial_port_base: SerialPortBase::new(COM1),
            device_tree: DeviceTreeAddress::new(fdt.as_ptr() as u64),
        },
        load_info,
        platform_info: PlatformInfo::Fdt,
    };
    let raw: &'static RawBootInfo = Box::leak(Box::new(RawBootInfo::from(boot_info)));
    let largest = free.iter().map(|r| r.end - r.start).max().unwrap_or(0);
    println!(
        "pp-loader: {} free ranges (largest {} MiB), loader heap used {} KiB; starting the kernel",
        free.len(),
        largest >> 20,
        HEAP.used() / 1024
    );
    // SAFETY: the page tables identity-map all RAM (including this code, the stack, the kernel
    // image and the boot info); the kernel entry is `extern "C" fn(&RawBootInfo, cpu_id: u32)`.
    unsafe {
        core::arch::asm!(
            "cli",
            "mov cr3, {cr3}",
            "mov rsp, {stack}",
            "xor ebp, ebp",
            "jmp {entry}",
            cr3 = in(reg) cr3,
            stack = in(reg) stack.as_ptr() as u64,
            entry = in(reg) entry_point,
            in("rdi") raw as *const RawBootInfo as u64,
            in("esi") 0u32,
            options(noreturn)
        )
    }
}

fn read_cmdline() -> alloc::string::String {
    let image = boot::open_protocol_exclusive::<LoadedImage>(boot::image_handle())
        .unwrap_or_else(|e| fail(format_args!("cannot open the loaded-image protocol: {e:?}")));
    let options = image.load_options_as_bytes().unwrap_or(&[]);
    cmdline::decode(options).unwrap_or_else(|e| fail(format_args!("bad kernel command line: {e}")))
}

fn find_rsdp() -> Option<u64> {
    uefi::system::with_config_table(|tables| {
        let find = |guid| {
            tables
                .iter()
                .find(|t| t.guid == guid)
                .map(|t| t.address as u64)
        };
        find(ACPI2_GUID).or_else(|| find(ACPI_GUID))
    })
}

/// Highest address of RAM (any memory type that is not MMIO or reserved).
fn top_of_ram() -> u64 {
    let map = boot::memory_map(MemoryType::LOADER_DATA)
        .unwrap_or_else(|e| fail(format_args!("cannot read the memory map: {e:?}")));
    map.entries()
        .filter(|d| {
            !matches!(
                d.ty,
                MemoryType::MMIO
                    | MemoryType::MMIO_PORT_SPACE
                    | MemoryType::RESERVED
                    | MemoryType::UNUSABLE
            )
        })
        .map(|d| d.phys_start + d.page_count * PAGE_SIZE)
        .max()
        .unwrap_or(0)
}

/// Physical address width from CPUID 0x8000_0008.
#[allow(unused_unsafe)]
fn phys_bits() -> u8 {
    // SAFETY: CPUID leaf 0x8000_0008 exists on every x86-64 CPU.
    let leaf = unsafe { core::arch::x86_64::__cpuid(0x8000_0008) };
    (leaf.eax & 0xff) as u8
}
