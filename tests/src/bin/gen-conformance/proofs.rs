//! Issue 15's cases: proving the caller (WIT + WPT, DPoP, bound tokens) and JWT-SVIDs.
//!
//! The workload and client keys are Ed25519 keys from fixed seeds, so every signature is
//! deterministic. The WIT keys are the standard pack's own (a plain JWK Set's keys verify WITs
//! too). Each proof case is decided on a fresh verifier; the conformance test decides it again
//! on the same one, where a proof that passed its own checks is now `replayed`.

use base64::Engine as _;
use custody_jose::{sign_with_header, SigningKey, B64};
use custody_tests::{act, ALICE, AUD, BOB, NOW};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{request, with, Expect, Gen, CAROL};

/// The URI the orders service is called at, as its gateway knows it.
const TARGET: &str = "https://orders.c.example/orders/7";
const ATTACK: &str = "caller proof";

fn hash(text: &str) -> String {
    B64.encode(Sha256::digest(text.as_bytes()))
}

fn workload() -> SigningKey {
    SigningKey::from_seed("wl", [41; 32])
}

fn intruder() -> SigningKey {
    SigningKey::from_seed("wl", [42; 32])
}

fn public_jwk(key: &SigningKey) -> Value {
    let mut jwk = key.public().to_jwk();
    if let Some(m) = jwk.as_object_mut() {
        m.remove("kid");
        m.insert("alg".into(), key.alg().name().into());
    }
    jwk
}

fn standard() -> Value {
    json!({"variant": "standard"})
}

impl Gen {
    /// Alice-agent's one token for the orders service.
    fn alice(&self, patch: Value) -> String {
        let c = json!({"sub": "user:carol", "aud": AUD, "iat": NOW - 30, "exp": NOW + 300,
            "scope": "orders:read", "act": act(&[ALICE])});
        self.f.token("b.example", with(c, patch))
    }

    /// A WIT for `sub` signed by `domain`'s key, binding `key`.
    fn wit(&self, domain: &str, sub: &str, key: &SigningKey, patch: Value) -> String {
        let k = self.f.key(domain);
        let c = json!({"sub": sub, "iat": NOW - 60, "exp": NOW + 3000,
            "cnf": {"jwk": public_jwk(key)}});
        sign_with_header(
            k,
            &json!({"alg": "EdDSA", "kid": k.kid(), "typ": "wit+jwt"}),
            &with(c, patch),
        )
        .unwrap_or_default()
    }
}

fn wpt(key: &SigningKey, wit: &str, token: &str, patch: Value, header: Value) -> String {
    let c = json!({"aud": TARGET, "exp": NOW + 60, "jti": "wpt-1", "wth": hash(wit),
        "ath": hash(token)});
    let h = with(json!({"alg": "EdDSA", "typ": "wpt+jwt"}), header);
    sign_with_header(key, &h, &with(c, patch)).unwrap_or_default()
}

fn dpop(key: &SigningKey, token: &str, patch: Value, header: Value) -> String {
    let c = json!({"htm": "GET", "htu": TARGET, "iat": NOW, "jti": "dpop-1",
        "ath": hash(token)});
    let h = with(
        json!({"alg": "EdDSA", "typ": "dpop+jwt", "jwk": public_jwk(key)}),
        header,
    );
    sign_with_header(key, &h, &with(c, patch)).unwrap_or_default()
}

fn wimse_request(token: &str, wit: &str, wpt: &str) -> Value {
    let mut r = request(&[token.to_owned()]);
    r["wit"] = wit.into();
    r["wpt"] = wpt.into();
    r["target_uri"] = format!("{TARGET}?page=2").into();
    r
}

fn dpop_request(token: &str, proof: Option<&str>) -> Value {
    let mut r = request(&[token.to_owned()]);
    if let Some(p) = proof {
        r["dpop"] = p.into();
    }
    r["target_uri"] = TARGET.into();
    r["http_method"] = "GET".into();
    r
}

/// Every case of this module, in catalogue order.
pub(super) fn cases(g: &mut Gen) {
    wimse(g);
    dpop_cases(g);
    svids(g);
    x509(g);
}

// ---------------------------------------------------------------------------------------
// X.509-SVIDs: Ed25519 certificates from fixed seeds with fixed serial numbers, so every
// certificate (and so every case file) is byte-identical on each run.

/// An Ed25519 key pair for rcgen from a 32-byte seed (PKCS#8 v1, RFC 8410).
fn cert_key(seed: u8) -> rcgen::KeyPair {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&[seed; 32]);
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from(der);
    rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_ED25519)
        .expect("an Ed25519 PKCS#8 key")
}

fn date(secs: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(secs).expect("a date")
}

fn cert_params(cn: &str, serial: u64) -> rcgen::CertificateParams {
    let mut p = rcgen::CertificateParams::new(vec![]).expect("params");
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.serial_number = Some(rcgen::SerialNumber::from(serial));
    p.not_before = date(NOW - 86_400 * 30);
    p.not_after = date(NOW + 86_400 * 365);
    p
}

struct CertCa {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

fn cert_ca(td: &str, seed: u8) -> CertCa {
    let key = cert_key(seed);
    let mut p = cert_params(&format!("{td} CA"), u64::from(seed));
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let cert = p.self_signed(&key).expect("a CA certificate");
    CertCa { cert, key }
}

fn leaf(
    ca: &CertCa,
    seed: u8,
    ids: &[&str],
    tweak: impl FnOnce(&mut rcgen::CertificateParams),
) -> String {
    let mut p = cert_params("workload", 1000 + u64::from(seed));
    p.subject_alt_names = ids
        .iter()
        .map(|i| rcgen::SanType::URI((*i).try_into().expect("a URI")))
        .collect();
    p.is_ca = rcgen::IsCa::ExplicitNoCa;
    p.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    tweak(&mut p);
    p.signed_by(&cert_key(seed), &ca.cert, &ca.key)
        .expect("a leaf")
        .pem()
}

fn x509(g: &mut Gen) {
    let (a, b) = (cert_ca("a.example", 61), cert_ca("b.example", 62));
    let entry = |ca: &CertCa| {
        json!({"use": "x509-svid", "kty": "OKP", "crv": "Ed25519",
            "x5c": [base64::engine::general_purpose::STANDARD.encode(ca.cert.der())]})
    };
    let pack = json!({"variant": "standard", "chain": "require_sender_binding true",
        "bundles": {"a.example": [entry(&a)], "b.example": [entry(&b)]}});
    let token = g.alice(json!({}));
    let with_cert = |pems: Vec<String>| {
        let mut r = request(std::slice::from_ref(&token));
        r["peer_certificates"] = pems.into();
        r
    };
    let alice = leaf(&b, 71, &[ALICE], |_| {});
    g.case(
        "x509-baseline",
        "baseline",
        "Alice-agent presents her own X.509-SVID from b.example's authority under `require_sender_binding true`: allowed.",
        pack.clone(),
        with_cert(vec![alice.clone()]),
        Expect::Allow,
    );
    let mut cases: Vec<(&str, &str, String)> = vec![
        ("x509-other-domains-authority", "a.example's CA issues a certificate claiming a b.example ID: a domain vouches only for its own workloads.", leaf(&a, 72, &[ALICE], |_| {})),
        ("x509-expired", "An X.509-SVID that expired a day before the call.", leaf(&b, 73, &[ALICE], |p| p.not_after = date(NOW - 86_400))),
        ("x509-not-yet-valid", "An X.509-SVID valid only from tomorrow.", leaf(&b, 74, &[ALICE], |p| p.not_before = date(NOW + 86_400))),
        ("x509-ca-as-leaf", "A CA certificate (cA=true, keyCertSign) with Alice-agent's ID presented as the leaf.", leaf(&b, 75, &[ALICE], |p| {
            p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            p.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
        })),
        ("x509-two-uri-sans", "A leaf with two URI SANs: which one is the caller?", leaf(&b, 76, &[ALICE, CAROL], |_| {})),
        ("x509-no-uri-san", "A leaf without a URI SAN: no SPIFFE ID at all.", leaf(&b, 77, &[], |_| {})),
        ("x509-id-without-path", "A leaf whose SPIFFE ID has no path (the trust domain itself).", leaf(&b, 78, &["spiffe://b.example"], |_| {})),
        ("x509-key-cert-sign-leaf", "A leaf that may also sign certificates (keyCertSign).", leaf(&b, 79, &[ALICE], |p| {
            p.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature, rcgen::KeyUsagePurpose::KeyCertSign];
        })),
        ("x509-no-digital-signature", "A leaf whose key usage lacks digitalSignature.", leaf(&b, 80, &[ALICE], |p| {
            p.key_usages = vec![rcgen::KeyUsagePurpose::KeyEncipherment];
        })),
    ];
    let rogue = cert_ca("b.example", 63);
    cases.push((
        "x509-self-made-authority",
        "A certificate from a CA the attacker made, named like b.example's.",
        leaf(&rogue, 81, &[ALICE], |_| {}),
    ));
    for (name, description, pem) in cases {
        g.case(
            name,
            ATTACK,
            description,
            pack.clone(),
            with_cert(vec![pem]),
            Expect::Deny("peer_invalid", None),
        );
    }
    let bob = leaf(&a, 82, &[BOB], |_| {});
    g.case(
        "x509-stolen-token",
        "sender binding",
        "Bob presents his own valid a.example X.509-SVID with Alice-agent's token: a stolen token replayed over the thief's own mTLS connection.",
        pack.clone(),
        with_cert(vec![bob]),
        Expect::Deny("sender_mismatch", Some(0)),
    );
    let mut disagree = with_cert(vec![alice]);
    disagree["peer"] = CAROL.into();
    g.case(
        "x509-peer-disagrees",
        "sender binding",
        "The transport says Carol while the certificate proves Alice-agent.",
        pack,
        disagree,
        Expect::Deny("sender_mismatch", None),
    );
}

fn wimse(g: &mut Gen) {
    let wl = workload();
    let token = g.alice(json!({}));
    let w = g.wit("b.example", ALICE, &wl, json!({}));
    let good = wpt(&wl, &w, &token, json!({}), json!({}));
    g.case(
        "wimse-baseline",
        "baseline",
        "Alice-agent proves herself with a WIT and a WPT for this target and token: allowed (and the same WPT again is `replayed`).",
        standard(),
        wimse_request(&token, &w, &good),
        Expect::Allow,
    );
    let deny = |g: &mut Gen, name: &str, description: &str, wit: &str, proof: &str| {
        g.case(
            name,
            ATTACK,
            description,
            standard(),
            wimse_request(&token, wit, proof),
            Expect::Deny("peer_invalid", None),
        );
    };
    let bad = |patch: Value| wpt(&wl, &w, &token, patch, json!({}));
    deny(
        g,
        "wpt-other-target",
        "A WPT made for another URI of the service, replayed at this one.",
        &w,
        &bad(json!({"aud": "https://orders.c.example/orders/8"})),
    );
    deny(
        g,
        "wpt-host-as-target",
        "A WPT whose `aud` is the caller-controlled `Host`, not the target the gateway knows.",
        &w,
        &bad(json!({"aud": "https://evil.example/orders/7"})),
    );
    deny(
        g,
        "wpt-other-access-token",
        "A WPT whose `ath` covers another access token than the one presented.",
        &w,
        &bad(json!({"ath": hash("another access token")})),
    );
    deny(
        g,
        "wpt-no-ath",
        "A WPT that covers no access token while one is presented.",
        &w,
        &bad(json!({"ath": null})),
    );
    deny(
        g,
        "wpt-other-wit",
        "A WPT bound to another WIT (`wth`).",
        &w,
        &bad(json!({"wth": hash("another wit")})),
    );
    deny(
        g,
        "wpt-expired",
        "A WPT that expired a minute ago.",
        &w,
        &bad(json!({"exp": NOW - 60})),
    );
    deny(
        g,
        "wpt-long-lived",
        "A WPT good for ten minutes: more than the 5 minutes a proof may have left.",
        &w,
        &bad(json!({"exp": NOW + 600})),
    );
    deny(
        g,
        "wpt-no-jti",
        "A WPT without `jti`: its reuse could not be refused.",
        &w,
        &bad(json!({"jti": null})),
    );
    deny(
        g,
        "wpt-unknown-oth",
        "A WPT whose `oth` covers a header the request does not have.",
        &w,
        &bad(json!({"oth": {"x-request-id": hash("abc")}})),
    );
    deny(
        g,
        "wpt-tth-without-txn-token",
        "A WPT with `tth` while the request carries no Txn-Token.",
        &w,
        &bad(json!({"tth": hash("txn")})),
    );
    let stolen_key = wpt(&intruder(), &w, &token, json!({}), json!({}));
    deny(g, "wpt-signed-by-other-key", "A WPT signed by a key other than the WIT's `cnf.jwk`: someone holding the WIT but not its key.", &w, &stolen_key);
    let other_alg = wpt(&wl, &w, &token, json!({}), json!({"alg": "Ed25519"}));
    deny(g, "wpt-alg-not-cnf-alg", "A WPT under `alg` `Ed25519` for a `cnf.jwk` whose `alg` is `EdDSA`: the same key, but not exactly its algorithm.", &w, &other_alg);
    let no_typ = wpt(&wl, &w, &token, json!({}), json!({"typ": "JWT"}));
    deny(
        g,
        "wpt-wrong-typ",
        "A WPT typed `JWT`: any signed JWT of the workload would do as a proof.",
        &w,
        &no_typ,
    );
    let w_aud = g.wit("b.example", ALICE, &wl, json!({"aud": AUD}));
    deny(
        g,
        "wit-with-aud",
        "A WIT that carries `aud`, which a WIT must not.",
        &w_aud,
        &wpt(&wl, &w_aud, &token, json!({}), json!({})),
    );
    let w_old = g.wit("b.example", ALICE, &wl, json!({"exp": NOW - 100}));
    deny(
        g,
        "wit-expired",
        "An expired WIT with a fresh WPT.",
        &w_old,
        &wpt(&wl, &w_old, &token, json!({}), json!({})),
    );
    let w_cross = g.wit("a.example", ALICE, &wl, json!({}));
    deny(g, "wit-signed-by-other-domain", "A WIT for a b.example workload signed by a.example's key: a domain vouches only for its own workloads.", &w_cross, &wpt(&wl, &w_cross, &token, json!({}), json!({})));
    let w_nocnf = g.wit("b.example", ALICE, &wl, json!({"cnf": null}));
    deny(
        g,
        "wit-no-cnf",
        "A WIT that binds no key: it would be a bearer token.",
        &w_nocnf,
        &wpt(&wl, &w_nocnf, &token, json!({}), json!({})),
    );
    let mut alone = wimse_request(&token, &w, &good);
    if let Some(m) = alone.as_object_mut() {
        m.remove("wpt");
    }
    g.case(
        "wit-without-wpt",
        ATTACK,
        "A WIT presented alone: a WIT is never a bearer credential.",
        standard(),
        alone,
        Expect::Deny("peer_invalid", None),
    );
    let mut untargeted = wimse_request(&token, &w, &good);
    if let Some(m) = untargeted.as_object_mut() {
        m.remove("target_uri");
    }
    g.case(
        "wpt-without-target-uri",
        ATTACK,
        "A gateway that sets no target URI: the WPT's `aud` cannot be checked.",
        standard(),
        untargeted,
        Expect::Deny("peer_invalid", None),
    );
    // sender binding on the proven identity
    let carol = SigningKey::from_seed("carol", [43; 32]);
    let w_carol = g.wit("b.example", CAROL, &carol, json!({}));
    g.case(
        "wimse-stolen-token",
        "sender binding",
        "Carol, another b.example workload, proves herself properly and presents Alice-agent's token: the proven caller is not the token's actor.",
        standard(),
        wimse_request(&token, &w_carol, &wpt(&carol, &w_carol, &token, json!({}), json!({}))),
        Expect::Deny("sender_mismatch", Some(0)),
    );
    let mut with_peer = wimse_request(&token, &w, &good);
    with_peer["peer"] = CAROL.into();
    g.case(
        "wimse-peer-disagrees",
        "sender binding",
        "The transport says Carol while the WIT proves Alice-agent.",
        standard(),
        with_peer,
        Expect::Deny("sender_mismatch", None),
    );
    g.case(
        "wimse-satisfies-sender-binding",
        "baseline",
        "Under `require_sender_binding true`, a WIT with its WPT proves the caller without a `peer`: allowed.",
        json!({"variant": "standard", "chain": "require_sender_binding true"}),
        wimse_request(&token, &w, &good),
        Expect::Allow,
    );
}

fn dpop_cases(g: &mut Gen) {
    let key = workload();
    let jkt = B64.encode(key.public().thumbprint());
    let token = g.alice(json!({"cnf": {"jkt": jkt}}));
    let good = dpop(&key, &token, json!({}), json!({}));
    g.case(
        "dpop-baseline",
        "baseline",
        "A DPoP-bound token (`cnf.jkt`) with a proof of its key for this method, URI and token: allowed (and the same proof again is `replayed`).",
        standard(),
        dpop_request(&token, Some(&good)),
        Expect::Allow,
    );
    g.case(
        "dpop-bound-token-without-proof",
        ATTACK,
        "A stolen DPoP-bound token presented as a bearer token, with no proof.",
        standard(),
        dpop_request(&token, None),
        Expect::Deny("peer_invalid", None),
    );
    let mut deny = |name: &str, description: &str, proof: String| {
        g.case(
            name,
            ATTACK,
            description,
            standard(),
            dpop_request(&token, Some(&proof)),
            Expect::Deny("peer_invalid", None),
        );
    };
    deny(
        "dpop-other-key",
        "A valid proof by another key than the one the token is bound to.",
        dpop(&intruder(), &token, json!({}), json!({})),
    );
    deny(
        "dpop-other-method",
        "A proof made for `POST`, used for a `GET`.",
        dpop(&key, &token, json!({"htm": "POST"}), json!({})),
    );
    deny(
        "dpop-other-uri",
        "A proof made for another URI.",
        dpop(
            &key,
            &token,
            json!({"htu": "https://orders.c.example/orders/8"}),
            json!({}),
        ),
    );
    deny(
        "dpop-stale",
        "A proof made ten minutes ago.",
        dpop(&key, &token, json!({"iat": NOW - 600}), json!({})),
    );
    deny(
        "dpop-other-token",
        "A proof whose `ath` covers another access token.",
        dpop(
            &key,
            &token,
            json!({"ath": hash("another token")}),
            json!({}),
        ),
    );
    deny(
        "dpop-no-ath",
        "A proof that covers no access token.",
        dpop(&key, &token, json!({"ath": null}), json!({})),
    );
    deny(
        "dpop-wrong-typ",
        "A proof typed `JWT`.",
        dpop(&key, &token, json!({}), json!({"typ": "JWT"})),
    );
    let mut private = key.to_private_jwk();
    private["alg"] = "EdDSA".into();
    deny(
        "dpop-private-jwk",
        "A proof whose `jwk` header carries the private key.",
        dpop(&key, &token, json!({}), json!({"jwk": private})),
    );
    let unsupported = g.alice(json!({"cnf": {"jwk": public_jwk(&key)}}));
    g.case(
        "cnf-unsupported",
        ATTACK,
        "An access token bound by a confirmation method custody cannot check (`cnf.jwk`): never a bearer token.",
        standard(),
        request(&[unsupported]),
        Expect::Deny("peer_invalid", None),
    );
    let cert_bound = g.alice(json!({"cnf": {"x5t#S256": hash("certificate")}}));
    g.case(
        "cnf-certificate-bound-without-certificate",
        ATTACK,
        "A certificate-bound token (`cnf.x5t#S256`) presented without the caller's certificate.",
        standard(),
        request(&[cert_bound]),
        Expect::Deny("peer_invalid", None),
    );
}

const SVID_CEDAR: &str = "permit(principal == Agent::\"spiffe://b.example/agent/alice\", action == Action::\"orders:read\", resource);\n";

fn svids(g: &mut Gen) {
    let k = g.f.key("b.example").clone();
    let svid = |typ: Option<&str>, patch: Value| {
        let mut h = json!({"alg": "EdDSA", "kid": k.kid()});
        if let Some(t) = typ {
            h["typ"] = t.into();
        }
        let c = json!({"sub": ALICE, "aud": AUD, "exp": NOW + 300});
        sign_with_header(&k, &h, &with(c, patch)).unwrap_or_default()
    };
    let cedar = json!({"variant": "standard", "cedar": SVID_CEDAR});
    g.case(
        "jwt-svid-baseline",
        "baseline",
        "A JWT-SVID (no `iss`, a SPIFFE ID as `sub`, no `iat`) of b.example for the orders service, permitted by Cedar: allowed.",
        cedar.clone(),
        request(&[svid(None, json!({}))]),
        Expect::Allow,
    );
    g.case(
        "jwt-svid-without-cedar",
        "scope escalation",
        "A JWT-SVID carries no scope: without a Cedar policy that permits it, it grants nothing.",
        standard(),
        request(&[svid(None, json!({}))]),
        Expect::Deny("scope_missing", Some(0)),
    );
    g.case(
        "jwt-svid-at-jwt-typ",
        "token-class confusion",
        "A JWT-SVID typed `at+jwt`.",
        cedar.clone(),
        request(&[svid(Some("at+jwt"), json!({}))]),
        Expect::Deny("wrong_token_type", Some(0)),
    );
    g.case(
        "jwt-svid-no-aud",
        "audience",
        "A JWT-SVID without `aud`: good for any service.",
        cedar.clone(),
        request(&[svid(None, json!({"aud": null}))]),
        Expect::Deny("missing_claim", Some(0)),
    );
    g.case(
        "jwt-svid-undeclared-domain",
        "key selection",
        "A JWT-SVID of a trust domain the pack does not declare.",
        cedar.clone(),
        request(&[svid(None, json!({"sub": "spiffe://z.example/agent/x"}))]),
        Expect::Deny("unknown_issuer", Some(0)),
    );
    let chained = vec![g.t0(json!({})), svid(None, json!({}))];
    g.case(
        "jwt-svid-in-a-chain",
        "token-class confusion",
        "A JWT-SVID as the presented token of a delegation chain: a JWT-SVID is a chain of its own.",
        cedar,
        request(&chained),
        Expect::Deny("wrong_token_type", Some(1)),
    );
}
