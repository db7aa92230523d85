//! Register agents in this process over real sockets, and the HTTP calls that sync them.

use crate::{BackOffice, WAIT, eventually};
use std::path::PathBuf;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Banners a register showed, in order.
#[derive(Default)]
pub struct Banners(pub std::sync::Mutex<Vec<String>>);

impl regsync_register::AgentHooks for Banners {
    fn banner(&self, text: &str) {
        self.0.lock().unwrap().push(text.to_owned());
    }
}

impl BackOffice {
    /// A register agent (in this process, talking over a real socket), its menu in memory.
    pub fn agent(&self, credential: &str) -> regsync_register::Agent {
        self.agent_with(
            credential,
            None,
            std::sync::Arc::new(regsync_register::NoHooks),
        )
    }

    pub fn agent_with(
        &self,
        credential: &str,
        state_path: Option<PathBuf>,
        hooks: std::sync::Arc<dyn regsync_register::AgentHooks>,
    ) -> regsync_register::Agent {
        let mut config = regsync_register::AgentConfig::new(self.url.clone(), credential);
        config.state_path = state_path;
        config.reconnect_max = Duration::from_millis(500);
        regsync_register::Agent::start(config, hooks)
    }

    pub async fn register(&self, token: &str, register_id: uuid::Uuid) -> Value {
        let (status, register) = self
            .get(&format!("/v1/registers/{register_id}"), token)
            .await;
        assert_eq!(status, StatusCode::OK, "{register}");
        register
    }

    /// Waits until Back Office shows the register online (or offline).
    pub async fn wait_online(&self, token: &str, register_id: uuid::Uuid, online: bool) -> Value {
        eventually(
            WAIT,
            &format!("register {register_id} online={online}"),
            || async {
                let register = self.register(token, register_id).await;
                (register["online"] == online).then_some(register)
            },
        )
        .await
    }

    pub async fn sync_register(
        &self,
        token: &str,
        register_id: uuid::Uuid,
        retry_when_free: bool,
    ) -> Value {
        self.start_sync(
            &format!("/v1/registers/{register_id}/sync"),
            token,
            retry_when_free,
        )
        .await
    }

    pub async fn sync_site(
        &self,
        token: &str,
        site_id: uuid::Uuid,
        retry_when_free: bool,
    ) -> Value {
        self.start_sync(&format!("/v1/sites/{site_id}/sync"), token, retry_when_free)
            .await
    }

    /// Asks for a sync; answers the job, which must be accepted.
    async fn start_sync(&self, path: &str, token: &str, retry_when_free: bool) -> Value {
        let body = serde_json::json!({ "retry_when_free": retry_when_free });
        let (status, job) = self.call(Method::POST, path, Some(token), Some(body)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{job}");
        job
    }

    pub async fn job(&self, token: &str, job_id: &Value) -> Value {
        let (status, job) = self
            .get(&format!("/v1/jobs/{}", job_id.as_str().unwrap()), token)
            .await;
        assert_eq!(status, StatusCode::OK, "{job}");
        job
    }

    /// Waits until the job satisfies `done`; answers it.
    pub async fn wait_job(
        &self,
        token: &str,
        job: &Value,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        eventually(WAIT, what, || async {
            let job = self.job(token, &job["id"]).await;
            done(&job).then_some(job)
        })
        .await
    }
}

/// The target of `register` in a job.
pub fn target<'a>(job: &'a Value, register: &str) -> &'a Value {
    job["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["register_name"] == register)
        .unwrap_or_else(|| panic!("no target for {register} in {job}"))
}

pub fn state_of(job: &Value, register: &str) -> String {
    target(job, register)["state"].as_str().unwrap().to_owned()
}
