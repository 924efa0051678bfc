//! Guest messages to the AMD secure processor (SEV-SNP ABI spec 56860, "SNP_GUEST_REQUEST",
//! tables "Message Header Format" and "MSG_REPORT_REQ / MSG_REPORT_RSP").
//!
//! A message is one 4 KiB page: a 96-byte header, then the payload encrypted with AES-256-GCM
//! under a VM platform communication key (VMPCK) from the secrets page. The IV is the message
//! sequence number (little-endian in the first 8 of 12 bytes), the additional authenticated data
//! is the header from `ALGO` (offset 0x30) to its end, and the 16-byte tag goes into the header's
//! 32-byte `AUTHTAG` field. The firmware answers with sequence number request + 1; the guest never
//! reuses a sequence number with the same key, so after any failure that may have consumed one
//! the key must not be used again ([`GuestChannel`] wipes it).

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};

/// A guest message: one page.
pub const PAGE_LEN: usize = 4096;
/// The message header.
pub const HEADER_LEN: usize = 0x60;
/// Most payload bytes a message can carry.
pub const MAX_PAYLOAD: usize = PAGE_LEN - HEADER_LEN;
/// The AES-GCM tag stored at the start of `AUTHTAG`.
pub const TAG_LEN: usize = 16;
/// The additional authenticated data: the header from `ALGO` to its end.
pub const AAD: core::ops::Range<usize> = 0x30..HEADER_LEN;

/// `ALGO` value for AES-256-GCM.
pub const ALGO_AES_256_GCM: u8 = 1;
/// `HDR_VERSION` this code writes and accepts.
pub const HEADER_VERSION: u8 = 1;
/// `MSG_TYPE` of an attestation report request.
pub const MSG_REPORT_REQ: u8 = 5;
/// `MSG_TYPE` of an attestation report response.
pub const MSG_REPORT_RSP: u8 = 6;
/// `MSG_VERSION` of the report request this code sends (version 1: report data and VMPL).
pub const REPORT_REQ_VERSION: u8 = 1;

/// Length of `MSG_REPORT_REQ`: REPORT_DATA (64), VMPL (4), KEY_SEL and reserved (28).
pub const REPORT_REQ_LEN: usize = 96;
/// The attestation report inside `MSG_REPORT_RSP` (ABI spec "ATTESTATION_REPORT Structure").
pub const REPORT_LEN: usize = 1184;
/// `MSG_REPORT_RSP`: STATUS (4), REPORT_SIZE (4), reserved (24), then the report.
pub const REPORT_RSP_LEN: usize = 32 + REPORT_LEN;

// Header field offsets.
const SEQNO: usize = 0x20;
const ALGO: usize = 0x30;
const HDR_VERSION: usize = 0x31;
const HDR_SIZE: usize = 0x32;
const MSG_TYPE: usize = 0x34;
const MSG_VERSION: usize = 0x35;
const MSG_SIZE: usize = 0x36;
const MSG_VMPCK: usize = 0x3c;

/// Why a guest message could not be built, opened or used. No variant carries message bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgError {
    /// The payload does not fit in one message.
    PayloadTooLong,
    /// A header field is not what this guest sent or accepts.
    BadHeader(HeaderField),
    /// The response's sequence number is not request + 1.
    WrongSequence,
    /// The tag did not verify: the response was not produced with this VMPCK, or was altered.
    Authentication,
    /// The firmware answered `MSG_REPORT_RSP` with a non-zero status.
    ReportStatus(u32),
    /// The report response is shorter than its fields or names another report size.
    BadReportResponse,
    /// The 32-bit message counter kept in the secrets page would overflow.
    SequenceExhausted,
    /// The VMPCK was wiped after an earlier failure: no further guest messages.
    KeyDisabled,
}

/// Which header field was wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderField {
    Algorithm,
    HeaderVersion,
    HeaderSize,
    MessageType,
    MessageSize,
    Vmpck,
    Reserved,
}

impl core::fmt::Display for MsgError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::PayloadTooLong => f.write_str("guest message payload longer than one page"),
            Self::BadHeader(field) => write!(f, "guest message response header: bad {field:?}"),
            Self::WrongSequence => {
                f.write_str("guest message response has the wrong sequence number")
            }
            Self::Authentication => {
                f.write_str("guest message response failed authentication with VMPCK")
            }
            Self::ReportStatus(s) => write!(f, "MSG_REPORT_RSP status {s:#x}"),
            Self::BadReportResponse => f.write_str("malformed MSG_REPORT_RSP"),
            Self::SequenceExhausted => f.write_str("guest message sequence number overflow"),
            Self::KeyDisabled => f.write_str("VMPCK disabled after an earlier failure"),
        }
    }
}

/// The plain fields of a message header (the `AUTHTAG` aside).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderRepr {
    pub seqno: u64,
    pub algo: u8,
    pub header_version: u8,
    pub header_size: u16,
    pub msg_type: u8,
    pub msg_version: u8,
    pub msg_size: u16,
    pub vmpck: u8,
}

impl HeaderRepr {
    /// Read the header fields of `page`, requiring the reserved bytes to be zero.
    pub fn parse(page: &[u8; PAGE_LEN]) -> Result<Self, MsgError> {
        let reserved_zero = page[0x28..0x30].iter().all(|&b| b == 0)
            && page[0x38..0x3c].iter().all(|&b| b == 0)
            && page[0x3d..HEADER_LEN].iter().all(|&b| b == 0);
        if !reserved_zero {
            return Err(MsgError::BadHeader(HeaderField::Reserved));
        }
        Ok(Self {
            seqno: u64::from_le_bytes(page[SEQNO..SEQNO + 8].try_into().unwrap_or_default()),
            algo: page[ALGO],
            header_version: page[HDR_VERSION],
            header_size: u16::from_le_bytes([page[HDR_SIZE], page[HDR_SIZE + 1]]),
            msg_type: page[MSG_TYPE],
            msg_version: page[MSG_VERSION],
            msg_size: u16::from_le_bytes([page[MSG_SIZE], page[MSG_SIZE + 1]]),
            vmpck: page[MSG_VMPCK],
        })
    }

    /// Write these fields into `page`'s header; reserved bytes and the tag become zero.
    pub fn emit(&self, page: &mut [u8; PAGE_LEN]) {
        page[..HEADER_LEN].fill(0);
        page[SEQNO..SEQNO + 8].copy_from_slice(&self.seqno.to_le_bytes());
        page[ALGO] = self.algo;
        page[HDR_VERSION] = self.header_version;
        page[HDR_SIZE..HDR_SIZE + 2].copy_from_slice(&self.header_size.to_le_bytes());
        page[MSG_TYPE] = self.msg_type;
        page[MSG_VERSION] = self.msg_version;
        page[MSG_SIZE..MSG_SIZE + 2].copy_from_slice(&self.msg_size.to_le_bytes());
        page[MSG_VMPCK] = self.vmpck;
    }
}

/// The AES-GCM IV of a message: its sequence number, little-endian, then four zero bytes.
pub fn iv(seqno: u64) -> [u8; 12] {
    let mut iv = [0; 12];
    iv[..8].copy_from_slice(&seqno.to_le_bytes());
    iv
}

/// A VMPCK from the secrets page, with its index (0–3), ready to seal and open messages.
pub struct Vmpck {
    key: LessSafeKey,
    id: u8,
}

impl Vmpck {
    /// The key `bytes` (32, from the secrets page) with index `id`.
    pub fn new(id: u8, bytes: &[u8; 32]) -> Self {
        // AES-256 accepts every 32-byte key: this cannot fail.
        let key = UnboundKey::new(&AES_256_GCM, bytes).unwrap_or_else(|_| unreachable!());
        Self {
            key: LessSafeKey::new(key),
            id,
        }
    }

    /// Its index, written into `MSG_VMPCK`.
    pub fn id(&self) -> u8 {
        self.id
    }

    /// Build the message `msg_type`/`msg_version` with `payload` and sequence number `seqno`
    /// into `page` (the page is cleared first).
    pub fn seal(
        &self,
        seqno: u64,
        msg_type: u8,
        msg_version: u8,
        payload: &[u8],
        page: &mut [u8; PAGE_LEN],
    ) -> Result<(), MsgError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(MsgError::PayloadTooLong);
        }
        page.fill(0);
        HeaderRepr {
            seqno,
            algo: ALGO_AES_256_GCM,
            header_version: HEADER_VERSION,
            header_size: HEADER_LEN as u16,
            msg_type,
            msg_version,
            msg_size: payload.len() as u16,
            vmpck: self.id,
        }
        .emit(page);
        let (header, body) = page.split_at_mut(HEADER_LEN);
        let body = &mut body[..payload.len()];
        body.copy_from_slice(payload);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(iv(seqno)),
                Aad::from(&header[AAD]),
                body,
            )
            .map_err(|_| MsgError::PayloadTooLong)?;
        header[..TAG_LEN].copy_from_slice(tag.as_ref());
        Ok(())
    }

    /// Check and decrypt the message in `page`: it must be `msg_type` with sequence number
    /// `seqno`, under this key. Returns the payload, decrypted in place.
    pub fn open<'p>(
        &self,
        seqno: u64,
        msg_type: u8,
        page: &'p mut [u8; PAGE_LEN],
    ) -> Result<&'p [u8], MsgError> {
        let header = HeaderRepr::parse(page)?;
        let bad = |field| Err(MsgError::BadHeader(field));
        if header.algo != ALGO_AES_256_GCM {
            return bad(HeaderField::Algorithm);
        }
        if header.header_version != HEADER_VERSION {
            return bad(HeaderField::HeaderVersion);
        }
        if usize::from(header.header_size) != HEADER_LEN {
            return bad(HeaderField::HeaderSize);
        }
        if header.msg_type != msg_type {
            return bad(HeaderField::MessageType);
        }
        if header.vmpck != self.id {
            return bad(HeaderField::Vmpck);
        }
        let len = usize::from(header.msg_size);
        if len > MAX_PAYLOAD {
            return bad(HeaderField::MessageSize);
        }
        if header.seqno != seqno {
            return Err(MsgError::WrongSequence);
        }
        let mut tag = [0; TAG_LEN];
        tag.copy_from_slice(&page[..TAG_LEN]);
        if page[TAG_LEN..SEQNO].iter().any(|&b| b != 0) {
            return bad(HeaderField::Reserved);
        }
        let (header, body) = page.split_at_mut(HEADER_LEN);
        let body = &mut body[..len];
        self.key
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key(iv(seqno)),
                Aad::from(&header[AAD]),
                Tag::from(tag),
                body,
                0..,
            )
            .map_err(|_| MsgError::Authentication)?;
        Ok(body)
    }
}

/// The payload of `MSG_REPORT_REQ` asking for a report at `vmpl` with `report_data`.
pub fn report_request(report_data: &[u8; 64], vmpl: u32) -> [u8; REPORT_REQ_LEN] {
    let mut req = [0; REPORT_REQ_LEN];
    req[..64].copy_from_slice(report_data);
    req[64..68].copy_from_slice(&vmpl.to_le_bytes());
    req
}

/// The report inside a decrypted `MSG_REPORT_RSP` payload, after checking its status and size.
pub fn report_response(payload: &[u8]) -> Result<&[u8; REPORT_LEN], MsgError> {
    let word = |at: usize| {
        payload
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or(MsgError::BadReportResponse)
    };
    let status = word(0)?;
    if status != 0 {
        return Err(MsgError::ReportStatus(status));
    }
    if word(4)? as usize != REPORT_LEN {
        return Err(MsgError::BadReportResponse);
    }
    payload
        .get(32..REPORT_RSP_LEN)
        .and_then(|r| r.try_into().ok())
        .ok_or(MsgError::BadReportResponse)
}

/// The sequence numbers of one request/response pair for a VMPCK, from the 32-bit message
/// counter the guest keeps in the secrets page's OS area (`msg_seqno_N`, ABI spec "Secrets
/// Page Format"): the request uses counter + 1, the response counter + 2, and after a
/// completed exchange the counter advances by 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SequencePair {
    pub request: u64,
    pub response: u64,
    /// The counter value to store once the response has been accepted.
    pub next_counter: u32,
}

impl SequencePair {
    /// The pair following `counter`; refuses a counter that cannot advance by 2 in 32 bits.
    pub fn after(counter: u32) -> Result<Self, MsgError> {
        let next_counter = counter.checked_add(2).ok_or(MsgError::SequenceExhausted)?;
        Ok(Self {
            request: u64::from(counter) + 1,
            response: u64::from(counter) + 2,
            next_counter,
        })
    }
}

#[cfg(test)]
#[path = "guest_msg_tests.rs"]
mod tests;
