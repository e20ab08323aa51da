//! Copies of HTTP requests, for retries.

use ::http::Request;

/// A copy of `request` for another attempt: its method, URI, version, headers, extensions and
/// body. Always `Some`: its signature is the one a retry policy's cloner has
/// (`rampart::retry::Policy::with_cloner`).
///
/// The body must be `Clone`: a streaming body can be sent only once, so collect it (into
/// `http_body_util::Full<Bytes>`, say) before the retry layer if requests are to be retried.
#[allow(clippy::unnecessary_wraps)] // A cloner's signature: `None` would mean "not replayable".
pub fn clone_request<B: Clone>(request: &Request<B>) -> Option<Request<B>> {
    let mut copy = Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    *copy.extensions_mut() = request.extensions().clone();
    Some(copy)
}

#[cfg(test)]
mod tests {
    use ::http::{Method, Version, header};

    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct TraceId(u64);

    #[test]
    fn a_copy_carries_everything_the_request_had() {
        let mut original = Request::builder()
            .method(Method::PUT)
            .uri("http://orders.internal/orders/7?dry_run=1")
            .version(Version::HTTP_2)
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-request-id", "a1")
            .body(String::from(r#"{"qty":3}"#))
            .expect("a valid request");
        original.extensions_mut().insert(TraceId(42));

        let copy = clone_request(&original).expect("always copies");
        assert_eq!(copy.method(), Method::PUT);
        assert_eq!(copy.uri(), original.uri());
        assert_eq!(copy.version(), Version::HTTP_2);
        assert_eq!(copy.headers(), original.headers());
        assert_eq!(copy.extensions().get::<TraceId>(), Some(&TraceId(42)));
        assert_eq!(copy.body(), original.body());
    }
}
