//! TEMPORARY STUB
use crate::index::PackIndex;
use custody_id::SpiffeId;
use custody_jose::{KeyStore, Limits};
use custody_policy::PolicyPack;
pub const CACHE_ENTRIES: usize = 4_096;
#[derive(Debug)]
pub(crate) struct X509State;
impl X509State {
    pub fn new(_d: usize, _c: usize) -> Self {
        X509State
    }
    pub fn validate(
        &self,
        _p: &PolicyPack,
        _i: &PackIndex,
        _k: &KeyStore,
        _l: &Limits,
        _pems: &[String],
        _now: i64,
    ) -> Result<(SpiffeId, Vec<u8>), String> {
        Err("stub".into())
    }
}
