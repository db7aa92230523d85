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

pub struct World {
    pub seed: u64,
    pub(crate) rng: StdRng,
    /// Simulated time, always forward; the wall clock everyone reads is this plus `skew`.
    pub(crate) now_ms: i64,
    pub(crate) skew_ms: i64,
    pub store: MemoryStore,
    pub(crate) driver: Option<Driver<MemoryStore>>,
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
    pub fn new(seed: u64, registers: usize) -> World {
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
            store,
            driver: None,
            ids: Arc::new(AtomicU64::new(1 << 40)),
            registers,
            gateway: BTreeMap::new(),
            net: Net::default(),
            next_generation: 1,
            next_token: 1,
            faults: Faults::ON,
            checker: Checker::default(),
            steps: 0,
            crashes: 0,
            trace: Default::default(),
            hasher: Default::default(),
        };
        world.boot();
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

    pub(crate) fn driver_mut(&mut self) -> Option<&mut Driver<MemoryStore>> {
        self.driver.as_mut()
    }

    pub(crate) fn carry(&mut self, output: Output) {
        self.carry_out(output);
    }

    pub(crate) fn boot_again(&mut self) {
        self.boot();
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

    fn boot(&mut self) {
        let ids = self.ids.clone();
        let new_id = Box::new(move || Uuid::from_u128(ids.fetch_add(1, Ordering::Relaxed).into()));
        let started = Driver::start(self.store.clone(), timing(), self.wall(), new_id);
        match futures::executor::block_on(started) {
            Ok(driver) => self.driver = Some(driver),
            Err(error) => self.note(format!("boot failed: {error}")),
        }
        self.note(format!("{} Back Office starts", self.now_ms));
    }

    /// Back Office dies: its memory, its sockets and what was in flight are gone.
    pub fn crash(&mut self) {
        self.driver = None;
        self.gateway.clear();
        self.net.clear();
        for register in &mut self.registers {
            register.connection = None;
        }
        self.crashes += 1;
        self.note(format!("{} Back Office crashes", self.now_ms));
    }

    pub fn is_up(&self) -> bool {
        self.driver.is_some()
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
        if self.registers[register].connection.is_some() || !self.is_up() {
            return;
        }
        let generation = self.next_generation;
        self.next_generation += 1;
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

    pub fn manager_sync(&mut self, scope: Scope, retry_when_free: bool) {
        let token = self.next_token;
        self.next_token += 1;
        let request = JobRequest {
            company_id: COMPANY,
            scope,
            source: SyncSource::BackOffice,
            requested_by: Some((MANAGER, "Alex".into())),
            retry_when_free,
        };
        self.bo(vec![Request::CreateJob { token, request }]);
    }

    pub fn edit_menu(&mut self) {
        if self.is_up() {
            let revision = self.store.bump_catalog(SITE);
            self.note(format!("{} menu edited to {revision}", self.now_ms));
        }
    }

    /// Hands Back Office a batch; a disk failure or a crash right after the commit may strike.
    fn bo(&mut self, requests: Vec<Request>) {
        if requests.is_empty() || !self.is_up() {
            return;
        }
        if self.chance(self.faults.disk) {
            self.store.fail_next_commit();
            self.note(format!("{} the disk fails the next commit", self.now_ms));
        }
        let now = self.wall();
        let Some(driver) = self.driver.as_mut() else {
            return;
        };
        let output = futures::executor::block_on(driver.process(requests, now));
        if self.chance(self.faults.crash) {
            // Committed, but nobody heard: what a crash between commit and send leaves.
            self.crash();
            return;
        }
        self.carry_out(output);
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

    /// Delivers what is due, in order; Back Office takes its messages as one batch, as the
    /// runner does with what queued up.
    pub fn deliver(&mut self) {
        let mut batch = Vec::new();
        for packet in self.net.due(self.now_ms) {
            match packet {
                Packet::Down {
                    register,
                    generation,
                    message,
                } => {
                    // What Back Office answers waits for what it was sent before.
                    self.bo(std::mem::take(&mut batch));
                    self.at_register(register, generation, message);
                }
                Packet::Up {
                    register,
                    generation,
                    message,
                } => batch.extend(self.at_gateway(register, generation, message)),
            }
        }
        self.bo(batch);
    }
}
