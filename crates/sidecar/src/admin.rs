//! `custody.v1.Admin`: operator actions on a node (revoke, list revocations), served only with
//! `--admin-token-file` and only to calls presenting that token as a bearer credential. The
//! token is kept as its SHA-256 and compared in constant time; a missing or wrong one is
//! UNAUTHENTICATED, whatever the call.

use std::path::Path;
use std::sync::Arc;

use custody_verifier::{Revocation, RevocationKind};
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};

use crate::error::ServeError;
use crate::pb;
use crate::state::State;

/// The shortest admin token accepted: 128 bits written as 32 hex characters (or any 16 bytes).
const MIN_TOKEN_BYTES: usize = 16;

/// The Admin service of a node.
#[derive(Clone)]
pub(crate) struct Admin {
    state: Arc<State>,
    token: [u8; 32],
}

impl Admin {
    /// Reads the token (its first line, trimmed) from `file`.
    pub(crate) fn new(state: Arc<State>, file: &Path) -> Result<Admin, ServeError> {
        let text = std::fs::read_to_string(file).map_err(|e| {
            ServeError::Options(format!("--admin-token-file `{}`: {e}", file.display()))
        })?;
        let token = text.lines().next().unwrap_or_default().trim();
        if token.len() < MIN_TOKEN_BYTES {
            return Err(ServeError::Options(format!(
                "--admin-token-file `{}`: the token must be at least {MIN_TOKEN_BYTES} bytes (e.g. `openssl rand -hex 32`)",
                file.display()
            )));
        }
        Ok(Admin {
            state,
            token: Sha256::digest(token.as_bytes()).into(),
        })
    }

    fn authorize<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let given = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        let digest: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        let diff = digest
            .iter()
            .zip(self.token.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff == 0 {
            Ok(())
        } else {
            self.state.log.event(
                "warn",
                "admin_refused",
                serde_json::json!({"reason": "missing or wrong admin token"}),
            );
            Err(Status::unauthenticated(
                "the admin token is missing or wrong",
            ))
        }
    }
}

fn to_pb(r: &Revocation) -> pb::Revocation {
    pb::Revocation {
        kind: r.kind.as_str().to_owned(),
        value: r.value.clone(),
        until: r.until,
    }
}

#[tonic::async_trait]
impl pb::admin_server::Admin for Admin {
    async fn revoke(
        &self,
        request: Request<pb::RevokeRequest>,
    ) -> Result<Response<pb::RevokeResponse>, Status> {
        self.authorize(&request)?;
        let req = request.into_inner();
        let kind = RevocationKind::from_name(&req.kind).ok_or_else(|| {
            Status::invalid_argument(format!(
                "`{}` is not a kind: jti, actor, origin or txn",
                req.kind.chars().take(64).collect::<String>()
            ))
        })?;
        let now = custody_verifier::system_now();
        let until = if req.until == 0 {
            let chain = self.state.verifier.load().pack().chain;
            now.saturating_add(
                i64::try_from(chain.max_lifetime.saturating_add(chain.clock_skew))
                    .unwrap_or(i64::MAX),
            )
        } else {
            req.until
        };
        if until < now {
            return Err(Status::invalid_argument(format!(
                "`until` {until} is in the past (now {now})"
            )));
        }
        let r = Revocation::new(kind, req.value, until)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let fleet = &self.state.fleet;
        // held here at once, whatever the store says: this node denies it from now on
        fleet.revocations.revoke(r.clone());
        let (shared, receivers) = match &fleet.store {
            Some(s) => {
                let n = s.store.revoke(&r).await.map_err(|e| {
                    Status::unavailable(format!("held on this node, but the store failed: {e}"))
                })?;
                (true, n)
            }
            None => (false, 0),
        };
        self.state.log.event(
            "info",
            "admin_revoke",
            serde_json::json!({"kind": r.kind.as_str(), "value": r.value, "until": r.until, "shared": shared}),
        );
        Ok(Response::new(pb::RevokeResponse {
            revocation: Some(to_pb(&r)),
            shared,
            receivers,
        }))
    }

    async fn list_revocations(
        &self,
        request: Request<pb::ListRevocationsRequest>,
    ) -> Result<Response<pb::ListRevocationsResponse>, Status> {
        self.authorize(&request)?;
        let now = custody_verifier::system_now();
        let revocations = self
            .state
            .fleet
            .revocations
            .list()
            .iter()
            .filter(|r| r.until >= now)
            .map(to_pb)
            .collect();
        Ok(Response::new(pb::ListRevocationsResponse { revocations }))
    }
}
