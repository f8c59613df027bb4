//! Finding OPC-UA servers (docs/discovery.md): each discovery URL asked
//! FindServers; each server it lists reached at the discovery URL's own
//! address (a local discovery server lists the servers of its host, and a
//! scan never goes beyond the addresses the discovery names), asked for
//! its endpoints and, through one without security, browsed from the
//! Objects folder for variables with their types, writability and units.
//!
//! Every request waits for its turn of the scan's [`Pace`].

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use devicelink_adaptor_runtime::{Discoverer, Found, Pace, References, Scan};
use devicelink_api::discovery::{
    BrowsedVariable, DeviceDiscoverySpec, DiscoveredProtocol, OfferedEndpoint, OpcuaDiscovery,
};
use futures::{FutureExt, future::BoxFuture};
use opcua::{
    client::{IdentityToken, Session},
    crypto::SecurityPolicy,
    types::{
        ApplicationDescription, ApplicationType, AttributeId, BrowseDescription, BrowseDirection,
        BrowseResultMask, DataValue, EUInformation, EndpointDescription, MessageSecurityMode,
        NodeClass, NodeClassMask, NodeId, ObjectId, ReadValueId, ReferenceTypeId,
        TimestampsToReturn, Variant,
    },
};
use tokio::time::timeout;
use tracing::{debug, warn};

use crate::trust::Pki;

/// Scans for the OPC-UA sections of discoveries.
pub struct OpcuaDiscoverer {
    pki: Pki,
}

impl OpcuaDiscoverer {
    pub fn new(pki: Pki) -> OpcuaDiscoverer {
        OpcuaDiscoverer { pki }
    }
}

impl Discoverer for OpcuaDiscoverer {
    fn protocol(&self) -> DiscoveredProtocol {
        DiscoveredProtocol::Opcua
    }

    fn scan<'a>(
        &'a self,
        spec: &'a DeviceDiscoverySpec,
        _sign_in: &'a References,
    ) -> BoxFuture<'a, Scan> {
        async move {
            match &spec.opcua {
                Some(opcua) => scan(opcua, &self.pki).await,
                None => Scan::default(),
            }
        }
        .boxed()
    }
}

/// One scan of `settings` to its end.
async fn scan(settings: &OpcuaDiscovery, pki: &Pki) -> Scan {
    let pace = Pace::new(settings.requests_per_second());
    let mut client = match discovery_client(pki, settings.timeout()) {
        Ok(client) => client,
        Err(why) => {
            warn!(error = %why, "cannot make an OPC-UA client; nothing scanned");
            return Scan::default();
        }
    };
    let mut finds: Vec<Found> = Vec::new();
    let mut unreached = Vec::new();
    for url in &settings.discovery_urls {
        pace.turn().await;
        let listed = match timeout(
            settings.timeout(),
            client.find_servers(url.as_str(), None, None),
        )
        .await
        {
            Ok(Ok(listed)) => listed,
            Ok(Err(e)) => {
                debug!(url, status = %e.status(), "FindServers refused");
                unreached.push(format!("{url}: FindServers refused ({})", e.status()));
                continue;
            }
            Err(_) => {
                debug!(url, "FindServers not answered in time");
                unreached.push(format!(
                    "{url}: FindServers not answered within {:?}",
                    settings.timeout()
                ));
                continue;
            }
        };
        for server in listed
            .iter()
            .filter(|s| s.application_type != ApplicationType::DiscoveryServer)
        {
            let Some(at) = reached_at(url, server) else {
                continue;
            };
            if finds.iter().any(|f| f.address == at) {
                continue;
            }
            if let Some(found) = look_into(&mut client, &at, server, settings, &pace).await {
                finds.push(found);
            }
        }
    }
    Scan {
        finds,
        addresses: settings.discovery_urls.len() as u64,
        requests: pace.turns(),
        unreached,
    }
}

/// Where a listed server is reached: its own discovery URL's port and
/// path at the address of the discovery URL that listed it. Servers
/// advertise names of their own, and a scan goes to no other address.
fn reached_at(discovery_url: &str, server: &ApplicationDescription) -> Option<String> {
    let asked = url::Url::parse(discovery_url).ok()?;
    let listed = server
        .discovery_urls
        .iter()
        .flatten()
        .filter_map(|u| url::Url::parse(u.as_ref()).ok())
        .find(|u| u.scheme() == "opc.tcp")?;
    let mut at = listed;
    at.set_host(asked.host_str()).ok()?;
    Some(at.to_string())
}

/// A listed server's endpoints and, when one takes anyone without
/// security, its variables. None when it does not list its endpoints.
async fn look_into(
    client: &mut opcua::client::Client,
    at: &str,
    server: &ApplicationDescription,
    settings: &OpcuaDiscovery,
    pace: &Pace,
) -> Option<Found> {
    pace.turn().await;
    let endpoints =
        match timeout(settings.timeout(), client.get_server_endpoints_from_url(at)).await {
            Ok(Ok(endpoints)) => endpoints,
            Ok(Err(e)) => {
                debug!(at, status = %e.status(), "GetEndpoints refused");
                return None;
            }
            Err(_) => {
                debug!(at, "GetEndpoints not answered in time");
                return None;
            }
        };
    let mut found = Found {
        address: at.to_string(),
        identity: identity(server),
        endpoints: endpoints.iter().map(offered).collect(),
        ..Found::default()
    };
    let open = endpoints.iter().find(|e| {
        e.security_mode == MessageSecurityMode::None
            && SecurityPolicy::from_uri(e.security_policy_uri.as_ref()) == SecurityPolicy::None
    });
    match open {
        Some(endpoint) => {
            let mut endpoint = endpoint.clone();
            endpoint.endpoint_url = at.into();
            match browse_server(client, endpoint, settings, pace).await {
                Ok(variables) => found.variables = variables,
                Err(why) => found.not_browsed = Some(why),
            }
        }
        None => {
            found.not_browsed = Some(
                "it offers no endpoint without security: adopt it and give its DeviceLink a securityPolicy and the server's certificate to trust".into(),
            )
        }
    }
    Some(found)
}

/// What a server says it is, by name.
fn identity(server: &ApplicationDescription) -> BTreeMap<String, String> {
    [
        (
            "applicationUri",
            server.application_uri.as_ref().to_string(),
        ),
        ("productUri", server.product_uri.as_ref().to_string()),
        (
            "applicationName",
            server.application_name.text.as_ref().to_string(),
        ),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn offered(endpoint: &EndpointDescription) -> OfferedEndpoint {
    let policy = SecurityPolicy::from_uri(endpoint.security_policy_uri.as_ref());
    OfferedEndpoint {
        security_policy: match policy {
            SecurityPolicy::Unknown => endpoint.security_policy_uri.as_ref().to_string(),
            known => known.to_string(),
        },
        security_mode: match endpoint.security_mode {
            MessageSecurityMode::Sign => "Sign",
            MessageSecurityMode::SignAndEncrypt => "SignAndEncrypt",
            _ => "None",
        }
        .into(),
    }
}

/// A client for scans, as a device's (the adaptor's own identity).
fn discovery_client(pki: &Pki, request_timeout: Duration) -> Result<opcua::client::Client, String> {
    let store = pki.discovery()?;
    crate::session::client(request_timeout, &store, |b| b).map_err(|f| f.message)
}

/// Opens an anonymous session on `endpoint`, browses it, and closes it.
async fn browse_server(
    client: &mut opcua::client::Client,
    endpoint: EndpointDescription,
    settings: &OpcuaDiscovery,
    pace: &Pace,
) -> Result<Vec<BrowsedVariable>, String> {
    pace.turn().await;
    let (session, event_loop) = client
        .connect_to_endpoint_directly(endpoint, IdentityToken::Anonymous)
        .map_err(|e| format!("a session was refused: {}", e.status()))?;
    let driver = event_loop.spawn();
    let browsed = async {
        match timeout(settings.timeout(), session.wait_for_connection()).await {
            Ok(true) => {}
            Ok(false) => return Err("a session was refused".to_string()),
            Err(_) => return Err("no session within the timeout".to_string()),
        }
        browse(&session, settings, pace).await
    }
    .await;
    let _ = timeout(settings.timeout(), session.disconnect()).await;
    driver.abort();
    browsed
}

/// Breadth first from the Objects folder, hierarchical references
/// followed `depth` levels down, the server's own (namespace 0) nodes left
/// out; then each variable's type, writability and units.
async fn browse(
    session: &Arc<Session>,
    settings: &OpcuaDiscovery,
    pace: &Pace,
) -> Result<Vec<BrowsedVariable>, String> {
    let most = settings.max_variables();
    let mut frontier: Vec<(NodeId, String)> = vec![(ObjectId::ObjectsFolder.into(), String::new())];
    let mut variables: Vec<(NodeId, String)> = Vec::new();
    for _ in 0..settings.depth() {
        let mut next = Vec::new();
        for batch in frontier.chunks(BATCH) {
            let children = children(session, batch, Follow::Hierarchy, settings, pace).await?;
            for ((_, path), references) in batch.iter().zip(children) {
                for (node, name, class) in references {
                    let path = if path.is_empty() {
                        name
                    } else {
                        format!("{path}/{name}")
                    };
                    match class {
                        NodeClass::Object => next.push((node, path)),
                        NodeClass::Variable if variables.len() < most => {
                            variables.push((node, path))
                        }
                        _ => {}
                    }
                }
            }
        }
        if next.is_empty() || variables.len() >= most {
            break;
        }
        frontier = next;
    }
    let mut browsed = Vec::with_capacity(variables.len());
    for batch in variables.chunks(BATCH) {
        browsed.extend(describe(session, batch, settings, pace).await?);
    }
    Ok(browsed)
}

/// Nodes browsed or read in one request.
const BATCH: usize = 32;

/// Which references a browse follows.
#[derive(Clone, Copy)]
enum Follow {
    Hierarchy,
    Properties,
}

/// The children of each of `nodes` (node, browse name, class), outside
/// namespace 0 and on this server.
async fn children(
    session: &Session,
    nodes: &[(NodeId, String)],
    follow: Follow,
    settings: &OpcuaDiscovery,
    pace: &Pace,
) -> Result<Vec<Vec<(NodeId, String, NodeClass)>>, String> {
    let (reference, classes) = match follow {
        Follow::Hierarchy => (
            ReferenceTypeId::HierarchicalReferences,
            NodeClassMask::OBJECT | NodeClassMask::VARIABLE,
        ),
        Follow::Properties => (ReferenceTypeId::HasProperty, NodeClassMask::VARIABLE),
    };
    let asked: Vec<BrowseDescription> = nodes
        .iter()
        .map(|(node, _)| BrowseDescription {
            node_id: node.clone(),
            browse_direction: BrowseDirection::Forward,
            reference_type_id: reference.into(),
            include_subtypes: true,
            node_class_mask: classes.bits(),
            result_mask: BrowseResultMask::All as u32,
        })
        .collect();
    pace.turn().await;
    let results = timeout(settings.timeout(), session.browse(&asked, 0, None))
        .await
        .map_err(|_| "a browse was not answered in time".to_string())?
        .map_err(|e| format!("a browse was refused: {}", e.status()))?;
    Ok(results
        .into_iter()
        .map(|result| {
            result
                .references
                .into_iter()
                .flatten()
                .filter(|r| r.node_id.server_index == 0 && r.node_id.node_id.namespace != 0)
                .map(|r| {
                    (
                        r.node_id.node_id,
                        r.browse_name.name.as_ref().to_string(),
                        r.node_class,
                    )
                })
                .collect()
        })
        .collect())
}

/// Type, writability and units of each variable of `batch`.
async fn describe(
    session: &Session,
    batch: &[(NodeId, String)],
    settings: &OpcuaDiscovery,
    pace: &Pace,
) -> Result<Vec<BrowsedVariable>, String> {
    let attributes = [AttributeId::DataType, AttributeId::AccessLevel];
    let asked: Vec<ReadValueId> = batch
        .iter()
        .flat_map(|(node, _)| attributes.map(|a| read_of(node, a)))
        .collect();
    let values = read(session, &asked, settings, pace).await?;
    let units = units(session, batch, settings, pace).await?;
    Ok(batch
        .iter()
        .zip(values.chunks(attributes.len()))
        .zip(units)
        .map(
            |(((node, path), read), engineering_units)| BrowsedVariable {
                node_id: node.to_string(),
                browse_path: path.clone(),
                data_type: match &read[0].value {
                    Some(Variant::NodeId(id)) => type_name(id),
                    _ => "unknown".into(),
                },
                writable: matches!(&read[1].value, Some(Variant::Byte(level)) if level & 0x02 != 0),
                engineering_units,
            },
        )
        .collect())
}

/// The display name of each variable's EngineeringUnits property, if any.
async fn units(
    session: &Session,
    batch: &[(NodeId, String)],
    settings: &OpcuaDiscovery,
    pace: &Pace,
) -> Result<Vec<Option<String>>, String> {
    let properties = children(session, batch, Follow::Properties, settings, pace).await?;
    let unit_nodes: Vec<Option<NodeId>> = properties
        .into_iter()
        .map(|p| {
            p.into_iter()
                .find(|(_, name, _)| name == "EngineeringUnits")
                .map(|(n, _, _)| n)
        })
        .collect();
    let asked: Vec<ReadValueId> = unit_nodes
        .iter()
        .flatten()
        .map(|n| read_of(n, AttributeId::Value))
        .collect();
    if asked.is_empty() {
        return Ok(vec![None; batch.len()]);
    }
    let mut values = read(session, &asked, settings, pace).await?.into_iter();
    Ok(unit_nodes
        .iter()
        .map(|node| {
            node.as_ref()?;
            match values.next()?.value {
                Some(Variant::ExtensionObject(eo)) => eo
                    .inner_as::<EUInformation>()
                    .map(|eu| eu.display_name.text.as_ref().to_string())
                    .filter(|t| !t.is_empty()),
                _ => None,
            }
        })
        .collect())
}

fn read_of(node: &NodeId, attribute: AttributeId) -> ReadValueId {
    ReadValueId {
        node_id: node.clone(),
        attribute_id: attribute as u32,
        ..Default::default()
    }
}

async fn read(
    session: &Session,
    asked: &[ReadValueId],
    settings: &OpcuaDiscovery,
    pace: &Pace,
) -> Result<Vec<DataValue>, String> {
    pace.turn().await;
    let values = timeout(
        settings.timeout(),
        session.read(asked, TimestampsToReturn::Neither, 0.0),
    )
    .await
    .map_err(|_| "a read was not answered in time".to_string())?
    .map_err(|e| format!("a read was refused: {}", e.status()))?;
    if values.len() != asked.len() {
        return Err(format!(
            "a read of {} values answered {}",
            asked.len(),
            values.len()
        ));
    }
    Ok(values)
}

/// The name of a built-in data type, or the type's node ID.
fn type_name(id: &NodeId) -> String {
    const BUILT_IN: [&str; 15] = [
        "Boolean",
        "SByte",
        "Byte",
        "Int16",
        "UInt16",
        "Int32",
        "UInt32",
        "Int64",
        "UInt64",
        "Float",
        "Double",
        "String",
        "DateTime",
        "Guid",
        "ByteString",
    ];
    match (&id.identifier, id.namespace) {
        (opcua::types::Identifier::Numeric(n @ 1..=15), 0) => BUILT_IN[*n as usize - 1].into(),
        _ => id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_server_is_reached_at_the_address_that_listed_it() {
        let server = ApplicationDescription {
            discovery_urls: Some(vec!["opc.tcp://press-line-3:4841/line".into()]),
            ..Default::default()
        };
        assert_eq!(
            reached_at("opc.tcp://10.0.0.6:4840", &server).as_deref(),
            Some("opc.tcp://10.0.0.6:4841/line")
        );
        let elsewhere = ApplicationDescription {
            discovery_urls: Some(vec!["http://10.9.9.9/".into()]),
            ..Default::default()
        };
        assert_eq!(reached_at("opc.tcp://10.0.0.6:4840", &elsewhere), None);
    }

    #[test]
    fn built_in_types_are_named_and_others_kept_as_node_ids() {
        assert_eq!(type_name(&NodeId::new(0, 11u32)), "Double");
        assert_eq!(type_name(&NodeId::new(0, 1u32)), "Boolean");
        assert_eq!(type_name(&NodeId::new(2, 3002u32)), "ns=2;i=3002");
    }
}
