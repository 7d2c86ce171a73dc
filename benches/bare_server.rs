//! The machine's ceiling for `benches/load.sh`: a minimal hyper 1 server on
//! the same runtime settings as etax-authz (multi-threaded tokio, HTTP/1.1,
//! one task per connection) that reads each request's body and answers a
//! fixed JSON body of an allow's size. Not a benchmark itself: `load.sh`
//! builds it with `cargo bench --no-run --bench bare_server` and runs it.
//!
//! Prints `listening on http://ADDR` once bound (`ADDR` from argv[1],
//! default 127.0.0.1:0).

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

const ANSWER: &str = r#"{"decision":"allow","reasons":["function.via-permission-identity"],"errors":[],"decision_id":"0123456789abcdef0123456789abcdef","policy_version":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}"#;

async fn answer(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the body as a real endpoint must before it answers.
    let _ = req.into_body().collect().await;
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(ANSWER.as_bytes())))
        .expect("a fixed response is valid"))
}

fn main() {
    let addr = std::env::args()
        .nth(1)
        .filter(|a| !a.starts_with('-'))
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
        println!(
            "listening on http://{}",
            listener.local_addr().expect("bound")
        );
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(answer))
                    .await;
            });
        }
    });
}
