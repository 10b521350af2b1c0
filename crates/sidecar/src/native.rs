//! `custody.v1` ⇄ the library's [`Request`] and [`Decision`].

use custody_jose::json;
use custody_verifier::{Decision, Limits, Request, ResourceRef};

use crate::pb;

/// The library request for a `custody.v1.VerifyRequest`; `Err` is the `invalid_request`
/// message.
pub(crate) fn convert(
    r: pb::VerifyRequest,
    allow_request_time: bool,
    limits: &Limits,
) -> Result<Request, String> {
    if r.now.is_some() && !allow_request_time {
        return Err(
            "a request-supplied `now` is refused: the sidecar was not started with `--allow-request-time`"
                .into(),
        );
    }
    let context = match r.context_json {
        None => None,
        Some(text) => {
            if text.len() > limits.request_bytes {
                return Err(format!(
                    "`context_json` larger than {} bytes",
                    limits.request_bytes
                ));
            }
            // the request document is level 1, so `context` may use one level less
            let depth = limits.json_depth.saturating_sub(1);
            match json::parse(text.as_bytes(), depth) {
                Ok(v) => Some(v),
                Err(e) => return Err(format!("`context_json`: {e}")),
            }
        }
    };
    Ok(Request {
        tokens: r.tokens,
        txn_token: r.txn_token,
        audience: r.audience,
        action: r.action,
        resource: r.resource.map(|res| ResourceRef {
            type_name: res.r#type,
            id: res.id,
        }),
        peer: r.peer,
        now: r.now,
        context,
        peer_certificates: r.peer_certificates,
        wit: r.wit,
        wpt: r.wpt,
        dpop: r.dpop,
        target_uri: r.target_uri,
        http_method: r.http_method,
        proof_headers: (!r.proof_headers.is_empty()).then(|| r.proof_headers.into_iter().collect()),
    })
}

/// The `custody.v1.Decision` for a decision.
pub(crate) fn to_pb(d: &Decision, pack: &str) -> pb::Decision {
    pb::Decision {
        decision: if d.is_allowed() { "allow" } else { "deny" }.to_owned(),
        reasons: d
            .reasons
            .iter()
            .map(|r| pb::Reason {
                code: r.code.as_str().to_owned(),
                hop: r.hop.and_then(|h| u32::try_from(h).ok()),
                message: r.message.clone(),
            })
            .collect(),
        chain: d.chain.as_ref().map(|c| pb::ChainSummary {
            origin: c.origin.clone(),
            actors: c.actors.clone(),
            domains: c.domains.clone(),
            scopes: c.scopes.clone(),
            depth: u32::try_from(c.depth).unwrap_or(u32::MAX),
            txn: c.txn.clone(),
            cross_domain: c.cross_domain,
        }),
        policies: d.policies.clone(),
        pack_version: pack.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> pb::VerifyRequest {
        pb::VerifyRequest {
            tokens: vec!["t".into()],
            audience: "spiffe://c.example/orders".into(),
            action: "orders:read".into(),
            ..pb::VerifyRequest::default()
        }
    }

    #[test]
    fn now_needs_the_testing_flag() {
        let r = pb::VerifyRequest {
            now: Some(5),
            ..base()
        };
        let m = convert(r.clone(), false, &Limits::default()).unwrap_err();
        assert!(m.contains("--allow-request-time"), "{m}");
        assert_eq!(convert(r, true, &Limits::default()).unwrap().now, Some(5));
    }

    #[test]
    fn context_is_strict_json() {
        let r = pb::VerifyRequest {
            context_json: Some(r#"{"a":1,"a":2}"#.into()),
            ..base()
        };
        assert!(convert(r, false, &Limits::default()).is_err());
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let r = pb::VerifyRequest {
            context_json: Some(deep),
            ..base()
        };
        assert!(convert(r, false, &Limits::default()).is_err());
        let r = pb::VerifyRequest {
            context_json: Some(r#"{"tenant":"t1"}"#.into()),
            ..base()
        };
        assert!(convert(r, false, &Limits::default())
            .unwrap()
            .context
            .is_some());
    }
}
