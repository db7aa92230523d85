//! A text frame on the register channel, either way: what Back Office reads from a register
//! (`RegisterMessage`, as the gateway parses it) and what an agent reads from Back Office
//! (`ServerMessage`). Any bytes: an answer, never a panic; what parses survives a round trip.

#![no_main]

use libfuzzer_sys::fuzz_target;
use regsync_protocol::register::{MAX_REGISTER_MESSAGE_BYTES, RegisterMessage, ServerMessage};

fuzz_target!(|data: &[u8]| {
    // The gateway refuses bigger frames before parsing them.
    if data.len() > MAX_REGISTER_MESSAGE_BYTES {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(message) = serde_json::from_str::<RegisterMessage>(text) {
        let again: RegisterMessage =
            serde_json::from_str(&serde_json::to_string(&message).unwrap()).unwrap();
        assert_eq!(again, message);
    }
    if let Ok(message) = serde_json::from_str::<ServerMessage>(text) {
        let json = serde_json::to_string(&message).unwrap();
        let again: ServerMessage = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&again).unwrap(), json);
        if let ServerMessage::Sync {
            requested_by: Some(name),
            ..
        } = &again
        {
            let _ = regsync_protocol::register::banner_text(name);
        }
    }
});
