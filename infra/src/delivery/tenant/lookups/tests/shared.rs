//! One lookup per tenant and name at a time, and its answer kept: who waits, what is kept, and
//! the bounds on it.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// A name server that answers once the test says so, and counts the lookups it was asked.
fn counting_name_server() -> (Resolve, watch::Sender<bool>, Arc<AtomicUsize>) {
    let (answer, answered) = watch::channel(false);
    let asked = Arc::new(AtomicUsize::new(0));
    let counted = asked.clone();
    let resolve: Resolve = Arc::new(move |host: String, port: u16| -> Lookup {
        let mut answered = answered.clone();
        counted.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if host.ends_with("silent.example") {
                std::future::pending::<()>().await;
            }
            let _ = answered.wait_for(|a| *a).await;
            Ok(vec![SocketAddr::from(([192, 0, 2, 1], port))])
        })
    });
    (resolve, answer, asked)
}

/// `limits` with callers that wait long enough for the test to answer.
fn patient(limits: Limits) -> Limits {
    Limits {
        timeout: Duration::from_secs(10),
        slow: Duration::from_secs(10),
        ..limits
    }
}

/// A burst of sends to a provider that answers: every caller gets the answer, none is refused
/// whatever other tenants' silent names hold, and the name is looked up once for all of them
/// (it was looked up once per caller, each lookup one of the tenant's places).
#[tokio::test]
async fn a_burst_to_a_name_that_answers_is_never_refused_and_looks_it_up_once() {
    let (resolve, answer, asked) = counting_name_server();
    let lookups = Arc::new(Lookups::with_resolver(resolve, patient(limits(4, 2))));
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    for i in 0..2 {
        let host = format!("n{i}.silent.example");
        let call = lookups.resolve(&globex, &host, 443);
        let cut = tokio::time::timeout(Duration::from_millis(20), call).await;
        assert!(cut.is_err(), "the silent name does not answer");
    }
    assert_eq!(
        lookups.held(&globex),
        (0, 2, 2),
        "cancelled callers leave them lagging"
    );

    let calls: Vec<_> = (0..16)
        .map(|i| {
            let (lookups, acme) = (lookups.clone(), acme.clone());
            // The name in any case, and each caller with its own port.
            let host = if i % 2 == 0 {
                "smtp.acme.example"
            } else {
                "SMTP.Acme.Example"
            };
            tokio::spawn(async move { lookups.resolve(&acme, host, 1000 + i).await })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(5), async {
        while lookups.held(&acme).0 < 1 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the lookup starts");
    answer.send(true).unwrap();
    for (i, call) in calls.into_iter().enumerate() {
        let addrs = call.await.unwrap().expect("every caller gets the answer");
        assert_eq!(
            addrs,
            vec![SocketAddr::from(([192, 0, 2, 1], 1000 + i as u16))]
        );
    }
    assert_eq!(
        asked.load(Ordering::SeqCst),
        3,
        "two silent names and smtp.acme.example once"
    );
    assert_eq!(lookups.held(&acme), (0, 0, 2));
}

/// An answer is kept for the tenant and name for `remember`, then asked again; another
/// tenant's lookup of the same name is its own; a failed lookup is not kept.
#[tokio::test(start_paused = true)]
async fn an_answer_is_kept_for_its_tenant_and_name_for_a_while() {
    let (resolve, answer, asked) = counting_name_server();
    answer.send(true).unwrap();
    let remember = Duration::from_secs(30);
    let lookups = Lookups::with_resolver(
        resolve,
        Limits {
            remember,
            ..limits(4, 64)
        },
    );
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    let asked_now = || asked.load(Ordering::SeqCst);

    assert!(lookups
        .resolve(&acme, "smtp.acme.example", 25)
        .await
        .is_ok());
    assert!(lookups
        .resolve(&acme, "smtp.acme.example", 587)
        .await
        .is_ok());
    assert_eq!(asked_now(), 1, "kept");
    assert!(lookups
        .resolve(&globex, "smtp.acme.example", 25)
        .await
        .is_ok());
    assert_eq!(asked_now(), 2, "another tenant asks for itself");
    tokio::time::advance(remember).await;
    assert!(lookups
        .resolve(&acme, "smtp.acme.example", 25)
        .await
        .is_ok());
    assert_eq!(asked_now(), 3, "asked again once the answer is old");

    for expected in [4, 5] {
        let got = lookups.resolve(&acme, "x.silent.example", 25).await;
        assert_eq!(got, Err(LookupError::Failed));
        assert_eq!(asked_now(), expected, "a failed lookup is not kept");
        assert_eq!(lookups.answers.state(&acme, "x.silent.example"), (false, 0));
    }
}

/// What is kept is bounded: a tenant looking up ever new names keeps only so many answers (and
/// another tenant's are still kept), an answer of many addresses is used once, not kept, and a
/// refusal at the bound is not kept either.
#[tokio::test]
async fn what_is_kept_is_bounded() {
    let resolve: Resolve = Arc::new(|host: String, port: u16| -> Lookup {
        Box::pin(async move {
            let n = if host.starts_with("many.") { 1000 } else { 1 };
            Ok((0..n)
                .map(|i: u32| SocketAddr::from((std::net::Ipv4Addr::from(0xC000_0200 + i), port)))
                .collect())
        })
    });
    let lookups = Lookups::with_resolver(resolve, limits(4, 64));
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    for i in 0..answers::PER_TENANT + 10 {
        let host = format!("n{i}.wildcard.example");
        assert!(lookups.resolve(&acme, &host, 25).await.is_ok());
        let kept = lookups.answers.state(&acme, &host).0;
        assert_eq!(kept, i < answers::PER_TENANT, "{host}");
    }
    assert!(lookups
        .resolve(&globex, "smtp.globex.example", 25)
        .await
        .is_ok());
    assert_eq!(
        lookups.answers.state(&globex, "smtp.globex.example"),
        (true, 0)
    );

    let many = lookups.resolve(&globex, "many.globex.example", 25).await;
    assert_eq!(many.map(|a| a.len()), Ok(1000), "used");
    assert_eq!(
        lookups.answers.state(&globex, "many.globex.example"),
        (false, 0),
        "not kept"
    );
    const { assert!(1000 > answers::ADDRESSES) };
}

/// Expired answers stop counting against a tenant's bound once they are pruned, which happens
/// with time, not only when the table grows: a tenant that once looked up 64 names keeps
/// answers again.
#[tokio::test(start_paused = true)]
async fn expired_answers_make_room_again() {
    let (resolve, answer, asked) = counting_name_server();
    answer.send(true).unwrap();
    let lookups = Lookups::with_resolver(resolve, limits(4, 64));
    let acme = tenant("acme");
    for i in 0..answers::PER_TENANT {
        let host = format!("n{i}.wildcard.example");
        assert!(lookups.resolve(&acme, &host, 25).await.is_ok());
    }
    tokio::time::advance(Limits::default().remember).await;
    let before = asked.load(Ordering::SeqCst);
    for _ in 0..2 {
        assert!(lookups
            .resolve(&acme, "smtp.acme.example", 25)
            .await
            .is_ok());
    }
    assert_eq!(asked.load(Ordering::SeqCst), before + 1, "kept again");
}

/// A resolver that panics fails that lookup, and the name is looked up again next time: the
/// shared lookup is not left poisoned for the callers that come after.
#[tokio::test]
async fn a_resolver_that_panics_fails_one_lookup() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let resolve: Resolve = Arc::new(move |_host: String, port: u16| -> Lookup {
        assert!(
            counted.fetch_add(1, Ordering::SeqCst) > 0,
            "the first lookup panics"
        );
        Box::pin(async move { Ok(vec![SocketAddr::from(([192, 0, 2, 1], port))]) })
    });
    let lookups = Lookups::with_resolver(resolve, limits(4, 64));
    let acme = tenant("acme");
    let got = lookups.resolve(&acme, "smtp.acme.example", 25).await;
    assert_eq!(got, Err(LookupError::Failed));
    assert_eq!(lookups.held(&acme), (0, 0, 0), "its place is given back");
    assert!(lookups
        .resolve(&acme, "smtp.acme.example", 25)
        .await
        .is_ok());
}

/// A lookup counted but dropped before it ran gives its place back.
#[tokio::test]
async fn a_lookup_dropped_before_it_ran_is_not_counted() {
    let (resolve, _answer) = name_server();
    let lookups = Lookups::with_resolver(resolve, limits(4, 64));
    let acme = tenant("acme");
    let counted = Unstarted(lookups.start(&acme));
    assert_eq!(lookups.held(&acme), (1, 0, 0));
    drop(counted);
    assert_eq!(lookups.held(&acme), (0, 0, 0));
    assert_eq!(lookups.running.lock().unwrap().all, 0);
}

/// Callers that join a running lookup wait for it even if the caller that started it gives
/// up; once every caller has given up, the lookup lags as one whose caller gave up did, and
/// the next caller starts another (counted against the tenant's bound).
#[tokio::test]
async fn a_shared_lookup_outlives_its_first_caller_not_all_of_them() {
    let (resolve, answer, asked) = counting_name_server();
    let lookups = Arc::new(Lookups::with_resolver(resolve, patient(limits(4, 64))));
    let acme = tenant("acme");
    let host = "smtp.acme.example";
    let first = tokio::spawn({
        let (lookups, acme) = (lookups.clone(), acme.clone());
        async move { lookups.resolve(&acme, host, 25).await }
    });
    let waiting = |n: usize| {
        let lookups = lookups.clone();
        let acme = acme.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(5), async {
                while lookups.answers.state(&acme, host) != (false, n) {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .unwrap_or_else(|_| panic!("{n} callers wait"));
        }
    };
    waiting(1).await;
    assert_eq!(
        asked.load(Ordering::SeqCst),
        1,
        "the first caller started it"
    );
    let second = tokio::spawn({
        let (lookups, acme) = (lookups.clone(), acme.clone());
        async move { lookups.resolve(&acme, host, 25).await }
    });
    waiting(2).await;
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    assert_eq!(lookups.answers.state(&acme, host), (false, 1));
    assert_eq!(
        lookups.held(&acme),
        (1, 0, 0),
        "still prompt: a caller waits"
    );
    answer.send(true).unwrap();
    assert!(second.await.unwrap().is_ok());
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    assert_eq!(lookups.answers.state(&acme, host), (true, 0), "kept");

    // A silent name whose every caller gives up lags, and is asked again next time.
    for expected in [2, 3] {
        let call = lookups.resolve(&acme, "smtp.silent.example", 25);
        assert!(tokio::time::timeout(Duration::from_millis(20), call)
            .await
            .is_err());
        assert_eq!(asked.load(Ordering::SeqCst), expected);
    }
    assert_eq!(lookups.held(&acme), (0, 2, 2));
}
