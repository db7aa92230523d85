//! Deterministic simulation of the sync engine: Back Office's real core and driver on an
//! in-memory store, simulated registers (sales, staff pressing Sync, reinstalls), a network that
//! drops, delays, reorders and duplicates messages and cuts connections, Back Office crashing
//! and recovering from its store, and a simulated clock that jumps. One seed drives it all, so a
//! failure prints its seed and `REGSYNC_SEED=<n>` replays it step for step.
//!
//! - `REGSYNC_SIM_STEPS`: steps in all (default 100,000, over ten seeds).
//! - `REGSYNC_SEED`: run this one seed.
//! - `REGSYNC_SIM_EXPLORE=1`: seeds from the clock, to look for new failures.

// Test code: a failed unwrap is a failed test, and the figures are for whoever runs it.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod check;
mod net;
mod register;
mod steps;
mod world;

use std::time::Instant;

use world::World;

fn env(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()?
        .trim()
        .replace('_', "")
        .parse()
        .ok()
}

/// A world of six registers run `steps` steps, healed every 5,000 and at the end.
fn run(seed: u64, steps: u64) -> World {
    run_on(seed, steps, 1)
}

/// The same on `nodes` Back Office nodes: registers connect to any node, notices between nodes
/// are lost now and then, a node crashes and a live one takes its registers over.
fn run_on(seed: u64, steps: u64, nodes: usize) -> World {
    let mut world = World::with_nodes(seed, 6, nodes);
    for i in 1..=steps {
        world.step();
        if i % 5_000 == 0 {
            world.heal();
        }
    }
    world.heal();
    world
}

#[test]
fn the_sync_invariants_hold_under_faults() {
    let steps = env("REGSYNC_SIM_STEPS").unwrap_or(100_000);
    let seeds: Vec<u64> = match env("REGSYNC_SEED") {
        Some(seed) => vec![seed],
        None if env("REGSYNC_SIM_EXPLORE") == Some(1) => {
            let base = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            (0..10).map(|i| base.wrapping_add(i)).collect()
        }
        None => (1..=10).collect(),
    };
    let per_seed = (steps / seeds.len() as u64).max(1);
    let started = Instant::now();
    let (mut total, mut batches, mut targets, mut crashes) = (0, 0, 0, 0);
    let (mut reconnected, mut ran_out) = (0, 0);
    let mut ended = std::collections::BTreeMap::new();
    for seed in seeds {
        let world = run(seed, per_seed);
        total += world.steps;
        batches += world.checker.batches;
        reconnected += world.checker.reconnected;
        ran_out += world.checker.queue_ran_out;
        targets += world.checker.targets();
        crashes += world.crashes;
        for (state, n) in &world.checker.ended {
            *ended.entry(*state).or_insert(0) += n;
        }
    }
    let elapsed = started.elapsed();
    eprintln!(
        "simulated {total} steps in {:.1} s ({:.0} steps/s): {batches} batches committed, \
         {targets} targets ({ended:?}), {crashes} crashes of Back Office; queued offline \
         registers: {reconnected} delivered on reconnection, {ran_out} ran out",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    assert!(
        (reconnected > 0 && ran_out > 0) || total < 20_000,
        "the queue for offline registers was not exercised both ways"
    );
    // The world must have exercised what the invariants are about.
    for state in [
        "synced",
        "skipped_busy",
        "skipped_offline",
        "expired",
        "failed",
    ] {
        assert!(
            ended.get(state).copied().unwrap_or(0) > 0 || total < 20_000,
            "no target ended {state}"
        );
    }
}

#[test]
fn a_seed_replays_step_for_step() {
    let first = run(7, 3_000);
    let again = run(7, 3_000);
    assert_eq!(
        first.digest(),
        again.digest(),
        "the same seed took another path"
    );
    assert_eq!(first.checker.batches, again.checker.batches);
    let other = run(8, 3_000);
    assert_ne!(first.digest(), other.digest(), "the seed changes nothing");
}

#[test]
fn the_sync_invariants_hold_on_three_nodes() {
    let steps = env("REGSYNC_SIM_STEPS").unwrap_or(50_000);
    let seeds: Vec<u64> = match env("REGSYNC_SEED") {
        Some(seed) => vec![seed],
        None => (101..=105).collect(),
    };
    let per_seed = (steps / seeds.len() as u64).max(1);
    let started = Instant::now();
    let (mut total, mut targets, mut crashes) = (0, 0, 0);
    let (mut reconnected, mut ran_out) = (0, 0);
    let mut ended = std::collections::BTreeMap::new();
    for seed in seeds {
        let world = run_on(seed, per_seed, 3);
        total += world.steps;
        reconnected += world.checker.reconnected;
        ran_out += world.checker.queue_ran_out;
        targets += world.checker.targets();
        crashes += world.crashes;
        for (state, n) in &world.checker.ended {
            *ended.entry(*state).or_insert(0) += n;
        }
    }
    eprintln!(
        "three nodes: simulated {total} steps in {:.1} s: {targets} targets ({ended:?}), \
         {crashes} node crashes; queued offline registers: {reconnected} delivered on \
         reconnection, {ran_out} ran out",
        started.elapsed().as_secs_f64()
    );
    assert!(
        (reconnected > 0 && ran_out > 0) || total < 20_000,
        "the queue for offline registers was not exercised both ways on three nodes"
    );
    for state in ["synced", "skipped_busy", "skipped_offline", "failed"] {
        assert!(
            ended.get(state).copied().unwrap_or(0) > 0 || total < 20_000,
            "no target ended {state}"
        );
    }
}
