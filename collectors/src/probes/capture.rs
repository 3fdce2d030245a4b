//! Reading a child's output pipe up to a cap.
//!
//! Past the cap the pipe is still read, and the bytes discarded: a child writing into a full pipe blocks,
//! and a blocked status tool would turn into a timeout instead of a (truncated) answer.

use tokio::io::{AsyncRead, AsyncReadExt};

/// Size of one read. Linux pipes hold 64 KiB by default; one read can empty them.
const CHUNK: usize = 64 * 1024;

/// The bytes kept from one pipe.
#[derive(Debug)]
pub(crate) struct Capture {
    bytes: Vec<u8>,
    cap: usize,
    truncated: bool,
}

impl Capture {
    pub(crate) fn new(cap: usize) -> Capture {
        Capture { bytes: Vec::new(), cap, truncated: false }
    }

    /// Reads `pipe` to its end. Everything read so far stays in `self` if the future is dropped early,
    /// which is how the caller gives up on a pipe that a grandchild keeps open.
    pub(crate) async fn drain(&mut self, pipe: Option<impl AsyncRead + Unpin>) {
        let Some(mut pipe) = pipe else { return };
        let mut chunk = vec![0u8; CHUNK.min(self.cap.max(4096))];
        loop {
            match pipe.read(&mut chunk).await {
                Ok(0) => return,
                Ok(n) => self.keep(&chunk[..n]),
                // Nothing more can come through a broken pipe; dropping it lets the writer see EPIPE
                // instead of blocking.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    fn keep(&mut self, data: &[u8]) {
        let room = self.cap.saturating_sub(self.bytes.len());
        let take = data.len().min(room);
        self.bytes.extend_from_slice(&data[..take]);
        if take < data.len() {
            self.truncated = true;
        }
    }

    pub(crate) fn truncated(&self) -> bool {
        self.truncated
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_up_to_the_cap_and_reads_the_rest() {
        let data = vec![b'x'; 300_000];
        let mut reader: &[u8] = &data;
        let mut c = Capture::new(1000);
        c.drain(Some(&mut reader)).await;
        assert_eq!(c.text().len(), 1000);
        assert!(c.truncated());
        assert!(reader.is_empty(), "everything past the cap was consumed");
    }

    #[tokio::test]
    async fn output_at_the_cap_is_not_truncated() {
        let mut reader: &[u8] = b"12345";
        let mut c = Capture::new(5);
        c.drain(Some(&mut reader)).await;
        assert_eq!(c.text(), "12345");
        assert!(!c.truncated());
    }
}
