//! The app's offline cache file, as read at start: whatever is on disk (a half-written file, an
//! old version, another program's JSON), the app starts — with the picture, or without it — and
//! what it shows from a picture (the tray, the running jobs, each site's registers) never panics.

#![no_main]

use chrono::FixedOffset;
use libfuzzer_sys::fuzz_target;
use regsync_desktop::cache;
use regsync_desktop::state::Live;
use regsync_desktop::tray;

const ACCOUNT: &str = "manager@harbour.example at https://bo.harbour.example";

fuzz_target!(|data: &[u8]| {
    let Ok(picture) = cache::read(data, ACCOUNT) else {
        return;
    };
    let live = Live::from_cache(picture);
    let picture = &live.picture;
    let current = picture.current_site(None);
    for zone in [FixedOffset::east_opt(0), FixedOffset::east_opt(13 * 3600)]
        .into_iter()
        .flatten()
    {
        let _ = tray::summarize(true, &live, current, &zone);
    }
    let _ = picture.running_jobs();
    for &site in picture.sites.keys() {
        let _ = picture.registers_of(site).count();
    }
});
