//! One step of the world: time passes, messages arrive, deadlines fire, someone does something;
//! then every invariant is checked.

use rand::Rng;
use regsync_backoffice::sync::core::RegisterRef;
use regsync_backoffice::sync::driver::{Dropped, Request, SaleState, SyncAnswer};
use regsync_backoffice::sync::store::Scope;
use regsync_backoffice::sync::store::Store;

use crate::net::{Down, Up};
use crate::world::{COMPANY, Faults, SITE, World};

impl World {
    /// A message reaching Back Office's gateway: what it forwards to the engine, if anything.
    pub(crate) fn at_gateway(
        &mut self,
        register: usize,
        generation: u64,
        message: Up,
    ) -> Option<Request> {
        let node = self.conn_node.get(&generation).copied()?;
        if !self.node_up(node) {
            return None;
        }
        let register_id = self.registers[register].id;
        let current = self
            .gateway
            .get(&register)
            .is_some_and(|(g, _)| *g == generation);
        match message {
            Up::Hello {
                applied_revision,
                in_sale,
                recent,
            } => {
                self.gateway.insert(register, (generation, in_sale));
                Some(Request::Connected {
                    register: RegisterRef {
                        id: register_id,
                        site_id: SITE,
                        company_id: COMPANY,
                    },
                    generation,
                    applied_revision,
                    in_sale,
                    recent,
                })
            }
            Up::Closed => {
                if current {
                    self.gateway.remove(&register);
                }
                Some(Request::Disconnected(Dropped {
                    register_id,
                    generation,
                    last_seen: self.wall(),
                }))
            }
            Up::Heartbeat { in_sale } | Up::Sale { in_sale } => {
                let known = self
                    .gateway
                    .get_mut(&register)
                    .filter(|(g, _)| *g == generation)?;
                if known.1 == in_sale && matches!(message, Up::Heartbeat { .. }) {
                    return None;
                }
                known.1 = in_sale;
                Some(Request::Sale(SaleState {
                    register_id,
                    generation,
                    in_sale,
                }))
            }
            Up::Result { target_id, outcome } => Some(Request::Result(SyncAnswer {
                register_id,
                generation,
                target_id,
                outcome,
            })),
            Up::SyncRequested => current.then_some(Request::SyncRequested { register_id }),
        }
    }

    pub(crate) fn at_register(&mut self, register: usize, generation: u64, message: Down) {
        if self.registers[register].connection != Some(generation) {
            return;
        }
        match message {
            Down::Close => self.disconnect(register),
            Down::Sync {
                target_id,
                revision,
            } => {
                let now = self.wall();
                let fail = self.rng_mut().random_bool(0.01);
                let r = &mut self.registers[register];
                let sale = r.in_sale;
                match r.on_command(target_id, revision, now, fail) {
                    Ok(outcome) => {
                        self.note(format!("register {register} (sale {sale}) answers {target_id} r{revision}: {outcome:?}"));
                        self.up(register, Up::Result { target_id, outcome });
                    }
                    Err(violation) => self.fail(violation),
                }
            }
        }
    }

    /// Fires deadlines that passed, on every node.
    pub fn timers(&mut self) {
        let now = self.wall();
        for node in 0..self.nodes.len() {
            let Some(driver) = self.driver_mut(node) else {
                continue;
            };
            if driver.poll_timeout().is_some_and(|at| at <= now) {
                let output = futures::executor::block_on(driver.timeout(now));
                self.route_notices();
                self.carry(output);
            }
        }
    }

    /// One random step.
    pub fn step(&mut self) {
        self.steps += 1;
        let dt = self.rng_mut().random_range(0..1500);
        self.advance(dt);
        if self.rng_mut().random_bool(0.0005) {
            let jump = if self.rng_mut().random_bool(0.5) {
                600_000
            } else {
                -30_000
            };
            self.jump(jump);
        }
        self.deliver();
        self.timers();
        self.cluster_tick();
        self.act();
        self.check();
    }

    fn act(&mut self) {
        let n = self.registers.len();
        let r = self.rng_mut().random_range(0..n);
        let roll: f64 = self.rng_mut().random();
        let faults = self.faults;
        if !self.is_up() {
            if roll < 0.05 {
                self.restart();
            }
            return;
        }
        // Several nodes: a node that is down comes back now and then.
        if self.cluster && self.nodes.iter().any(|n| n.driver.is_none()) && roll < 0.01 {
            self.restart();
            return;
        }
        match roll {
            x if x < 0.10 => self.connect(r),
            x if x < 0.25 => {
                let in_sale = !self.registers[r].in_sale;
                self.set_sale(r, in_sale);
            }
            x if x < 0.35 => self.heartbeat(r),
            x if x < 0.40 => self.press_sync(r),
            x if x < 0.47 => {
                let id = self.registers[r].id;
                let retry = self.rng_mut().random_bool(0.7);
                let queue = self.queue();
                self.manager_sync(Scope::Register(id), retry, queue);
            }
            x if x < 0.50 => {
                let retry = self.rng_mut().random_bool(0.7);
                let queue = self.queue();
                self.manager_sync(Scope::SiteOnline(SITE), retry, queue);
            }
            x if x < 0.52 => self.edit_menu(),
            x if x < 0.52 + faults.cut * 10.0 => self.disconnect(r),
            x if x < 0.522 + faults.cut * 10.0 && faults.cut > 0.0 => self.reinstall(r),
            x if x < 0.522 + faults.cut * 10.0 + faults.crash => self.crash(),
            _ => {}
        }
    }

    /// Whether a manager's sync queues offline registers, and for how long: a third do, for one
    /// to twenty simulated minutes (so some reconnect in time and some do not).
    fn queue(&mut self) -> Option<chrono::TimeDelta> {
        let queue = self.rng_mut().random_bool(0.3);
        let minutes = self.rng_mut().random_range(1..=20);
        queue.then(|| chrono::TimeDelta::minutes(minutes))
    }

    /// Back Office starts again and, as its runner does, ends at once what is overdue.
    fn restart(&mut self) {
        self.boot_again();
        // Several nodes: registers of nodes dead for long are taken over at once.
        self.cluster_tick();
        self.timers();
    }

    pub fn check(&mut self) {
        let log = self.store.take_log();
        let result = self.checker.absorb(log, &self.registers).and_then(|()| {
            let now = (self.wall().timestamp_millis(), self.now_ms);
            let up = self.is_up();
            // Several nodes: a dead node's targets wait for its registers to be taken over, and
            // a queued target for its holder's rescan if the notice was lost.
            let slack = if self.cluster {
                crate::world::NODE_GRACE_MS + crate::world::RESCAN_MS + 2_000
            } else {
                0
            };
            self.checker
                .step(&self.store, &self.registers, now, slack, up)
        });
        if let Err(violation) = result {
            self.fail(violation);
        }
    }

    /// Faults off, sales over, Back Office up, every register says hello afresh; then time runs
    /// until every target has ended. Back Office must then show each register as it is.
    pub fn heal(&mut self) {
        let faults = std::mem::replace(&mut self.faults, Faults::OFF);
        while self.nodes.iter().any(|n| n.driver.is_none()) {
            self.restart();
        }
        for r in 0..self.registers.len() {
            self.set_sale(r, false);
            self.disconnect(r);
        }
        self.settle(50);
        for r in 0..self.registers.len() {
            self.connect(r);
        }
        let limit = (crate::world::timing().wait_expiry.num_milliseconds() / 1000) * 4;
        for _ in 0..limit {
            self.settle(1);
            if self.net.is_empty() && self.checker.open() == 0 {
                break;
            }
        }
        if self.checker.open() > 0 {
            self.fail(format!(
                "{} targets still open after healing",
                self.checker.open()
            ));
        }
        self.same_as_registers();
        self.faults = faults;
    }

    /// Runs the world `rounds` seconds with nobody acting.
    fn settle(&mut self, rounds: usize) {
        for _ in 0..rounds {
            self.advance(1000);
            self.deliver();
            self.timers();
            self.cluster_tick();
            self.check();
        }
    }

    fn same_as_registers(&mut self) {
        let catalog = self.store.catalog_revision(SITE);
        for i in 0..self.registers.len() {
            let register = &self.registers[i];
            let record = futures::executor::block_on(self.store.register(register.id));
            let shown = record.ok().flatten().map(|r| r.applied_revision);
            let held = register.stored.applied_revision;
            if shown != Some(held) {
                self.fail(format!(
                    "Back Office shows register {i} at {shown:?}; it holds {held}"
                ));
            }
            let up_to_date = shown.is_some_and(|s| s >= catalog);
            if up_to_date != (held >= catalog) {
                self.fail(format!("register {i}: up to date shown wrongly"));
            }
        }
    }

    pub fn fail(&self, violation: String) -> ! {
        panic!(
            "invariant violated at step {} of seed {}: {violation}\n\
             replay it with REGSYNC_SEED={}\nlast steps:\n{}",
            self.steps,
            self.seed,
            self.seed,
            self.last_steps()
        );
    }
}
