//! What the manager sees of the app's own updates: nothing while there is nothing to do, "Version
//! X is ready — restart to update" once a newer version is downloaded and its signature verified,
//! and a plain line when an update was refused (a package or an answer that does not check out).
//! An update server that cannot be reached says nothing but a log line: it is IT's to notice.
//!
//! The checking itself (tauri-plugin-updater: the manifest, the download, the minisign signature)
//! is the shell's; this is the state and its words, tested without a window.

use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UpdateNotice {
    /// A newer version, downloaded and verified, installed when the app restarts.
    pub ready: Option<String>,
    /// Why the last update found was not taken, in words.
    pub refused: Option<String>,
}

/// Why an update was not taken, as the shell tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The package does not match its signature (or the signature is not one).
    Signature,
    /// The update server's answer is not a release manifest this app can read.
    Manifest,
    /// The package is signed, but for another version than the one announced (an older
    /// release passed off as new), or without saying for which.
    OtherVersion,
}

impl UpdateNotice {
    pub fn ready(version: &str) -> UpdateNotice {
        UpdateNotice {
            ready: Some(version.to_owned()),
            refused: None,
        }
    }

    pub fn refused(version: Option<&str>, why: Refusal) -> UpdateNotice {
        let update = match version {
            Some(version) => format!("The update to version {version}"),
            None => "An update".to_owned(),
        };
        let because = match why {
            Refusal::Signature => "its signature does not match, so it may have been tampered with",
            Refusal::Manifest => "the update server's answer could not be read",
            Refusal::OtherVersion => "its package was signed for another version",
        };
        UpdateNotice {
            ready: None,
            refused: Some(format!(
                "{update} was refused: {because}. Nothing was installed."
            )),
        }
    }

    /// The page's line, and the tray's item, for an update ready to install.
    pub fn ready_words(&self) -> Option<String> {
        self.ready
            .as_ref()
            .map(|version| format!("Version {version} is ready — restart to update"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ready_update_says_which_version_and_what_to_do() {
        let notice = UpdateNotice::ready("0.2.0");
        assert_eq!(
            notice.ready_words().as_deref(),
            Some("Version 0.2.0 is ready — restart to update")
        );
        assert_eq!(UpdateNotice::default().ready_words(), None);
    }

    #[test]
    fn a_refusal_is_plain_and_says_nothing_was_installed() {
        let notice = UpdateNotice::refused(Some("0.2.0"), Refusal::Signature);
        assert_eq!(
            notice.refused.as_deref(),
            Some(
                "The update to version 0.2.0 was refused: its signature does not match, so it \
                 may have been tampered with. Nothing was installed."
            )
        );
        assert_eq!(notice.ready, None);
        let replayed = UpdateNotice::refused(Some("0.3.0"), Refusal::OtherVersion);
        assert!(
            replayed
                .refused
                .unwrap()
                .contains("its package was signed for another version")
        );
        let unreadable = UpdateNotice::refused(None, Refusal::Manifest);
        assert!(
            unreadable
                .refused
                .unwrap()
                .starts_with("An update was refused: the update")
        );
    }
}
