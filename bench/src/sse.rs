//! A minimal server-sent events reader: the `data:` of each event of a streaming response,
//! handed over as soon as its blank line arrives.

use futures::StreamExt;

/// Reads `response` until it ends, `stop` turns true, or `on_data` returns `false`, calling
/// `on_data` with the data of each event (several `data:` lines joined by `\n`).
pub async fn read_events(
    response: reqwest::Response,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut on_data: impl FnMut(&str) -> bool,
) {
    let mut body = response.bytes_stream();
    let mut buffer: Vec<u8> = Vec::with_capacity(4096);
    loop {
        let chunk = tokio::select! {
            chunk = body.next() => chunk,
            _ = stop.changed() => return,
        };
        let Some(Ok(chunk)) = chunk else { return };
        buffer.extend_from_slice(&chunk);
        while let Some(end) = event_end(&buffer) {
            let event: Vec<u8> = buffer.drain(..end.1).collect();
            let text = String::from_utf8_lossy(&event[..end.0]);
            let data: Vec<&str> = text
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(|data| data.strip_prefix(' ').unwrap_or(data))
                .collect();
            if !data.is_empty() && !on_data(&data.join("\n")) {
                return;
            }
        }
    }
}

/// Where the first event of `buffer` ends: (end of its text, start of the next event).
fn event_end(buffer: &[u8]) -> Option<(usize, usize)> {
    let lf = buffer
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| (i, i + 2));
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::event_end;

    #[test]
    fn events_end_at_a_blank_line() {
        assert_eq!(event_end(b"data: x\n\nrest"), Some((7, 9)));
        assert_eq!(event_end(b"data: x\r\n\r\n"), Some((7, 11)));
        assert_eq!(event_end(b"data: x\n"), None);
    }
}
