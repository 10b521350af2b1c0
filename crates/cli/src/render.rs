//! What the authoring commands share when they print for people: colour (only on a terminal,
//! never with `NO_COLOR`), chains drawn as paths, times relative to `now`, and a hint per
//! reason code saying what would have to change.

use std::io::IsTerminal as _;

use custody_verifier::ReasonCode;

/// ANSI styling, switched off when stdout is not a terminal or `NO_COLOR` is set (no-color.org).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Style {
    color: bool,
}

impl Style {
    /// Colour on a terminal unless `NO_COLOR` is set to anything non-empty.
    pub(crate) fn detect() -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            color: !no_color && std::io::stdout().is_terminal(),
        }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    pub(crate) fn good(self, text: &str) -> String {
        self.paint("1;32", text)
    }

    pub(crate) fn bad(self, text: &str) -> String {
        self.paint("1;31", text)
    }

    pub(crate) fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }

    pub(crate) fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }

    pub(crate) fn accent(self, text: &str) -> String {
        self.paint("36", text)
    }
}

/// An identifier as a person reads it: `spiffe://a.example/agent/bob` → `a.example/agent/bob`.
pub(crate) fn short_id(id: &str) -> &str {
    id.strip_prefix("spiffe://").unwrap_or(id)
}

/// The service at the end of a chain: `spiffe://c.example/orders` → `c.example orders`.
pub(crate) fn service_name(audience: &str, local: &str) -> String {
    match audience.strip_prefix("spiffe://") {
        Some(rest) => match rest.split_once('/') {
            Some((td, path)) => format!("{td} {}", path.trim_start_matches('/')),
            None => rest.to_owned(),
        },
        None => format!("{local} {audience}"),
    }
}

/// `user:alice → a.example/agent/bob → b.example/agent/alice → c.example orders`.
pub(crate) fn chain_path(origin: &str, actors: &[String], service: &str) -> String {
    let mut parts: Vec<&str> = Vec::with_capacity(actors.len() + 2);
    if !origin.is_empty() {
        parts.push(short_id(origin));
    }
    parts.extend(actors.iter().map(|a| short_id(a)));
    parts.push(service);
    parts.join(" → ")
}

/// `exp` relative to `now`: `in 14m`, `2h ago`, `now`.
pub(crate) fn relative(at: i64, now: i64) -> String {
    let delta = at.saturating_sub(now);
    let span = duration(delta.unsigned_abs());
    match delta {
        0 => "now".to_owned(),
        d if d > 0 => format!("in {span}"),
        _ => format!("{span} ago"),
    }
}

/// Seconds in the largest unit that keeps them readable: `45s`, `14m`, `1h 5m`, `3d`.
pub(crate) fn duration(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => match s % 60 {
            0 => format!("{}m", s / 60),
            r => format!("{}m {r}s", s / 60),
        },
        s if s < 172_800 => match (s % 3600) / 60 {
            0 => format!("{}h", s / 3600),
            m => format!("{}h {m}m", s / 3600),
        },
        s => format!("{}d", s / 86_400),
    }
}

/// Unix seconds as an RFC 3339 UTC time (civil-from-days, Howard Hinnant's algorithm).
pub(crate) fn utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

pub(crate) use custody_verifier::system_now;

/// What would have to change for a denial with `code` to become an allow.
pub(crate) fn hint(code: ReasonCode) -> &'static str {
    use ReasonCode as C;
    match code {
        C::InvalidRequest => "fix the request document: known fields only, each once, with the documented types",
        C::MalformedToken => "send a strict compact JWS whose header has only `alg`, `kid`, `typ` and whose claims have the documented JSON types",
        C::TokenTooLarge => "issue a smaller token (at most 8 KiB): fewer claims, a shorter `act` chain",
        C::WrongTokenType => "use `typ` `at+jwt` (or `JWT`) for access tokens and `txntoken+jwt` for Txn-Tokens, each in its place",
        C::AlgNotAllowed => "sign with an algorithm the `kid`'s key verifies: `EdDSA`/`Ed25519` for OKP Ed25519, `ES256` for P-256, `ES384` for P-384, `RS*`/`PS*` for RSA, and its JWK's own `alg` when it has one",
        C::UnknownIssuer => "declare the issuer in a `domain` block of the trust file, or have a declared domain issue the token",
        C::UnknownKey => "add the signing key (its `kid`) to the issuer domain's key file, or sign with a key that is there",
        C::BadSignature => "the token was not signed by the key its `kid` names in the issuer's domain: re-issue it from the real issuer",
        C::MissingClaim => "have the issuer include the named claim (every token of a chain needs the same `txn`)",
        C::Expired => "get a fresh token from the issuer: this one is past `exp` plus the clock skew",
        C::NotYetValid => "wait until `nbf`, or fix the issuer's clock",
        C::IssuedInFuture => "fix the issuer's clock: `iat` is ahead of now by more than the clock skew",
        C::LifetimeTooLong => "issue shorter-lived tokens, or raise `max_lifetime` in the `chain` block",
        C::AudienceMismatch => "get a token whose `aud` names this service exactly (a token for another service must not be replayed here)",
        C::InvalidSpiffeId => "use SPIFFE IDs with a trust domain and a non-empty path (`spiffe://td/agent/name`)",
        C::SubjectMismatch => "keep the same `sub` on every token of the chain and on the Txn-Token",
        C::TxnMismatch => "carry the same `txn` through every token exchange of the transaction",
        C::ChainBroken => "each token must keep the earlier actors, add exactly one, and be issued to an audience that names that new actor",
        C::ExpiryExtended => "a later token must not outlive the one it was exchanged for: cap its `exp`",
        C::ScopeEscalation => "a token exchange may only narrow scope: request no more than the earlier token granted",
        C::ScopeMissing => "request a token whose `scope` includes the action",
        C::DepthExceeded => "shorten the delegation chain, or raise `max_depth` in the `chain` block",
        C::DelegationLoop => "an agent may appear only once in a chain: break the loop",
        C::DomainNotFederated => "route through federated domains, or add a `federate \"FROM\" -> \"TO\"` rule for this crossing (only if you trust it)",
        C::FederationScopeDenied => "add the action to the crossing's `federate` rule scopes, or ask for an action it carries",
        C::TooManyDomains => "cross fewer trust domains, or raise `max_domains` in the `chain` block",
        C::IssuerNotInChain => "each domain speaks only for its own actors: the token for an actor must come from that actor's domain (or `local`)",
        C::SenderMismatch => "the caller (`peer`) must be the chain's current actor: present your own token, not someone else's",
        C::SenderBindingRequired => "pass the caller's authenticated SPIFFE ID as `peer`",
        C::PolicyDenied => "change the request to one a Cedar `permit` covers, or change the Cedar policies named above",
        C::PolicyError => "fix the Cedar policy named above so it cannot fail to evaluate (guard optional attributes with `has`, declare the context in the schema), or send the attributes it reads with the types it expects",
        C::DecisionTimeout => "retry; if it recurs, find what makes this request slow (a Biscuit's checks, the pack) or raise `--request-timeout-ms`",
        C::KeysUnavailable => "the domain's remote key sources have not delivered a key set yet: check that custody can reach them (`custody check` fetches and reports each source), then retry",
        C::PeerInvalid => "the caller's proof of identity did not hold: present an X.509-SVID of your own trust domain, a WIT with a fresh WPT for this target, or a DPoP proof signed by the key the token is bound to",
        C::Replayed => "a proof is good for one request: sign a new WPT or DPoP proof (a fresh `jti`) for each call",
        C::StoreUnavailable => "the node could not check the proof for reuse: retry; if it recurs, raise the replay cache's size or bring the shared store back",
        C::Revoked => "an operator revoked this token, actor, origin or transaction: get a new authorization from the origin; `custody revoke` revocations last until their `until` time",
        _ => "see the reason codes in the README",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_times_read_well() {
        let actors = vec![
            "spiffe://a.example/agent/bob".to_owned(),
            "spiffe://b.example/agent/alice".to_owned(),
        ];
        let service = service_name("spiffe://c.example/orders", "c.example");
        assert_eq!(
            chain_path("user:alice", &actors, &service),
            "user:alice → a.example/agent/bob → b.example/agent/alice → c.example orders"
        );
        assert_eq!(
            service_name("https://orders", "c.example"),
            "c.example https://orders"
        );
        assert_eq!(relative(1060, 1000), "in 60s");
        assert_eq!(relative(100, 1000), "15m ago");
        assert_eq!(duration(3900), "65m");
        assert_eq!(duration(9000), "2h 30m");
        assert_eq!(utc(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn every_code_has_a_specific_hint() {
        for code in ReasonCode::ALL {
            assert!(!hint(code).starts_with("see the"), "{code}");
        }
    }

    #[test]
    fn plain_style_adds_nothing() {
        let s = Style { color: false };
        assert_eq!(s.bad("deny"), "deny");
        let c = Style { color: true };
        assert!(c.bad("deny").contains("\x1b[1;31m"));
    }
}
