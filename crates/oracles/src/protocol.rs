//! The JSON-RPC action derivation (`custody_http::protocol::action`) against a reference that
//! reads the whole body as a `serde_json::Value`.

use custody_http::protocol::{action, Protocol, MAX_LEVELS};
use custody_jose::json;
use serde_json::Value;

use crate::verify::{ensure, Oracle};

/// What the action should be, read off a parsed value (the mapping written the slow way).
fn reference(protocol: Protocol, v: &Value) -> Option<String> {
    const MCP: [&str; 19] = [
        "initialize",
        "ping",
        "tools/list",
        "tools/call",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
        "prompts/list",
        "prompts/get",
        "completion/complete",
        "logging/setLevel",
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/progress",
        "notifications/roots/list_changed",
        // 2026-07-28
        "server/discover",
        "subscriptions/listen",
    ];
    const A2A: [&str; 21] = [
        "message/send",
        "message/stream",
        "tasks/get",
        "tasks/cancel",
        "tasks/resubscribe",
        "tasks/pushNotificationConfig/set",
        "tasks/pushNotificationConfig/get",
        "tasks/pushNotificationConfig/list",
        "tasks/pushNotificationConfig/delete",
        "agent/getAuthenticatedExtendedCard",
        // A2A 1.0 (the gRPC method names)
        "SendMessage",
        "SendStreamingMessage",
        "GetTask",
        "ListTasks",
        "CancelTask",
        "SubscribeToTask",
        "CreateTaskPushNotificationConfig",
        "GetTaskPushNotificationConfig",
        "ListTaskPushNotificationConfigs",
        "DeleteTaskPushNotificationConfig",
        "GetExtendedAgentCard",
    ];
    let m = v.as_object()?;
    if m.get("jsonrpc")?.as_str()? != "2.0" {
        return None;
    }
    let method = m.get("method")?.as_str()?;
    let params = m.get("params");
    if params.is_some_and(|p| !p.is_object() && !p.is_array()) {
        return None;
    }
    let known = match protocol {
        Protocol::Mcp => MCP.contains(&method),
        Protocol::A2a => A2A.contains(&method),
        Protocol::Http => false,
    };
    if !known {
        return None;
    }
    let member = |name: &str| {
        params
            .and_then(|p| p.get(name))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let action = match (protocol, method) {
        (Protocol::Mcp, "tools/call") => format!("tools/call:{}", member("name")?),
        (Protocol::Mcp, "resources/read") => format!("resources/read:{}", member("uri")?),
        _ => method.to_owned(),
    };
    if action.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    Some(action)
}

/// Sound: an action custody derives is the reference's on what serde_json reads of the same
/// body (a body serde_json refuses yields none, but for a number out of f64's range, which
/// custody does not read: that body must still be JSON to serde_json's skipper). Complete: on a
/// body the strict parser accepts (no member twice anywhere, nesting within custody's cap),
/// custody and the reference agree on whether there is an action and which.
pub fn jsonrpc_action(data: &[u8]) -> Oracle {
    for protocol in [Protocol::Mcp, Protocol::A2a] {
        let got = action(protocol, data).ok();
        if let Some(a) = &got {
            match serde_json::from_slice::<Value>(data) {
                Ok(v) => {
                    let want = reference(protocol, &v);
                    ensure(want.as_ref() == Some(a), || {
                        format!("derived `{a}`, the reference reads {want:?}")
                    })?;
                }
                Err(e) if e.to_string().contains("out of range") => {
                    let skipped = serde_json::from_slice::<serde::de::IgnoredAny>(data);
                    ensure(skipped.is_ok(), || {
                        format!("derived `{a}` from a body serde_json cannot skip: {skipped:?}")
                    })?;
                }
                Err(e) => {
                    return Err(format!("derived `{a}` from a body serde_json refuses: {e}"));
                }
            }
        }
        if let Ok(v) = json::parse(data, MAX_LEVELS) {
            let want = reference(protocol, &v);
            ensure(want == got, || {
                format!("on strict JSON custody derives {got:?}, the reference {want:?}")
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oracle_holds_on_examples() {
        for body in [
            &br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"x":[1,{"y":null}]}}}"#[..],
            br#"{"jsonrpc":"2.0","method":"resources/read","params":{"uri":"file:///x"}}"#,
            br#"{"jsonrpc":"2.0","method":"message/send","params":{}}"#,
            br#"{"jsonrpc":"2.0","method":"tools/call","params":5}"#,
            br#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"a b"}}"#,
            br#"[{"jsonrpc":"2.0","method":"ping"}]"#,
            br#"{"jsonrpc":"2.0","method":"ping","method":"ping"}"#,
            br#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"a","arguments":{"k":1,"k":2}}}"#,
            br#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"a","arguments":{"k":1e400}}}"#,
            br#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"a","arguments":"\ud800"}}"#,
            br#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"a","arguments":"\ud83d\ude00"}}"#,
            b"\xff",
        ] {
            assert_eq!(jsonrpc_action(body), Ok(()), "{}", String::from_utf8_lossy(body));
        }
    }
}
