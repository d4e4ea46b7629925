//! forewarm keeps AWS Lambda functions warm in proportion to the traffic they
//! are about to get.
//!
//! # Layout
//!
//! * [`decision`]: the pure core. Policy, state, forecaster, feedback, delay
//!   tuner, interval learner (each function's deaths, and the idle gap the
//!   whole account's warms taught, `reaping`), caps and the warms planned
//!   ahead, joined by `decide`: no I/O, `now` is an argument, decisions are
//!   data with a reason.
//! * [`cost`]: the warming bill in six parts, the prices it is counted at,
//!   and the CloudWatch and DynamoDB usage the ports count.
//! * [`ports`]: the three seams between the tick and the world (state store,
//!   metrics source, warmer), the admin store people's commands read and
//!   write policies and states through, and an in-memory store with
//!   DynamoDB's rules behind both stores.
//! * `probe` (features `cli` and `aws`): `forewarm probe`'s analysis: each of N concurrent real
//!   requests told cold or warm (the platform's `REPORT` line, a threshold,
//!   or the largest latency gap), summarized and drawn.
//! * [`sim`]: the offline simulator: a model of the Lambda platform, the
//!   workloads, the policies compared, and the real tick behind simulated
//!   ports for `forewarm`.
//! * [`tick`]: one controller cycle, `observe → decide → warm → save`, with
//!   the pure error policy. The Lambda, the CLI and the simulator all run it.
//! * [`protocol`]: the wire format between the controller and target
//!   functions: the ping, the reply, and the classifier that tells a ping from
//!   a real event (also recognizing lambda-warmer's and
//!   serverless-plugin-warmup's markers).
//! * `aws` (feature `aws`): the DynamoDB, CloudWatch and Lambda adapters
//!   behind the ports, and `aws::controller`: one tick over AWS, configured
//!   from the environment, for the Lambda and the CLI. SDK types stay inside.
//! * `shim` (feature `shim`): the wrapper a Rust target function puts around
//!   its handler, so that pings are answered without running the handler.
//! * `cli` (feature `cli`): the `forewarm` command line, one file per command.

#![warn(unreachable_pub)]

#[cfg(feature = "aws")]
pub mod aws;
pub mod cost;
pub mod decision;
pub mod ports;
#[cfg(all(feature = "cli", feature = "aws"))]
pub(crate) mod probe;
pub mod protocol;
pub mod sim;
pub mod tick;

#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "shim")]
pub mod shim;
