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

    /// The API server refused a request for what it asked (invalid, denied
    /// by policy or admission): asking again unchanged gets the same answer,
    /// so it belongs in the DeviceLink's conditions. Its message says why.
    pub fn refusal(&self) -> Option<&str> {
        match self {
            Error::Kube(kube::Error::Api(s)) if matches!(s.code, 400 | 403 | 422) => {
                Some(&s.message)
            }
            _ => None,
        }
    }

    /// A write lost a race with another writer; retry soon with fresh data.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Kube(kube::Error::Api(s)) if s.code == 409)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
