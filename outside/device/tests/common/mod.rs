//! The real log, issuer and gateway services on loopback (plain HTTP), for the issuer-key and
//! privacypass-ts interop tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, OnceLock};

use pp_device::releases::LogClient;
use pp_services::gateway::{Gateway, challenge};
use pp_services::http::Limits;
use pp_services::instances::InstanceTable;
use pp_services::issuer::{EpochKey, IssuerService, REQUEST_PATH};
use pp_services::tunnel::{TunnelCounters, TunnelLimits};
use pp_tokens::{
    Issuer, IssuerKeyEntry, RateLimiter, SpentTokens, TokenChallenge, authorization_value,
};
use pp_translog::Log;
use sha2::{Digest, Sha256};

pub const ORIGIN: &str = "gateway.pp.test";
pub const SECRET: &str = "account-secret";

/// Three RSA-2048 keys per test binary (generation is the slow part), as PKCS#8.
pub fn key(n: usize) -> Issuer {
    static KEYS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    let ders = KEYS.get_or_init(|| {
        (0..3)
            .map(|_| Issuer::generate().unwrap().to_pkcs8_der().unwrap())
            .collect()
    });
    Issuer::from_pkcs8_der(&ders[n]).unwrap()
}

pub struct Net {
    pub rt: tokio::runtime::Runtime,
    pub dir: tempfile::TempDir,
    /// What the operator observes, in order of arrival: token requests at the issuer
    /// ([`ISSUANCE`]) and CONNECTs carrying a token at the gateways ([`SPEND`]).
    pub events: Arc<Mutex<Vec<&'static str>>>,
}

/// An event: the issuer received a token request (made with the account credential).
pub const ISSUANCE: &str = "issuance";
/// An event: a gateway received a CONNECT carrying a token.
pub const SPEND: &str = "spend";

impl Net {
    pub fn new() -> Self {
        Self {
            rt: tokio::runtime::Runtime::new().unwrap(),
            dir: tempfile::tempdir().unwrap(),
            events: Arc::default(),
        }
    }

    pub fn serve<H, F>(&self, handler: H) -> SocketAddr
    where
        H: Fn(hyper::Request<hyper::body::Incoming>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = pp_services::http::Reply> + Send + 'static,
    {
        let listener = self
            .rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        self.rt.spawn(pp_services::http::serve(
            listener,
            None,
            Limits::default(),
            handler,
        ));
        addr
    }

    /// A log holding `entries`; returns the device's synced view of it.
    pub fn log(&self, entries: &[&IssuerKeyEntry]) -> LogClient {
        let dir = self.dir.path();
        let mut log = Log::open(&dir.join("log.bin"), &dir.join("log.key")).unwrap();
        for e in entries {
            log.append(&e.to_vec()).unwrap();
        }
        let log = pp_services::loopback::WitnessedLog::start(dir, log, "operator").unwrap();
        let config = pp_device::config::Log {
            url: log.url.clone(),
            public_key: log.public_key_hex.clone(),
            origin: log.origin.clone(),
            witnesses: vec![log.witness_vkey.clone()],
            witness_threshold: 1,
            max_age_secs: 86_400,
        };
        LogClient::sync(&config, dir, pp_device::reads::Reader::direct()).unwrap()
    }

    /// An issuer signing with `keys` (their windows as given).
    pub fn issuer(&self, keys: Vec<(Issuer, u64, u64)>) -> SocketAddr {
        let service = Arc::new(IssuerService {
            keys: keys
                .into_iter()
                .enumerate()
                .map(|(epoch, (issuer, not_before, not_after))| EpochKey {
                    epoch: epoch as u64,
                    not_before,
                    not_after,
                    issuer,
                })
                .collect(),
            accounts: HashMap::from([("a".to_string(), Sha256::digest(SECRET).into())]),
            rate: RateLimiter::new(1000, 3600, 100),
        });
        let events = self.events.clone();
        self.serve(move |req| {
            if req.method() == hyper::Method::POST {
                events.lock().unwrap().push(ISSUANCE);
            }
            let s = service.clone();
            async move { s.handle(req).await }
        })
    }

    /// A gateway accepting tokens of `keys` for issuer `issuer_name`.
    pub fn gateway(&self, issuer_name: &str, keys: Vec<IssuerKeyEntry>, tag: &str) -> SocketAddr {
        self.gateway_with_slots(issuer_name, keys, tag, 4)
    }

    /// A gateway as [`Self::gateway`] with `slots` tunnel slots (none: every CONNECT with a
    /// valid token is refused with 503 before its spend is recorded).
    pub fn gateway_with_slots(
        &self,
        issuer_name: &str,
        keys: Vec<IssuerKeyEntry>,
        tag: &str,
        slots: usize,
    ) -> SocketAddr {
        let gateway = Arc::new(Gateway {
            instances: InstanceTable::from_pairs([("i-0", "127.0.0.1:1")]),
            ohttp: None,
            issuer_keys: keys,
            issuer_request_uri: format!("http://{issuer_name}{REQUEST_PATH}"),
            challenge: challenge(issuer_name, ORIGIN).unwrap(),
            spent: pp_services::spent_store::SpentStore::File(
                SpentTokens::open(&self.dir.path().join(format!("spent-{tag}.bin"))).unwrap(),
            ),
            limits: TunnelLimits::new(slots),
            counters: Arc::new(TunnelCounters::default()),
            reads: Vec::new(),
        });
        let events = self.events.clone();
        self.serve(move |req| {
            if req.headers().contains_key(hyper::header::AUTHORIZATION) {
                events.lock().unwrap().push(SPEND);
            }
            gateway.clone().handle(req)
        })
    }
}

pub fn entry(name: &str, issuer: &Issuer, epoch: u64, window: (u64, u64)) -> IssuerKeyEntry {
    IssuerKeyEntry::new(name, issuer.public_key().clone(), epoch, window.0, window.1).unwrap()
}

pub fn current(now: u64) -> (u64, u64) {
    (now - 100, now + 3600)
}

pub fn expected(issuer_name: &str) -> TokenChallenge {
    TokenChallenge::new(issuer_name.as_bytes(), None, ORIGIN.as_bytes()).unwrap()
}

/// A CONNECT to the gateway with `token`: (status, body).
pub fn spend(gateway: SocketAddr, token: &pp_tokens::Token) -> (u16, String) {
    let mut s = TcpStream::connect(gateway).unwrap();
    write!(
        s,
        "CONNECT i-0:443 HTTP/1.1\r\nHost: i-0:443\r\nAuthorization: {}\r\n\r\n",
        authorization_value(token)
    )
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    let status = text[9..12].parse().unwrap();
    (status, text)
}
