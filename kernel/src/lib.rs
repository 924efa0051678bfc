//! Builds the pinned Hermit kernel (`hermit-kernel` 0.11.0 from crates.io) into `libhermit.a`,
//! the static library the workload links.
//!
//! The pinned source is never committed: the task runner fetches the crate, checks its checksum,
//! copies it into the build directory and applies [`KERNEL_EDITS`] there. Everything the kernel's
//! own (unpublished) build tool did after `cargo build` is re-done in [`archive`].

pub mod archive;
pub mod edit;

use edit::{Files, SourceEdit};

/// Kernel cargo features of the enclave image: ACPI (CPUs, power-off; parsed by our checked
/// module), DHCPv4 on virtio-net over PCI, FSGSBASE for fast TLS, SMP, TCP.
pub const KERNEL_FEATURES: &[&str] = &["acpi", "dhcpv4", "fsgsbase", "pci", "smp", "tcp"];

/// Target the kernel library is compiled for.
pub const KERNEL_TARGET: &str = "x86_64-unknown-none";

/// Prefix given to every kernel symbol that is not part of the system-call surface.
pub const SYMBOL_PREFIX: &str = "hermit";

/// The source edits that hermit-kernel 0.11.0 needs to build with the pinned toolchain
/// (Debian rustc 1.96, LLVM 22) and to build reproducibly.
pub const KERNEL_EDITS: &[SourceEdit] = &[
    SourceEdit {
        files: Files::One("build.rs"),
        find: r#".arg("--section-start=.text=0x8000")"#,
        replace: r#".arg("--section-start=.text=0x8000").arg("--image-base=0x8000")"#,
        count: 1,
        reason: "lld 22 refuses the SMP boot code link with \"section '.text' address (0x8000) is \
                 smaller than image base\"; set the image base to the section start",
    },
    SourceEdit {
        files: Files::One("build.rs"),
        find: r#"let llvm_as = binutil("llvm-as")?;"#,
        replace: r#"let llvm_as = PathBuf::from(env::var_os("PP_LLVM_AS").context("PP_LLVM_AS is not set")?);"#,
        count: 1,
        reason: "the build script looks for llvm-as in rustup's llvm-tools component, which Debian's \
                 toolchain does not have; take the pinned LLVM 22 tool from the environment",
    },
    SourceEdit {
        files: Files::One("build.rs"),
        find: r#"let rust_lld = binutil("rust-lld")?;"#,
        replace: r#"let rust_lld = PathBuf::from(env::var_os("PP_RUST_LLD").context("PP_RUST_LLD is not set")?);"#,
        count: 1,
        reason: "as above, for rust-lld",
    },
    SourceEdit {
        files: Files::RustBelow("src"),
        find: "#[naked]",
        replace: "#[unsafe(naked)]",
        count: 9,
        reason: "rustc 1.88+ accepts naked functions only as the unsafe attribute #[unsafe(naked)]",
    },
    SourceEdit {
        files: Files::One("src/fs/mod.rs"),
        find: "build_time::build_time_utc!()",
        replace: "\"1970-01-01T00:00:00Z\"",
        count: 1,
        reason: "the build time in /proc/version would make every build's bytes differ",
    },
    // --- FPU: eager switching (see kernel/README.md, "FPU state") ---
    SourceEdit {
        files: Files::One("src/scheduler/mod.rs"),
        find: "\t\t\t\tif is_idle || Rc::ptr_eq(&self.current_task, &self.fpu_owner) {\n",
        replace: "\t\t\t\tif !is_idle {\n\t\t\t\t\tunsafe { core::arch::asm!(\"clts\", options(nomem, nostack)); }\n\t\t\t\t\tself.fpu_switch();\n\t\t\t\t}\n\t\t\t\tif is_idle || Rc::ptr_eq(&self.current_task, &self.fpu_owner) {\n",
        count: 1,
        reason: "eager FPU switching: Hermit switched the vector registers lazily (CR0.TS set on a \
                 switch, saved on the next #NM), so the registers stay the previous task's until \
                 the new task's first vector instruction traps. QEMU TCG (10.0) does not raise #NM \
                 for the SHA extension instructions (sha1*/sha256*), so a task resumed between \
                 two of them computed on another task's XMM registers and corrupted them: wrong \
                 SHA-256, e.g. the HKDF of a sealed response (\"the response did not open\"). Now \
                 every switch to a task saves the registers' owner and loads the task's state \
                 with CR0.TS clear (#NM stays the path only for the first use after boot); \
                 this also removes the lazy-FPU side channel (CVE-2018-3665)",
    },
    // --- SEV: our module `pp_sev` (kernel/sev/ + the core-only modules of snp-guest) ---
    SourceEdit {
        files: Files::One("src/arch/x86_64/kernel/mod.rs"),
        find: "pub mod apic;\n",
        replace: "pub mod apic;\npub(crate) mod pp_sev;\n",
        count: 1,
        reason: "declare our SEV module, copied to src/arch/x86_64/kernel/pp_sev/ by the build",
    },
    SourceEdit {
        files: Files::One(PAGING),
        find: "pub fn init() {\n\tmake_p4_writable();",
        replace: "pub fn init() {\n\tcrate::arch::x86_64::kernel::pp_sev::init();\n\tmake_p4_writable();",
        count: 1,
        reason: "learn the C-bit (loader's device tree, checked against SEV_STATUS) before the \
                 first page-table walk",
    },
    SourceEdit {
        files: Files::One(PAGING),
        find: "use crate::{env, scheduler};\n",
        replace: "use crate::{env, scheduler};\nuse crate::arch::x86_64::kernel::pp_sev::paging::{self as pp_sev_paging, PpIdentity};\n",
        count: 1,
        reason: "bring our C-bit helpers into the page-table code",
    },
    SourceEdit {
        files: Files::One(PAGING),
        find: "Mapper, OffsetPageTable, Page,",
        replace: "Mapper, MappedPageTable, Page,",
        count: 1,
        reason: "walk tables with a frame mapping that strips the C-bit (OffsetPageTable would \
                 turn an address with bit 51 into a non-canonical pointer)",
    },
    SourceEdit {
        files: Files::One(PAGING),
        find: "for<'a> OffsetPageTable<'a>: Mapper<S>,",
        replace: "for<'a> MappedPageTable<'a, PpIdentity>: Mapper<S>,",
        count: 4,
        reason: "the mapper type changes with the frame mapping",
    },
    SourceEdit {
        files: Files::One(PAGING),
        find: "pub unsafe fn identity_mapped_page_table() -> OffsetPageTable<'static> {\n\tlet level_4_table_addr = Cr3::read().0.start_address().as_u64();",
        replace: "pub unsafe fn identity_mapped_page_table() -> MappedPageTable<'static, PpIdentity> {\n\tlet level_4_table_addr = pp_sev_paging::strip(Cr3::read().0.start_address().as_u64());",
        count: 1,
        reason: "CR3 carries the C-bit under SEV; the PML4's pointer must not",
    },
    SourceEdit {
        files: Files::One(PAGING),
        find: "OffsetPageTable::new(level_4_table, x86_64::addr::VirtAddr::new(0x0))",
        replace: "MappedPageTable::new(level_4_table, PpIdentity)",
        count: 1,
        reason: "identity mapping that strips the C-bit from table addresses",
    },
    SourceEdit {
        files: Files::One(PAGING),
        find: "Some(PhysAddr::new((frame.start_address() + offset).as_u64()))",
        replace: "Some(PhysAddr::new(pp_sev_paging::strip((frame.start_address() + offset).as_u64())))",
        count: 1,
        reason: "a translated physical address (e.g. for DMA) must not carry the C-bit",
    },
    SourceEdit {
        files: Files::One(PAGING),
        find: "mapper.map_to(page, frame, flags, &mut *frame_allocator)",
        replace: "mapper.map_to(page, pp_sev_paging::leaf_frame(frame, flags), flags, &mut pp_sev_paging::EncryptedTables(&mut *frame_allocator))",
        count: 1,
        reason: "private mappings (all but devices) and new page tables get the C-bit",
    },
    SourceEdit {
        files: Files::One(PAGING),
        find: "identity_mapped_page_table().identity_map(frame, flags, &mut *frame_allocator)",
        replace: "pp_sev_paging::identity_map(&mut identity_mapped_page_table(), frame, flags, &mut *frame_allocator)",
        count: 1,
        reason: "ACPI tables are private memory: identity-map them with the C-bit",
    },
    SourceEdit {
        files: Files::One(PAGING),
        find: "let p4_addr = x86_64::VirtAddr::new(p4_frame.start_address().as_u64());",
        replace: "let p4_addr = x86_64::VirtAddr::new(pp_sev_paging::strip(p4_frame.start_address().as_u64()));",
        count: 1,
        reason: "the PML4 address from CR3 without the C-bit",
    },
    SourceEdit {
        files: Files::One(PAGING),
        find: "let virt = x86_64::VirtAddr::new(phys.as_u64());",
        replace: "let virt = x86_64::VirtAddr::new(pp_sev_paging::strip(phys.as_u64()));",
        count: 2,
        reason: "the debug printers turn entry addresses into pointers",
    },
    SourceEdit {
        files: Files::One("src/arch/x86_64/mm/physicalmem.rs"),
        find: "identity_mapped_page_table().identity_map(frame, flags, &mut *physical_free_list)",
        replace: "crate::arch::x86_64::kernel::pp_sev::paging::identity_map(&mut identity_mapped_page_table(), frame, flags, &mut *physical_free_list)",
        count: 1,
        reason: "RAM is identity-mapped private (C-bit), as the loader mapped it",
    },
    SourceEdit {
        files: Files::One("src/arch/x86_64/mm/physicalmem.rs"),
        find: "assert_eq!(current_frame, frame)",
        replace: "assert!(crate::arch::x86_64::kernel::pp_sev::paging::already_mapped(current_frame, frame))",
        count: 1,
        reason: "under SEV the loader's identity map stands as it is (private RAM with the C-bit; \
                 2 MiB pages at the edge of the free range may be shared or split into 4 KiB)",
    },
    SourceEdit {
        files: Files::One("src/arch/x86_64/kernel/mod.rs"),
        find: "env::set_boot_info(*boot_info.unwrap());\n",
        replace: "env::set_boot_info(*boot_info.unwrap());\n\t\tcrate::arch::x86_64::kernel::pp_sev::early_init();\n",
        count: 1,
        reason: "under SEV-ES/SNP the #VC handler must exist before the first port I/O (the \
                 welcome message) or CPUID; the C-bit before the first mapping",
    },
    SourceEdit {
        files: Files::One("src/arch/x86_64/kernel/interrupts.rs"),
        find: "\tset_general_handler!(&mut *idt, handle_interrupt, 32..);\n",
        replace: "\tset_general_handler!(&mut *idt, handle_interrupt, 32..);\n\tcrate::arch::x86_64::kernel::pp_sev::vc_handler::install(&mut idt);\n",
        count: 1,
        reason: "the kernel's generic handlers overwrite vector 29: put the #VC handler back \
                 (no IST)",
    },
    SourceEdit {
        files: Files::One("src/arch/x86_64/kernel/gdt.rs"),
        find: "\t\tlet size = if i == 0 {\n\t\t\tIST_SIZE\n",
        replace: "\t\tlet size = if i == 0 || i == crate::arch::x86_64::kernel::pp_sev::vc_handler::IST_INDEX {\n\t\t\tIST_SIZE\n",
        count: 1,
        reason: "a full-size interrupt stack of its own for #VC (the workload's code keeps a red \
                 zone below its stack pointer, which an exception frame on that stack would clobber)",
    },
    SourceEdit {
        files: Files::One("src/arch/x86_64/kernel/gdt.rs"),
        find: "\t\ttables::load_tss(tss_selector);\n",
        replace: "\t\ttables::load_tss(tss_selector);\n\t\tcrate::arch::x86_64::kernel::pp_sev::vc_handler::after_gdt();\n",
        count: 1,
        reason: "re-point vector 29 at the kernel's own code selector (the early entry carries the \
                 firmware's) and at its interrupt stack, now that both exist",
    },
    SourceEdit {
        files: Files::One("src/arch/x86_64/kernel/processor.rs"),
        find: "pub fn supports_mwait() -> bool {\n\tFEATURES.supports_mwait",
        replace: "pub fn supports_mwait() -> bool {\n\t!crate::arch::x86_64::kernel::pp_sev::vc_handler::active() && FEATURES.supports_mwait",
        count: 1,
        reason: "MONITOR/MWAIT raise #VC under SEV-ES/SNP, which the handler does not emulate: \
                 idle with HLT instead",
    },
    SourceEdit {
        files: Files::One("src/arch/x86_64/kernel/mod.rs"),
        find: "\t\t_ => apic::local_apic_id_count(),\n",
        replace: "\t\t_ if crate::arch::x86_64::kernel::pp_sev::single_cpu() => 1,\n\t\t_ => apic::local_apic_id_count(),\n",
        count: 1,
        reason: "under SEV-ES/SNP application processors cannot be started with INIT/SIPI (SNP \
                 needs AP creation with a VMSA, not implemented), and the AP boot code takes CR3 as \
                 32 bits, which the C-bit does not fit: under any SEV the boot CPU only",
    },
    SourceEdit {
        files: Files::One("src/arch/x86_64/kernel/apic.rs"),
        find: "pub fn boot_application_processors() {\n",
        replace: "pub fn boot_application_processors() {\n\tif crate::arch::x86_64::kernel::pp_sev::single_cpu() {\n\t\twarn!(\"pp-sev: application processors are not started under SEV; running on the boot CPU\");\n\t\treturn;\n\t}\n",
        count: 1,
        reason: "as above: do not send INIT/SIPI under SEV-ES/SNP",
    },
    SourceEdit {
        files: Files::One("src/mm/device_alloc.rs"),
        find: "let size = layout.size().align_up(BasePageSize::SIZE as usize);\n\t\tlet ptr = super::allocate(size, true)",
        replace: "let size = layout.size().align_up(BasePageSize::SIZE as usize);\n\t\tif let Some(shared) = crate::arch::x86_64::kernel::pp_sev::shared::allocate(size) {\n\t\t\treturn shared;\n\t\t}\n\t\tlet ptr = super::allocate(size, true)",
        count: 1,
        reason: "under SEV every device buffer comes from the pool shared with the host (private \
                 memory is unreadable to devices)",
    },
    SourceEdit {
        files: Files::One("src/mm/device_alloc.rs"),
        find: "let addr = ptr.as_ptr().expose_provenance().into();",
        replace: "if crate::arch::x86_64::kernel::pp_sev::shared::deallocate(ptr.as_ptr().expose_provenance(), size) {\n\t\t\treturn;\n\t\t}\n\t\tlet addr = ptr.as_ptr().expose_provenance().into();",
        count: 1,
        reason: "buffers from the shared pool go back to it",
    },
    SourceEdit {
        files: Files::One("src/drivers/net/virtio/mod.rs"),
        find: "\t\t\t| virtio::net::F::MQ;\n",
        replace: "\t\t\t| virtio::net::F::MQ;\n\t\tif crate::arch::x86_64::kernel::pp_sev::shared::active() {\n\t\t\t// pp: the device reaches memory only through shared buffers; packed-ring event\n\t\t\t// structures are not allocated from them.\n\t\t\tfeatures.insert(virtio::net::F::ACCESS_PLATFORM);\n\t\t\tfeatures.remove(virtio::net::F::RING_PACKED);\n\t\t}\n",
        count: 1,
        reason: "under SEV negotiate VIRTIO_F_ACCESS_PLATFORM (QEMU's iommu_platform) and keep to \
                 the split ring, whose memory all comes from DeviceAlloc",
    },
    SourceEdit {
        files: Files::One("src/arch/x86_64/kernel/apic.rs"),
        find: "let phys_addr = pt.translate_addr(virt_addr.into()).unwrap();",
        replace: "let phys_addr = x86_64::PhysAddr::new(crate::arch::x86_64::kernel::pp_sev::paging::strip(pt.translate_addr(virt_addr.into()).unwrap().as_u64()));",
        count: 1,
        reason: "the SMP boot-code identity check compares addresses without the C-bit",
    },
    // --- Entropy: our module `pp_entropy` (kernel/entropy/ + snp-guest's entropy, in pp_sev) ---
    SourceEdit {
        files: Files::One("src/arch/x86_64/kernel/mod.rs"),
        find: "pub mod pit;\n",
        replace: "pub mod pit;\npub(crate) mod pp_entropy;\n",
        count: 1,
        reason: "declare our entropy module, copied to src/arch/x86_64/kernel/pp_entropy/ by the build",
    },
    SourceEdit {
        files: Files::One("src/arch/x86_64/kernel/mod.rs"),
        find: "\tinterrupts::install();\n\tsystemtime::init();\n",
        replace: "\tinterrupts::install();\n\tpp_entropy::startup();\n\tsystemtime::init();\n",
        count: 1,
        reason: "startup health test of RDSEED and RDRAND on the boot CPU as soon as the #UD handler \
                 exists, before devices, network or the application: a missing or broken source \
                 stops the boot before any key exists",
    },
    SourceEdit {
        files: Files::One("src/arch/x86_64/kernel/interrupts.rs"),
        find: "fn invalid_opcode_exception(stack_frame: ExceptionStackFrame) {\n\tswapgs(&stack_frame);\n",
        replace: "fn invalid_opcode_exception(stack_frame: ExceptionStackFrame) {\n\tswapgs(&stack_frame);\n\tcrate::arch::x86_64::kernel::pp_entropy::on_invalid_opcode();\n",
        count: 1,
        reason: "a #UD from our RDSEED/RDRAND (a CPU without them, e.g. a CPU model with them \
                 masked) stops the boot with a line naming the instruction",
    },
    SourceEdit {
        files: Files::One("src/arch/x86_64/kernel/processor.rs"),
        find: "pub fn seed_entropy() -> Option<[u8; 32]> {\n\tlet mut buf",
        replace: "pub fn seed_entropy() -> Option<[u8; 32]> {\n\tSome(crate::arch::x86_64::kernel::pp_entropy::seed())\n}\n\n/// pp: Hermit's CPUID-gated RDSEED loop, no longer called (see pp_entropy).\n#[allow(dead_code)]\nfn hermit_seed_entropy() -> Option<[u8; 32]> {\n\tlet mut buf",
        count: 1,
        reason: "the ChaCha20 pool behind sys_read_entropy and sys_secure_rand32/64 is seeded from \
                 our health-tested RDSEED/RDRAND, never gated on a CPUID bit (the hypervisor \
                 writes the SNP CPUID page) and never None",
    },
    SourceEdit {
        files: Files::One("src/syscalls/entropy.rs"),
        find: "\t\twarn!(\"Unable to read entropy! Fallback to a naive implementation!\");\n\t\tfor i in &mut *buf {\n\t\t\t*i = (generate_park_miller_lehmer_random_number() & 0xff)\n\t\t\t\t.try_into()\n\t\t\t\t.unwrap();\n\t\t}\n\t\tbuf.len().try_into().unwrap()\n",
        replace: "\t\tcrate::arch::x86_64::kernel::pp_entropy::unavailable()\n",
        count: 1,
        reason: "sys_read_entropy answered from a Park-Miller LCG seeded with 32 TSC bits, and \
                 reported success, when the pool had no seed: stop instead (unreachable now that \
                 the seed never fails, kept as a stop)",
    },
    SourceEdit {
        files: Files::One("src/syscalls/entropy.rs"),
        find: "pub extern \"C\" fn sys_rand() -> u32 {\n\tgenerate_park_miller_lehmer_random_number()\n}",
        replace: "pub extern \"C\" fn sys_rand() -> u32 {\n\t(crate::arch::x86_64::kernel::pp_entropy::random_u64() % RAND_MAX) as u32\n}",
        count: 1,
        reason: "C's rand() was a Park-Miller LCG seeded with 32 TSC bits (the host controls the \
                 TSC under SNP without Secure TSC): answer it from our source too, so no kernel \
                 door hands out predictable numbers (nothing we link calls it today)",
    },
    SourceEdit {
        files: Files::One("src/syscalls/entropy.rs"),
        find: "pub extern \"C\" fn sys_srand(seed: u32) {\n\t*(PARK_MILLER_LEHMER_SEED.lock()) = seed;\n}",
        replace: "pub extern \"C\" fn sys_srand(_seed: u32) {}",
        count: 1,
        reason: "a seed cannot make rand() predictable any more: srand() is accepted and ignored",
    },
    SourceEdit {
        files: Files::One("src/executor/device.rs"),
        find: "config.random_seed = (arch::kernel::systemtime::now_micros()) / 1_000_000;",
        replace: "config.random_seed = crate::arch::x86_64::kernel::pp_entropy::random_u64();",
        count: 2,
        reason: "smoltcp's generator (TCP initial sequence numbers, ephemeral ports, DHCP ids) was \
                 seeded with the boot time in seconds; seed it from our source (its output is \
                 still not a secret: smoltcp's generator is not cryptographic)",
    },
    SourceEdit {
        files: Files::One("src/drivers/pci.rs"),
        find: "\t\tlet physical_address = address;\n\t\tlet virtual_address = if env::is_uefi() {\n",
        replace: "\t\tif env::is_uefi() && !crate::arch::x86_64::kernel::pp_sev::paging::identity_mapped_shared(&unsafe { crate::arch::x86_64::mm::paging::identity_mapped_page_table() }, address, size as u64) {\n\t\t\terror!(\"pp-sev: BAR {index} at {address:#x} ({size:#x} bytes) is not shared device memory; refused\");\n\t\t\treturn None;\n\t\t}\n\t\tlet physical_address = address;\n\t\tlet virtual_address = if env::is_uefi() {\n",
        count: 1,
        reason: "under UEFI Hermit uses a BAR through the loader's identity map; under SEV the host \
                 picks BARs, and one placed over private RAM would turn the driver's register \
                 writes into writes to the enclave's own memory: refuse a BAR that is not \
                 identity-mapped shared (the virtio driver unwraps the refusal: the kernel panics)",
    },
    SourceEdit {
        files: Files::One("src/drivers/virtio/transport/pci.rs"),
        find: "\tpub fn notification_location(&self, vq_cfg_handler: &mut VqCfgHandler<'_>) -> *mut le32 {\n\t\tlet addend = u32::from(vq_cfg_handler.notif_off()) * self.notify_off_multiplier;\n\t\tlet addr = self.base_addr + u64::from(addend);\n\t\tptr::with_exposed_provenance_mut(addr.try_into().unwrap())\n\t}\n",
        replace: "\tpub fn notification_location(&self, vq_cfg_handler: &mut VqCfgHandler<'_>, notification_data: bool) -> Option<*mut le32> {\n\t\tlet queue_notify_off = vq_cfg_handler.notif_off();\n\t\tlet table = unsafe { crate::arch::x86_64::mm::paging::identity_mapped_page_table() };\n\t\tmatch crate::arch::x86_64::kernel::pp_sev::notify::notify_address(&table, self.base_addr, self.length, queue_notify_off, self.notify_off_multiplier, notification_data) {\n\t\t\tOk(addr) => Some(ptr::with_exposed_provenance_mut(addr.try_into().ok()?)),\n\t\t\tErr(refusal) => {\n\t\t\t\terror!(\"pp-virtio: queue {}: {refusal}; refused\", vq_cfg_handler.vq_index);\n\t\t\t\tNone\n\t\t\t}\n\t\t}\n\t}\n",
        count: 1,
        reason: "the notify address base + queue_notify_off * notify_off_multiplier (both the \
                 host's) was multiplied in u32 (wrapping) and never checked against the notify \
                 capability's length: a host could aim every notify store at any address, under \
                 SEV at private memory. Our pp_sev::notify computes it in u64, requires the whole \
                 store (2 bytes, 4 with VIRTIO_F_NOTIFICATION_DATA) inside the capability and, \
                 under SEV, identity-mapped shared; otherwise no address",
    },
    SourceEdit {
        files: Files::RustBelow("src/drivers/virtio/virtqueue"),
        find: "let mut notif_ctrl = NotifCtrl::new(notif_cfg.notification_location(&mut vq_handler));",
        replace: "let mut notif_ctrl = NotifCtrl::new(notif_cfg.notification_location(&mut vq_handler, features.contains(virtio::F::NOTIFICATION_DATA)).ok_or(VirtqError::General)?);",
        count: 2,
        reason: "split and packed queues pass whether notification data (a 4-byte store) is used \
                 and fail with an error when the notify address is refused, before the queue is \
                 enabled (Hermit's net driver unwraps it: the kernel panics). PCI transport only: \
                 the MMIO transport's notification_location keeps its old signature",
    },
    // --- ACPI: our module `pp_acpi` (kernel/acpi/) in place of Hermit's `acpi` ---
    SourceEdit {
        files: Files::One("src/arch/x86_64/kernel/mod.rs"),
        find: "#[cfg(feature = \"acpi\")]\npub mod acpi;\n",
        replace: "#[cfg(feature = \"acpi\")]\n#[path = \"pp_acpi/mod.rs\"]\npub mod acpi;\n",
        count: 1,
        reason: "the kernel's acpi module is ours (copied to src/arch/x86_64/kernel/pp_acpi/): \
                 Hermit's trusted the host's table lengths (a table shorter than its header, an \
                 MADT entry of length 0, an _S5_ object at a table's end read outside the table, \
                 looped or panicked); ours checks every table and stops on a malformed one",
    },
    SourceEdit {
        files: Files::One("src/arch/x86_64/kernel/apic.rs"),
        find: "#[cfg(feature = \"acpi\")]\nfn detect_from_acpi() -> Result<PhysAddr, ()> {\n\t// Get the Multiple APIC",
        replace: "#[cfg(feature = \"acpi\")]\nfn detect_from_acpi() -> Result<PhysAddr, ()> {\n\tfor &id in acpi::madt().apic_ids() {\n\t\tadd_local_apic_id(id);\n\t}\n\tinit_ioapic_address(PhysAddr::new(acpi::tables::IO_APIC_ADDRESS.into()));\n\tOk(PhysAddr::new(acpi::tables::LOCAL_APIC_ADDRESS.into()))\n}\n\n/// pp: Hermit's MADT walk (entry lengths unchecked), compiled out.\n#[cfg(any())]\nfn hermit_detect_from_acpi() -> Result<PhysAddr, ()> {\n\t// Get the Multiple APIC",
        count: 1,
        reason: "the APIC setup takes the CPUs from our checked MADT and the architectural \
                 local/I/O APIC addresses (the only ones our check accepts); Hermit's walk, which \
                 trusted the host's entry lengths, is compiled out",
    },
];

/// The kernel's page-table code, which most SEV edits touch.
const PAGING: &str = "src/arch/x86_64/mm/paging.rs";

/// Where the build copies our SEV module inside the kernel source.
pub const SEV_MODULE_DIR: &str = "src/arch/x86_64/kernel/pp_sev";

/// The files of that module: ours from `kernel/sev/`, and the hardware-free modules of
/// `snp-guest/` (they use only `core` and reach each other through `super::`). Paths are
/// relative to the repository root.
pub const SEV_MODULE_FILES: &[(&str, &str)] = &[
    ("kernel/sev/mod.rs", "mod.rs"),
    ("kernel/sev/facts.rs", "facts.rs"),
    ("kernel/sev/guest_request.rs", "guest_request.rs"),
    ("kernel/sev/paging.rs", "paging.rs"),
    ("kernel/sev/notify.rs", "notify.rs"),
    ("kernel/sev/shared.rs", "shared.rs"),
    ("kernel/sev/vc_handler.rs", "vc_handler.rs"),
    ("snp-guest/src/vc.rs", "vc.rs"),
    ("snp-guest/src/page_pool.rs", "page_pool.rs"),
    ("snp-guest/src/cpuid.rs", "cpuid.rs"),
    ("snp-guest/src/ghcb.rs", "ghcb.rs"),
    ("snp-guest/src/guest_call.rs", "guest_call.rs"),
    ("snp-guest/src/secrets.rs", "secrets.rs"),
    ("snp-guest/src/custody.rs", "custody.rs"),
    ("snp-guest/src/msr.rs", "msr.rs"),
    ("snp-guest/src/psc.rs", "psc.rs"),
    ("snp-guest/src/entropy.rs", "entropy.rs"),
];

/// Where the build copies our entropy module inside the kernel source.
pub const ENTROPY_MODULE_DIR: &str = "src/arch/x86_64/kernel/pp_entropy";

/// The files of that module (its policy and health tests are `snp-guest/src/entropy.rs`, copied
/// into the SEV module, whose #VC decoder uses it too).
pub const ENTROPY_MODULE_FILES: &[(&str, &str)] = &[("kernel/entropy/mod.rs", "mod.rs")];

/// Where the build copies our ACPI module inside the kernel source (declared as the kernel's
/// `acpi` module).
pub const ACPI_MODULE_DIR: &str = "src/arch/x86_64/kernel/pp_acpi";

/// The files of that module: the kernel glue and the table checks (host-tested in
/// `tests/acpi_tables.rs`).
pub const ACPI_MODULE_FILES: &[(&str, &str)] = &[
    ("kernel/acpi/mod.rs", "mod.rs"),
    ("kernel/acpi/error.rs", "error.rs"),
    ("kernel/acpi/tables.rs", "tables.rs"),
];

/// Every module of ours the build copies into the kernel source: its folder there and its files.
pub const KERNEL_MODULES: &[(&str, &[(&str, &str)])] = &[
    (SEV_MODULE_DIR, SEV_MODULE_FILES),
    (ENTROPY_MODULE_DIR, ENTROPY_MODULE_FILES),
    (ACPI_MODULE_DIR, ACPI_MODULE_FILES),
];
