//! A small blocking client of the gateway's HTTP API.

use std::path::Path;
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::output::CliError;

/// A gateway and a token.
pub struct Gateway {
    base: String,
    token: String,
    http: Client,
}

impl Gateway {
    /// A client for `url`, trusting `ca_cert` in addition to the system roots.
    pub fn new(url: &str, token: &str, ca_cert: Option<&Path>) -> Result<Self, CliError> {
        let mut builder = Client::builder()
            .timeout(Duration::from_secs(70))
            .connect_timeout(Duration::from_secs(5));
        if let Some(path) = ca_cert {
            let pem = std::fs::read(path).map_err(CliError::io(path))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| CliError::Input(format!("cannot build the HTTP client: {e}")))?;
        Ok(Gateway {
            base: url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http,
        })
    }

    /// A request to `path`, authenticated.
    pub fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// Sends and decodes, turning error bodies into [`CliError::Remote`].
    pub fn send<T: DeserializeOwned>(&self, req: RequestBuilder) -> Result<T, CliError> {
        let resp = self.raw(req)?;
        resp.json()
            .map_err(|e| CliError::Input(format!("unexpected answer from the gateway: {e}")))
    }

    /// Sends; returns the response when it is a success.
    pub fn raw(&self, req: RequestBuilder) -> Result<Response, CliError> {
        let resp = req.send().map_err(|e| {
            CliError::Input(format!("cannot reach the gateway at {}: {e}", self.base))
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().unwrap_or_default();
        let error = body.get("error");
        Err(CliError::Remote {
            status,
            message: error
                .and_then(|e| e.get("message"))
                .and_then(|m| m.as_str())
                .unwrap_or("no error body")
                .to_owned(),
            details: error.and_then(|e| e.get("details")).cloned(),
        })
    }

    /// GET and decode.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        self.send(self.request(reqwest::Method::GET, path))
    }

    /// POST JSON and decode.
    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, CliError> {
        self.send(self.request(reqwest::Method::POST, path).json(body))
    }

    /// PUT JSON and decode.
    pub fn put<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, CliError> {
        self.send(self.request(reqwest::Method::PUT, path).json(body))
    }
}
