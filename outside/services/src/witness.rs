//! The witness's HTTP face (c2sp.org/tlog-witness): `POST /add-checkpoint`. The logic, the
//! state file and the status codes are in [`pp_translog::witness`]; requests are served one at
//! a time under a lock, so checking the old size and storing the new checkpoint are atomic.

use std::sync::Mutex;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use pp_translog::witness::{MAX_REQUEST_LEN, Witness};

use crate::http::{Reply, error, read_body, reply};

/// The witness service's state.
pub struct WitnessService {
    pub witness: Mutex<Witness>,
}

impl WitnessService {
    /// Serves one request.
    pub async fn handle(&self, req: Request<Incoming>) -> Reply {
        match (req.method(), req.uri().path()) {
            (&Method::POST, "/add-checkpoint") => {
                let body = match read_body(req, MAX_REQUEST_LEN).await {
                    Ok(b) => b.body,
                    Err(reply) => return reply,
                };
                let now = pp_translog::checkpoint::unix_now();
                let answer = self
                    .witness
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .add_checkpoint(&body, now);
                tracing::info!(status = answer.status, "add-checkpoint");
                let status = StatusCode::from_u16(answer.status)
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                reply(status, answer.content_type, answer.body)
            }
            _ => error(StatusCode::NOT_FOUND, "unknown endpoint"),
        }
    }
}
