//! The URLs of remote key sources: what a trust file may name.

use std::net::IpAddr;

/// Checks a remote key source's URL: `https`, or `http` to a loopback address (127.0.0.0/8,
/// `::1`, `localhost`), with a host, and without credentials or a fragment.
pub(crate) fn check(text: &str) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|e| format!("not a URL ({e})"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("a URL with credentials in it is refused".into());
    }
    if url.fragment().is_some() {
        return Err("a URL with a fragment is refused".into());
    }
    let host = url.host().ok_or("a URL needs a host")?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&host) => Ok(()),
        "http" => Err(format!(
            "`http` is allowed only to a loopback address (127.0.0.0/8, `::1`, `localhost`), not `{host}`: use `https`"
        )),
        other => Err(format!("scheme `{other}` is not `https`")),
    }
}

fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        url::Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn https_anywhere_http_only_to_loopback() {
        for ok in [
            "https://idp.example/.well-known/jwks.json",
            "https://idp.example:8443/keys?tenant=a",
            "http://127.0.0.1:8080/jwks",
            "http://127.3.4.5/jwks",
            "http://[::1]:9000/",
            "http://localhost:9000/",
            "http://LOCALHOST/",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://idp.example/jwks",
            "http://10.0.0.1/jwks",
            "http://127.0.0.1.nip.io/jwks",
            "http://localhost.example/",
            "http://[::ffff:127.0.0.1]/",
            "ftp://idp.example/jwks",
            "file:///etc/keys.jwks",
            "https://user:pw@idp.example/jwks",
            "https://idp.example/jwks#frag",
            "idp.example/jwks",
            "",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }
}
