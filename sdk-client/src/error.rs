/// Errors of the SDK client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The configuration is incomplete or invalid.
    #[error("invalid Agent Assembly configuration: {0}")]
    Config(String),
    /// The policy could not be loaded.
    #[error(transparent)]
    Policy(#[from] aa_core::PolicyError),
    /// The audit file or spill file failed.
    #[error(transparent)]
    Audit(#[from] aa_core::AuditError),
    /// The gateway client could not be set up (its CA certificate).
    #[error(transparent)]
    Gateway(Box<crate::GatewayError>),
    /// The gateway could not be reached or refused the request.
    #[error("gateway unavailable: {0}")]
    Unavailable(String),
    /// A flush did not finish in time; the events stay queued or spilled and will be sent.
    #[error("flush timed out with {pending} event(s) still pending (they stay queued or spilled)")]
    FlushTimeout {
        /// Events not yet acknowledged by the gateway.
        pending: u64,
    },
}

impl From<crate::GatewayError> for ClientError {
    fn from(e: crate::GatewayError) -> Self {
        ClientError::Gateway(Box::new(e))
    }
}
