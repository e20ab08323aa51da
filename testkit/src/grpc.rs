//! gRPC answers for the layers' outcome tests: a trailers-only status, a message and then
//! trailers, or a message and then an error frame, with the body wrapped in `GrpcBody` as a
//! transport below the layers wraps it.

use bytes::Bytes;
use http::{HeaderMap, Response};
use http_body::Frame;
use http_body_util::StreamBody;
use rampart_core::GrpcBody;

/// The frames of an answer's body.
type Frames = Vec<Result<Frame<Bytes>, std::io::Error>>;

/// An answer's body: its frames, wrapped in `GrpcBody`.
pub type Body = GrpcBody<
    StreamBody<tokio_stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, std::io::Error>>>>,
>;

/// How a backend answers.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// `grpc-status` in the headers, no body.
    TrailersOnly(&'static str),
    /// A message, then trailers with this `grpc-status`.
    AfterBody(&'static str),
    /// A message, then an error frame.
    BodyError,
}

/// The response a backend answering `how` sends, its body wrapped at the transport (below the
/// layer under test).
///
/// # Panics
///
/// If a status given is not a valid header value (a test's own mistake).
pub fn answer(how: Answer) -> Response<Body> {
    let message = || Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\x02hi")));
    let trailers = |code: &str| {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", code.parse().expect("a header value"));
        Ok(Frame::trailers(trailers))
    };
    let frames: Frames = match how {
        Answer::TrailersOnly(_) => Vec::new(),
        Answer::AfterBody(code) => vec![message(), trailers(code)],
        Answer::BodyError => vec![message(), Err(std::io::Error::other("stream reset"))],
    };
    let mut response = Response::new(StreamBody::new(tokio_stream::iter(frames)));
    if let Answer::TrailersOnly(code) = how {
        response
            .headers_mut()
            .insert("grpc-status", code.parse().expect("a header value"));
    }
    GrpcBody::wrap(response)
}
