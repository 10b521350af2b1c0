//! Every input-size limit custody enforces, in one value.

/// Resource limits, each checked before the work it guards. Every default says where it came
/// from; all may be lowered, and raising them is the operator's risk to take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes in one compact token. 8 KiB: the common HTTP header budget per field; a chain of
    /// four nested actors with generous claims fits in about 2 KiB.
    pub token_bytes: usize,
    /// JSON nesting, the top-level object or array being level 1 (headers, claim sets, key sets,
    /// requests). 16: standards digest §13; four levels more than an eight-deep `act` needs.
    pub json_depth: usize,
    /// Nested `act` objects in one token. 8: standards digest §13 (AuthPlane caps at 5).
    pub act_depth: usize,
    /// Tokens in one request's `tokens` list. 16: DESIGN.md; three times the default chain depth.
    pub tokens_per_request: usize,
    /// Bytes in a SPIFFE ID. 2048: the SPIFFE spec's required support, and the ceiling here.
    pub spiffe_id_bytes: usize,
    /// Bytes in a trust domain name. 255: RFC 3986's host limit, and the ceiling here.
    pub trust_domain_bytes: usize,
    /// Members in one JSON object of a token (claims, header, `act`). 64: well past any
    /// profile's dozen or so claims, small enough that a claim set cannot become a heap spray.
    pub claims_per_object: usize,
    /// Bytes in one request document (CLI or gRPC JSON). 256 KiB: 16 tokens of 8 KiB plus
    /// 128 KiB of context.
    pub request_bytes: usize,
    /// Bytes in one file of a policy pack (trust file, Cedar file, key set, entities). 1 MiB.
    pub pack_file_bytes: usize,
    /// Cedar policies in one pack. 10,000: a hundred times the largest pack we have seen.
    pub policies: usize,
    /// Keys in one JWKS or SPIFFE bundle. 1,024: far past rotation's usual two or three.
    pub keys_per_set: usize,
    /// Nesting of blocks in a trust file before pest sees it. 8: the language nests two deep.
    pub trust_nesting: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            token_bytes: 8 * 1024,
            json_depth: 16,
            act_depth: 8,
            tokens_per_request: 16,
            spiffe_id_bytes: custody_id::MAX_ID_BYTES,
            trust_domain_bytes: custody_id::MAX_TRUST_DOMAIN_BYTES,
            claims_per_object: 64,
            request_bytes: 256 * 1024,
            pack_file_bytes: 1024 * 1024,
            policies: 10_000,
            keys_per_set: 1024,
            trust_nesting: 8,
        }
    }
}

impl Limits {
    /// A workload SPIFFE ID (non-empty path) within these limits' `spiffe_id_bytes` and
    /// `trust_domain_bytes`: every actor, requesting workload and `peer` is read through here.
    pub fn workload_id(&self, text: &str) -> Result<custody_id::SpiffeId, custody_id::IdError> {
        custody_id::SpiffeId::parse_workload_within(
            text,
            self.spiffe_id_bytes,
            self.trust_domain_bytes,
        )
    }
}
