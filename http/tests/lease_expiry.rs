//! A lease that runs out ends its backup as aborted by the server: ESE's event 226, inside
//! that backup's span. Its own binary: the capture is the process's global subscriber.

mod support;

use std::sync::{Arc, Mutex};

use ese_actors::Term;
use support::*;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// An event's `event_id`, and the `id` of the `backup` span it ran in.
type Seen = (String, Option<String>);

/// Every event with an `event_id`.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Seen>>>);

/// One field's value, as text.
struct FieldOf(&'static str, Option<String>);

impl Visit for FieldOf {
    fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
        if f.name() == self.0 {
            self.1 = Some(format!("{v:?}"));
        }
    }
}

/// The backup id a `backup` span carries.
struct BackupId(String);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut f = FieldOf("id", None);
        attrs.record(&mut f);
        if let (Some(span), Some(v)) = (ctx.span(id), f.1) {
            span.extensions_mut().insert(BackupId(v));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut f = FieldOf("event_id", None);
        event.record(&mut f);
        let Some(event_id) = f.1 else { return };
        let backup = ctx.event_scope(event).and_then(|scope| {
            scope
                .filter(|s| s.name() == "backup")
                .find_map(|s| s.extensions().get::<BackupId>().map(|b| b.0.clone()))
        });
        self.0.lock().unwrap().push((event_id, backup));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_ends_its_backup_with_event_226() {
    let seen = Capture::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(seen.clone()))
        .unwrap();
    let h = host(Opts {
        ttl: std::time::Duration::from_millis(300),
        ..Opts::default()
    })
    .await;
    let id = h.begin("full").await;
    h.server.expirations().wait_for(|n| *n >= 1).await.unwrap();
    let of_backup: Vec<String> = seen
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, b)| b.as_deref() == Some(id.as_str()))
        .map(|(e, _)| e.clone())
        .collect();
    assert_eq!(
        of_backup,
        ["210", "226"],
        "started, then aborted by the server"
    );
    assert_eq!(ese_error(h.get(&id, "/databases").await).await.1, -520);
    h.inst.term(Term::empty()).await.unwrap();
}
