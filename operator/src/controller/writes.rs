//! The few kinds of write the operator makes, each with how it treats an
//! object that is already gone.

use kube::{
    Api, Resource,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams},
};

use super::MANAGER;
use crate::error::Result;

/// Server-side applies an object the operator owns entirely.
pub(super) async fn apply_object<K>(api: &Api<K>, object: &K) -> Result<()>
where
    K: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        &object.meta().name.clone().unwrap_or_default(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(object),
    )
    .await?;
    Ok(())
}

/// Applies a finalizer patch (see `devicelink_api::finalizer`) and returns
/// the patched object; an object already gone needs none.
pub(super) async fn patch_metadata<K>(
    api: &Api<K>,
    meta: &ObjectMeta,
    patch: Option<serde_json::Value>,
) -> Result<Option<K>>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let Some(patch) = patch else { return Ok(None) };
    let name = meta.name.as_deref().unwrap_or_default();
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(patched) => Ok(Some(patched)),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn delete_ignoring_missing<K>(api: &Api<K>, name: &str) -> Result<()>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
