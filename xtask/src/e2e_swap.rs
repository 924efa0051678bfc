//! The end-to-end swapped-enclave attack (issue 13 §3, tamper alerts): the gateway connects the
//! device, for each logged instance, to an enclave that attests that instance's logged key
//! configuration and release with a genuine report on the instance's own chip (the test root's
//! attester with the chip id of the instance's publication report) but of a measurement the
//! logged release does not have. The device must refuse, write a
//! `swapped-enclave` evidence file and name it in its error; `pp check-evidence` must prove it
//! offline, and a copy with one report byte changed must not be proven.

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use pp_attestation::Attester;
use pp_attestation::binding::{EXPORTER_LABEL, EXPORTER_LEN};
use pp_protocol::evidence::EvidenceRepr;
use pp_protocol::frame::{ATTEST_REQUEST_MAX_LEN, Frame, FrameRepr, FrameType};
use pp_verifier::test_attester::{TestAttester, TestRoot};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use crate::stack::{Instance, Stack};

/// The swapped enclave's launch measurement: not the test release's.
const SWAPPED_MEASUREMENT: [u8; 48] = [0xEE; 48];

/// Runs the attack, then restores the gateway's honest instance map (restarting the gateway with
/// `restart`).
pub fn attack(
    stack: &mut Stack,
    summarize: &[&str],
    mut restart: impl FnMut(&mut Stack) -> Result<()>,
) -> Result<()> {
    let root = Arc::new(TestRoot::generate(crate::test_root::SEED).context("the test root")?);
    let published = stack.instances.clone();
    let mut swapped = Vec::new();
    for instance in &published {
        // The instance's publication bundle on the CDN: its logged key configuration and release.
        let bundle = std::fs::read(stack.dir.join(format!("cdn/evidence/{}.bin", instance.id)))
            .with_context(|| format!("no publication evidence for {}", instance.id))?;
        let published = EvidenceRepr::from_bytes(&bundle)
            .map_err(|e| anyhow::anyhow!("the publication evidence does not parse: {e}"))?;
        // On the instance's own chip (and TCB), as a guest the operator launched there would be:
        // a report from another chip proves nothing about the operator.
        let report = pp_attestation::Report::new_checked(published.report)
            .map_err(|_| anyhow::anyhow!("the publication's report is malformed"))?;
        let mut attester = TestAttester::new(root.clone(), SWAPPED_MEASUREMENT);
        attester.chip_id = report.chip_id();
        attester.tcb = report.reported_tcb();
        let address = serve(
            attester,
            published.key_config.to_vec(),
            published.release_ref,
        )?;
        swapped.push(Instance {
            id: instance.id.clone(),
            address,
            oneshot_address: None,
        });
    }
    stack.write_instances(&swapped)?;
    restart(stack)?;
    let (ok, out, err) = stack.pp(summarize)?;
    if ok || !err.contains("evidence written to") || !err.contains("swapped-enclave-") {
        bail!(
            "a swapped enclave with the logged key configuration: expected a refusal naming a \
             swapped-enclave evidence file, got:\n{err}{out}"
        );
    }
    println!(
        "e2e: a swapped enclave attesting the logged key configuration: refused ({})",
        err.trim().lines().last().unwrap_or("")
    );
    let file = crate::e2e_witness::newest_evidence(stack, "swapped-enclave")?;
    crate::e2e_witness::check_evidence(
        stack,
        &file,
        true,
        &format!("shows measurement {}", hex::encode(SWAPPED_MEASUREMENT)),
    )?;
    // One byte of the report (its measurement) changed: the report's signature fails.
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&file)?)?;
    let mut bundle = hex::decode(
        v["evidence"]["evidence_hex"]
            .as_str()
            .context("no evidence_hex")?,
    )?;
    // The version byte, the report's 2-byte length, then the measurement at 0x90.
    bundle[3 + 0x90] ^= 1;
    v["evidence"]["evidence_hex"] = hex::encode(bundle).into();
    let doctored = stack.dir.join("doctored-swap.json");
    std::fs::write(&doctored, serde_json::to_vec_pretty(&v)?)?;
    crate::e2e_witness::check_evidence(stack, &doctored, false, "NOT PROVEN")?;
    println!("e2e: pp check-evidence: the swapped enclave proven, a doctored copy refused");

    stack.write_instances(&published)?;
    restart(stack)
}

/// Starts a fake enclave on loopback: TLS 1.3 with a self-signed certificate, then for each
/// connection a genuine report of `attester` (the test root, the instance's chip,
/// [`SWAPPED_MEASUREMENT`]) binding this session's exporter and nonce, `key_config` and
/// `release_ref`. Returns its address.
fn serve(attester: TestAttester, key_config: Vec<u8>, release_ref: [u8; 32]) -> Result<String> {
    let made = rcgen::generate_simple_self_signed(vec![pp_protocol::ENCLAVE_SERVER_NAME.into()])?;
    let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(made.key_pair.serialize_der()));
    let config = Arc::new(
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(vec![made.cert.der().clone()], key)?,
    );
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?.to_string();
    let attester = Arc::new(attester);
    std::thread::spawn(move || {
        for tcp in listener.incoming().map_while(Result::ok) {
            let (config, attester, key_config) =
                (config.clone(), attester.clone(), key_config.clone());
            std::thread::spawn(move || {
                let _ = session(tcp, config, &attester, &key_config, release_ref);
            });
        }
    });
    Ok(address)
}

/// One session: the attestation request, the evidence, then nothing more (the device refuses).
fn session(
    tcp: TcpStream,
    config: Arc<ServerConfig>,
    attester: &TestAttester,
    key_config: &[u8],
    release_ref: [u8; 32],
) -> Result<()> {
    let mut tls = StreamOwned::new(ServerConnection::new(config)?, tcp);
    let frame = pp_protocol::io::read_frame(&mut tls, |t| {
        (t == FrameType::AttestRequest).then_some(ATTEST_REQUEST_MAX_LEN)
    })
    .map_err(|e| anyhow::anyhow!("{e:?}"))?
    .context("closed")?;
    let frame = Frame::new_checked(&frame[..]).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let Ok(FrameRepr::AttestRequest { nonce, .. }) = FrameRepr::parse(&frame) else {
        bail!("not an attestation request");
    };
    let exporter = tls
        .conn
        .export_keying_material([0u8; EXPORTER_LEN], EXPORTER_LABEL, None)?;
    let report_data = pp_attestation::report_data_for(&exporter, &nonce, &release_ref, key_config);
    let evidence = attester
        .attest(&report_data)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let bundle = EvidenceRepr {
        report: &evidence.report,
        vcek: &evidence.vcek_der,
        ask: &evidence.ask_der,
        ark: &evidence.ark_der,
        key_config,
        release_ref,
    }
    .to_vec()
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    pp_protocol::io::write_frame(&mut tls, &FrameRepr::Evidence { bundle: &bundle })
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    // Wait for the device to close the connection.
    let _ = pp_protocol::io::read_frame(&mut tls, |_| Some(0));
    Ok(())
}
