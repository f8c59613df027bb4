//! Per adaptor kind settings of the adaptor pods: image, pull secrets,
//! resources, tolerations, extra environment, and the host access a protocol
//! needs (serial ports for Modbus RTU, the system D-Bus for BLE).
//!
//! Read from a YAML file (the Helm chart renders it into a ConfigMap):
//!
//! ```yaml
//! defaults:            # every adaptor kind
//!   imagePullSecrets: [{name: registry}]
//!   resources: {requests: {cpu: 10m, memory: 32Mi}, limits: {memory: 64Mi}}
//! adaptors:
//!   modbus:            # by short name; overrides the defaults field by field
//!     serialDevices: [/dev/ttyUSB0]
//! ```

use std::{collections::BTreeMap, path::Path};

use k8s_openapi::{
    api::core::v1::{EnvVar, LocalObjectReference, ResourceRequirements, Toleration},
    apimachinery::pkg::api::resource::Quantity,
};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("reading adaptor settings {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("adaptor settings {path}: {message}")]
    Invalid { path: String, message: String },
}

/// Settings of the pods of one adaptor kind. Every field is optional; an
/// absent field falls back to `defaults`, then to the operator's built-ins.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodSettings {
    /// Image; `{adaptor}` is replaced by the adaptor's short name.
    pub image: Option<String>,
    pub image_pull_policy: Option<String>,
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
    pub resources: Option<ResourceRequirements>,
    pub tolerations: Option<Vec<Toleration>>,
    /// Added to the adaptor container's environment.
    pub env: Option<Vec<EnvVar>>,
    pub priority_class_name: Option<String>,
    pub pod_annotations: Option<BTreeMap<String, String>>,
    /// Host serial devices mounted into the pod (and the dialout group added),
    /// for Modbus RTU. Nothing else of /dev is visible.
    pub serial_devices: Option<Vec<String>>,
    /// Mount the host's system D-Bus socket, for BLE through BlueZ.
    pub host_d_bus: Option<bool>,
    /// Size limit of the pod's data directory (an emptyDir holding the
    /// MQTT File stores); the kubelet evicts a pod that writes more.
    /// Default 1Gi.
    pub data_size_limit: Option<Quantity>,
    /// Keep the data directory on this PersistentVolumeClaim instead
    /// (`{node}` is replaced by the node's name; one claim per node, which
    /// you or your storage class provide), so that stored MQTT messages
    /// outlive the pod. Its size is the claim's.
    pub data_claim: Option<String>,
}

impl PodSettings {
    /// `self` with each absent field taken from `fallback`.
    fn over(self, fallback: &PodSettings) -> PodSettings {
        let f = fallback.clone();
        PodSettings {
            image: self.image.or(f.image),
            image_pull_policy: self.image_pull_policy.or(f.image_pull_policy),
            image_pull_secrets: self.image_pull_secrets.or(f.image_pull_secrets),
            resources: self.resources.or(f.resources),
            tolerations: self.tolerations.or(f.tolerations),
            env: self.env.or(f.env),
            priority_class_name: self.priority_class_name.or(f.priority_class_name),
            pod_annotations: self.pod_annotations.or(f.pod_annotations),
            serial_devices: self.serial_devices.or(f.serial_devices),
            host_d_bus: self.host_d_bus.or(f.host_d_bus),
            data_size_limit: self.data_size_limit.or(f.data_size_limit),
            data_claim: self.data_claim.or(f.data_claim),
        }
    }
}

/// The whole settings file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptorSettings {
    #[serde(default)]
    pub defaults: PodSettings,
    /// By adaptor short name (`dummy`, `modbus`, ...).
    #[serde(default)]
    pub adaptors: BTreeMap<String, PodSettings>,
}

impl AdaptorSettings {
    pub fn load(path: &Path) -> Result<AdaptorSettings, SettingsError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|message| SettingsError::Invalid {
            path: shown,
            message,
        })
    }

    pub fn parse(text: &str) -> Result<AdaptorSettings, String> {
        let settings: AdaptorSettings = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        let unknown: Vec<&str> = settings
            .adaptors
            .keys()
            .map(String::as_str)
            .filter(|k| devicelink_api::adaptor::find_short(k).is_none())
            .collect();
        if !unknown.is_empty() {
            let known: Vec<&str> = devicelink_api::adaptor::ADAPTORS
                .iter()
                .map(|a| a.short_name)
                .collect();
            return Err(format!(
                "adaptors: unknown adaptor {unknown:?}; known: {}",
                known.join(", ")
            ));
        }
        for (kind, pod) in std::iter::once(("defaults", &settings.defaults))
            .chain(settings.adaptors.iter().map(|(k, v)| (k.as_str(), v)))
        {
            for device in pod.serial_devices.iter().flatten() {
                if !device.starts_with("/dev/") {
                    return Err(format!(
                        "{kind}.serialDevices: {device:?} is not a device path under /dev/"
                    ));
                }
            }
        }
        Ok(settings)
    }

    /// The settings of one adaptor kind, with the defaults filled in.
    pub fn for_kind(&self, short_name: &str) -> PodSettings {
        self.adaptors
            .get(short_name)
            .cloned()
            .unwrap_or_default()
            .over(&self.defaults)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_overrides_the_defaults_field_by_field() {
        let settings = AdaptorSettings::parse(
            "defaults:\n  imagePullPolicy: Always\n  tolerations: [{key: edge, operator: Exists}]\nadaptors:\n  dummy:\n    imagePullPolicy: Never\n",
        )
        .unwrap();
        let dummy = settings.for_kind("dummy");
        assert_eq!(dummy.image_pull_policy.as_deref(), Some("Never"));
        assert_eq!(dummy.tolerations.unwrap()[0].key.as_deref(), Some("edge"));
    }

    #[test]
    fn mistakes_are_named() {
        let unknown = AdaptorSettings::parse("adaptors:\n  zigbee: {}\n").unwrap_err();
        assert!(
            unknown.contains("zigbee") && unknown.contains("dummy"),
            "{unknown}"
        );
        let typo = AdaptorSettings::parse("defaults:\n  imagePulPolicy: Always\n").unwrap_err();
        assert!(typo.contains("imagePulPolicy"), "{typo}");
        let not_a_device =
            AdaptorSettings::parse("defaults:\n  serialDevices: [/etc/passwd]\n").unwrap_err();
        assert!(not_a_device.contains("serialDevices"), "{not_a_device}");
    }
}
