//! A venue seeded in-process through `admin`, on the same file Back Office serves (WAL lets both
//! use it at once), so each test sets up only what it needs.

use crate::BackOffice;
use regsync_backoffice::Db;
use regsync_backoffice::admin::{self, NewUser};
use regsync_protocol::api::Permission;

pub const PASSWORD: &str = "correct horse battery";

/// A company with one site of three registers, a manager (Sites), an admin and a member of
/// staff (no permission).
pub struct Venue {
    pub company: admin::CompanyRecord,
    pub site: admin::SiteRecord,
    pub registers: Vec<admin::NewRegister>,
    pub manager: String,
    pub admin: String,
    pub staff: String,
}

impl Venue {
    pub async fn seed(db: &Db, name: &str) -> Venue {
        let slug = name.to_lowercase().replace(' ', "-");
        let company = admin::create_company(db, name).await.unwrap();
        let company_ref = company.id.to_string();
        let site = admin::create_site(db, &company_ref, "Main Bar")
            .await
            .unwrap();
        let mut registers = Vec::new();
        for register in ["Bar 1", "Bar 2", "Kitchen"] {
            registers.push(admin::create_register(db, &site, register).await.unwrap());
        }
        let mut emails = Vec::new();
        for (who, permissions) in [
            ("manager", &[Permission::Sites][..]),
            ("admin", &[Permission::Admin][..]),
            ("staff", &[][..]),
        ] {
            let email = format!("{who}@{slug}.example");
            admin::create_user(
                db,
                NewUser {
                    company: &company_ref,
                    email: &email,
                    display_name: &format!("{name} {who}"),
                    password: PASSWORD,
                    permissions,
                },
            )
            .await
            .unwrap();
            emails.push(email);
        }
        let [manager, admin, staff] = <[String; 3]>::try_from(emails).unwrap();
        Venue {
            company,
            site,
            registers,
            manager,
            admin,
            staff,
        }
    }
}

/// How most tests begin: Back Office started with `args`, the Harbour venue seeded, and its
/// manager signed in.
pub struct Scene {
    pub bo: BackOffice,
    pub venue: Venue,
    /// The manager's access token.
    pub token: String,
}

impl Scene {
    pub async fn start(args: &[&str]) -> Scene {
        let bo = BackOffice::start(args).await;
        let venue = Venue::seed(&bo.db().await, "Harbour").await;
        let token = bo.login(&venue.manager).await.access_token;
        Scene { bo, venue, token }
    }
}
