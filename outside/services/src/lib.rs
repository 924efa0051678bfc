//! The parties outside the enclave, each a small network service: the token issuer, the key CDN,
//! the relay, the operator's gateway, the transparency log and its witness. None of them can read a request:
//! requests are sealed to an attested enclave key inside a TLS session that ends in the enclave.
//! Every service bounds connections (in total and per client where it sees addresses), request
//! sizes and time (handshake, request head, idle tunnels), and logs counts only.
// Handlers return `Result<_, Reply>` so a refusal is the reply itself; a reply is built once per
// request, so its size on the stack does not matter.
#![allow(clippy::result_large_err)]

pub mod cdn;
pub mod clients;
pub mod cosign;
pub mod gateway;
pub mod http;
pub mod instances;
pub mod issuer;
pub mod loopback;
pub mod ogr;
pub mod ohttp_key;
pub mod oneshot;
pub mod orr;
pub mod publish;
pub mod reads;
pub mod relay;
pub mod run;
pub mod spent_store;
pub mod tlog;
pub mod tls;
pub mod tunnel;
pub mod witness;
