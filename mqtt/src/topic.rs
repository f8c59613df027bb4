//! Topic templates.
//!
//! A template is split on `/`. `:namespace`, `:name` and `:uid` stand for the
//! DeviceLink's; `:path` for `message.path`; `:operator` for the write
//! operator when publishing and the read operator when subscribing. A keyword
//! without a value, and an empty segment, disappear, so `a//:path/b` with no
//! path is `a/b`.

use devicelink_api::mqtt::MqttMessageOptions;

use crate::error::PublisherError;

/// The DeviceLink a topic belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicContext {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// A topic template with its DeviceLink and message options applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    segments: Vec<String>,
    path: Option<String>,
    read_operator: Option<String>,
    write_operator: Option<String>,
}

impl Topic {
    pub fn new(
        template: &str,
        link: &TopicContext,
        path: Option<&str>,
        read_operator: Option<&str>,
        write_operator: Option<&str>,
    ) -> Self {
        let segments = template
            .split('/')
            .filter(|s| !s.is_empty() && *s != ":")
            .map(|s| match s {
                ":namespace" => link.namespace.clone(),
                ":name" => link.name.clone(),
                ":uid" => link.uid.clone(),
                other => other.to_string(),
            })
            .filter(|s| !s.is_empty())
            .collect();
        let owned = |v: Option<&str>| v.map(str::to_string);
        Topic {
            segments,
            path: owned(path),
            read_operator: owned(read_operator),
            write_operator: owned(write_operator),
        }
    }

    /// The topic status is published on.
    pub fn for_publish(&self) -> String {
        self.render(self.write_operator.as_deref())
    }

    /// The topic writes are received on.
    pub fn for_subscribe(&self) -> String {
        self.render(self.read_operator.as_deref())
    }

    fn render(&self, operator: Option<&str>) -> String {
        let mut out: Vec<&str> = Vec::with_capacity(self.segments.len());
        for segment in &self.segments {
            let value = match segment.strip_prefix(':') {
                Some("path") => self.path.as_deref().unwrap_or(""),
                Some("operator") => operator.unwrap_or(""),
                Some(_) => "",
                None => segment.as_str(),
            };
            // A value may itself hold separators; keep it free of empty segments.
            out.extend(value.split('/').filter(|s| !s.is_empty()));
        }
        out.join("/")
    }
}

/// Whether a topic may be published to: not empty and no wildcards.
pub fn is_publishable(topic: &str) -> bool {
    !topic.is_empty() && !topic.contains(['+', '#'])
}

/// Renders a topic template of the message options for publishing.
pub(crate) fn render(
    template: &str,
    message: &MqttMessageOptions,
    link: &TopicContext,
) -> Result<String, PublisherError> {
    let topic = Topic::new(
        template,
        link,
        message.path.as_deref(),
        message.operator.as_ref().and_then(|o| o.read.as_deref()),
        message.operator.as_ref().and_then(|o| o.write.as_deref()),
    )
    .for_publish();
    if !is_publishable(&topic) {
        return Err(PublisherError::Topic(topic));
    }
    Ok(topic)
}

/// Where a will goes: `will.topic` (a template like the message topic) or
/// the status topic followed by `/$will`.
pub(crate) fn will_topic(
    will: &devicelink_api::mqtt::MqttWill,
    message: &MqttMessageOptions,
    link: &TopicContext,
    status_topic: &str,
) -> Result<String, PublisherError> {
    match &will.topic {
        Some(template) => render(template, message, link),
        None => Ok(format!("{status_topic}/$will")),
    }
}

/// The topic writes are received on: the topic template rendered with the
/// read operator; where that is the status topic itself (no read operator,
/// or no `:operator` in the template), the status topic followed by
/// `/$write`.
pub(crate) fn write_topic_of(
    message: &MqttMessageOptions,
    link: &TopicContext,
    status_topic: &str,
) -> String {
    let topic = Topic::new(
        &message.topic,
        link,
        message.path.as_deref(),
        message.operator.as_ref().and_then(|o| o.read.as_deref()),
        message.operator.as_ref().and_then(|o| o.write.as_deref()),
    )
    .for_subscribe();
    if topic == status_topic || !is_publishable(&topic) {
        format!("{status_topic}/$write")
    } else {
        topic
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> TopicContext {
        TopicContext {
            namespace: "default".into(),
            name: "fan".into(),
            uid: "u1".into(),
        }
    }

    #[test]
    fn renders_link_keywords() {
        let t = Topic::new(
            "cattle.io/octopus/:namespace/:name",
            &link(),
            None,
            None,
            None,
        );
        assert_eq!(t.for_publish(), "cattle.io/octopus/default/fan");
    }

    #[test]
    fn operator_depends_on_direction_and_missing_values_vanish() {
        let t = Topic::new(
            "x/:uid/:path/:operator",
            &link(),
            Some("p/q"),
            Some("set"),
            Some("status"),
        );
        assert_eq!(t.for_publish(), "x/u1/p/q/status");
        assert_eq!(t.for_subscribe(), "x/u1/p/q/set");
        let bare = Topic::new("x//:path/:unknown/:/y/:operator", &link(), None, None, None);
        assert_eq!(bare.for_publish(), "x/y");
    }

    #[test]
    fn wildcards_are_not_publishable() {
        assert!(!is_publishable("a/+/b"));
        assert!(!is_publishable("a/#"));
        assert!(!is_publishable(""));
        assert!(is_publishable("a/b"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Template segments: keywords, literals (some with odd characters),
        /// empty ones and lone colons.
        fn segment() -> impl Strategy<Value = String> {
            prop_oneof![
                Just(":namespace".to_string()),
                Just(":name".to_string()),
                Just(":uid".to_string()),
                Just(":path".to_string()),
                Just(":operator".to_string()),
                Just(":".to_string()),
                Just(String::new()),
                "[a-z0-9._$-]{1,8}",
                ":[a-z]{1,6}",
                "\\PC{0,6}",
            ]
        }

        fn value() -> impl Strategy<Value = Option<String>> {
            proptest::option::of("[a-z0-9/._-]{0,12}")
        }

        fn keyword(s: &str) -> bool {
            s.starts_with(':')
        }

        proptest! {
            #[test]
            fn never_panics_and_leaves_no_empty_level(
                segments in proptest::collection::vec(segment(), 0..10),
                namespace in "[a-z0-9-]{0,10}",
                name in "[a-z0-9.-]{0,10}",
                uid in "[a-f0-9-]{0,10}",
                path in value(),
                read in value(),
                write in value(),
            ) {
                let template = segments.join("/");
                let link = TopicContext { namespace, name, uid };
                let topic = Topic::new(&template, &link, path.as_deref(), read.as_deref(), write.as_deref());
                for rendered in [topic.for_publish(), topic.for_subscribe()] {
                    prop_assert!(!rendered.starts_with('/'), "{rendered:?}");
                    prop_assert!(!rendered.ends_with('/'), "{rendered:?}");
                    prop_assert!(!rendered.contains("//"), "{rendered:?}");
                    // Every literal segment of the template is kept, in order.
                    let mut levels = rendered.split('/');
                    for literal in segments.iter().filter(|s| !s.is_empty() && !keyword(s)) {
                        for part in literal.split('/').filter(|p| !p.is_empty() && !keyword(p)) {
                            prop_assert!(levels.any(|l| l == part), "{part:?} lost from {rendered:?} ({template:?})");
                        }
                    }
                }
            }

            #[test]
            fn a_rendered_topic_renders_to_itself(
                segments in proptest::collection::vec(segment(), 0..10),
                path in value(),
            ) {
                let link = TopicContext { namespace: "ns".into(), name: "fan".into(), uid: "u".into() };
                let once = Topic::new(&segments.join("/"), &link, path.as_deref(), None, None).for_publish();
                // Only when no level of it looks like a keyword.
                prop_assume!(once.split('/').all(|l| !keyword(l)));
                let twice = Topic::new(&once, &link, None, None, None).for_publish();
                prop_assert_eq!(once, twice);
            }
        }
    }
}
