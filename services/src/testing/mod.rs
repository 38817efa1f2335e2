//! Use-cases without a database: an in-memory command gateway and test doubles of every port
//! the user use-cases need, wired as `startup.rs` wires the real ones. The end-to-end suite
//! (`tests/`) runs the same use-cases over PostgreSQL and HTTP.

mod gateway;
pub(crate) mod ports;

use std::sync::Arc;

use chrono::Duration;
use twofold_domain::user::{CodeChecker, User, UserEvent, UserRef};
use twofold_domain::{ApiKeyId, Policy, Role, TenantId, UserId};

use crate::commands::Commands;
use crate::ports::{Clock, TenantView};
use crate::users::{RecoveryCodes, UserCrypto, UserPorts, UserService};
use crate::{Call, KeyPrincipal, RequestContext};
pub(crate) use gateway::{MemGateway, Outage};
pub(crate) use ports::{
    FakeClock, FakeDirectory, FakeEntropy, FakeHasher, FakeLimiter, FakeSealer, FakeTotp,
    NoReadModel,
};

/// The tenant every call of a [`Harness`] is made in.
pub(crate) const TENANT: &str = "acme";

/// A `UserService` over the in-memory gateway and fake ports, with handles on the fakes a test
/// drives (the clock, the authenticator app) or reads (the recorded events).
pub(crate) struct Harness {
    pub users: UserService,
    pub clock: Arc<FakeClock>,
    pub totp: Arc<FakeTotp>,
    pub tenants: Arc<FakeDirectory>,
    pub limiter: Arc<FakeLimiter>,
    pub gateway: Arc<MemGateway<User>>,
}

impl Harness {
    /// Tenant [`TENANT`] with the default policy.
    pub(crate) fn new() -> Self {
        let clock = Arc::new(FakeClock::new());
        let totp = Arc::new(FakeTotp::default());
        let tenants = Arc::new(FakeDirectory::default());
        let entropy = Arc::new(FakeEntropy::default());
        let crypto = Arc::new(UserCrypto::new(
            Arc::new(FakeSealer::default()),
            totp.clone(),
            Arc::new(FakeHasher),
        ));
        let gateway = Arc::new(MemGateway::<User>::new(
            crypto.clone() as Arc<dyn CodeChecker>
        ));
        let limiter = Arc::new(FakeLimiter::default());
        let users = UserService::new(UserPorts {
            commands: Commands::new(gateway.clone(), Arc::new(NoReadModel), entropy.clone()),
            crypto,
            tenants: tenants.clone(),
            clock: clock.clone(),
            entropy,
            limiter: limiter.clone(),
        });
        let harness = Self {
            users,
            clock,
            totp,
            tenants,
            limiter,
            gateway,
        };
        harness.set_policy(|_| {});
        harness
    }

    /// Replaces the tenant's policy with the default one changed by `change`.
    pub(crate) fn set_policy(&self, change: impl FnOnce(&mut Policy)) {
        let mut policy = Policy::default();
        change(&mut policy);
        self.tenants.put(TenantView {
            id: tenant(),
            name: "Acme".into(),
            policy,
            created_at: self.clock.now(),
            enforced_since: None,
            delivery: None,
        });
    }

    /// Every event recorded for `user_id`, oldest first.
    pub(crate) async fn events(&self, user_id: &str) -> Vec<UserEvent> {
        self.envelopes(user_id)
            .await
            .into_iter()
            .map(|e| e.payload)
            .collect()
    }

    /// Every event recorded for `user_id` with its metadata.
    pub(crate) async fn envelopes(&self, user_id: &str) -> Vec<cqrs_es::EventEnvelope<User>> {
        self.gateway.events(&user(user_id).aggregate_id()).await
    }

    /// The code the delivery worker would send for `challenge_id`.
    pub(crate) async fn code_sent(&self, user_id: &str, challenge_id: &str) -> String {
        let outgoing = self
            .users
            .outgoing(&user(user_id), challenge_id)
            .await
            .unwrap()
            .expect("a code to send");
        outgoing.code.to_string()
    }

    /// Registers `address` for `user_id` and confirms it with the code sent, the user's first
    /// factor; returns the recovery codes issued with it.
    pub(crate) async fn confirmed_email(&self, user_id: &str, address: &str) -> Vec<String> {
        let challenge = self
            .users
            .add_email(&app(), user_id, address, None, None)
            .await
            .unwrap();
        let code = self.code_sent(user_id, &challenge.id).await;
        self.users
            .confirm_channel(&app(), user_id, &challenge.id, &code, None)
            .await
            .unwrap()
            .expect("the first factor comes with recovery codes")
            .0
    }

    /// What the user's authenticator app shows now for `secret_base32`.
    pub(crate) fn app_code(&self, secret_base32: &str) -> String {
        self.totp.code_at(secret_base32, self.clock.now())
    }

    /// Moves the clock to the next TOTP step, so the app shows a new code.
    pub(crate) fn next_step(&self) {
        self.clock.advance(Duration::seconds(30));
    }

    /// Enrolls an authenticator app as `user_id`'s first factor: its secret and the recovery
    /// codes shown with it.
    pub(crate) async fn enroll_totp(&self, user_id: &str) -> (String, RecoveryCodes) {
        let call = app();
        let enrollment = self
            .users
            .start_totp_enrollment(&call, user_id, None)
            .await
            .unwrap();
        let secret = enrollment.provisioning.secret_base32;
        let codes = self
            .users
            .confirm_totp_enrollment(&call, user_id, &self.app_code(&secret), None)
            .await
            .unwrap();
        self.next_step();
        (secret, codes)
    }
}

pub(crate) fn tenant() -> TenantId {
    TenantId::parse(TENANT).unwrap()
}

pub(crate) fn user(user_id: &str) -> UserRef {
    UserRef {
        tenant: tenant(),
        user: UserId::parse(user_id).unwrap(),
    }
}

/// A call by a key of `role` in [`TENANT`], made by request `request_id`.
pub(crate) fn call_as(role: Role, key_id: &str, request_id: &str) -> Call {
    Call::new(
        KeyPrincipal {
            tenant_id: tenant(),
            key_id: ApiKeyId::parse(key_id).unwrap(),
            role,
        },
        RequestContext {
            request_id: request_id.into(),
            ip: Some("192.0.2.1".into()),
            user_agent: Some("tests".into()),
        },
    )
}

/// A call by the tenant's backend (an APP key).
pub(crate) fn app() -> Call {
    call_as(Role::App, "appkey01", "req-app")
}

/// A call by the tenant's administrator (an ADMIN key).
pub(crate) fn admin() -> Call {
    call_as(Role::Admin, "adminkey", "req-admin")
}
