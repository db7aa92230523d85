//! The invariants under chaos on one Back Office (the harness's `chaos`: 200 registers with random
//! sales, disconnects, menu changes and syncs). `tests/cluster.rs` runs the same on three nodes.
//! The seed is printed; `REGSYNC_SEED=<n>` replays a run.

use crate::harness::{BackOffice, chaos, chaos_args};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_sync_is_applied_during_a_sale_and_every_target_ends_terminal() {
    let bo = BackOffice::start(&chaos_args()).await;
    chaos(&[&bo], &bo.url, &bo.dir, &bo.db().await).await;
}
