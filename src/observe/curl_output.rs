//! curl's `-D -` output: the header blocks it printed, one per response.

/// One response's status line and headers, as curl printed them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status_line: String,
    /// Names lowercased; values as printed.
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Every response head in `stdout`, in order. Lines that are not part of a head (a body curl was
/// told to print) are skipped.
pub fn response_heads(stdout: &str) -> Vec<ResponseHead> {
    let mut heads: Vec<ResponseHead> = Vec::new();
    let mut in_head = false;
    for line in stdout.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with("HTTP/") {
            heads.push(ResponseHead {
                // curl ends an HTTP/2 status line with a space where the reason phrase would be.
                status_line: line.trim_end().to_string(),
                headers: Vec::new(),
            });
            in_head = true;
        } else if line.is_empty() {
            in_head = false;
        } else if in_head
            && let Some(head) = heads.last_mut()
            && let Some((name, value)) = line.split_once(':')
        {
            head.headers
                .push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    heads
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http2_status_line_has_no_trailing_space() {
        let heads = response_heads("HTTP/2 200 \r\ncontent-type: text/html\r\n\r\n");
        assert_eq!(heads[0].status_line, "HTTP/2 200");
    }

    #[test]
    fn reads_every_head_of_a_redirect_chain() {
        let out = "HTTP/1.1 301 Moved Permanently\r\nLocation: https://edition.cnn.com/politics\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 150793\r\n\r\n";
        let heads = response_heads(out);
        assert_eq!(heads.len(), 2);
        assert_eq!(heads[0].status_line, "HTTP/1.1 301 Moved Permanently");
        assert_eq!(
            heads[0].header("location"),
            Some("https://edition.cnn.com/politics")
        );
        assert_eq!(heads[1].header("Content-Length"), Some("150793"));
        assert_eq!(heads[1].header("location"), None);
    }
}
