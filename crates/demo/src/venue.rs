//! The demo company, seeded into a fresh database, and its simulated registers.
//!
//! Two sites with registers and a menu, a manager with the Sites permission and a member of
//! staff without it. The sign-in details are public on purpose (they are in the README).
//! [`simulate`] then brings the registers to life: some selling, one dropping offline now and
//! then, one never connecting.

use regsync_protocol::api::Permission;
use regsync_protocol::{Catalog, Category, Product};

use std::sync::Arc;
use std::time::Duration;

use regsync_register::simulate::{SaleProfile, run_sales};
use regsync_register::{Agent, AgentConfig, NoHooks};

use regsync_backoffice::admin::{self, NewRegister, NewUser};
use regsync_backoffice::error::Result;
use regsync_backoffice::{Db, catalog};

pub const COMPANY: &str = "Harbour Hospitality";
pub const MANAGER_EMAIL: &str = "manager@harbour.example";
pub const MANAGER_PASSWORD: &str = "harbour-manager";
pub const MANAGER_NAME: &str = "Alex Manager";
pub const STAFF_EMAIL: &str = "staff@harbour.example";
pub const STAFF_PASSWORD: &str = "harbour-staff";
pub const STAFF_NAME: &str = "Sam Staff";

pub const SITES: [(&str, &[&str]); 2] = [
    (
        "Main Bar",
        &["Bar 1", "Bar 2", "Bar 3", "Kitchen", "Cellar Door", "Patio"],
    ),
    ("Terrace", &["Terrace 1", "Terrace 2", "Kiosk"]),
];

/// The demo's registers with their device credentials, for simulated registers to sign in with.
#[derive(Debug)]
pub struct DemoVenue {
    pub registers: Vec<NewRegister>,
}

fn menu(site: &str) -> Catalog {
    let category = |id: &str, name: &str| Category {
        id: id.into(),
        name: name.into(),
    };
    let product = |id: &str, name: &str, price_cents, category_id: &str| Product {
        id: id.into(),
        name: name.into(),
        price_cents,
        category_id: Some(category_id.into()),
    };
    Catalog {
        categories: vec![category("beer", "Beer"), category("food", "Food")],
        products: vec![
            product("101", "Harbour Lager", 850, "beer"),
            product("102", "Pale Ale", 950, "beer"),
            product("201", "Fish & Chips", 2400, "food"),
            product("202", "Hot Chips", 900, "food"),
        ],
        settings: [(
            "receipt_footer".to_owned(),
            format!("Thanks for visiting {site}!"),
        )]
        .into(),
    }
}

/// Seeds the demo company. Run once on an empty database; a second run fails with a conflict.
pub async fn seed(db: &Db) -> Result<DemoVenue> {
    let company = admin::create_company(db, COMPANY).await?;
    let company_ref = company.id.to_string();
    admin::create_user(
        db,
        NewUser {
            company: &company_ref,
            email: MANAGER_EMAIL,
            display_name: MANAGER_NAME,
            password: MANAGER_PASSWORD,
            permissions: &[Permission::Sites],
        },
    )
    .await?;
    admin::create_user(
        db,
        NewUser {
            company: &company_ref,
            email: STAFF_EMAIL,
            display_name: STAFF_NAME,
            password: STAFF_PASSWORD,
            permissions: &[],
        },
    )
    .await?;
    let mut registers = Vec::new();
    for (site_name, register_names) in SITES {
        let site = admin::create_site(db, &company_ref, site_name).await?;
        let site_menu = menu(site_name);
        catalog::update(db, site.id, None, Some(MANAGER_NAME), move |_| {
            site_menu.clone()
        })
        .await?;
        for name in register_names {
            registers.push(admin::create_register(db, &site, name).await?);
        }
    }
    Ok(DemoVenue { registers })
}

/// How a demo register behaves.
fn behaviour(name: &str) -> Behaviour {
    let selling = |gap_secs, sale_secs| {
        Behaviour::Online(SaleProfile {
            mean_gap: Duration::from_secs(gap_secs),
            mean_duration: Duration::from_secs(sale_secs),
        })
    };
    match name {
        "Bar 1" | "Terrace 1" => selling(20, 8),
        "Bar 2" | "Kiosk" => selling(8, 25),
        "Kitchen" => Behaviour::Flaky {
            up: Duration::from_secs(60),
            down: Duration::from_secs(30),
        },
        "Cellar Door" => Behaviour::Off,
        _ => Behaviour::Online(SaleProfile::NEVER),
    }
}

enum Behaviour {
    Online(SaleProfile),
    /// Connected for `up`, then gone for `down`, again and again.
    Flaky {
        up: Duration,
        down: Duration,
    },
    Off,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The demo's simulated registers; dropping this stops them.
#[derive(Debug)]
pub struct Simulation {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Simulation {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Connects the demo's registers to the Back Office at `url`, over real sockets.
pub fn simulate(url: &str, venue: &DemoVenue) -> Simulation {
    let mut tasks = Vec::new();
    for new in &venue.registers {
        let config = AgentConfig::new(url, new.credential.clone());
        let name = new.register.name.clone();
        let task = match behaviour(&name) {
            Behaviour::Off => continue,
            Behaviour::Online(profile) => tokio::spawn(async move {
                let agent = Arc::new(Agent::start(config, Arc::new(NoHooks)));
                let sales = run_sales(Arc::downgrade(&agent), profile);
                // Lives until the simulation is dropped (this task is aborted).
                let _running = (agent, AbortOnDrop(sales));
                std::future::pending::<()>().await;
            }),
            Behaviour::Flaky { up, down } => tokio::spawn(async move {
                loop {
                    let agent = Agent::start(config.clone(), Arc::new(NoHooks));
                    tokio::time::sleep(up).await;
                    tracing::info!(register = %name, "demo: dropping offline for a while");
                    agent.kill();
                    tokio::time::sleep(down).await;
                }
            }),
        };
        tasks.push(task);
    }
    Simulation { tasks }
}
