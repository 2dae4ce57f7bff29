//! The plumbing payments-api and the webhook-ingestor share, written once so a fix
//! lands in both. No domain rules and no transport live here; payments-core uses it
//! only for [`error_chain`].
//!
//! - [`env`](mod@env): [`env::Reader`], which reads typed settings from the environment (or a
//!   map, in tests) and collects every problem, each naming its variable, into one
//!   [`env::ConfigError`]; [`env::FromEnv`], how a service's `Config` is read with it.
//! - `cli` (feature `cli`): the command line both services take, `serve` or `migrate`.
//! - [`signal`]: the one SIGTERM/SIGINT future that starts a graceful shutdown.
//! - [`tasks`]: [`tasks::Tasks`], everything a service spawns (servers and background
//!   loops), watched while it serves and drained within a deadline at shutdown.
//! - [`error_chain`]: an error and its causes on one line, for logs.

#[cfg(feature = "cli")]
pub mod cli;
pub mod env;
pub mod signal;
pub mod tasks;

pub use env::{ConfigError, FromEnv, Reader};
pub use signal::shutdown_on_signal;
pub use tasks::Tasks;

/// An error and its causes on one line (`error: cause: cause`), for logs.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn the_chain_lists_each_cause_after_its_error() {
        let e = Layer(
            "storing the event",
            Some(Box::new(Layer("pool timed out", None))),
        );
        assert_eq!(super::error_chain(&e), "storing the event: pool timed out");
        assert_eq!(super::error_chain(&Layer("alone", None)), "alone");
    }
}
