//! Cedar slicing: evaluate only the policies whose scope can match a request.
//!
//! Cedar evaluates a policy as `principal_scope && (action_scope && (resource_scope && body))`,
//! left to right with short-circuit `&&`, and a scope test never errors. A policy whose scope is
//! false for a request therefore contributes nothing to the response: no determining id, no
//! error. [`SlicedPolicySet`] exploits that: for each distinct (action, principal type,
//! resource type) it builds, once, the sub-set of policies whose scope can be true for some
//! request of that shape, keeping the whole set's order (so evaluation errors come out in the
//! same order), and evaluates the request against that slice only.
//!
//! A policy is kept in a slice unless its scope is provably false for every request of the key:
//!
//! - action `==  A`: kept iff the request's action is `A`;
//! - action `in [A, …]`: kept iff the request's action is `in` one of them according to the
//!   entity store (Cedar's own `in`: equality, or an ancestor in the action hierarchy of the
//!   schema or `entities.json`);
//! - principal / resource `== E` or `is T` (also `is T in …`): kept iff the request's entity
//!   type is `E`'s type, or `T`; `in E` and unconstrained: always kept.
//!
//! A set holding templates or template-linked policies is not sliced (every request is
//! evaluated against the whole set). Slices are cached, at most [`MAX_SLICES`] of them; past
//! that, requests of a new shape are evaluated against the whole set, which gives the same
//! answer, only slower.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use cedar_policy::{
    ActionConstraint, Authorizer, Entities, EntityTypeName, EntityUid, Policy, PolicySet,
    PrincipalConstraint, Request, ResourceConstraint, Response,
};

/// Most slices kept (one per distinct action, principal type and resource type seen).
pub const MAX_SLICES: usize = 1024;

type Key = (EntityUid, EntityTypeName, EntityTypeName);

/// A policy set that evaluates each request against only the policies that can apply to it.
pub struct SlicedPolicySet {
    whole: Arc<PolicySet>,
    /// The static policies in set order; `None` when the set cannot be sliced.
    policies: Option<Vec<Policy>>,
    slices: RwLock<HashMap<Key, Arc<PolicySet>>>,
}

impl std::fmt::Debug for SlicedPolicySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlicedPolicySet")
            .field("policies", &self.whole.num_of_policies())
            .field("slices", &self.slice_count())
            .finish()
    }
}

impl SlicedPolicySet {
    /// Indexes `set`. Cheap: slices are built on first use.
    pub fn new(set: PolicySet) -> Self {
        let sliceable = set.num_of_templates() == 0 && set.policies().all(Policy::is_static);
        let policies = sliceable.then(|| set.policies().cloned().collect());
        SlicedPolicySet {
            whole: Arc::new(set),
            policies,
            slices: RwLock::new(HashMap::new()),
        }
    }

    /// A set evaluated whole every time (slicing off), for comparisons.
    pub fn unsliced(set: PolicySet) -> Self {
        SlicedPolicySet {
            whole: Arc::new(set),
            policies: None,
            slices: RwLock::new(HashMap::new()),
        }
    }

    /// The whole policy set.
    pub fn whole(&self) -> &PolicySet {
        &self.whole
    }

    /// Slices built so far.
    pub fn slice_count(&self) -> usize {
        self.slices.read().map(|s| s.len()).unwrap_or(0)
    }

    /// `Authorizer::is_authorized(request, whole set, entities)`, computed on the slice.
    pub fn is_authorized(&self, request: &Request, entities: &Entities) -> Response {
        let set = self.slice_for(request, entities);
        Authorizer::new().is_authorized(request, &set, entities)
    }

    /// The policies `request` is evaluated against.
    pub fn slice_for(&self, request: &Request, entities: &Entities) -> Arc<PolicySet> {
        let Some(policies) = &self.policies else {
            return Arc::clone(&self.whole);
        };
        let (Some(action), Some(principal), Some(resource)) =
            (request.action(), request.principal(), request.resource())
        else {
            return Arc::clone(&self.whole);
        };
        let key = (
            action.clone(),
            principal.type_name().clone(),
            resource.type_name().clone(),
        );
        if let Some(s) = self.slices.read().ok().and_then(|m| m.get(&key).cloned()) {
            return s;
        }
        let Some(slice) = build(policies, &key, entities) else {
            return Arc::clone(&self.whole);
        };
        let slice = Arc::new(slice);
        if let Ok(mut m) = self.slices.write() {
            if m.len() < MAX_SLICES {
                m.insert(key, Arc::clone(&slice));
            }
        }
        slice
    }
}

/// The sub-set of `policies` that can apply to requests of shape `key`, in order.
fn build(policies: &[Policy], key: &Key, entities: &Entities) -> Option<PolicySet> {
    let mut set = PolicySet::new();
    for p in policies.iter().filter(|p| may_apply(p, key, entities)) {
        set.add(p.clone()).ok()?;
    }
    Some(set)
}

/// Whether `p`'s scope can be true for some request of shape `key`.
pub(crate) fn may_apply(p: &Policy, key: &Key, entities: &Entities) -> bool {
    let (action, principal_type, resource_type) = key;
    let action_ok = match p.action_constraint() {
        ActionConstraint::Any => true,
        ActionConstraint::Eq(a) => &a == action,
        // Cedar's `in`: equal, or an ancestor (`is_ancestor_of` alone leaves equality out
        // when the entity exists)
        ActionConstraint::In(list) => list
            .iter()
            .any(|a| a == action || entities.is_ancestor_of(a, action)),
    };
    let principal_ok = match p.principal_constraint() {
        PrincipalConstraint::Any | PrincipalConstraint::In(_) => true,
        PrincipalConstraint::Eq(e) => e.type_name() == principal_type,
        PrincipalConstraint::Is(t) | PrincipalConstraint::IsIn(t, _) => &t == principal_type,
    };
    let resource_ok = match p.resource_constraint() {
        ResourceConstraint::Any | ResourceConstraint::In(_) => true,
        ResourceConstraint::Eq(e) => e.type_name() == resource_type,
        ResourceConstraint::Is(t) | ResourceConstraint::IsIn(t, _) => &t == resource_type,
    };
    action_ok && principal_ok && resource_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn uid(s: &str) -> EntityUid {
        EntityUid::from_str(s).unwrap()
    }

    fn ids(set: &PolicySet) -> Vec<String> {
        set.policies().map(|p| p.id().to_string()).collect()
    }

    const POLICIES: &str = r#"
        permit (principal, action == Action::"read", resource);
        permit (principal == Agent::"x", action in [Action::"write", Action::"read"], resource);
        forbid (principal is User, action, resource is Resource);
        permit (principal, action in Action::"readers", resource);
        permit (principal in Team::"t", action == Action::"write", resource == Doc::"d");
    "#;

    fn entities() -> Entities {
        Entities::from_json_str(
            r#"[{"uid": {"type": "Action", "id": "read"}, "attrs": {},
                 "parents": [{"type": "Action", "id": "readers"}]}]"#,
            None,
        )
        .unwrap()
    }

    fn slice(action: &str, principal: &str, resource: &str) -> Vec<String> {
        let set = SlicedPolicySet::new(PolicySet::from_str(POLICIES).unwrap());
        let req = Request::new(
            uid(principal),
            uid(action),
            uid(resource),
            cedar_policy::Context::empty(),
            None,
        )
        .unwrap();
        ids(&set.slice_for(&req, &entities()))
    }

    #[test]
    fn slices_follow_scopes_and_hierarchy() {
        assert_eq!(
            slice(r#"Action::"read""#, r#"Agent::"x""#, r#"Resource::"r""#),
            ["policy0", "policy1", "policy3"]
        );
        assert_eq!(
            slice(r#"Action::"read""#, r#"User::"u""#, r#"Resource::"r""#),
            ["policy0", "policy2", "policy3"]
        );
        assert_eq!(
            slice(r#"Action::"write""#, r#"Agent::"y""#, r#"Doc::"d""#),
            ["policy1", "policy4"]
        );
        assert_eq!(
            slice(r#"Action::"other""#, r#"Agent::"y""#, r#"Resource::"r""#),
            Vec::<String>::new()
        );
    }

    #[test]
    fn slices_are_cached_and_bounded() {
        let set = SlicedPolicySet::new(PolicySet::from_str(POLICIES).unwrap());
        let e = entities();
        for i in 0..MAX_SLICES + 10 {
            let req = Request::new(
                uid(r#"Agent::"x""#),
                uid(&format!("Action::\"a{i}\"")),
                uid(r#"Resource::"r""#),
                cedar_policy::Context::empty(),
                None,
            )
            .unwrap();
            set.is_authorized(&req, &e);
        }
        assert_eq!(set.slice_count(), MAX_SLICES);
    }

    #[test]
    fn templates_disable_slicing() {
        let text = r#"permit (principal == ?principal, action == Action::"read", resource);"#;
        let set = SlicedPolicySet::new(PolicySet::from_str(text).unwrap());
        assert!(set.policies.is_none());
    }
}
