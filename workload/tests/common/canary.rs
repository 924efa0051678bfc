//! The plaintext canary: an allocator that scans every block the enclave's threads free or move
//! for a canary string, and a full session (summarize and suggest, the tiny models, TLS on
//! loopback, the server stopped and the models dropped after) whose thread carries it.
//!
//! Realloc is always a move here (alloc, copy, free), as any allocator may make it one. The
//! device side runs on the test's own thread, which is not scanned (the device keeps its own
//! copies). Each hit is placed by its backtrace: the innermost frame outside the standard library
//! names the code that freed the block.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pp_attestation::test_signer::{TEST_MEASUREMENT, TEST_TCB};
use pp_protocol::app::{AppRequest, AppResponse, Message};
use pp_workload::server;

/// Lowercase letters only: the MiniLM tokenizer lowercases, and the SmolLM2 pre-tokenizer
/// splits digits off, so every whole-word copy either makes still holds it.
pub const CANARY: &[u8] = b"qzvxkwjfhpmbtlrgcanary";

static ARMED: AtomicBool = AtomicBool::new(false);
static TEARDOWN: AtomicBool = AtomicBool::new(false);
static HITS: Mutex<Vec<Hit>> = Mutex::new(Vec::new());

thread_local! {
    /// This thread's frees are not scanned (the device's thread, and the scanner itself).
    static EXEMPT: Cell<bool> = const { Cell::new(false) };
}

/// A freed block that held the canary.
#[derive(Debug, Clone)]
pub struct Hit {
    pub size: usize,
    /// Freed while the server was stopping: the plaintext was kept between requests.
    pub teardown: bool,
    /// The innermost frames outside the standard library, innermost first.
    pub frames: Vec<String>,
}

impl Hit {
    /// The innermost frame outside the standard library: the code that freed the block (for a
    /// dropped value, its type).
    pub fn owner(&self) -> &str {
        let frame = self.frames.first().map_or("", String::as_str);
        let frame = frame.split_once("drop_in_place<").map_or(frame, |(_, t)| t);
        frame.trim_start_matches('<')
    }
}

/// The scanning allocator (over the system allocator, or under the enclave's).
pub struct Scanner;

fn holds_canary(block: &[u8]) -> bool {
    block.windows(CANARY.len()).any(|w| w == CANARY)
}

/// A frame of the standard library (or of this scanner). Dropping a value of another crate's
/// type is that crate's frame, not the standard library's.
fn is_std(frame: &str) -> bool {
    if let Some(dropped) = frame.split_once("drop_in_place<").map(|(_, t)| t) {
        // `<alloc::vec::IntoIter<T> as Drop>::drop::DropGuard<…>` is the standard library's too.
        let dropped = dropped.trim_start_matches('<');
        return ["alloc::", "std::", "core::"]
            .iter()
            .any(|p| dropped.starts_with(p));
    }
    [
        "std::",
        "core::",
        "alloc::",
        "__rust",
        "<alloc::",
        "<core::",
        "<std::",
        "canary::",
        "backtrace",
        "hashbrown",
        "zeroize::",
        "<zeroize::",
        "wipe_on_free",
        "WipeOnFree",
        "__libc",
        "start_thread",
        "clone3",
    ]
    .iter()
    .any(|p| frame.contains(p))
}

fn record(size: usize) {
    EXEMPT.with(|e| e.set(true));
    let trace = std::backtrace::Backtrace::force_capture().to_string();
    let frames: Vec<String> = trace
        .lines()
        .filter(|l| !l.trim_start().starts_with("at "))
        .map(|l| l.trim().split_once(": ").map_or(l, |(_, f)| f).to_string())
        .skip_while(|f| is_std(f))
        .take(6)
        .collect();
    let hit = Hit {
        size,
        teardown: TEARDOWN.load(Ordering::SeqCst),
        frames,
    };
    if let Ok(mut hits) = HITS.lock() {
        hits.push(hit);
    }
    EXEMPT.with(|e| e.set(false));
}

impl Scanner {
    /// Scan a block about to be freed or left behind by a move.
    ///
    /// # Safety
    /// `ptr` is allocated and `size` bytes long.
    unsafe fn scan(&self, ptr: *mut u8, size: usize) {
        if !ARMED.load(Ordering::Relaxed) || EXEMPT.with(Cell::get) {
            return;
        }
        // SAFETY: the caller's promise.
        let block = unsafe { std::slice::from_raw_parts(ptr, size) };
        if holds_canary(block) {
            record(size);
        }
    }
}

// SAFETY: every call goes to the system allocator; blocks are only read before they are freed.
unsafe impl GlobalAlloc for Scanner {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe {
            self.scan(ptr, layout.size());
            System.dealloc(ptr, layout)
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe {
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            let new = System.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.scan(ptr, layout.size());
                System.dealloc(ptr, layout);
            }
            new
        }
    }
}

fn policy() -> pp_verifier::Policy {
    let ark = std::fs::read(concat!(env!("PP_TEST_ROOT_DIR"), "/ark.der")).unwrap();
    pp_verifier::Policy::trusting_test_root(&ark, vec![TEST_MEASUREMENT], TEST_TCB).unwrap()
}

fn thread() -> Vec<Message> {
    let canary = std::str::from_utf8(CANARY).unwrap();
    let say = |sender: &str, text: String| Message {
        sender: sender.into(),
        text,
        time: Some("09:14".into()),
    };
    vec![
        say("Ana", format!("dinner at six? {canary} is booked")),
        say(canary, "yes, see you".into()),
        // A quote and a newline before the canary: the JSON parser unescapes this message.
        say("Ana", format!("the \"table\"\nis {canary} near the window")),
        say("Bo", format!("{canary} {canary} ok")),
    ]
}

/// Serve a summarize and a suggest request whose thread holds the canary, in process, then stop
/// the server and drop the enclave. Returns every freed block that held the canary.
pub fn run() -> Vec<Hit> {
    EXEMPT.with(|e| e.set(true));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let identity = pp_workload::tls::fresh_identity().unwrap();
    let blob = pp_inference::bundle::tiny_blob(pp_inference::bundle::TINY_SEED).unwrap();
    let enclave = pp_workload::session::Enclave {
        attester: pp_workload::attest::attester().unwrap().0,
        keys: pp_workload::keys::KeyRing::new().unwrap(),
        handler: Box::new(pp_workload::features::Features::load(&blob).unwrap()),
        release_ref: [0; 32],
        max_request: pp_protocol::frame::MAX_PAYLOAD,
        gate: pp_workload::gate::Gate::for_handler(),
    };
    let running = server::spawn(
        listener,
        identity.config,
        Arc::new(enclave),
        server::Limits::default(),
    );
    ARMED.store(true, Ordering::SeqCst);

    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut session = pp_client::connect(sock, &policy(), pp_client::Limits::default()).unwrap();
    let summarize = AppRequest::Summarize {
        thread: thread(),
        k: 2,
    };
    let suggest = AppRequest::Suggest {
        thread: thread(),
        seed: 7,
        n: 2,
    };
    for request in [&summarize, &suggest] {
        let answer = session.request(&request.to_vec()).unwrap();
        match AppResponse::parse_for(&answer, request).unwrap() {
            AppResponse::Error(e) => panic!("{e:?}"),
            AppResponse::Summary { picks, .. } => assert_eq!(picks.len(), 2),
            AppResponse::Suggestions { replies } => assert_eq!(replies.len(), 2),
        }
    }
    let _ = session.close();
    // Let the session end on the server, then drop everything the enclave held.
    std::thread::sleep(Duration::from_millis(300));
    TEARDOWN.store(true, Ordering::SeqCst);
    running.stop();
    ARMED.store(false, Ordering::SeqCst);
    HITS.lock().unwrap().clone()
}

/// The hits, one line each (size, phase, the freeing frames), for a failure message.
pub fn show(hits: &[&Hit]) -> String {
    hits.iter()
        .map(|h| {
            let phase = if h.teardown {
                "kept until teardown"
            } else {
                "freed"
            };
            format!("{} bytes, {phase}: {}", h.size, h.frames.join(" < "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}
