//! Secrets kept out of responses.
//!
//! An upstream that echoes what it received (a debug endpoint, an error page, `TRACE`) would
//! hand the sandbox the credential the gateway injected. Every response to a request that
//! carried one is therefore scrubbed: each occurrence of an injected value in its headers and
//! its body becomes `*`s of the same length, so lengths and framing stay right. Requests that
//! carry a credential ask for an unencoded response (`Accept-Encoding: identity`) so that the
//! body can be read; an upstream that compresses anyway is not scrubbed (see ARCHITECTURE.md).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::HeaderMap;
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::HeaderValue;

/// The values to hide, and the last bytes of the stream that may begin one.
#[derive(Debug, Clone)]
pub struct Scrubber {
    needles: Vec<Vec<u8>>,
    tail: Vec<u8>,
}

fn mask(buf: &mut [u8], needle: &[u8]) -> bool {
    if needle.is_empty() || buf.len() < needle.len() {
        return false;
    }
    let mut found = false;
    let mut i = 0;
    while i + needle.len() <= buf.len() {
        if buf[i..i + needle.len()] == *needle {
            buf[i..i + needle.len()].fill(b'*');
            found = true;
            i += needle.len();
        } else {
            i += 1;
        }
    }
    found
}

impl Scrubber {
    /// `None` when there is nothing to hide. Values shorter than 4 bytes are not hidden (they
    /// would mask ordinary text, and hide nothing worth having).
    pub fn new(values: impl IntoIterator<Item = String>) -> Option<Self> {
        let mut needles: Vec<Vec<u8>> = values
            .into_iter()
            .map(String::into_bytes)
            .filter(|v| v.len() >= 4)
            .collect();
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        needles.dedup();
        (!needles.is_empty()).then_some(Self {
            needles,
            tail: Vec::new(),
        })
    }

    /// How many last bytes of `buf` could begin a value (and so wait for more).
    fn keep(&self, buf: &[u8]) -> usize {
        self.needles
            .iter()
            .map(|n| {
                (1..n.len().min(buf.len() + 1))
                    .rev()
                    .find(|k| buf.ends_with(&n[..*k]))
                    .unwrap_or(0)
            })
            .max()
            .unwrap_or(0)
    }

    /// Mask the values in every header value.
    pub fn headers(&self, headers: &mut HeaderMap) {
        for v in headers.values_mut() {
            let mut bytes = v.as_bytes().to_vec();
            let mut hit = false;
            for n in &self.needles {
                hit |= mask(&mut bytes, n);
            }
            if hit && let Ok(nv) = HeaderValue::from_bytes(&bytes) {
                *v = nv;
            }
        }
    }

    /// The next chunk, masked; last bytes that begin a value stay back until more comes (or
    /// [`Self::finish`]), so a stream that holds none is passed on at once.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.tail);
        buf.extend_from_slice(chunk);
        for n in &self.needles {
            mask(&mut buf, n);
        }
        let emit = buf.len() - self.keep(&buf);
        self.tail = buf.split_off(emit);
        buf
    }

    /// What was held back; already masked.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.tail)
    }
}

/// A body passed through a [`Scrubber`].
pub struct Scrubbed<B> {
    inner: B,
    scrub: Scrubber,
    ended: bool,
}

impl<B> Scrubbed<B> {
    pub fn new(inner: B, scrub: Scrubber) -> Self {
        Self {
            inner,
            scrub,
            ended: false,
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Scrubbed<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        loop {
            return match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        let out = this.scrub.push(&data);
                        if out.is_empty() {
                            continue;
                        }
                        Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
                    }
                    // Trailers: what was held back goes first, then they come again.
                    Err(frame) => {
                        let rest = this.scrub.finish();
                        if rest.is_empty() {
                            Poll::Ready(Some(Ok(frame)))
                        } else {
                            this.ended = true;
                            Poll::Ready(Some(Ok(Frame::data(Bytes::from(rest)))))
                        }
                    }
                },
                Poll::Ready(None) => {
                    this.ended = true;
                    let rest = this.scrub.finish();
                    if rest.is_empty() {
                        Poll::Ready(None)
                    } else {
                        Poll::Ready(Some(Ok(Frame::data(Bytes::from(rest)))))
                    }
                }
                other => other,
            };
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn values_split_across_chunks_are_masked() {
        let mut s = Scrubber::new(["SECRET-123".to_string()]).unwrap();
        let mut out = Vec::new();
        for chunk in [
            "echo: SEC",
            "RET",
            "-1",
            "23 and SECRET-12",
            "3!",
            " SECRET-1",
        ] {
            out.extend(s.push(chunk.as_bytes()));
        }
        out.extend(s.finish());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "echo: ********** and **********! SECRET-1"
        );
        // Nothing that could begin a value: nothing waits.
        let mut s = Scrubber::new(["SECRET-123".to_string()]).unwrap();
        assert_eq!(
            s.push(b"data: {\"token\": \"hi\"}\n\n"),
            b"data: {\"token\": \"hi\"}\n\n"
        );
        assert_eq!(s.push(b"x SEC"), b"x ");
        assert_eq!(s.push(b"OND"), b"SECOND");
        assert!(Scrubber::new(["abc".to_string()]).is_none(), "too short");
    }

    #[test]
    fn headers_are_masked() {
        let s = Scrubber::new(["tok-secret".to_string()]).unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-echo", HeaderValue::from_static("Bearer tok-secret"));
        h.insert("x-other", HeaderValue::from_static("fine"));
        s.headers(&mut h);
        assert_eq!(h["x-echo"], "Bearer **********");
        assert_eq!(h["x-other"], "fine");
    }

    /// A body of the given chunks.
    struct Chunks(std::collections::VecDeque<&'static str>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            let c = self.get_mut().0.pop_front();
            Poll::Ready(c.map(|c| Ok(Frame::data(Bytes::from(c)))))
        }
    }

    #[tokio::test]
    async fn a_body_keeps_its_length() {
        let body = Chunks(["ab-secre", "t-cd"].into());
        let s = Scrubber::new(["-secret-".to_string()]).unwrap();
        let out = Scrubbed::new(body, s).collect().await.unwrap().to_bytes();
        assert_eq!(&out[..], b"ab********cd");
    }
}
