//! What can go wrong in a reconcile.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),

    #[error("DeviceLink has no namespace")]
    NotNamespaced,
}

impl Error {
    /// A short, stable name of what failed, for the errors metric.
    pub fn metric_label(&self) -> &'static str {
        if self.is_conflict() {
            return "conflict";
        }
        match self {
            Error::Kube(_) => "kube",
            Error::NotNamespaced => "invalid",
        }
    }

    /// A write lost a race with another writer; retry soon with fresh data.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Kube(kube::Error::Api(s)) if s.code == 409)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
