//! Actions from the agent protocols: the JSON-RPC 2.0 body of an MCP or A2A call names what the
//! call does, and that becomes the Cedar action.
//!
//! | mode | a `POST` whose body is | action |
//! |---|---|---|
//! | `mcp` | `tools/call` with `params.name` N | `tools/call:N` |
//! | `mcp` | `resources/read` with `params.uri` U | `resources/read:U` |
//! | `mcp` | any other MCP client method or notification (`initialize`, `tools/list`, `notifications/initialized`, …) | the method |
//! | `a2a` | an A2A method (`message/send`, `message/stream`, `tasks/get`, `tasks/cancel`, …) | the method |
//!
//! Anything else is refused, never guessed: a body that is not strict JSON (a member named twice
//! in the envelope or in `params`, trailing bytes, not UTF-8), a batch (an array), no
//! `"jsonrpc": "2.0"`, no `method` (a response), a method the mode does not know, a
//! `tools/call` without a string `params.name`, a `resources/read` without a string
//! `params.uri`, or a name with whitespace or control characters (an action is one scope item).
//! Members below `params` (a tool's `arguments`) must be valid JSON in valid UTF-8 (no lone
//! surrogate `\u` escape, at most [`MAX_LEVELS`] levels of nesting) but are not read.
//!
//! Calls without a body in these modes (MCP's `GET` stream and `DELETE` of a session) keep the
//! HTTP mapping's action, `METHOD:path`.

use crate::error::MapError;

mod body;

use body::Param;
pub use body::MAX_LEVELS;

/// How a door derives the action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocol {
    /// `METHOD:path`, or the action header: the HTTP mapping.
    #[default]
    Http,
    /// MCP (Streamable HTTP): JSON-RPC requests and notifications to an MCP server.
    Mcp,
    /// A2A (JSON-RPC transport): calls to an A2A agent.
    A2a,
}

impl Protocol {
    /// The name the command line uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Mcp => "mcp",
            Protocol::A2a => "a2a",
        }
    }

    /// A call this mode refuses, and why: `invalid_request` with `"<mode> call refused: why"`,
    /// the one form every door (sidecar, Layer) gives a protocol refusal.
    pub fn refusal(self, why: &str) -> MapError {
        MapError::Invalid(format!("{} call refused: {why}", self.as_str()))
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Protocol, String> {
        match s {
            "http" => Ok(Protocol::Http),
            "mcp" => Ok(Protocol::Mcp),
            "a2a" => Ok(Protocol::A2a),
            other => Err(format!("unknown protocol `{other}` (http, mcp or a2a)")),
        }
    }
}

/// The MCP methods a client sends a server (2025-06-18, and 2026-07-28's `server/discover` and
/// `subscriptions/listen`): requests and notifications.
const MCP_METHODS: [&str; 19] = [
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

/// The A2A JSON-RPC methods: A2A 0.3's and A2A 1.0's (`SendMessage`, …).
const A2A_METHODS: [&str; 21] = [
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

/// The action of a JSON-RPC `body` under `protocol` (not [`Protocol::Http`]).
pub fn action(protocol: Protocol, body: &[u8]) -> Result<String, MapError> {
    let call = parse(body).map_err(|m| protocol.refusal(&m))?;
    if call.jsonrpc.as_deref() != Some("2.0") {
        return Err(protocol.refusal("the body is not JSON-RPC 2.0 (`\"jsonrpc\": \"2.0\"`)"));
    }
    let Some(method) = call.method else {
        return Err(protocol.refusal(
            "the JSON-RPC message has no `method` (a response is no call custody decides)",
        ));
    };
    let known = match protocol {
        Protocol::Mcp => MCP_METHODS.contains(&&*method),
        Protocol::A2a => A2A_METHODS.contains(&&*method),
        Protocol::Http => false,
    };
    if !known {
        return Err(protocol.refusal(&format!(
            "`{}` is not a method custody knows",
            printable(&method)
        )));
    }
    let action = match (protocol, &*method) {
        (Protocol::Mcp, "tools/call") => match call.name {
            Param::Text(n) if !n.is_empty() => format!("tools/call:{n}"),
            _ => return Err(protocol.refusal("`tools/call` without a string `params.name`")),
        },
        (Protocol::Mcp, "resources/read") => match call.uri {
            Param::Text(u) if !u.is_empty() => format!("resources/read:{u}"),
            _ => return Err(protocol.refusal("`resources/read` without a string `params.uri`")),
        },
        _ => method.into_owned(),
    };
    if action.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(protocol.refusal(&format!(
            "the action `{}` holds whitespace or a control character",
            printable(&action)
        )));
    }
    Ok(action)
}

/// At most 80 characters of `s`, control characters escaped: safe in a message.
fn printable(s: &str) -> String {
    let mut out: String = s.chars().take(80).flat_map(char::escape_debug).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}

fn parse(body: &[u8]) -> Result<body::Call<'_>, String> {
    // the whole body, skipped members included: a server must not read bytes custody read
    // otherwise
    let body = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_owned())?;
    body::read(body).map_err(|e| format!("the body is not a strict JSON-RPC object: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn mcp(body: &str) -> Result<String, MapError> {
        action(Protocol::Mcp, body.as_bytes())
    }

    fn refused(r: Result<String, MapError>, part: &str) {
        match r {
            Err(MapError::Invalid(m)) => assert!(m.contains(part), "{m}"),
            other => panic!("expected a refusal with `{part}`, got {other:?}"),
        }
    }

    #[test]
    fn mcp_actions() {
        let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather","arguments":{"city":"Oslo","a":{"b":[1,2]}}}}"#;
        assert_eq!(mcp(call).unwrap(), "tools/call:get_weather");
        // member order does not matter
        let call = r#"{"params":{"arguments":{},"name":"x"},"method":"tools/call","id":"a","jsonrpc":"2.0"}"#;
        assert_eq!(mcp(call).unwrap(), "tools/call:x");
        let read = r#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///a/b.txt"}}"#;
        assert_eq!(mcp(read).unwrap(), "resources/read:file:///a/b.txt");
        for m in [
            "initialize",
            "tools/list",
            "notifications/initialized",
            "ping",
        ] {
            let b = format!(r#"{{"jsonrpc":"2.0","method":"{m}"}}"#);
            assert_eq!(mcp(&b).unwrap(), m);
        }
        // arguments may hold a member twice: custody does not read them
        let dup = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"a":1,"a":2}}}"#;
        assert_eq!(mcp(dup).unwrap(), "tools/call:t");
    }

    #[test]
    fn a_member_named_twice_is_refused_past_the_first_eight_names_too() {
        let names: Vec<String> = (0..12).map(|i| format!(r#""k{i}":{i}"#)).collect();
        let params = names.join(",");
        let ok = format!(
            r#"{{"jsonrpc":"2.0","method":"tools/call","params":{{{params},"name":"t"}},"id":1}}"#
        );
        assert_eq!(mcp(&ok).unwrap(), "tools/call:t");
        for twice in ["k0", "k7", "k8", "k11"] {
            let body = format!(
                r#"{{"jsonrpc":"2.0","method":"tools/call","params":{{{params},"name":"t","{twice}":0}}}}"#
            );
            refused(mcp(&body), &format!("`params.{twice}` appears twice"));
        }
        let envelope = format!(r#"{{"jsonrpc":"2.0","method":"ping",{params},"k9":1}}"#);
        refused(mcp(&envelope), "`k9` appears twice");
    }

    #[test]
    fn a2a_actions() {
        let send = r#"{"jsonrpc":"2.0","id":"1","method":"message/send","params":{"message":{"role":"user","parts":[{"kind":"text","text":"hi"}],"messageId":"m1"}}}"#;
        assert_eq!(
            action(Protocol::A2a, send.as_bytes()).unwrap(),
            "message/send"
        );
        refused(
            action(
                Protocol::A2a,
                br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}"#,
            ),
            "not a method",
        );
        refused(
            mcp(r#"{"jsonrpc":"2.0","id":1,"method":"message/send"}"#),
            "not a method",
        );
    }

    #[test]
    fn everything_else_is_refused_never_guessed() {
        refused(mcp(r#"[{"jsonrpc":"2.0","method":"ping"}]"#), "batch");
        refused(
            mcp(r#"{"jsonrpc":"2.0","method":"ping","method":"tools/list"}"#),
            "twice",
        );
        refused(
            mcp(r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"a","name":"b"}}"#),
            "params.name` appears twice",
        );
        refused(mcp(r#"{"jsonrpc":"2.0","method":"ping"} x"#), "strict");
        refused(mcp(r#"{"jsonrpc":"1.0","method":"ping"}"#), "2.0");
        refused(mcp(r#"{"method":"ping"}"#), "2.0");
        refused(
            mcp(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#),
            "no `method`",
        );
        refused(
            mcp(r#"{"jsonrpc":"2.0","method":"tools/call","params":{}}"#),
            "params.name",
        );
        refused(
            mcp(r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":7}}"#),
            "params.name",
        );
        refused(
            mcp(r#"{"jsonrpc":"2.0","method":"tools/call","params":[1]}"#),
            "params.name",
        );
        refused(
            mcp(r#"{"jsonrpc":"2.0","method":"resources/read","params":{"uri":""}}"#),
            "params.uri",
        );
        refused(
            mcp(r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"a b"}}"#),
            "whitespace",
        );
        refused(
            mcp(r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"a\u0000"}}"#),
            "control",
        );
        refused(mcp(""), "strict");
        refused(
            action(
                Protocol::Mcp,
                b"{\"jsonrpc\":\"2.0\",\"method\":\"p\xffng\"}",
            ),
            "UTF-8",
        );
        // below params too (the fuzzer's find: serde_json skips bytes it does not check)
        refused(
            action(
                Protocol::Mcp,
                b"{\"jsonrpc\":\"2.0\",\"method\":\"tools/call\",\"params\":{\"name\":\"a\",\"x\":{\"n\":\"\xb1\x8flo\"}}}",
            ),
            "UTF-8",
        );
        // a lone surrogate escape is refused where custody does not read too (I-JSON)
        refused(
            mcp(r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"a","x":"\ud800"}}"#),
            "lone surrogate",
        );
        refused(
            mcp(r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"a\ud800"}}"#),
            "strict",
        );
        refused(mcp(r#""ping""#), "strict");
        refused(
            mcp(r#"{"jsonrpc":"2.0","method":"tools/delete_everything"}"#),
            "not a method",
        );
        // nesting far below params is still JSON that must close
        refused(
            mcp(
                r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"a","arguments":{"x":[1,2}}}"#,
            ),
            "strict",
        );
        let deep = format!(
            r#"{{"jsonrpc":"2.0","method":"tools/call","params":{{"name":"a","arguments":{}1{}}}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        // ten thousand levels below params: refused at the cap, without recursion
        refused(mcp(&deep), "deeper than 127 levels");
    }
}
