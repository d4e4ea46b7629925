//! forewarm keeps AWS Lambda functions warm in proportion to the traffic they
//! are about to get.
//!
//! # Layout
//!
//! * [`decision`]: the pure core. Policy, state, forecaster, feedback, delay
//!   tuner, interval learner and caps, joined by `decide`: no I/O, `now` is an
//!   argument, decisions are data with a reason.
//! * [`protocol`]: the wire format between the controller and target
//!   functions: the ping, the reply, and the classifier that tells a ping from
//!   a real event (also recognizing lambda-warmer's and
//!   serverless-plugin-warmup's markers).
//! * `shim` (feature `shim`): the wrapper a Rust target function puts around
//!   its handler, so that pings are answered without running the handler.
//! * `cli` (feature `cli`): the `forewarm` command line.

pub mod decision;
pub mod protocol;

#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "shim")]
pub mod shim;
