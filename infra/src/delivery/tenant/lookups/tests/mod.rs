use tokio::sync::watch;

use super::*;

/// A name server: `*.silent.example` answers only once the test says so (or never, as one
/// that drops every query); every other name answers at once.
fn name_server() -> (Resolve, watch::Sender<bool>) {
    let (answer, answered) = watch::channel(false);
    let resolve: Resolve = Arc::new(move |host: String, port: u16| -> Lookup {
        let mut answered = answered.clone();
        Box::pin(async move {
            if host.ends_with("silent.example") {
                let _ = answered.wait_for(|a| *a).await;
            }
            Ok(vec![SocketAddr::from(([192, 0, 2, 1], port))])
        })
    });
    (resolve, answer)
}

/// Short times, so that lookups lag and callers give up within a test.
fn limits(per_slow_tenant: usize, lagging_in_all: usize) -> Limits {
    Limits {
        timeout: Duration::from_millis(100),
        slow: Duration::from_millis(30),
        per_slow_tenant,
        lagging_in_all,
        ..Limits::default()
    }
}

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

/// Waits (bounded) until no lookup runs.
async fn all_ended(lookups: &Lookups) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while lookups.running.lock().unwrap().all > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the lookups end when the name server answers");
}

/// `n` lookups of silent names for `tenant`, all started at once; how many were refused.
async fn burst(lookups: &Arc<Lookups>, tenant: &TenantId, n: usize) -> usize {
    let calls: Vec<_> = (0..n)
        .map(|i| {
            let (lookups, tenant) = (lookups.clone(), tenant.clone());
            let host = format!("n{i}.silent.example");
            tokio::spawn(async move { lookups.resolve(&tenant, &host, 25).await })
        })
        .collect();
    let mut refused = 0;
    for call in calls {
        match call.await.unwrap() {
            Err(LookupError::Busy) => refused += 1,
            other => assert_eq!(other, Err(LookupError::Failed), "a silent name"),
        }
    }
    refused
}

#[tokio::test]
async fn a_slow_tenant_is_bounded_and_others_are_not() {
    let (resolve, answer) = name_server();
    let lookups = Lookups::with_resolver(resolve, limits(2, 3));
    let (acme, globex, initech) = (tenant("acme"), tenant("globex"), tenant("initech"));

    for i in 0..2 {
        let host = format!("n{i}.silent.example");
        let got = lookups.resolve(&acme, &host, 25).await;
        assert_eq!(
            got,
            Err(LookupError::Failed),
            "its caller gives up at the timeout"
        );
    }
    assert_eq!(lookups.held(&acme), (0, 2, 2), "both still run, lagging");
    // A third from the same tenant is refused at once, not started.
    let got = lookups.resolve(&acme, "smtp.acme.example", 25).await;
    assert_eq!(got, Err(LookupError::Busy));
    assert_eq!(lookups.held(&acme), (0, 2, 2));

    // Another tenant with a silent name reaches the bound of all lagging lookups: then it may
    // start no other, but a tenant with none lagging still may.
    let got = lookups.resolve(&globex, "x.silent.example", 25).await;
    assert_eq!(got, Err(LookupError::Failed));
    assert_eq!(lookups.held(&globex), (0, 1, 3));
    let got = lookups.resolve(&globex, "smtp.globex.example", 25).await;
    assert_eq!(got, Err(LookupError::Busy), "three lag in all");
    assert!(lookups
        .resolve(&initech, "smtp.initech.example", 25)
        .await
        .is_ok());

    // When the name server answers, the lookups end; the tenants stay slow for the cooldown.
    answer.send(true).unwrap();
    all_ended(&lookups).await;
    assert_eq!(lookups.held(&acme), (0, 0, 0));
    assert!(lookups
        .resolve(&acme, "smtp.acme.example", 25)
        .await
        .is_ok());
}

/// A tenant's first burst of silent names is bounded only by its callers; once its lookups
/// lag, and for the cooldown after they end, it gets no fresh burst.
#[tokio::test]
async fn a_tenant_whose_names_went_silent_gets_no_second_burst() {
    let (resolve, answer) = name_server();
    let lookups = Arc::new(Lookups::with_resolver(resolve, limits(4, 64)));
    let acme = tenant("acme");

    assert_eq!(burst(&lookups, &acme, 10).await, 0, "nothing lagged yet");
    assert_eq!(lookups.held(&acme), (0, 10, 10));
    answer.send(true).unwrap();
    all_ended(&lookups).await;
    answer.send(false).unwrap();

    assert_eq!(
        burst(&lookups, &acme, 10).await,
        6,
        "slow for the cooldown: four at a time"
    );
}

/// However many callers, no more tenant lookups run at once than the bound; past half of it,
/// every tenant is held to a slow tenant's share.
#[tokio::test]
async fn no_more_lookups_run_at_once_than_the_bound() {
    let (resolve, answer) = name_server();
    let lookups = Arc::new(Lookups::with_resolver(
        resolve,
        Limits {
            at_once: 6,
            ..limits(2, 64)
        },
    ));
    // Three start before half the bound runs; then two for the next tenant, one for a third.
    assert_eq!(burst(&lookups, &tenant("acme"), 8).await, 5);
    assert_eq!(burst(&lookups, &tenant("globex"), 8).await, 6);
    assert_eq!(burst(&lookups, &tenant("initech"), 2).await, 1);
    let got = lookups
        .resolve(&tenant("hooli"), "smtp.hooli.example", 25)
        .await;
    assert_eq!(got, Err(LookupError::Busy), "six still run");
    answer.send(true).unwrap();
    all_ended(&lookups).await;
    let got = lookups
        .resolve(&tenant("hooli"), "smtp.hooli.example", 25)
        .await;
    assert!(got.is_ok());
}

/// Tenants with silent names each take at most their share: after two of them fill half the
/// places, every tenant is held to 4, and another tenant's lookups still start.
#[tokio::test]
async fn a_few_tenants_cannot_take_every_place() {
    let (resolve, answer) = name_server();
    let lookups = Arc::new(Lookups::with_resolver(resolve, limits(4, 64)));
    assert_eq!(
        burst(&lookups, &tenant("hostile-a"), 70).await,
        6,
        "64 of 70 start"
    );
    assert_eq!(
        burst(&lookups, &tenant("hostile-b"), 70).await,
        6,
        "64 of 70 start"
    );
    assert_eq!(lookups.held(&tenant("hostile-a")), (0, 64, 128));
    assert_eq!(
        burst(&lookups, &tenant("hostile-c"), 10).await,
        6,
        "crowded: 4 start"
    );
    assert!(lookups
        .resolve(&tenant("acme"), "smtp.acme.example", 25)
        .await
        .is_ok());
    drop(answer);
}

/// A tenant in its cooldown, with nothing lagging now, is not refused because others' lookups
/// lag: only a tenant lagging now meets that bound.
#[tokio::test]
async fn a_tenant_in_its_cooldown_is_not_refused_for_others_lagging() {
    let (quiet_answer, quiet) = watch::channel(false);
    let (silent_answer, silent) = watch::channel(false);
    let resolve: Resolve = Arc::new(move |host: String, port: u16| -> Lookup {
        let (mut quiet, mut silent) = (quiet.clone(), silent.clone());
        Box::pin(async move {
            if host.ends_with("quiet.example") {
                let _ = quiet.wait_for(|a| *a).await;
            }
            if host.ends_with("silent.example") {
                let _ = silent.wait_for(|a| *a).await;
            }
            Ok(vec![SocketAddr::from(([192, 0, 2, 1], port))])
        })
    });
    let lookups = Lookups::with_resolver(resolve, limits(4, 2));
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    let got = lookups.resolve(&acme, "smtp.quiet.example", 25).await;
    assert_eq!(got, Err(LookupError::Failed));
    quiet_answer.send(true).unwrap();
    all_ended(&lookups).await;
    for i in 0..2 {
        let host = format!("n{i}.silent.example");
        let got = lookups.resolve(&globex, &host, 25).await;
        assert_eq!(got, Err(LookupError::Failed));
    }
    assert_eq!(lookups.held(&globex), (0, 2, 2));
    assert!(lookups
        .resolve(&acme, "smtp.acme.example", 25)
        .await
        .is_ok());
    drop(silent_answer);
}

mod shared;
