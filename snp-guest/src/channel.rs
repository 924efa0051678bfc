//! The guest side of the guest-request protocol over a VMPCK: sequence numbers, encryption,
//! the hypervisor's answers, and the rule that a key whose sequence state is uncertain is never
//! used again (ABI spec 56860 "SNP_GUEST_REQUEST"; GHCB spec 56421 §4.1.7–4.1.8).

pub use crate::guest_call::TransportError;
use crate::guest_msg::{
    MSG_REPORT_REQ, MSG_REPORT_RSP, MsgError, PAGE_LEN, REPORT_LEN, REPORT_REQ_VERSION,
    SequencePair, Vmpck, report_request, report_response,
};

/// How often a request the hypervisor calls busy is handed over again before giving up.
pub const BUSY_RETRIES: u32 = 16;

/// What the kernel provides: hands the request page to the hypervisor (`VMGEXIT` with exit code
/// 0x8000_0011, or 0x8000_0012 when `certs` is given) and returns with the response page filled.
/// The pages (and `certs`) are shared with the hypervisor; it sees only ciphertext.
pub trait Transport {
    fn request(
        &mut self,
        request: &[u8; PAGE_LEN],
        response: &mut [u8; PAGE_LEN],
        certs: Option<&mut [u8]>,
    ) -> Result<(), TransportError>;

    /// The channel disabled its key after a failure: have it wiped where it came from (the
    /// kernel's secrets page), so that nothing in this guest can use it again. The kernel keeps
    /// the message counter itself and wipes the key on failed exchanges on its own
    /// ([`crate::custody`]); this covers what only the channel sees, such as a response that
    /// does not authenticate.
    fn key_disabled(&mut self) {}

    /// The hypervisor called the request busy; wait before it is sent again (`attempt` from 1).
    fn busy_wait(&mut self, _attempt: u32) {}
}

/// Why a report could not be obtained. No variant carries request data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelError {
    /// Building or checking a message failed.
    Message(MsgError),
    /// The exchange itself failed.
    Transport(TransportError),
    /// The report was fetched without certificates because the buffer given was too small;
    /// the hypervisor needs this many pages.
    CertsTooSmall { pages: u64 },
}

impl core::fmt::Display for ChannelError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Message(e) => write!(f, "{e}"),
            Self::Transport(TransportError::CertsTooSmall { pages })
            | Self::CertsTooSmall { pages } => {
                write!(f, "certificate buffer too small: {pages} pages needed")
            }
            Self::Transport(TransportError::Busy) => f.write_str("hypervisor busy"),
            Self::Transport(TransportError::Hypervisor(e)) => {
                write!(f, "guest request refused by the hypervisor ({e:#x})")
            }
            Self::Transport(TransportError::Firmware(e)) => {
                write!(f, "guest request failed in the firmware ({e:#x})")
            }
            Self::Transport(TransportError::Kernel(code)) => {
                write!(f, "the kernel's guest-request call failed ({code})")
            }
        }
    }
}

impl From<MsgError> for ChannelError {
    fn from(e: MsgError) -> Self {
        Self::Message(e)
    }
}

/// One VMPCK's message channel to the secure processor.
pub struct GuestChannel<T> {
    transport: T,
    key: Option<Vmpck>,
    counter: u32,
    request: [u8; PAGE_LEN],
    response: [u8; PAGE_LEN],
}

impl<T: Transport> GuestChannel<T> {
    /// A channel using `key`, whose message counter (the kernel's, from the secrets page) is
    /// `counter`.
    pub fn new(transport: T, key: Vmpck, counter: u32) -> Self {
        Self {
            transport,
            key: Some(key),
            counter,
            request: [0; PAGE_LEN],
            response: [0; PAGE_LEN],
        }
    }

    /// The message counter as this channel counts it: the last sequence number used.
    pub fn counter(&self) -> u32 {
        self.counter
    }

    /// Whether the key has been wiped after a failure.
    pub fn is_disabled(&self) -> bool {
        self.key.is_none()
    }

    /// An attestation report with `report_data`, requested for VMPL `vmpl`. With `certs`, the
    /// extended request also asks the hypervisor for its certificate table (see
    /// [`crate::certs`]).
    pub fn report(
        &mut self,
        report_data: &[u8; 64],
        vmpl: u32,
        certs: Option<&mut [u8]>,
    ) -> Result<[u8; REPORT_LEN], ChannelError> {
        let key = self.key.as_ref().ok_or(MsgError::KeyDisabled)?;
        let seq = SequencePair::after(self.counter)?;
        key.seal(
            seq.request,
            MSG_REPORT_REQ,
            REPORT_REQ_VERSION,
            &report_request(report_data, vmpl),
            &mut self.request,
        )?;
        let mut outcome = self.exchange(certs);
        let mut certs_short = None;
        if let Err(TransportError::CertsTooSmall { pages }) = outcome {
            // The hypervisor has seen this ciphertext but the firmware has not consumed its
            // sequence number: send the same message without certificates, so that the number
            // is used up and never paired with other plaintext.
            certs_short = Some(pages);
            outcome = self.exchange(None);
        }
        if let Err(e) = outcome {
            self.disable();
            return Err(ChannelError::Transport(e));
        }
        let opened = match key_open(&self.key, seq.response, &mut self.response) {
            Ok(payload) => report_response(payload).copied(),
            Err(e) => Err(e),
        };
        // The firmware has consumed both numbers whatever the payload says (the kernel has
        // moved its counter the same way).
        self.counter = seq.next_counter;
        let report = match opened {
            Ok(report) => report,
            Err(e @ MsgError::ReportStatus(_)) => return Err(e.into()),
            Err(e) => {
                // A response that does not authenticate means the sequence state is unknown.
                self.disable();
                return Err(e.into());
            }
        };
        match certs_short {
            Some(pages) => Err(ChannelError::CertsTooSmall { pages }),
            None => Ok(report),
        }
    }

    fn exchange(&mut self, mut certs: Option<&mut [u8]>) -> Result<(), TransportError> {
        let mut busy = 0;
        loop {
            self.response.fill(0);
            match self
                .transport
                .request(&self.request, &mut self.response, certs.as_deref_mut())
            {
                Err(TransportError::Busy) if busy < BUSY_RETRIES => {
                    busy += 1;
                    self.transport.busy_wait(busy);
                }
                other => return other,
            }
        }
    }

    fn disable(&mut self) {
        self.key = None;
        self.transport.key_disabled();
    }
}

fn key_open<'p>(
    key: &Option<Vmpck>,
    seqno: u64,
    page: &'p mut [u8; PAGE_LEN],
) -> Result<&'p [u8], MsgError> {
    key.as_ref()
        .ok_or(MsgError::KeyDisabled)?
        .open(seqno, MSG_REPORT_RSP, page)
}

#[cfg(test)]
#[path = "channel_tests.rs"]
mod tests;
