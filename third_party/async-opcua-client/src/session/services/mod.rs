pub(super) mod attributes;
pub(super) mod method;
pub(super) mod node_management;
pub(super) mod session;
pub(super) mod subscriptions;
pub(super) mod view;
