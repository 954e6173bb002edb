//! A small SMTP client (RFC 5321) on tokio: enough to hand one plain-text message to a relay.
//!
//! `220` greeting → `EHLO` → `MAIL FROM` → `RCPT TO` → `DATA` → the message, dot-stuffed →
//! `.` → `QUIT`. No TLS and no authentication: it speaks to a relay on a trusted network (a
//! local Postfix, a cluster's mail relay) that takes care of the rest.
//!
//! What matters to the caller is *whether the message may have been accepted*: every failure
//! before the final `.` is sent is [`SmtpError::Refused`] (nothing was delivered, retrying is
//! safe); a failure after it, when the server may have queued the message without us hearing
//! its answer, is [`SmtpError::Uncertain`] — retrying could deliver it twice.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// How long any one step may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and as whom to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    /// The envelope sender and `From:` address.
    pub from: String,
    /// The name given in `EHLO` and in `Message-ID`s.
    pub hello_name: String,
}

impl SmtpConfig {
    /// The sender when none is configured.
    pub const DEFAULT_FROM: &'static str = "brigade@localhost";

    /// Reads `smtp://host[:port]` (port 25 by default) and the sender address.
    ///
    /// # Errors
    /// A URL that is not `smtp://host[:port]`, or a sender that is not a plain address.
    pub fn from_url(url: &str, from: Option<&str>) -> Result<Self, String> {
        let rest = url
            .trim()
            .strip_prefix("smtp://")
            .ok_or_else(|| format!("BRIGADE_SMTP_URL={url:?}: expected smtp://host[:port]"))?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) if !host.contains(']') || host.ends_with(']') => {
                let port = port
                    .parse()
                    .map_err(|_| format!("BRIGADE_SMTP_URL={url:?}: bad port {port:?}"))?;
                (host, port)
            }
            _ => (rest, 25),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains(['/', '@', '?']) {
            return Err(format!(
                "BRIGADE_SMTP_URL={url:?}: expected smtp://host[:port] (no credentials, no path)"
            ));
        }
        let from = from.unwrap_or(Self::DEFAULT_FROM).trim().to_owned();
        if !is_plain_address(&from) {
            return Err(format!(
                "BRIGADE_SMTP_FROM={from:?}: expected a plain address such as brigade@example.com"
            ));
        }
        let hello_name = from
            .rsplit_once('@')
            .map_or("localhost", |(_, domain)| domain)
            .to_owned();
        Ok(Self {
            host: host.to_owned(),
            port,
            from,
            hello_name,
        })
    }
}

/// One message to send.
#[derive(Debug, Clone)]
pub struct Email<'a> {
    pub to: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    /// Stable across retries (`<…@…>`), so a receiver can tell a repeat.
    pub message_id: &'a str,
    pub date: DateTime<Utc>,
}

/// Why a message was not (surely) sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmtpError {
    /// Nothing was delivered: retrying is safe. `permanent` for a 5xx answer.
    #[error("{reason}")]
    Refused { reason: String, permanent: bool },
    /// The connection failed after the message was sent: it may have been accepted.
    #[error("outcome unknown: {0}")]
    Uncertain(String),
}

fn refused(reason: impl Into<String>) -> SmtpError {
    SmtpError::Refused {
        reason: reason.into(),
        permanent: false,
    }
}

/// Whether `address` can go between `<` and `>` in a command and in a header as it is: one
/// `@`, no spaces, no control or bracket characters (nothing that could inject a command
/// or a header).
#[must_use]
pub fn is_plain_address(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && address.len() <= 254
        && address.chars().all(|c| {
            c.is_ascii_graphic() && !matches!(c, '<' | '>' | '(' | ')' | ',' | ';' | '"' | '\\')
        })
}

/// Sends `email` through the server of `config`.
///
/// # Errors
/// [`SmtpError::Refused`] when nothing was delivered, [`SmtpError::Uncertain`] when the
/// server may have accepted the message.
pub async fn send(config: &SmtpConfig, email: &Email<'_>) -> Result<(), SmtpError> {
    if !is_plain_address(email.to) {
        return Err(SmtpError::Refused {
            reason: format!("{:?} is not a plain e-mail address", email.to),
            permanent: true,
        });
    }
    let stream = tokio::time::timeout(
        STEP_TIMEOUT,
        TcpStream::connect((config.host.as_str(), config.port)),
    )
    .await
    .map_err(|_| refused("connecting timed out"))?
    .map_err(|e| refused(format!("cannot connect: {e}")))?;
    let mut session = Session {
        stream: BufReader::new(stream),
    };
    session.expect(220, "greeting").await?;
    session
        .command(&format!("EHLO {}", config.hello_name), 250)
        .await?;
    session
        .command(&format!("MAIL FROM:<{}>", config.from), 250)
        .await?;
    let rcpt = session
        .command(&format!("RCPT TO:<{}>", email.to), 250)
        .await;
    if let Err(SmtpError::Refused { reason, permanent }) = rcpt {
        // 251 (will forward) is a success too.
        if !reason.starts_with("251") {
            return Err(SmtpError::Refused { reason, permanent });
        }
    }
    session.command("DATA", 354).await?;
    let message = format_message(config, email);
    session
        .write(message.as_bytes())
        .await
        .map_err(|e| refused(format!("sending the message: {e}")))?;
    // From here on the server may have queued the message.
    match session.expect(250, "end of data").await {
        Ok(_) => {}
        Err(SmtpError::Refused { reason, permanent }) if !reason.starts_with("connection") => {
            return Err(SmtpError::Refused { reason, permanent });
        }
        Err(error) => return Err(SmtpError::Uncertain(error.to_string())),
    }
    // The message is accepted; a failed goodbye changes nothing.
    let _ = session.command("QUIT", 221).await;
    Ok(())
}

/// The message as sent after `DATA`: headers, body with CRLF line ends and dot-stuffing, and
/// the final `.` line.
fn format_message(config: &SmtpConfig, email: &Email<'_>) -> String {
    let mut text = String::new();
    text.push_str(&format!("From: Brigade <{}>\r\n", config.from));
    text.push_str(&format!("To: <{}>\r\n", email.to));
    text.push_str(&format!("Subject: {}\r\n", encode_header(email.subject)));
    text.push_str(&format!("Date: {}\r\n", email.date.to_rfc2822()));
    text.push_str(&format!("Message-ID: {}\r\n", email.message_id));
    text.push_str("MIME-Version: 1.0\r\n");
    text.push_str("Content-Type: text/plain; charset=utf-8\r\n");
    text.push_str("Content-Transfer-Encoding: 8bit\r\n\r\n");
    for line in email.body.lines() {
        // A line starting with "." would end the message early: double it (RFC 5321 §4.5.2).
        if line.starts_with('.') {
            text.push('.');
        }
        text.push_str(line.trim_end_matches('\r'));
        text.push_str("\r\n");
    }
    text.push_str(".\r\n");
    text
}

/// A header value as is when ASCII, else an RFC 2047 encoded word (Q encoding).
fn encode_header(value: &str) -> String {
    let value: String = value.chars().filter(|c| !c.is_control()).collect();
    if value.is_ascii() {
        return value;
    }
    let mut encoded = String::from("=?UTF-8?Q?");
    for byte in value.bytes() {
        match byte {
            b' ' => encoded.push('_'),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b',' | b'!' | b'-' => {
                encoded.push(char::from(byte));
            }
            _ => encoded.push_str(&format!("={byte:02X}")),
        }
    }
    encoded.push_str("?=");
    encoded
}

struct Session {
    stream: BufReader<TcpStream>,
}

impl Session {
    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        tokio::time::timeout(STEP_TIMEOUT, async {
            self.stream.get_mut().write_all(bytes).await?;
            self.stream.get_mut().flush().await
        })
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"))?
    }

    /// Sends one command line and expects the reply `code`.
    async fn command(&mut self, line: &str, code: u16) -> Result<String, SmtpError> {
        self.write(format!("{line}\r\n").as_bytes())
            .await
            .map_err(|e| refused(format!("connection lost sending {line:?}: {e}")))?;
        let verb = line.split(' ').next().unwrap_or(line);
        self.expect(code, verb).await
    }

    /// Reads one (possibly multi-line) reply and checks its code.
    async fn expect(&mut self, code: u16, step: &str) -> Result<String, SmtpError> {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout(STEP_TIMEOUT, self.stream.read_line(&mut line))
                .await
                .map_err(|_| refused(format!("connection timed out waiting after {step}")))?
                .map_err(|e| refused(format!("connection lost after {step}: {e}")))?;
            if read == 0 {
                return Err(refused(format!("connection closed after {step}")));
            }
            let line = line.trim_end();
            reply.push_str(line);
            reply.push('\n');
            // "250-..." continues the reply, "250 ..." (or a bare "250") ends it.
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                break;
            }
        }
        let got: u16 = reply.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
        if got == code || (code == 250 && got == 251) {
            Ok(reply)
        } else {
            Err(SmtpError::Refused {
                reason: format!("{} (after {step})", reply.trim_end()),
                permanent: (500..600).contains(&got),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_smtp_url_names_the_host_and_port() {
        let config =
            SmtpConfig::from_url("smtp://mail.example.com:2525", Some("bistro@example.com"))
                .expect("valid");
        assert_eq!(
            (config.host.as_str(), config.port),
            ("mail.example.com", 2525)
        );
        assert_eq!(config.hello_name, "example.com");
        let config = SmtpConfig::from_url("smtp://relay", None).expect("valid");
        assert_eq!(config.port, 25);
        assert_eq!(config.from, SmtpConfig::DEFAULT_FROM);
        assert!(SmtpConfig::from_url("http://relay", None).is_err());
        assert!(SmtpConfig::from_url("smtp://user:pw@relay", None).is_err());
        assert!(SmtpConfig::from_url("smtp://relay", Some("a b@c")).is_err());
    }

    #[test]
    fn addresses_that_could_inject_commands_or_headers_are_refused() {
        assert!(is_plain_address("claire@example.com"));
        for bad in [
            "claire",
            "a@b\r\nRCPT TO:<x@y>",
            "<a@b>",
            "a b@c.d",
            "a@b@c",
        ] {
            assert!(!is_plain_address(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_message_is_dot_stuffed_and_ends_with_a_dot_line() {
        let config = SmtpConfig::from_url("smtp://relay", None).expect("valid");
        let email = Email {
            to: "claire@example.com",
            subject: "Livré à temps",
            body: "Hello\n.hidden\nbye",
            message_id: "<n-1@localhost>",
            date: DateTime::<Utc>::default(),
        };
        let text = format_message(&config, &email);
        assert!(text.contains("\r\n..hidden\r\n"), "{text}");
        assert!(text.ends_with("bye\r\n.\r\n"));
        assert!(text.contains("Subject: =?UTF-8?Q?Livr=C3=A9_=C3=A0_temps?=\r\n"));
    }
}
