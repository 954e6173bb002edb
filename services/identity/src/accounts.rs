//! Accounts: sign-up, staff registration, the first manager, profile changes, password
//! changes, roles, and disabling.
//!
//! **E-mail uniqueness under concurrency.** The event store commits each account in its own
//! transaction and cannot check anything across accounts, so registration first *claims* the
//! address: one row in `account_emails`, keyed by the lower-cased address, inserted together
//! with the password hash. Of two concurrent sign-ups with the same address, the second blocks
//! on the primary key and then finds it taken. Only then is the `AccountRegistered` event
//! committed. If the command fails, the claim is released; if the process dies in between, the
//! claim is orphaned, and the next sign-up with that address takes it over once it is a few
//! minutes old and its account still has no events. Every input is validated before the claim,
//! so a refused request stores nothing.

use brigade_domain::identity::{
    Account, AccountCommand, DietaryProfile, Email, PersonName, Phone, SavedAddress,
};
use brigade_domain::{Actor, Address, Role};
use chrono::Utc;
use uuid::Uuid;

use crate::errors::IdentityError;
use crate::identity::Identity;
use crate::passwords::check_policy;

/// What a new account is made of, as typed by a person.
pub struct NewAccount {
    pub email: String,
    pub password: String,
    pub name: String,
    pub phone: Option<String>,
}

/// A profile change: `None` leaves a part as it is.
#[derive(Default)]
pub struct ProfileChange {
    pub name: Option<String>,
    /// `Some(None)` removes the phone.
    pub phone: Option<Option<String>>,
    /// The complete new list; an entry with the id of a saved address keeps (or changes) it,
    /// an entry without id adds one.
    pub addresses: Option<Vec<(Option<Uuid>, Address)>>,
    /// The complete new list of declared allergens (names as in the API: `"peanuts"`).
    pub allergens: Option<Vec<String>>,
    /// The complete new list of declared diets (`"vegetarian"`, `"gluten_free"`…).
    pub diets: Option<Vec<String>>,
}

/// A claim older than this, whose account has no events, was left by a crashed registration.
const ORPHANED_CLAIM_AGE_SECS: f64 = 300.0;

impl Identity {
    /// A customer signs up.
    ///
    /// # Errors
    /// 422-type errors for invalid fields, [`IdentityError::EmailTaken`], or a storage error.
    pub async fn sign_up(&self, new: NewAccount) -> Result<Uuid, IdentityError> {
        self.register(new, Role::Customer, None).await
    }

    /// A manager (or the system) registers a chef, courier or manager.
    ///
    /// # Errors
    /// As [`Identity::sign_up`], and [`AccountError::NotAStaffRole`] for `customer`,
    /// [`AccountError::ManagerOnly`] when `by` is not a manager.
    ///
    /// [`AccountError::NotAStaffRole`]: brigade_domain::identity::AccountError::NotAStaffRole
    /// [`AccountError::ManagerOnly`]: brigade_domain::identity::AccountError::ManagerOnly
    pub async fn register_staff(
        &self,
        new: NewAccount,
        role: Role,
        by: Actor,
    ) -> Result<Uuid, IdentityError> {
        use brigade_domain::identity::AccountError;
        // Checked here too, before the e-mail is claimed, so a refused request stores nothing.
        if role == Role::Customer {
            return Err(AccountError::NotAStaffRole.into());
        }
        if !matches!(
            by,
            Actor::System
                | Actor::User {
                    role: Role::Manager,
                    ..
                }
        ) {
            return Err(AccountError::ManagerOnly.into());
        }
        self.register(new, role, Some(by)).await
    }

    /// Creates the first manager unless an account already uses `email`. Returns the new id.
    ///
    /// # Errors
    /// Invalid e-mail or password, or a storage error.
    pub async fn ensure_manager(
        &self,
        email: &str,
        password: &str,
        name: &str,
    ) -> Result<Option<Uuid>, IdentityError> {
        let new = NewAccount {
            email: email.to_owned(),
            password: password.to_owned(),
            name: name.to_owned(),
            phone: None,
        };
        match self.register_staff(new, Role::Manager, Actor::System).await {
            Ok(id) => Ok(Some(id)),
            Err(IdentityError::EmailTaken) => Ok(None),
            Err(other) => Err(other),
        }
    }

    async fn register(
        &self,
        new: NewAccount,
        role: Role,
        by: Option<Actor>,
    ) -> Result<Uuid, IdentityError> {
        let email = Email::parse(&new.email)?;
        let name = PersonName::parse(&new.name)?;
        let phone = Phone::parse_optional(new.phone.as_deref())?;
        check_policy(&new.password, &email)?;
        let hash = self.passwords.hash(new.password).await?;
        let account_id = Uuid::new_v4();
        self.claim_email(&email, account_id, &hash).await?;

        let at = Utc::now();
        let (command, actor) = match by {
            None => (
                AccountCommand::SignUp {
                    account_id,
                    email,
                    name,
                    phone,
                    at,
                },
                Actor::user(account_id, Role::Customer),
            ),
            Some(by) => (
                AccountCommand::RegisterStaff {
                    account_id,
                    email,
                    name,
                    phone,
                    role,
                    by,
                    at,
                },
                by,
            ),
        };
        if let Err(error) = self.execute(account_id, command, actor).await {
            self.release_email(account_id).await;
            return Err(error);
        }
        tracing::info!(%account_id, role = role.as_str(), "account registered");
        Ok(account_id)
    }

    /// Claims `email` for `account_id` and stores the password hash, in one transaction.
    async fn claim_email(
        &self,
        email: &Email,
        account_id: Uuid,
        password_hash: &str,
    ) -> Result<(), IdentityError> {
        let key = email.lookup_key();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "WITH orphan AS (
                DELETE FROM account_emails e
                 WHERE e.email_lower = $1
                   AND e.claimed_at < now() - make_interval(secs => $2)
                   AND NOT EXISTS (SELECT 1 FROM events
                                    WHERE aggregate_type = 'account'
                                      AND aggregate_id = e.account_id::text)
                RETURNING account_id)
             DELETE FROM credentials WHERE account_id IN (SELECT account_id FROM orphan)",
        )
        .bind(&key)
        .bind(ORPHANED_CLAIM_AGE_SECS)
        .execute(&mut *tx)
        .await?;
        let claimed = sqlx::query(
            "INSERT INTO account_emails (email_lower, account_id) VALUES ($1, $2)
             ON CONFLICT (email_lower) DO NOTHING",
        )
        .bind(&key)
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() == 0 {
            return Err(IdentityError::EmailTaken);
        }
        sqlx::query(
            "INSERT INTO credentials (account_id, password_hash, version) VALUES ($1, $2, 1)",
        )
        .bind(account_id)
        .bind(password_hash)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Undoes [`Identity::claim_email`] after a failed registration. A failure here only leaves
    /// an orphaned claim, which the next sign-up with that address reclaims.
    async fn release_email(&self, account_id: Uuid) {
        let released = async {
            let mut tx = self.pool.begin().await?;
            sqlx::query("DELETE FROM account_emails WHERE account_id = $1")
                .bind(account_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM credentials WHERE account_id = $1")
                .bind(account_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        };
        if let Err(error) = released.await {
            tracing::warn!(%account_id, %error, "could not release an e-mail claim");
        }
    }

    /// The account of a signed-in caller.
    ///
    /// # Errors
    /// [`AccountError::NotFound`](brigade_domain::identity::AccountError::NotFound) or a storage error.
    pub async fn account(&self, account_id: Uuid) -> Result<Account, IdentityError> {
        let account = self.load(account_id).await?;
        if !account.is_registered() {
            return Err(brigade_domain::identity::AccountError::NotFound.into());
        }
        Ok(account)
    }

    /// The account holder changes their name, phone, addresses, or declared allergens and
    /// diets (published as `identity.account.dietary_profile_changed`); returns the new state.
    ///
    /// # Errors
    /// 422-type errors naming the field, or a storage error.
    pub async fn update_profile(
        &self,
        account_id: Uuid,
        by: Actor,
        change: ProfileChange,
    ) -> Result<Account, IdentityError> {
        let name = change.name.as_deref().map(PersonName::parse).transpose()?;
        let phone = change
            .phone
            .map(|phone| Phone::parse_optional(phone.as_deref()))
            .transpose()?;
        let addresses = change.addresses.map(|list| {
            list.into_iter()
                .map(|(id, address)| SavedAddress {
                    address_id: id.unwrap_or_else(Uuid::new_v4),
                    address,
                })
                .collect()
        });
        let dietary = match (change.allergens, change.diets) {
            (None, None) => None,
            (allergens, diets) => {
                let parsed = DietaryProfile::parse(
                    allergens.as_deref().unwrap_or_default(),
                    diets.as_deref().unwrap_or_default(),
                )?;
                // A list left out keeps its current value.
                let current = self.account(account_id).await?.dietary();
                Some(DietaryProfile::new(
                    if allergens.is_some() {
                        parsed.allergens().to_vec()
                    } else {
                        current.allergens().to_vec()
                    },
                    if diets.is_some() {
                        parsed.diets().to_vec()
                    } else {
                        current.diets().to_vec()
                    },
                ))
            }
        };
        let command = AccountCommand::UpdateProfile {
            name,
            phone,
            addresses,
            dietary,
            at: Utc::now(),
        };
        self.execute(account_id, command, by).await?;
        self.account(account_id).await
    }

    /// The account holder changes their password, proving the current one; every session of
    /// the account ends (other devices must sign in again).
    ///
    /// # Errors
    /// [`IdentityError::WrongCurrentPassword`], a policy error for the new password, or a
    /// storage error.
    pub async fn change_password(
        &self,
        account_id: Uuid,
        by: Actor,
        current: String,
        new: String,
    ) -> Result<(), IdentityError> {
        let account = self.account(account_id).await?;
        let email = account
            .email()
            .cloned()
            .ok_or(brigade_domain::identity::AccountError::NotFound)?;
        check_policy(&new, &email)?;
        let stored: Option<(String, i32)> =
            sqlx::query_as("SELECT password_hash, version FROM credentials WHERE account_id = $1")
                .bind(account_id)
                .fetch_optional(&self.pool)
                .await?;
        let version = stored.as_ref().map(|(_, v)| *v);
        if !self
            .passwords
            .verify(current, stored.map(|(hash, _)| hash))
            .await
        {
            return Err(IdentityError::WrongCurrentPassword);
        }
        let hash = self.passwords.hash(new).await?;
        // The hash is stored first: the event is the record that it changed. The version check
        // makes two concurrent changes collide instead of silently overwriting each other.
        let updated = sqlx::query(
            "UPDATE credentials SET password_hash = $2, version = version + 1, updated_at = now()
              WHERE account_id = $1 AND version = $3",
        )
        .bind(account_id)
        .bind(&hash)
        .bind(version)
        .execute(&self.pool)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(IdentityError::Conflict);
        }
        self.execute(
            account_id,
            AccountCommand::ChangePassword { at: Utc::now() },
            by,
        )
        .await?;
        self.end_all_sessions(account_id, "password-changed")
            .await?;
        Ok(())
    }

    /// A manager gives an account another role; it shows in the account's next access token.
    ///
    /// # Errors
    /// The aggregate's refusals, or a storage error.
    pub async fn grant_role(
        &self,
        account_id: Uuid,
        role: Role,
        by: Actor,
    ) -> Result<(), IdentityError> {
        self.account(account_id).await?;
        let command = AccountCommand::GrantRole {
            role,
            by,
            at: Utc::now(),
        };
        self.execute(account_id, command, by).await
    }

    /// A manager disables an account: it can no longer sign in, its sessions end, and its
    /// access tokens are refused here at once and by the other services when they receive
    /// `identity.account.disabled`.
    ///
    /// # Errors
    /// The aggregate's refusals, or a storage error.
    pub async fn disable(
        &self,
        account_id: Uuid,
        by: Actor,
        reason: Option<String>,
    ) -> Result<(), IdentityError> {
        self.account(account_id).await?;
        let at = Utc::now();
        self.execute(account_id, AccountCommand::Disable { by, reason, at }, by)
            .await?;
        let disabled_at = self.load(account_id).await?.disabled_at().unwrap_or(at);
        self.verifier.revoke_before(account_id, disabled_at);
        self.end_all_sessions(account_id, "account-disabled")
            .await?;
        tracing::info!(%account_id, "account disabled");
        Ok(())
    }
}
