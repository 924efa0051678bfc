//! The hardware attester end to end on the host: a simulated secure processor (the firmware's
//! side of the guest-request ABI, signing with a generated test VCEK) and a simulated host (the
//! certificate table of the extended request) answer the real [`SnpAttester`], through the
//! kernel's real custody of VMPCK0 (`pp_snp_guest::custody`, as `kernel/sev/guest_request.rs`
//! calls it, over a simulated secrets page), and the device's verifier accepts what it produces.
//! The AMD firmware cannot run here; the guest code is real.

#![cfg(feature = "test-attester")]

use std::sync::Arc;

use pp_attestation::{AttestError, Attester, SnpAttester, TcbVersion, report_data_for};
use pp_snp_guest::certs::CertKind;
use pp_snp_guest::channel::{ChannelError, GuestChannel, Transport, TransportError};
use pp_snp_guest::custody::{Custody, HEADER_LEN, SecretsPage};
use pp_snp_guest::guest_call::{BAD_SEQUENCE, KEY_DISABLED};
use pp_snp_guest::guest_msg::{
    MSG_REPORT_REQ, MSG_REPORT_RSP, MsgError, PAGE_LEN, REPORT_RSP_LEN, Vmpck,
};
use pp_snp_guest::secrets;
use pp_verifier::test_attester::{TestAttester, TestRoot};
use pp_verifier::{Policy, verify};

const VMPCK0: [u8; 32] = [0x3c; 32];
const MEASUREMENT: [u8; 48] = [0x4D; 48];

struct Host {
    guest: TestAttester,
    next_seqno: u64,
    certs: Vec<(CertKind, Vec<u8>)>,
    lie_about_report_data: bool,
}

impl Host {
    fn new(guest: TestAttester) -> Self {
        let certs = vec![
            (CertKind::Ark, guest.root.ark_der().to_vec()),
            (CertKind::Ask, guest.root.ask_der().to_vec()),
            (
                CertKind::Vcek,
                guest.root.vcek_der(&guest.chip_id, guest.tcb).unwrap(),
            ),
        ];
        Self {
            guest,
            next_seqno: 1,
            certs,
            lie_about_report_data: false,
        }
    }

    fn table(&self) -> Vec<u8> {
        let mut offset = (self.certs.len() + 1) * 24;
        let mut table = vec![0; offset];
        for (i, (kind, der)) in self.certs.iter().enumerate() {
            let e = &mut table[i * 24..(i + 1) * 24];
            e[..16].copy_from_slice(&kind.guid());
            e[16..20].copy_from_slice(&(offset as u32).to_le_bytes());
            e[20..24].copy_from_slice(&(der.len() as u32).to_le_bytes());
            offset += der.len();
        }
        for (_, der) in &self.certs {
            table.extend_from_slice(der);
        }
        table
    }
}

impl Transport for &mut Host {
    fn request(
        &mut self,
        request: &[u8; PAGE_LEN],
        response: &mut [u8; PAGE_LEN],
        certs: Option<&mut [u8]>,
    ) -> Result<(), TransportError> {
        let table = self.table();
        if let Some(buf) = &certs
            && buf.len() < table.len()
        {
            return Err(TransportError::CertsTooSmall {
                pages: table.len().div_ceil(4096) as u64,
            });
        }
        let key = Vmpck::new(0, &VMPCK0);
        let mut req = *request;
        let payload = key
            .open(self.next_seqno, MSG_REPORT_REQ, &mut req)
            .map_err(|_| TransportError::Firmware(0x16))?;
        let mut report_data: [u8; 64] = payload[..64].try_into().unwrap();
        if self.lie_about_report_data {
            report_data[0] ^= 1;
        }
        let report = self
            .guest
            .root
            .sign_report(&self.guest.report_repr(&report_data));
        let mut rsp = vec![0; REPORT_RSP_LEN];
        rsp[4..8].copy_from_slice(&(report.len() as u32).to_le_bytes());
        rsp[32..].copy_from_slice(&report);
        key.seal(self.next_seqno + 1, MSG_REPORT_RSP, 1, &rsp, response)
            .unwrap();
        self.next_seqno += 2;
        if let Some(buf) = certs {
            buf[..table.len()].copy_from_slice(&table);
        }
        Ok(())
    }
}

/// The kernel's side of the SNP system calls, as `kernel/sev/guest_request.rs` makes them: the
/// secrets page in its custody, every exchange checked before and settled after.
struct Kernel {
    page: SecretsPage,
    custody: Custody,
    host: Host,
}

impl Kernel {
    /// A guest whose secrets page holds `vmpck0` with message counter `counter`.
    fn new(host: Host, vmpck0: [u8; 32], counter: u32) -> Self {
        let mut page = [0; 4096];
        page[0x20..0x40].copy_from_slice(&vmpck0);
        secrets::set_msg_seqno(&mut page, 0, counter).unwrap();
        Self {
            page,
            custody: Custody::new(),
            host,
        }
    }

    /// What the workload does at start: `sys_pp_snp_vmpck0`, then a channel over the calls.
    fn channel(&mut self) -> Result<GuestChannel<&mut Kernel>, i32> {
        let (key, counter) = self.custody.vmpck0(&self.page)?;
        Ok(GuestChannel::new(self, Vmpck::new(0, &key), counter))
    }

    fn counter(&self) -> u32 {
        secrets::msg_seqno(&self.page, 0).unwrap()
    }
}

impl Transport for &mut Kernel {
    fn request(
        &mut self,
        request: &[u8; PAGE_LEN],
        response: &mut [u8; PAGE_LEN],
        certs: Option<&mut [u8]>,
    ) -> Result<(), TransportError> {
        let header: [u8; HEADER_LEN] = request[..HEADER_LEN].try_into().unwrap();
        self.custody
            .admit(&self.page, &header)
            .map_err(TransportError::Kernel)?;
        let outcome = (&mut self.host).request(request, response, certs);
        self.custody.settle(&mut self.page, &header, outcome);
        outcome
    }

    fn key_disabled(&mut self) {
        self.custody.disable(&mut self.page);
    }
}

fn root() -> Arc<TestRoot> {
    Arc::new(TestRoot::generate([9; 32]).unwrap())
}

#[test]
fn evidence_from_the_guest_request_passes_the_device_verifier() {
    let root = root();
    let host = Host::new(TestAttester::new(root.clone(), MEASUREMENT));
    let mut kernel = Kernel::new(host, VMPCK0, 0);
    let binding = report_data_for(&[1; 32], &[2; 32], &[3; 32], b"key config");
    {
        let attester = SnpAttester::new(kernel.channel().unwrap());
        let evidence = attester.attest(&binding).unwrap();
        let policy = Policy::trusting_test_root(
            root.ark_der(),
            vec![MEASUREMENT],
            TcbVersion::new(3, 0, 8, 115),
        )
        .unwrap();
        // 2026-06-01, inside the test chain's validity.
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_780_272_000);
        let verdict = verify(&evidence, &policy, &binding, now);
        assert!(verdict.accepted(), "{verdict}");
        // A second report uses the next sequence numbers.
        assert!(attester.attest(&binding).is_ok());
    }
    assert_eq!(kernel.host.next_seqno, 5);
    assert_eq!(kernel.counter(), 4, "the kernel moved its counter");

    // A host with a large certificate table: the first request comes back short, is sent again
    // without certificates (the kernel lets the same message out again under its number), and
    // the attester asks once more with a buffer of the size named. A new channel starts from the
    // kernel's counter.
    kernel.host.certs.push((CertKind::Vlek, vec![0x55; 20_000]));
    let attester = SnpAttester::new(kernel.channel().unwrap());
    assert!(attester.attest(&binding).is_ok());
    drop(attester);
    assert_eq!(kernel.counter(), 8);
}

#[test]
fn a_channel_behind_the_kernels_counter_reaches_nobody() {
    let host = Host::new(TestAttester::new(root(), MEASUREMENT));
    let mut kernel = Kernel::new(host, VMPCK0, 0);
    assert!(
        SnpAttester::new(kernel.channel().unwrap())
            .attest(&[1; 64])
            .is_ok()
    );
    // A workload that kept the old counter would reuse sequence numbers 1 and 2.
    let stale = SnpAttester::new(GuestChannel::new(&mut kernel, Vmpck::new(0, &VMPCK0), 0));
    assert_eq!(
        stale.attest(&[2; 64]),
        Err(AttestError::GuestRequest(ChannelError::Transport(
            TransportError::Kernel(BAD_SEQUENCE)
        )))
    );
    drop(stale);
    assert_eq!(kernel.host.next_seqno, 3, "the hypervisor saw nothing more");
}

#[test]
fn wrong_answers_are_refused_with_clear_errors() {
    let root = root();
    let guest = TestAttester::new(root, MEASUREMENT);

    let mut host = Host::new(guest.clone());
    host.lie_about_report_data = true;
    let mut kernel = Kernel::new(host, VMPCK0, 0);
    let attester = SnpAttester::new(kernel.channel().unwrap());
    assert_eq!(
        attester.attest(&[7; 64]),
        Err(AttestError::ReportDataMismatch)
    );

    let mut host = Host::new(guest.clone());
    host.certs.retain(|(k, _)| *k != CertKind::Vcek);
    let mut kernel = Kernel::new(host, VMPCK0, 0);
    let attester = SnpAttester::new(kernel.channel().unwrap());
    assert_eq!(
        attester.attest(&[7; 64]),
        Err(AttestError::MissingCertificate(CertKind::Vcek))
    );

    let mut host = Host::new(guest.clone());
    host.certs.push((CertKind::Vlek, vec![0; 17 * 4096]));
    let mut kernel = Kernel::new(host, VMPCK0, 0);
    let attester = SnpAttester::new(kernel.channel().unwrap());
    assert!(matches!(
        attester.attest(&[7; 64]),
        Err(AttestError::CertificatesTooLarge(pages)) if pages > 17
    ));

    // A guest whose VMPCK is not the one the firmware holds: the firmware refuses, the kernel
    // wipes the key, and no later request is attempted.
    let mut kernel = Kernel::new(Host::new(guest), [0x77; 32], 0);
    let attester = SnpAttester::new(kernel.channel().unwrap());
    let err = attester.attest(&[7; 64]).unwrap_err();
    assert_eq!(
        err,
        AttestError::GuestRequest(ChannelError::Transport(TransportError::Firmware(0x16)))
    );
    assert_eq!(
        err.to_string(),
        "SEV-SNP guest request failed: guest request failed in the firmware (0x16)"
    );
    assert_eq!(
        attester.attest(&[7; 64]),
        Err(AttestError::GuestRequest(ChannelError::Message(
            MsgError::KeyDisabled
        )))
    );
    drop(attester);
    assert!(
        matches!(kernel.channel(), Err(KEY_DISABLED)),
        "wiped in the kernel's page"
    );
}
