//! Who is signed in, as the page sees it, and the config file that remembers it between starts.
//!
//! The config file holds the session's view (Back Office's address, the user's name and email,
//! the choices made at sign-in) and never a secret: the refresh token is in the OS keychain. A
//! missing or unreadable file means "not signed in", never a crash.

use std::path::Path;

use regsync_client::{Client, Endpoint};
use serde::{Deserialize, Serialize};

use crate::files::write_atomically;

/// What the page knows of the signed-in user (nothing secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    pub url: String,
    pub email: String,
    pub display_name: String,
    pub company: String,
    pub can_manage_sites: bool,
    pub demo: bool,
    /// The manager chose an unencrypted connection to this Back Office.
    #[serde(default)]
    pub allow_http: bool,
}

impl SessionView {
    /// The signed-in user of `client`, if it knows who that is.
    pub fn of(client: &Client, demo: bool, allow_http: bool) -> Option<SessionView> {
        let me = client.me_cached()?;
        Some(SessionView {
            url: client.base_url().to_owned(),
            email: me.user.email,
            display_name: me.user.display_name,
            company: me.company.name,
            can_manage_sites: me.can_manage_sites,
            demo,
            allow_http,
        })
    }

    /// How to reach this session's Back Office, with the choices made at sign-in.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint::new(self.url.as_str()).allow_plain_http(self.allow_http)
    }
}

#[derive(Serialize, Deserialize)]
struct Config {
    session: SessionView,
}

/// The session saved by the last sign-in with "Stay signed in", if the file is usable.
pub fn load(path: &Path) -> Option<SessionView> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice::<Config>(&bytes) {
        Ok(config) => Some(config.session),
        Err(error) => {
            tracing::warn!(%error, "the config file is unreadable; ignoring it");
            None
        }
    }
}

/// Saves the session, atomically: a crash mid-write leaves the old file or the new one.
pub fn save(path: &Path, session: &SessionView) -> std::io::Result<()> {
    let config = Config {
        session: session.clone(),
    };
    write_atomically(path, &serde_json::to_vec_pretty(&config)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alex() -> SessionView {
        SessionView {
            url: "https://bo.harbour.example".into(),
            email: "alex@harbour.example".into(),
            display_name: "Alex Manager".into(),
            company: "Harbour Hospitality".into(),
            can_manage_sites: true,
            demo: false,
            allow_http: false,
        }
    }

    #[test]
    fn a_saved_session_comes_back_and_a_broken_file_is_no_session() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        assert_eq!(load(&path), None);
        save(&path, &alex()).unwrap();
        assert_eq!(load(&path), Some(alex()));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("rsr_"), "no token in the config: {text}");

        std::fs::write(&path, b"{\"session\": {\"url\": ").unwrap();
        assert_eq!(load(&path), None);
    }

    #[test]
    fn a_file_from_before_the_unencrypted_choice_means_no_choice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"session":{"url":"http://bo.example","email":"a@b","display_name":"A","company":"C","can_manage_sites":true,"demo":false}}"#,
        )
        .unwrap();
        let session = load(&path).unwrap();
        assert!(!session.allow_http);
    }
}
