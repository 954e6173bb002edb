//! The gateway's three cookies and how they are written. None is readable by scripts
//! (`HttpOnly`); over TLS they are `Secure` and carry the `__Host-` prefix, which also forbids a
//! sibling sub-domain from planting one.
//!
//! - the session: an opaque random id; the tokens it stands for never leave the gateway;
//! - the CSRF token: the double-submit value that every state-changing request must repeat in
//!   a header (scripts) or a form field (forms), read by the page from its `<meta>`;
//! - the language (`fr` or `en`).

use poem::http::header::{COOKIE, SET_COOKIE};
use poem::http::{HeaderMap, HeaderValue};

/// Session lifetime in browsers; the gateway and identity end it sooner if unused or revoked.
const SESSION_MAX_AGE_SECS: u64 = 30 * 24 * 3600;
const ONE_YEAR_SECS: u64 = 365 * 24 * 3600;

/// Which cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cookie {
    Session,
    Csrf,
    Lang,
}

impl Cookie {
    /// The cookie's name (prefixed `__Host-` over TLS, where browsers enforce the prefix).
    #[must_use]
    pub fn name(self, tls: bool) -> &'static str {
        match (self, tls) {
            (Self::Session, false) => "brigade_session",
            (Self::Session, true) => "__Host-brigade_session",
            (Self::Csrf, false) => "brigade_csrf",
            (Self::Csrf, true) => "__Host-brigade_csrf",
            (Self::Lang, false) => "brigade_lang",
            (Self::Lang, true) => "__Host-brigade_lang",
        }
    }

    /// `Set-Cookie` giving the cookie `value`.
    #[must_use]
    pub fn set(self, value: &str, tls: bool) -> String {
        let (same_site, max_age) = match self {
            // Lax: a link to an order page from an e-mail opens signed in; cross-site POSTs
            // carry no session.
            Self::Session => ("Lax", SESSION_MAX_AGE_SECS),
            Self::Csrf => ("Strict", ONE_YEAR_SECS),
            Self::Lang => ("Lax", ONE_YEAR_SECS),
        };
        let secure = if tls { "; Secure" } else { "" };
        format!(
            "{}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite={same_site}{secure}",
            self.name(tls)
        )
    }

    /// `Set-Cookie` removing the cookie.
    #[must_use]
    pub fn clear(self, tls: bool) -> String {
        let secure = if tls { "; Secure" } else { "" };
        format!(
            "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{secure}",
            self.name(tls)
        )
    }

    /// The cookie's value in a request, if sent.
    #[must_use]
    pub fn read(self, headers: &HeaderMap, tls: bool) -> Option<String> {
        let name = self.name(tls);
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    }
}

/// Appends a `Set-Cookie` header.
pub fn append(headers: &mut HeaderMap, set_cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(set_cookie) {
        headers.append(SET_COOKIE, value);
    }
}

/// A random value for a session id or a CSRF token: 32 bytes from the thread's CSPRNG
/// (ChaCha, seeded from the OS), base64url (43 characters).
#[must_use]
pub fn random_token() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `value` looks like one of our tokens (so a forged cookie of another shape is
/// never echoed into a page).
#[must_use]
pub fn is_token(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_http_only_same_site_and_secure_over_tls() {
        let plain = Cookie::Session.set("abc", false);
        assert!(plain.starts_with("brigade_session=abc; Path=/;"));
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Lax"));
        assert!(!plain.contains("Secure"));
        let tls = Cookie::Session.set("abc", true);
        assert!(tls.starts_with("__Host-brigade_session=abc"));
        assert!(tls.ends_with("; Secure"));
    }

    #[test]
    fn a_cookie_is_read_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("a=1; brigade_lang=en; b=2"),
        );
        assert_eq!(Cookie::Lang.read(&headers, false).as_deref(), Some("en"));
        assert_eq!(Cookie::Session.read(&headers, false), None);
    }

    #[test]
    fn tokens_are_random_and_recognisable() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert!(is_token(&a));
        assert!(!is_token("<script>"));
    }
}
