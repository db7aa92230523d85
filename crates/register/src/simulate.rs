//! Simulated staff: sales at random, for the simulator, the demo and the tests.

use std::time::Duration;

use rand::Rng;

use crate::Agent;

/// How often sales start and how long they last (both exponentially distributed, as arrivals
/// at a bar are).
#[derive(Debug, Clone, Copy)]
pub struct SaleProfile {
    /// Mean time between the end of one sale and the start of the next; zero: never sell.
    pub mean_gap: Duration,
    pub mean_duration: Duration,
}

impl SaleProfile {
    pub const NEVER: SaleProfile = SaleProfile {
        mean_gap: Duration::ZERO,
        mean_duration: Duration::ZERO,
    };
}

fn exponential(mean: Duration) -> Duration {
    let u: f64 = rand::rng().random_range(f64::EPSILON..1.0);
    mean.mul_f64(-u.ln()).min(mean * 10)
}

/// Rings up sales on `agent` until the returned task is aborted or the agent is gone.
pub fn run_sales(
    agent: std::sync::Weak<Agent>,
    profile: SaleProfile,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if profile.mean_gap.is_zero() {
            return;
        }
        loop {
            tokio::time::sleep(exponential(profile.mean_gap)).await;
            let Some(register) = agent.upgrade() else {
                return;
            };
            let started = register.start_sale().is_ok();
            drop(register);
            tokio::time::sleep(exponential(profile.mean_duration)).await;
            let Some(register) = agent.upgrade() else {
                return;
            };
            if started {
                let _ = register.end_sale();
            }
        }
    })
}
