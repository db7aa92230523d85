//! The OpenAPI document at `/v1/openapi.json`.
//!
//! Each handler's annotation describes what is particular to it. What every operation shares is
//! added here, once, so the document says everything the server does: the answers any request may
//! get from the HTTP edge (400 for a malformed path, query or body; 408 past the request timeout;
//! 404 for an id in the path that is not one of the caller's company;
//! 413 and 415 for bodies; 401 wherever a manager must be signed in, 403 where the Sites
//! permission is needed — the `sites` role of the bearer requirement), the headers every answer carries (`x-request-id`), and the ones
//! particular answers carry (`WWW-Authenticate` on 401, `Retry-After` on 429 and 503). The event
//! stream is described event by event. schemathesis checks the document against the server in CI
//! (`scripts/api-contract`), so the two cannot drift apart.

use serde_json::{Value, json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Register Sync Back Office",
        description = "Sites, registers, menus and syncs of a venue group. Errors always have the \
                       shape {\"error\": {\"code\", \"message\"}}; every answer carries an \
                       `x-request-id` header that names the request in Back Office's log."
    ),
    modifiers(&Security),
    tags(
        (name = "auth", description = "Sign in, refresh, sign out"),
        (name = "sites", description = "Sites and their registers"),
        (name = "catalog", description = "The menu a sync delivers to registers"),
        (name = "sync", description = "Syncing registers, sync history and live events"),
        (name = "schedules", description = "Scheduled syncs, in each site's time zone"),
        (name = "registers", description = "The channel registers connect on"),
        (name = "users", description = "Who sees which sites (admins)"),
        (name = "meta", description = "Health and this document"),
    )
)]
pub(super) struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A manager's access token, from /v1/auth/login or /v1/auth/refresh",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "device",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A register's device credential, printed when the register was created",
                    ))
                    .build(),
            ),
        );
    }
}

const METHODS: [&str; 5] = ["get", "put", "post", "patch", "delete"];

/// The generated document with what every operation shares added.
pub(super) fn finish(document: utoipa::openapi::OpenApi) -> Value {
    let mut document = serde_json::to_value(document).expect("the document is JSON");
    add_shared_components(&mut document);
    if let Some(paths) = document["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            for method in METHODS {
                if let Some(operation) = item.get_mut(method) {
                    add_path_ids(path, operation);
                    add_shared_answers(operation);
                }
            }
        }
    }
    describe_event_stream(&mut document);
    document
}

fn add_shared_components(document: &mut Value) {
    let error = json!({ "$ref": "#/components/schemas/ErrorBody" });
    let answer = |description: &str| {
        json!({
            "description": description,
            "headers": { "x-request-id": { "$ref": "#/components/headers/RequestId" } },
            "content": { "application/json": { "schema": error } }
        })
    };
    let components = &mut document["components"];
    components["headers"] = json!({
        "RequestId": {
            "description": "Names this request in Back Office's log; quote it when reporting a problem",
            "schema": { "type": "string" }
        },
        "RetryAfter": {
            "description": "Seconds to wait before trying again",
            "schema": { "type": "integer", "minimum": 1 }
        },
        "WwwAuthenticate": {
            "description": "How to authenticate: `Bearer realm=\"regsync\"`",
            "schema": { "type": "string" }
        }
    });
    components["responses"] = json!({
        "BadRequest": answer(
            "Malformed request: a path id, query parameter or body that does not parse or breaks \
             a rule; the message names it"
        ),
        "RequestTimeout": answer("The request took longer than Back Office's request timeout"),
        "PayloadTooLarge": answer("The body is larger than Back Office's body limit"),
        "UnsupportedMediaType": answer("The body is not sent as `application/json`"),
        "NoSitesPermission": answer(
            "Signed in, but without the Sites (or Admin) permission this needs"
        ),
        "NotSignedIn": {
            "description": "Not signed in, or the sign-in ended: the code says whether refreshing can help",
            "headers": {
                "x-request-id": { "$ref": "#/components/headers/RequestId" },
                "WWW-Authenticate": { "$ref": "#/components/headers/WwwAuthenticate" }
            },
            "content": { "application/json": { "schema": error } }
        },
    });
}

/// Every `{thing_id}` in a path is the id of a thing in the caller's company: a UUID, and 404
/// when there is no such thing there — exactly as for another company's ids, so a caller cannot
/// tell the two apart.
fn add_path_ids(path: &str, operation: &mut Value) {
    let things = path
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix("_id}"));
    for thing in things {
        let name = format!("{thing}_id");
        let parameters = operation
            .as_object_mut()
            .expect("an operation is an object")
            .entry("parameters")
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .expect("parameters are a list");
        if !parameters.iter().any(|p| p["name"] == name.as_str()) {
            let parameter = json!({
                "name": name,
                "in": "path",
                "required": true,
                "description": format!("The {thing}"),
                "schema": { "type": "string", "format": "uuid" }
            });
            parameters.insert(0, parameter);
        }
        operation["responses"]
            .as_object_mut()
            .expect("an operation has responses")
            .entry("404")
            .or_insert_with(|| {
                json!({
                    "description": format!("No such {thing} in your company"),
                    "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } }
                })
            });
    }
}

fn add_shared_answers(operation: &mut Value) {
    let has_body = operation.get("requestBody").is_some();
    // A manager's token; OpenAPI 3.1 lets a bearer requirement name the roles it needs.
    let bearer_roles: Option<Vec<Value>> = operation["security"].as_array().and_then(|schemes| {
        schemes
            .iter()
            .find_map(|s| s.get("bearer").and_then(Value::as_array).cloned())
    });
    let signed_in = bearer_roles.is_some();
    let needs_sites = bearer_roles.is_some_and(|roles| roles.contains(&json!("sites")));
    let Some(responses) = operation["responses"].as_object_mut() else {
        return;
    };
    let shared = |name: &str| json!({ "$ref": format!("#/components/responses/{name}") });
    responses
        .entry("400")
        .or_insert_with(|| shared("BadRequest"));
    responses
        .entry("408")
        .or_insert_with(|| shared("RequestTimeout"));
    if signed_in {
        responses
            .entry("401")
            .or_insert_with(|| shared("NotSignedIn"));
    }
    if needs_sites {
        responses
            .entry("403")
            .or_insert_with(|| shared("NoSitesPermission"));
    }
    if has_body {
        responses
            .entry("413")
            .or_insert_with(|| shared("PayloadTooLarge"));
        responses
            .entry("415")
            .or_insert_with(|| shared("UnsupportedMediaType"));
    }
    for (status, response) in responses.iter_mut() {
        if response.get("$ref").is_some() {
            continue;
        }
        let headers = response
            .as_object_mut()
            .expect("a response is an object")
            .entry("headers")
            .or_insert_with(|| json!({}));
        headers["x-request-id"] = json!({ "$ref": "#/components/headers/RequestId" });
        match status.as_str() {
            "401" => {
                headers["WWW-Authenticate"] =
                    json!({ "$ref": "#/components/headers/WwwAuthenticate" })
            }
            "429" | "503" => {
                headers["Retry-After"] = json!({ "$ref": "#/components/headers/RetryAfter" })
            }
            _ => {}
        }
    }
}

/// `/v1/events` answers a stream of server-sent events. Before OpenAPI 3.2 (`itemSchema`), the
/// media type's schema describes one event: its `event` name, its `id` and its `data`, a JSON
/// text of an `Event`.
fn describe_event_stream(document: &mut Value) {
    let stream = &mut document["paths"]["/v1/events"]["get"]["responses"]["200"]["content"]["text/event-stream"];
    if stream.is_null() {
        return;
    }
    *stream = json!({
        "schema": {
            "type": "object",
            "required": ["event", "data"],
            "properties": {
                "event": {
                    "type": "string",
                    "enum": ["snapshot", "register", "site", "job", "target"],
                    "description": "The `type` of the Event in `data`"
                },
                "id": { "type": "string", "description": "Numbers the stream's events" },
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": { "$ref": "#/components/schemas/Event" }
                },
                "retry": { "type": "integer", "minimum": 0 }
            }
        }
    });
}
