//! `HttpServer`: what the bed's in-process HTTP/1 servers ([`FaultProxy`], [`Imds`]) share: a
//! listener bound to 127.0.0.1:0 before `start` returns, a thread with its own current-thread
//! tokio runtime, an accept loop serving each connection with hyper, and a stop on Drop that
//! ends the loop, drops the connections in flight and joins the thread.
//!
//! Each request goes to the server's handler together with its shared state. It serves with
//! hyper directly (not `axum::serve`): a handler error makes hyper close the connection without
//! writing a response, which is how the fault proxy drops one.
//!
//! [`FaultProxy`]: super::fault_proxy::FaultProxy
//! [`Imds`]: super::imds::Imds

use std::error::Error;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

/// A running server; stops on Drop.
pub struct HttpServer {
    /// What the server is, in messages ("fault proxy", "IMDS").
    name: &'static str,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServer")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl HttpServer {
    /// Starts the `name` server (its thread is `name-PORT`, lower case, spaces as dashes): each
    /// request is answered by `handler(state, request)`, and an `Err` drops the connection
    /// unanswered. `state` is built with the server's runtime entered (a hyper client made
    /// there runs on it) and is returned shared, for the caller's own use. It accepts
    /// connections on return.
    pub fn start<S, H, F, E>(
        name: &'static str,
        state: impl FnOnce() -> S,
        handler: H,
    ) -> (HttpServer, Arc<S>)
    where
        S: Send + Sync + 'static,
        H: Fn(Arc<S>, Request<Incoming>) -> F + Clone + Send + 'static,
        F: Future<Output = Result<Response<Full<Bytes>>, E>> + Send + 'static,
        E: Into<Box<dyn Error + Send + Sync>>,
    {
        // Bound before returning, so the URL works at once: the kernel queues early connections.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener for tokio");
        let addr = listener
            .local_addr()
            .expect("local address of a bound socket");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("building the {name} runtime: {e}"));
        let state = {
            let _guard = runtime.enter();
            Arc::new(state())
        };
        let (shutdown, stop) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!(
                "{}-{}",
                name.to_lowercase().replace(' ', "-"),
                addr.port()
            ))
            .spawn({
                let state = Arc::clone(&state);
                move || runtime.block_on(serve(listener, state, handler, stop))
            })
            .unwrap_or_else(|e| panic!("spawning the {name} thread: {e}"));
        let server = HttpServer {
            name,
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
        };
        (server, state)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            // Propagating a server panic into a test that is already unwinding would abort.
            if thread.join().is_err() && !std::thread::panicking() {
                panic!("the {} thread panicked", self.name);
            }
        }
    }
}

async fn serve<S, H, F, E>(
    listener: std::net::TcpListener,
    state: Arc<S>,
    handler: H,
    mut stop: oneshot::Receiver<()>,
) where
    S: Send + Sync + 'static,
    H: Fn(Arc<S>, Request<Incoming>) -> F + Clone + Send + 'static,
    F: Future<Output = Result<Response<Full<Bytes>>, E>> + Send + 'static,
    E: Into<Box<dyn Error + Send + Sync>>,
{
    let listener = tokio::net::TcpListener::from_std(listener).expect("registering the listener");
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let state = Arc::clone(&state);
                let handler = handler.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        handler(Arc::clone(&state), request)
                    });
                    // Errors here are clients hanging up or handlers dropping the connection.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            // Reap finished connection tasks so the set does not grow for the whole test.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}
