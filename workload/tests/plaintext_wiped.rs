//! Request plaintext leaves nothing behind, the enclave's own part (common/canary.rs runs the
//! session under a scanning allocator, without the enclave's wipe-on-free allocator): no block
//! freed by the enclave's own code (workload, protocol, inference) holds the canary, and no block
//! at all holds it until teardown (plaintext kept between requests).
//!
//! Allowed here, and only here: blocks freed inside the `tokenizers` and `serde_json` crates
//! (their internal copies: the normalised and split text, the BPE merge heap, the JSON scratch
//! buffer for escaped strings). The enclave cannot reach them through any API of those crates; its allocator wipes
//! them (`pp_workload::wipe`), which `plaintext_wiped_alloc.rs` checks with the same session.
//! Needs the `test-attester` feature and PP_TEST_ROOT_DIR (`cargo xtask test` sets both).
#![cfg(feature = "test-attester")]
// The scanning allocator reads blocks as they are freed: that is what this test is.
#![allow(unsafe_code)]

#[path = "common/canary.rs"]
mod canary;

#[global_allocator]
static ALLOCATOR: canary::Scanner = canary::Scanner;

/// Crates whose internal copies the enclave cannot wipe itself (see the module documentation);
/// `dary_heap` is the heap the tokenizers' BPE merges keep (`Word::merge_all`), used by nothing
/// else in the enclave.
const THIRD_PARTY: [&str; 3] = ["tokenizers::", "serde_json::", "dary_heap::"];

#[test]
fn the_enclaves_own_code_leaves_no_copy_of_the_request() {
    let hits = canary::run();
    let third_party =
        |h: &&canary::Hit| !h.teardown && THIRD_PARTY.iter().any(|c| h.owner().starts_with(c));
    let ours: Vec<&canary::Hit> = hits.iter().filter(|h| !third_party(h)).collect();
    assert!(
        ours.is_empty(),
        "{} of {} hits are the enclave's own copies or kept until teardown:\n{}",
        ours.len(),
        hits.len(),
        canary::show(&ours)
    );
    // The canary reached the tokenizers (else this test would show nothing).
    assert!(hits.iter().any(|h| h.owner().contains("tokenizers::")));
}
