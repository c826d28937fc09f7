//! Incremental `text/event-stream` parsing: only the `data` of each event matters here.

/// Feed body chunks in any split; complete events come out as their `data` payload
/// (multi-line data joined with `\n`, as the SSE specification says). Events whose data is
/// empty (such as a priming event `data:` with only an `id`) are not reported.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    /// Bytes of an incomplete line.
    pending: Vec<u8>,
    /// Data of the event being assembled, each line followed by `\n`.
    data: String,
}

impl SseParser {
    /// Consumes `chunk`, appending the data of every event it completes to `out`.
    pub(crate) fn push(&mut self, chunk: &[u8], out: &mut Vec<String>) {
        self.pending.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(offset) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let end = start + offset;
            let line = strip_cr(&self.pending[start..end]);
            let line = String::from_utf8_lossy(line).into_owned();
            self.line(&line, out);
            start = end + 1;
        }
        self.pending.drain(..start);
    }

    /// End of the body: a final event without its closing blank line is still reported.
    pub(crate) fn finish(&mut self, out: &mut Vec<String>) {
        if !self.pending.is_empty() {
            let line = String::from_utf8_lossy(strip_cr(&self.pending)).into_owned();
            self.pending.clear();
            self.line(&line, out);
        }
        self.dispatch(out);
    }

    fn line(&mut self, line: &str, out: &mut Vec<String>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line.starts_with(':') {
            return; // comment
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        if field == "data" {
            self.data.push_str(value);
            self.data.push('\n');
        }
    }

    fn dispatch(&mut self, out: &mut Vec<String>) {
        let mut data = std::mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        if !data.is_empty() {
            out.push(data);
        }
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<String> {
        let mut parser = SseParser::default();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.push(chunk, &mut out);
        }
        parser.finish(&mut out);
        out
    }

    #[test]
    fn rmcp_style_stream_with_priming_event() {
        let body = b"data: \nid: 0/0\nretry: 3000\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\nid: 1/0\n\n";
        assert_eq!(parse_all(&[body]), vec![r#"{"jsonrpc":"2.0","id":1,"result":{}}"#]);
    }

    #[test]
    fn any_split_gives_the_same_events() {
        let body: &[u8] = b"event: message\r\ndata: {\"a\":1}\r\n\r\n: keep-alive\n\ndata:x\ndata: y\n\n";
        let expected = vec![r#"{"a":1}"#.to_owned(), "x\ny".to_owned()];
        for split in 0..body.len() {
            let (a, b) = body.split_at(split);
            assert_eq!(parse_all(&[a, b]), expected, "split at {split}");
        }
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(parse_all(&bytes), expected);
    }

    #[test]
    fn unterminated_final_event_is_reported_at_finish() {
        assert_eq!(parse_all(&[b"data: {\"id\":2}"]), vec![r#"{"id":2}"#]);
        assert_eq!(parse_all(&[b"data: {\"id\":2}\n"]), vec![r#"{"id":2}"#]);
        assert!(parse_all(&[b""]).is_empty());
        assert!(parse_all(&[b": only a comment\n"]).is_empty());
    }
}
