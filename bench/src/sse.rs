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
        // Every complete event of the buffer, each found by scanning from where the last one
        // ended, and the buffer shifted once per chunk: scanning the whole rest of the buffer
        // and shifting it for every event was quadratic in the events of one chunk (a burst
        // of frames), time the bench would count as the system's delay.
        let mut start = 0;
        while let Some((text_end, next)) = event_end(&buffer[start..]) {
            let text = String::from_utf8_lossy(&buffer[start..start + text_end]);
            let data: Vec<&str> = text
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(|data| data.strip_prefix(' ').unwrap_or(data))
                .collect();
            if !data.is_empty() && !on_data(&data.join("\n")) {
                return;
            }
            start += next;
        }
        buffer.drain(..start);
    }
}

/// Where the first event of `buffer` ends: (end of its text, start of the next event), at its
/// first blank line (`\n\n` or `\r\n\r\n`).
fn event_end(buffer: &[u8]) -> Option<(usize, usize)> {
    (0..buffer.len()).find_map(|i| {
        let rest = &buffer[i..];
        if rest.starts_with(b"\n\n") {
            Some((i, i + 2))
        } else if rest.starts_with(b"\r\n\r\n") {
            Some((i, i + 4))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::event_end;

    #[test]
    fn events_end_at_a_blank_line() {
        assert_eq!(event_end(b"data: x\n\nrest"), Some((7, 9)));
        assert_eq!(event_end(b"data: x\r\n\r\n"), Some((7, 11)));
        assert_eq!(event_end(b"data: x\n"), None);
        assert_eq!(
            event_end(b"data: x\ndata: y\n\ndata: z\n\n"),
            Some((15, 17))
        );
    }
}
