//! The device SDK: everything a phone does to use Private Processing without the operator
//! learning what it asks or who asks.
//!
//! 1. [`releases`]: sync the transparency log's checkpoint: witnessed (k of n), fresh, every new
//!    entry checked (revocations recorded); forks and rollbacks refused, with [`evidence`].
//! 2. [`instances`]: read the key CDN's index, used only if it is the newest one in the log
//!    ([`logged_index`]); keep instances whose publication evidence verifies
//!    against a release manifest with an inclusion proof in the log, under that release's TCB
//!    floor and exact guest policy ([`launch_policy`]).
//! 3. [`wallet`]: spend one anonymous Privacy Pass token (fetched from the issuer in batches),
//!    under an issuer key [`issuer_keys`] proved to be in the log (directory and challenge
//!    fetched through the relay).
//! 4. [`oneshot`] (the default): the request sealed to the instance's logged key configuration,
//!    in a BHTTP request with the token, encapsulated to the gateway's logged key, `POST`ed to
//!    the relay's Oblivious HTTP resource ([`ohttp_relay`]); only with a logged index no older
//!    than the key period plus slack.
//! 5. Or, with `--session`: [`tunnel`]: relay (sees the address) → gateway (sees the token) → the
//!    chosen instance, and [`pp_client::connect`]: attested TLS into the enclave, fresh evidence
//!    for *this* session, the same key configuration as published, then one HPKE-sealed request. A genuine report
//!    bound to the instance's logged key configuration that is not of the logged release is
//!    kept as evidence ([`swap_evidence`]).
//! 6. [`receipts`]: a receipt per answered request, re-verifiable offline ([`check_receipt`]).
//!
//! [`verify_report`]: `pp verify-report`, an auditor's offline check of a captured report.
//! [`show`]: what `pp` prints, with outside text made safe for a terminal.
pub mod check_receipt;
pub mod config;
pub mod consent;
pub mod evidence;
pub mod fetch;
pub mod instances;
pub mod issuer_keys;
pub mod key_history;
pub mod launch_policy;
pub mod logged_index;
pub mod ohttp_relay;
pub mod oneshot;
pub mod reads;
pub mod receipts;
pub mod refill;
pub mod releases;
pub mod request;
pub mod show;
pub mod swap_evidence;
#[cfg(all(test, feature = "test-root"))]
mod test_fixture;
pub mod thread;
pub mod tunnel;
pub mod verify_report;
pub mod wallet;
