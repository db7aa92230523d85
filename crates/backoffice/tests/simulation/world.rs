//! The simulated world: Back Office's real driver and core on an in-memory store, registers,
//! a network and a clock, all moved by one seeded random generator — so a seed is a replay.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use regsync_backoffice::sync::core::Timing;
use regsync_backoffice::sync::driver::{Driver, JobRequest, Output, Request};
use regsync_backoffice::sync::store::Scope;
use regsync_backoffice::sync::store::memory::MemoryStore;
use regsync_protocol::api::SyncSource;
use regsync_protocol::register::ServerMessage;
use uuid::Uuid;

use crate::check::Checker;
use crate::net::{Down, Net, Packet, Up};
use crate::register::SimRegister;

pub const COMPANY: Uuid = Uuid::from_u128(1);
pub const SITE: Uuid = Uuid::from_u128(10);
const MANAGER: Uuid = Uuid::from_u128(2);
/// 2026-01-01, the simulation's epoch.
const EPOCH_MS: i64 = 1_767_225_600_000;

pub fn timing() -> Timing {
    Timing {
        result_timeout: TimeDelta::seconds(30),
        wait_expiry: TimeDelta::minutes(5),
        offline_grace: TimeDelta::seconds(10),
    }
}

/// How often each kind of thing happens, per step.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    pub drop: f64,
    pub duplicate: f64,
    pub cut: f64,
    pub crash: f64,
    pub disk: f64,
}

impl Faults {
    pub const ON: Faults = Faults {
        drop: 0.01,
        duplicate: 0.02,
        cut: 0.004,
        crash: 0.0005,
        disk: 0.001,
    };
    pub const OFF: Faults = Faults {
        drop: 0.0,
        duplicate: 0.0,
        cut: 0.0,
        crash: 0.0,
        disk: 0.0,
    };
}

/// A node is taken for dead after this long without a heartbeat; nodes rescan this often.
pub const NODE_GRACE_MS: i64 = 10_000;
pub const RESCAN_MS: i64 = 3_000;

/// One Back Office process: with several, each a node with its own view of the shared store.
pub struct SimNode {
    pub id: Uuid,
    pub(crate) store: MemoryStore,
    pub(crate) driver: Option<Driver<MemoryStore>>,
    pub(crate) last_rescan_ms: i64,
}

pub struct World {
    pub seed: u64,
    pub(crate) rng: StdRng,
    /// Simulated time, always forward; the wall clock everyone reads is this plus `skew`.
    pub(crate) now_ms: i64,
    pub(crate) skew_ms: i64,
    pub store: MemoryStore,
    pub(crate) nodes: Vec<SimNode>,
    /// Several nodes (each holds the registers connected to it) rather than one Back Office.
    pub cluster: bool,
    /// Which node each connection (generation) is on.
    pub(crate) conn_node: BTreeMap<u64, usize>,
    /// Nodes that died, and when: taken for dead after [`NODE_GRACE_MS`], their registers then
    /// taken over by a live node.
    pub(crate) dead: Vec<(Uuid, i64)>,
    pub(crate) ids: Arc<AtomicU64>,
    pub registers: Vec<SimRegister>,
    /// Back Office's side of each register's connection: generation and last known sale.
    pub(crate) gateway: BTreeMap<usize, (u64, bool)>,
    pub(crate) net: Net,
    pub(crate) next_generation: u64,
    pub(crate) next_token: u64,
    pub faults: Faults,
    pub checker: Checker,
    pub steps: u64,
    pub crashes: u64,
    pub(crate) trace: std::collections::VecDeque<String>,
    pub(crate) hasher: std::collections::hash_map::DefaultHasher,
}

impl World {
    /// `nodes` Back Office nodes on one store (1: one Back Office, as in production on SQLite).
    pub fn with_nodes(seed: u64, registers: usize, nodes: usize) -> World {
        let store = MemoryStore::default();
        store.add_site(COMPANY, SITE);
        let registers: Vec<SimRegister> = (0..registers)
            .map(|i| {
                let id = Uuid::from_u128(1000 + i as u128);
                store.add_register(SITE, id, &format!("Till {i}"));
                SimRegister::new(id)
            })
            .collect();
        let mut world = World {
            seed,
            rng: StdRng::seed_from_u64(seed),
            now_ms: EPOCH_MS,
            skew_ms: 0,
            nodes: (0..nodes.max(1))
                .map(|i| {
                    let id = Uuid::from_u128(900 + i as u128);
                    SimNode {
                        id,
                        store: if nodes > 1 {
                            store.for_node(id)
                        } else {
                            store.clone()
                        },
                        driver: None,
                        last_rescan_ms: EPOCH_MS,
                    }
                })
                .collect(),
            cluster: nodes > 1,
            conn_node: BTreeMap::new(),
            dead: Vec::new(),
            store,
            ids: Arc::new(AtomicU64::new(1 << 40)),
            registers,
            gateway: BTreeMap::new(),
            net: Net::default(),
            next_generation: 1,
            next_token: 1,
            faults: Faults::ON,
            checker: Checker::new(nodes == 1),
            steps: 0,
            crashes: 0,
            trace: Default::default(),
            hasher: Default::default(),
        };
        for i in 0..world.nodes.len() {
            world.boot(i);
        }
        world
    }

    pub(crate) fn rng_mut(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    pub(crate) fn advance(&mut self, ms: i64) {
        self.now_ms += ms;
    }

    /// The wall clock jumps (an NTP correction, a mis-set clock); simulated time goes on.
    pub(crate) fn jump(&mut self, ms: i64) {
        self.skew_ms += ms;
        self.note(format!("{} the clock jumps {ms} ms", self.now_ms));
    }

    pub(crate) fn driver_mut(&mut self, node: usize) -> Option<&mut Driver<MemoryStore>> {
        self.nodes[node].driver.as_mut()
    }

    pub(crate) fn carry(&mut self, output: Output) {
        self.carry_out(output);
    }

    /// A node that is down starts again (a new node id, as a new process has, with several).
    pub(crate) fn boot_again(&mut self) {
        let Some(i) = self.nodes.iter().position(|n| n.driver.is_none()) else {
            return;
        };
        if self.cluster {
            let id = Uuid::from_u128(self.ids.fetch_add(1, Ordering::Relaxed).into());
            self.nodes[i].id = id;
            self.nodes[i].store = self.store.for_node(id);
            self.nodes[i].last_rescan_ms = self.now_ms;
        }
        self.boot(i);
    }

    pub fn wall(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.now_ms + self.skew_ms).unwrap_or_default()
    }

    pub fn note(&mut self, line: String) {
        line.hash(&mut self.hasher);
        if self.trace.len() == 40 {
            self.trace.pop_front();
        }
        self.trace.push_back(line);
    }

    /// A digest of everything that happened: the same seed gives the same digest.
    pub fn digest(&self) -> u64 {
        self.hasher.finish()
    }

    pub fn last_steps(&self) -> String {
        self.trace.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    fn boot(&mut self, node: usize) {
        let ids = self.ids.clone();
        let new_id = Box::new(move || Uuid::from_u128(ids.fetch_add(1, Ordering::Relaxed).into()));
        let store = self.nodes[node].store.clone();
        let started = Driver::start(store, timing(), self.wall(), new_id);
        match futures::executor::block_on(started) {
            Ok(driver) => self.nodes[node].driver = Some(driver),
            Err(error) => self.note(format!("boot failed: {error}")),
        }
        self.note(format!("{} Back Office node {node} starts", self.now_ms));
    }

    /// Back Office dies (with several nodes, one of them): its memory, its sockets and what was
    /// in flight to it are gone.
    pub fn crash(&mut self) {
        let up: Vec<usize> = (0..self.nodes.len()).filter(|i| self.node_up(*i)).collect();
        if up.is_empty() {
            return;
        }
        let node = up[self.rng.random_range(0..up.len())];
        self.crash_node(node);
    }

    pub(crate) fn crash_node(&mut self, node: usize) {
        self.nodes[node].driver = None;
        if self.cluster {
            self.dead.push((self.nodes[node].id, self.now_ms));
        }
        let on_it: Vec<u64> = self
            .conn_node
            .iter()
            .filter(|(_, n)| **n == node)
            .map(|(g, _)| *g)
            .collect();
        for generation in on_it {
            self.conn_node.remove(&generation);
            self.net.cut(generation);
            for (i, register) in self.registers.iter_mut().enumerate() {
                if register.connection == Some(generation) {
                    register.connection = None;
                    self.gateway.remove(&i);
                }
            }
        }
        if !self.cluster {
            self.gateway.clear();
            self.net.clear();
        }
        self.crashes += 1;
        self.note(format!("{} Back Office node {node} crashes", self.now_ms));
    }

    pub fn is_up(&self) -> bool {
        self.nodes.iter().any(|n| n.driver.is_some())
    }

    pub(crate) fn node_up(&self, node: usize) -> bool {
        self.nodes.get(node).is_some_and(|n| n.driver.is_some())
    }

    /// A node that is up, picked at random.
    pub(crate) fn some_node(&mut self) -> Option<usize> {
        let up: Vec<usize> = (0..self.nodes.len()).filter(|i| self.node_up(*i)).collect();
        (!up.is_empty()).then(|| up[self.rng.random_range(0..up.len())])
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.random_bool(p.min(1.0))
    }

    fn latency(&mut self) -> i64 {
        self.rng.random_range(1..400)
    }

    /// A message from a register on its connection, through the faulty network.
    pub(crate) fn up(&mut self, register: usize, message: Up) {
        let Some(generation) = self.registers[register].connection else {
            return;
        };
        let packet = Packet::Up {
            register,
            generation,
            message,
        };
        self.transmit(packet);
    }

    pub(crate) fn transmit(&mut self, packet: Packet) {
        let essential = matches!(
            packet,
            Packet::Up {
                message: Up::Hello { .. } | Up::Closed,
                ..
            }
        );
        if !essential && self.chance(self.faults.drop) {
            self.note(format!("{} dropped {packet:?}", self.now_ms));
            return;
        }
        let copies = if !essential && self.chance(self.faults.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let at = self.now_ms + self.latency();
            self.net.send(at, packet.clone());
        }
    }

    /// The register's connection ends (a cut, a close, or the register going away).
    pub fn disconnect(&mut self, register: usize) {
        let Some(generation) = self.registers[register].connection.take() else {
            return;
        };
        self.net.cut(generation);
        let at = self.now_ms + self.latency();
        self.net.send(
            at,
            Packet::Up {
                register,
                generation,
                message: Up::Closed,
            },
        );
    }

    pub fn connect(&mut self, register: usize) {
        if self.registers[register].connection.is_some() {
            return;
        }
        let Some(node) = self.some_node() else {
            return;
        };
        let generation = self.next_generation;
        self.next_generation += 1;
        self.conn_node.insert(generation, node);
        let r = &mut self.registers[register];
        r.connection = Some(generation);
        let hello = Up::Hello {
            applied_revision: r.stored.applied_revision,
            in_sale: r.in_sale,
            recent: r.stored.recent.iter().cloned().collect(),
        };
        self.up(register, hello);
    }

    pub fn set_sale(&mut self, register: usize, in_sale: bool) {
        if self.registers[register].in_sale == in_sale {
            return;
        }
        self.registers[register].in_sale = in_sale;
        self.up(register, Up::Sale { in_sale });
    }

    pub fn heartbeat(&mut self, register: usize) {
        let in_sale = self.registers[register].in_sale;
        self.up(register, Up::Heartbeat { in_sale });
    }

    pub fn press_sync(&mut self, register: usize) {
        self.up(register, Up::SyncRequested);
    }

    pub fn reinstall(&mut self, register: usize) {
        self.disconnect(register);
        self.registers[register].reinstall();
        self.note(format!("{} register {register} reinstalled", self.now_ms));
    }

    /// A manager's sync; with `queue_offline`, offline registers wait that long to reconnect.
    pub fn manager_sync(
        &mut self,
        scope: Scope,
        retry_when_free: bool,
        queue_offline: Option<TimeDelta>,
    ) {
        let token = self.next_token;
        self.next_token += 1;
        let request = JobRequest {
            company_id: COMPANY,
            scope,
            source: SyncSource::BackOffice,
            requested_by: Some((MANAGER, "Alex".into())),
            retry_when_free,
            queue_offline,
            group: None,
        };
        if let Some(node) = self.some_node() {
            self.bo(node, vec![Request::CreateJob { token, request }]);
        }
    }

    pub fn edit_menu(&mut self) {
        if self.is_up() {
            let revision = self.store.bump_catalog(SITE);
            self.note(format!("{} menu edited to {revision}", self.now_ms));
        }
    }

    /// Hands a node a batch; a disk failure or a crash right after the commit may strike.
    pub(crate) fn bo(&mut self, node: usize, requests: Vec<Request>) {
        if requests.is_empty() || !self.node_up(node) {
            return;
        }
        if self.chance(self.faults.disk) {
            self.store.fail_next_commit();
            self.note(format!("{} the disk fails the next commit", self.now_ms));
        }
        let now = self.wall();
        let Some(driver) = self.nodes[node].driver.as_mut() else {
            return;
        };
        let output = futures::executor::block_on(driver.process(requests, now));
        self.route_notices();
        if self.chance(self.faults.crash) {
            // Committed, but nobody heard: what a crash between commit and send leaves.
            self.crash_node(node);
            return;
        }
        self.carry_out(output);
    }

    /// Several nodes: what a committed batch told the others travels to them, and may be lost
    /// (as notices sent while a listener is away are).
    pub(crate) fn route_notices(&mut self) {
        for notice in self.store.take_notices() {
            for node in 0..self.nodes.len() {
                let id = self.nodes[node].id;
                let look = notice.wake.contains(&id);
                if id == notice.node || !self.node_up(node) || (!look && notice.claimed.is_empty())
                {
                    continue;
                }
                if self.chance(self.faults.drop * 5.0) {
                    self.note(format!("{} a notice to node {node} is lost", self.now_ms));
                    continue;
                }
                let at = self.now_ms + self.latency();
                let claimed = notice.claimed.clone();
                self.net.send(
                    at,
                    Packet::Notice {
                        node,
                        claimed,
                        look,
                    },
                );
            }
        }
    }

    /// Several nodes: each rescans every [`RESCAN_MS`]; a node silent for [`NODE_GRACE_MS`]
    /// is taken for dead and its registers taken over by a live one, which rescans at once.
    pub(crate) fn cluster_tick(&mut self) {
        if !self.cluster {
            return;
        }
        let now = self.now_ms;
        let mut i = 0;
        while i < self.dead.len() {
            let (dead, since) = self.dead[i];
            if now - since < NODE_GRACE_MS {
                i += 1;
                continue;
            }
            let Some(by) = self.some_node() else {
                return;
            };
            self.store.mark_dead(dead);
            let taken = self.store.take_over(dead, self.nodes[by].id);
            self.note(format!(
                "{now} node {by} takes over {taken} registers of a dead node"
            ));
            self.dead.remove(i);
            self.nodes[by].last_rescan_ms = now - RESCAN_MS;
        }
        for node in 0..self.nodes.len() {
            if self.node_up(node) && now - self.nodes[node].last_rescan_ms >= RESCAN_MS {
                self.nodes[node].last_rescan_ms = now;
                let rescan = Request::Rescan {
                    claimed: Vec::new(),
                    look: true,
                };
                self.bo(node, vec![rescan]);
            }
        }
    }

    fn carry_out(&mut self, output: Output) {
        for (token, reply) in &output.replies {
            let answer = match reply {
                Ok(job) => format!("job {} with {} targets", job.summary.id, job.targets.len()),
                Err(error) => format!("refused: {error}"),
            };
            self.note(format!("{} reply {token}: {answer}", self.now_ms));
        }
        for (register_id, generation, text) in output.sends {
            let Some(register) = self.registers.iter().position(|r| r.id == register_id) else {
                continue;
            };
            let Ok(ServerMessage::Sync {
                target_id,
                revision,
                ..
            }) = serde_json::from_str(&text)
            else {
                continue;
            };
            // A delivery carries the menu as it is when it is sent, not when it was asked for.
            let current = self.store.catalog_revision(SITE);
            if revision != current {
                self.fail(format!(
                    "target {target_id} sent with revision {revision}, not {current}"
                ));
            }
            let message = Down::Sync {
                target_id,
                revision,
            };
            self.transmit(Packet::Down {
                register,
                generation,
                message,
            });
        }
        for (register_id, generation, _) in output.closes {
            if let Some(register) = self.registers.iter().position(|r| r.id == register_id) {
                let at = self.now_ms + self.latency();
                let packet = Packet::Down {
                    register,
                    generation,
                    message: Down::Close,
                };
                self.net.send(at, packet);
            }
        }
    }

    /// Delivers what is due, in order; each node takes its messages as one batch, as the
    /// runner does with what queued up.
    pub fn deliver(&mut self) {
        let mut batches: Vec<Vec<Request>> = vec![Vec::new(); self.nodes.len()];
        for packet in self.net.due(self.now_ms) {
            match packet {
                Packet::Down {
                    register,
                    generation,
                    message,
                } => {
                    // What Back Office answers waits for what it was sent before.
                    self.flush(&mut batches);
                    self.at_register(register, generation, message);
                }
                Packet::Up {
                    register,
                    generation,
                    message,
                } => {
                    let Some(node) = self.conn_node.get(&generation).copied() else {
                        continue;
                    };
                    if let Some(request) = self.at_gateway(register, generation, message) {
                        batches[node].push(request);
                    }
                }
                Packet::Notice {
                    node,
                    claimed,
                    look,
                } => batches[node].push(Request::Rescan { claimed, look }),
            }
        }
        self.flush(&mut batches);
    }

    fn flush(&mut self, batches: &mut [Vec<Request>]) {
        for (node, batch) in batches.iter_mut().enumerate() {
            self.bo(node, std::mem::take(batch));
        }
    }
}
