//! Request plaintext leaves nothing behind, with the enclave's allocator: the same session as
//! `plaintext_wiped.rs` (common/canary.rs), its allocator the enclave's wipe-on-free
//! (`pp_workload::wipe`) over the scanner, so every block reaches the scanner as the enclave
//! frees it. No freed block holds the canary: not the enclave's copies, and not the copies made
//! inside the tokenizers and JSON crates either.
//! Needs the `test-attester` feature and PP_TEST_ROOT_DIR (`cargo xtask test` sets both).
#![cfg(feature = "test-attester")]
// The scanning allocator reads blocks as they are freed: that is what this test is.
#![allow(unsafe_code)]

// Shared with plaintext_wiped.rs, which alone classifies hits by their owner.
#[allow(dead_code)]
#[path = "common/canary.rs"]
mod canary;

#[global_allocator]
static ALLOCATOR: pp_workload::wipe::WipeOnFree<canary::Scanner> =
    pp_workload::wipe::WipeOnFree(canary::Scanner);

#[test]
fn with_the_enclaves_allocator_no_freed_block_holds_the_request() {
    let hits = canary::run();
    let all: Vec<&canary::Hit> = hits.iter().collect();
    assert!(
        all.is_empty(),
        "{} hits:\n{}",
        all.len(),
        canary::show(&all)
    );
}
