//! Webhooks and their deliveries, on every backend.

use wasmflow_core::ErrorCode;
use wasmflow_store::WebhookStore;
use wasmflow_store::webhooks::{
    NewWebhook, WebhookDelivery, WebhookEvent, WebhookStatus, WebhookUpdate,
};

mod common;

fn event(text: &str) -> WebhookEvent {
    WebhookEvent::parse(text).unwrap()
}

fn new_hook(name: &str, events: &[&str]) -> NewWebhook {
    NewWebhook {
        name: name.into(),
        url: format!("https://example.com/{name}"),
        events: events.iter().map(|e| event(e)).collect(),
        description: Some(format!("{name} hook")),
        secret: Some("encrypted".into()),
        status: WebhookStatus::Active,
    }
}

fn delivery(id: &str, webhook_id: &str, timestamp: i64, success: bool) -> WebhookDelivery {
    WebhookDelivery {
        delivery_id: id.into(),
        webhook_id: webhook_id.into(),
        event: "model_version.created".into(),
        timestamp,
        attempts: 3,
        success,
        response_status: success.then_some(200),
        error: (!success).then(|| "connection refused".into()),
        duration_ms: 12,
    }
}

#[test]
fn webhooks_lifecycle() {
    each_backend!(|s| {
        let a = s
            .create_webhook(new_hook(
                "a",
                &[
                    "model_version.created",
                    "model_version_tag.set",
                    "model_version.created",
                ],
            ))
            .unwrap();
        assert_eq!(s.get_webhook(&a.webhook_id).unwrap(), a);
        assert_eq!(a.description.as_deref(), Some("a hook"));
        assert_eq!(a.secret.as_deref(), Some("encrypted"));
        assert_eq!(a.creation_timestamp, a.last_updated_timestamp);
        // In the order given, a repeated event once.
        assert_eq!(
            a.events,
            vec![
                event("model_version.created"),
                event("model_version_tag.set")
            ]
        );
        assert_eq!(
            s.create_webhook(new_hook("bad name", &["model_version.created"]))
                .unwrap_err()
                .code,
            ErrorCode::InvalidParameterValue
        );
        assert_eq!(
            s.create_webhook(new_hook("empty", &[])).unwrap_err().code,
            ErrorCode::InvalidParameterValue
        );
        let mut ids = vec![a.webhook_id.clone()];
        for name in ["b", "c"] {
            std::thread::sleep(std::time::Duration::from_millis(2));
            ids.push(
                s.create_webhook(new_hook(name, &["registered_model.created"]))
                    .unwrap()
                    .webhook_id,
            );
        }
        // Newest first, paged.
        let first = s.list_webhooks(2, None).unwrap();
        let names: Vec<&str> = first.items.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["c", "b"]);
        let rest = s
            .list_webhooks(2, first.next_page_token.as_deref())
            .unwrap();
        assert_eq!(rest.items.len(), 1);
        assert_eq!(rest.items[0], a);
        assert!(rest.next_page_token.is_none());

        let for_created: Vec<String> = s
            .webhooks_for_event(event("registered_model.created"))
            .unwrap()
            .into_iter()
            .map(|h| h.name)
            .collect();
        assert_eq!(for_created, ["c", "b"]);

        // Only the fields given change.
        let updated = s
            .update_webhook(
                &a.webhook_id,
                WebhookUpdate {
                    url: Some("https://example.com/new".into()),
                    status: Some(WebhookStatus::Disabled),
                    events: Some(vec![event("registered_model.created")]),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(updated.url, "https://example.com/new");
        assert_eq!(updated.status, WebhookStatus::Disabled);
        assert_eq!(updated.name, "a");
        assert_eq!(updated.description.as_deref(), Some("a hook"));
        assert_eq!(updated.events, vec![event("registered_model.created")]);
        assert!(updated.last_updated_timestamp >= a.last_updated_timestamp);
        assert!(
            s.webhooks_for_event(event("model_version_tag.set"))
                .unwrap()
                .is_empty()
        );
        // A disabled webhook is still subscribed (the caller skips it).
        assert_eq!(
            s.webhooks_for_event(event("registered_model.created"))
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            s.update_webhook(
                "missing",
                WebhookUpdate {
                    name: Some("x".into()),
                    ..Default::default()
                }
            )
            .unwrap_err()
            .message,
            "Webhook with ID missing not found."
        );
        assert_eq!(
            s.update_webhook(
                &a.webhook_id,
                WebhookUpdate {
                    name: Some("-bad".into()),
                    ..Default::default()
                }
            )
            .unwrap_err()
            .code,
            ErrorCode::InvalidParameterValue
        );

        s.delete_webhook(&a.webhook_id).unwrap();
        assert_eq!(
            s.get_webhook(&a.webhook_id).unwrap_err().code,
            ErrorCode::ResourceDoesNotExist
        );
        assert_eq!(
            s.delete_webhook(&a.webhook_id).unwrap_err().code,
            ErrorCode::ResourceDoesNotExist
        );
        assert_eq!(s.list_webhooks(10, None).unwrap().items.len(), 2);
        assert_eq!(
            s.webhooks_for_event(event("registered_model.created"))
                .unwrap()
                .len(),
            2
        );
    });
}

#[test]
fn deliveries_are_kept_newest_first() {
    each_backend!(|s| {
        let hook = s
            .create_webhook(new_hook("h", &["model_version.created"]))
            .unwrap();
        let id = hook.webhook_id.as_str();
        s.record_webhook_delivery(delivery("d1", id, 100, true))
            .unwrap();
        s.record_webhook_delivery(delivery("d2", id, 300, false))
            .unwrap();
        s.record_webhook_delivery(delivery("d3", id, 200, true))
            .unwrap();
        s.record_webhook_delivery(delivery("other", "elsewhere", 400, true))
            .unwrap();
        let got = s.webhook_deliveries(id, 10).unwrap();
        let order: Vec<&str> = got.iter().map(|d| d.delivery_id.as_str()).collect();
        assert_eq!(order, ["d2", "d3", "d1"]);
        assert_eq!(got[0], delivery("d2", id, 300, false));
        assert_eq!(got[2], delivery("d1", id, 100, true));
        assert_eq!(s.webhook_deliveries(id, 1).unwrap().len(), 1);
        // Recording a delivery again replaces it.
        s.record_webhook_delivery(delivery("d2", id, 300, true))
            .unwrap();
        assert!(s.webhook_deliveries(id, 1).unwrap()[0].success);
        assert!(s.webhook_deliveries("none", 10).unwrap().is_empty());
    });
}
