//! Who may deliver events: the shared secret carried in a header, compared in constant time.

use base64::{engine::general_purpose::STANDARD, Engine};
use lambda_http::http::{HeaderMap, HeaderName};
use subtle::Choice;

use crate::secret::digest;
pub use crate::secret::Secret;

/// True when the configured header carries one of `secrets`.
///
/// On `authorization` the value is `Bearer <secret>` or `Basic base64(<user>:<secret>)`;
/// on any other header the whole value is the secret.
pub fn is_authorized(headers: &HeaderMap, header: &HeaderName, secrets: &[Secret]) -> bool {
    let Some(value) = headers.get(header) else {
        return false;
    };
    let candidate = if header == lambda_http::http::header::AUTHORIZATION {
        credential_from_authorization(value.as_bytes())
    } else {
        Some(value.as_bytes().to_vec())
    };
    let Some(candidate) = candidate else {
        return false;
    };
    let candidate = digest(&candidate);
    // Every secret is compared, so timing does not tell which one (or whether any) matched.
    secrets.iter().fold(Choice::from(0), |found, secret| found | secret.matches(&candidate)).into()
}

fn credential_from_authorization(value: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let (scheme, rest) = text.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(rest.as_bytes().to_vec())
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD.decode(rest).ok()?;
        let colon = decoded.iter().position(|&b| b == b':')?;
        decoded.get(colon + 1..).map(<[u8]>::to_vec)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::http::HeaderValue;

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(name, HeaderValue::from_str(value).unwrap());
        map
    }

    fn authorized(name: &'static str, value: &str, header: &'static str, secrets: &[&str]) -> bool {
        let secrets: Vec<Secret> = secrets.iter().map(|s| Secret::new(s)).collect();
        is_authorized(&headers(name, value), &HeaderName::from_static(header), &secrets)
    }

    #[test]
    fn bearer_token_matches_with_any_scheme_case() {
        for value in ["Bearer s3cret", "bearer s3cret", "BEARER   s3cret "] {
            assert!(authorized("authorization", value, "authorization", &["s3cret"]), "{value}");
        }
        assert!(!authorized("authorization", "Bearer wrong", "authorization", &["s3cret"]));
        assert!(!authorized("authorization", "Bearer s3cret2", "authorization", &["s3cret"]));
        assert!(!authorized("authorization", "Bearer ", "authorization", &["s3cret"]));
    }

    #[test]
    fn basic_auth_uses_the_password_whatever_the_user() {
        let value = format!("Basic {}", STANDARD.encode("kadoa:s3cret"));
        assert!(authorized("authorization", &value, "authorization", &["s3cret"]));
        let value = format!("basic {}", STANDARD.encode(":s3cret"));
        assert!(authorized("authorization", &value, "authorization", &["s3cret"]));
        let value = format!("Basic {}", STANDARD.encode("s3cret:"));
        assert!(!authorized("authorization", &value, "authorization", &["s3cret"]));
        assert!(!authorized("authorization", "Basic !!notbase64", "authorization", &["s3cret"]));
    }

    #[test]
    fn a_bare_secret_or_unknown_scheme_in_authorization_is_refused() {
        assert!(!authorized("authorization", "s3cret", "authorization", &["s3cret"]));
        assert!(!authorized("authorization", "Token s3cret", "authorization", &["s3cret"]));
    }

    #[test]
    fn custom_header_carries_the_whole_secret() {
        assert!(authorized("x-kadoa-token", "s3cret", "x-kadoa-token", &["s3cret"]));
        assert!(!authorized("x-kadoa-token", "Bearer s3cret", "x-kadoa-token", &["s3cret"]));
        // The credential must be in the configured header, not in another one.
        assert!(!authorized("authorization", "Bearer s3cret", "x-kadoa-token", &["s3cret"]));
    }

    #[test]
    fn any_configured_secret_matches_during_rotation() {
        let secrets = Secret::parse_lines("old-secret\n\n  new-secret  \n");
        assert_eq!(secrets.len(), 2);
        let header = HeaderName::from_static("authorization");
        assert!(is_authorized(&headers("authorization", "Bearer old-secret"), &header, &secrets));
        assert!(is_authorized(&headers("authorization", "Bearer new-secret"), &header, &secrets));
        assert!(!is_authorized(&headers("authorization", "Bearer other"), &header, &secrets));
    }

    #[test]
    fn missing_header_or_no_secrets_is_unauthorized() {
        assert!(!is_authorized(&HeaderMap::new(), &HeaderName::from_static("authorization"), &[Secret::new("x")]));
        assert!(!authorized("authorization", "Bearer x", "authorization", &[]));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        assert_eq!(format!("{:?}", Secret::new("s3cret")), "Secret(<redacted>)");
    }
}
