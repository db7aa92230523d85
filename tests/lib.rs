//! End-to-end tests that cross components, run against the real binaries:
//!
//! - `app/`: the real app window (WebDriver under Xvfb) with Back Office, register agents, the
//!   real Secret Service, desktop notifications and the tray on a private D-Bus, and the offline
//!   view;
//! - `cli.rs`: `regsync` as IT staff use it, against Back Office with agents and the keychain;
//! - `tls.rs`: the client, `regsync` and an agent against Back Office serving HTTPS and WSS.
//!
//! The harness that starts all of it is beside them, in `harness/` (`regsync-testkit`). Tests of
//! one crate stay in that crate.
