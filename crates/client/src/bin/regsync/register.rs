//! A register's own page, on the command line: `regsync register "Bar 2"` — its state, what it
//! is missing from the latest menu, its recent syncs and when it went online and offline; and
//! the filters of a big site for `regsync registers` (`--find`, `--show`).

use regsync_client::Client;
use regsync_protocol::ExitCode as Exit;
use regsync_protocol::api::{Register, SyncSource};
use regsync_protocol::sync::RegisterActivity;

use crate::output::{colour, print_json, relative, state_words, table};
use crate::{Failure, find_register};

/// What `regsync registers --show` narrows a site to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Show {
    /// Registers that are offline.
    Offline,
    /// Registers in a sale.
    Sale,
    /// Registers behind the latest menu.
    Behind,
}

/// Whether `register` is one asked for: its name holds `find` (any case), and it is what `show`
/// names.
pub(crate) fn shown(register: &Register, find: Option<&str>, show: Option<Show>) -> bool {
    let named = find.is_none_or(|wanted| {
        register
            .name
            .to_lowercase()
            .contains(&wanted.trim().to_lowercase())
    });
    named
        && match show {
            None => true,
            Some(Show::Offline) => !register.online,
            Some(Show::Sale) => register.online && register.in_sale,
            Some(Show::Behind) => !register.up_to_date,
        }
}

/// `regsync register NAME [--site SITE]`.
pub(crate) async fn show_register(
    client: &Client,
    reference: &str,
    site: Option<&str>,
    json: bool,
) -> Result<Exit, Failure> {
    let register = find_register(client, reference, site).await?;
    let activity = client.register_activity(register.id).await?;
    if json {
        print_json(&activity)?;
        return Ok(Exit::Done);
    }
    print_page(&register, &activity);
    Ok(Exit::Done)
}

fn print_page(register: &Register, activity: &RegisterActivity) {
    let status = match (register.online, register.in_sale) {
        (false, _) => colour("○ offline", false),
        (true, true) => colour("◐ in a sale", true),
        (true, false) => colour("● online", true),
    };
    let menu = if register.up_to_date {
        format!("up to date (revision {})", register.applied_revision)
    } else {
        format!(
            "{} behind (revision {} of {})",
            register.revisions_behind, register.applied_revision, register.site_revision
        )
    };
    println!(
        "{} · {status} · menu {menu} · last synced {}",
        register.name,
        relative(register.last_synced_at)
    );
    if let Some(missing) = &activity.missing {
        println!(
            "\nWhat it is missing (revision {} → {}):",
            missing.from_revision, missing.to_revision
        );
        let diff = &missing.diff;
        for (label, names) in [
            ("Added", &diff.added),
            ("Changed", &diff.changed),
            ("Removed", &diff.removed),
            ("Categories", &diff.categories),
            ("Settings", &diff.settings),
        ] {
            if !names.is_empty() {
                println!("  {label}: {}", names.join(", "));
            }
        }
        if !missing.known {
            println!("  (its revision is no longer kept: this is the whole menu)");
        }
    }
    println!("\nRecent syncs:");
    if activity.syncs.is_empty() {
        println!("  none yet");
    } else {
        let mut t = table(&["When", "Who asked", "Outcome"]);
        for sync in &activity.syncs {
            let who = match (&sync.requested_by, sync.source) {
                (Some(name), _) => name.clone(),
                (None, SyncSource::Schedule) => "schedule".into(),
                (None, _) => "staff, at the register".into(),
            };
            t.add_row(vec![
                relative(Some(sync.created_at)),
                who,
                state_words(sync.state, sync.reason.as_deref(), None),
            ]);
        }
        println!("{t}");
    }
    println!("\nOnline and offline (30 days):");
    if activity.presence.is_empty() {
        println!("  nothing noted");
    }
    for change in &activity.presence {
        let word = if change.online {
            "came online"
        } else {
            "went offline"
        };
        println!("  {} {word}", relative(Some(change.at)));
    }
}
