//! Carries out a plan, in order. Outcomes that are part of normal life (a new user still
//! replicating, no seats left) are reported as [`Outcome`]s for the conditions; anything else
//! stops the plan and goes to the error policy.

use super::credentials::Credentials;
use super::plan::{Desired, Step};
use crate::context::Context;
use crate::crd::RemoteAssistLicense;
use crate::directory::write_behind::Joined;
use crate::error::Error;
use crate::graph::GraphError;
use kube::ResourceExt;
use serde_json::json;

/// A step carried out, and what it did in plain words.
#[derive(Debug)]
pub struct Done {
    pub step: Step,
    pub note: String,
}

#[derive(Debug, Default)]
pub struct Outcome {
    /// Steps carried out (each becomes an Event).
    pub done: Vec<Done>,
    /// The id of a user created or restored in this pass.
    pub bound_user: Option<(String, bool)>,
    /// The `employeeType` an adopted user had before the operator's mark replaced it.
    pub adopted_from: Option<Option<String>>,
    /// A password was set (or an attempt made) in this pass: rotations are rate-limited.
    pub password_set: bool,
    /// A new object is not yet visible everywhere; try again shortly.
    pub replicating: Option<String>,
    /// No seats left for a SKU: the message for `LicensesAssigned`.
    pub no_seats: Option<String>,
    /// Graph refused to set the password (403): the message for `AccountReady`.
    pub password_refused: Option<String>,
    /// The add to this group is queued, written behind with others (the sender's answer
    /// brings the licence back).
    pub joining: Option<String>,
    /// The account's segment membership may have changed (created, restored, barrier attribute
    /// written, or added to the group): its barrier needs a newer policy application.
    pub joined_segment: bool,
}

/// Whether an error means "the object was just written and is not visible yet".
fn is_replication_lag(e: &GraphError) -> bool {
    e.is_not_found() || e.has_detail("ObjectConflict") || e.message_contains("invalid usage location")
}

pub async fn act(
    ctx: &Context,
    ral: &RemoteAssistLicense,
    d: &Desired,
    actions: &[Step],
) -> Result<Outcome, Error> {
    let creds = Credentials::new(ctx.kube.clone(), ral);
    let mut out = Outcome::default();
    // An account on its way to the group: the sender holds the group's adds for it while
    // its create waits for the write budget.
    let on_its_way = actions.iter().any(|a| {
        matches!(
            a,
            Step::CreateUser { .. } | Step::RestoreUser { .. } | Step::Adopt { .. }
        )
    });
    if on_its_way {
        ctx.directory.expect_join(&d.accounts_group_id, &owner(ral));
    }
    for action in actions {
        let result = match run_step(ctx, ral, d, &creds, action, &mut out).await? {
            Ran::Done => Ok(()),
            Ran::Failed(e) => Err(e),
            Ran::Skipped => continue,
            Ran::Stopped => break,
        };
        match result {
            Ok(()) => {
                out.joined_segment |= match action {
                    Step::CreateUser { .. }
                    | Step::RestoreUser { .. }
                    | Step::AddToGroup { .. }
                    | Step::Adopt { .. } => true,
                    Step::UpdateUser { what, .. } => what.contains(&"barrier attribute"),
                    _ => false,
                };
                out.done.push(Done {
                    step: action.clone(),
                    note: action.describe(),
                })
            }
            Err(e) if is_replication_lag(&e) => {
                out.replicating = Some(format!(
                    "{}: the directory has not caught up yet",
                    action.describe()
                ));
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// The licence's key for the sender's answers (`namespace/name`).
fn owner(ral: &RemoteAssistLicense) -> String {
    format!("{}/{}", ral.namespace().unwrap_or_default(), ral.name_any())
}

/// A seat error in words, with the SKU's part number when the tenant can tell it.
/// How one step ended.
enum Ran {
    Done,
    /// Graph refused it: replication lag, or an error for the error policy.
    Failed(GraphError),
    /// Not done, for a reason recorded in the outcome; the next steps still run.
    Skipped,
    /// Not done, and nothing after it may run yet.
    Stopped,
}

fn ran(result: Result<(), GraphError>) -> Ran {
    match result {
        Ok(()) => Ran::Done,
        Err(e) => Ran::Failed(e),
    }
}

/// Runs one step; errors other than Graph's (the Secret, Kubernetes) end the reconcile.
async fn run_step(
    ctx: &Context,
    ral: &RemoteAssistLicense,
    d: &Desired,
    creds: &Credentials,
    action: &Step,
    out: &mut Outcome,
) -> Result<Ran, Error> {
    let dir = &ctx.directory;
    Ok(match action {
        Step::WriteCredentials => creds.create(ral, &d.upn).await.map(|_| Ran::Done)?,
        Step::RestoreUser { id } => ran(dir.restore_user(id).await),
        Step::Adopt { id, mark, previous } => {
            match dir.update_user(id, &json!({"employeeType": mark})).await {
                Ok(()) => {
                    out.adopted_from = Some(previous.clone());
                    Ran::Done
                }
                Err(e) => Ran::Failed(e),
            }
        }
        Step::CreateUser { body } => {
            let Some(password) = creds.password().await? else {
                // The Secret write is not visible yet: never create a user without it.
                out.replicating = Some("waiting for the credentials Secret".into());
                return Ok(Ran::Stopped);
            };
            let mut body = body.clone();
            body["passwordProfile"] =
                json!({"password": password.expose(), "forceChangePasswordNextSignIn": false});
            match dir.create_user(&body).await {
                Ok(u) => {
                    out.bound_user = Some((u.id, true));
                    Ran::Done
                }
                Err(e) => Ran::Failed(e),
            }
        }
        Step::UpdateUser { id, patch, .. } => ran(dir.update_user(id, patch).await),
        Step::AddToGroup { group_id, user_id } => {
            // A working account's drift is put right at once; new accounts join together.
            match dir
                .join(
                    group_id,
                    user_id,
                    &owner(ral),
                    !super::held_before(ral, crate::crd::conditions::types::READY),
                )
                .await
            {
                Joined::Added => Ran::Done,
                Joined::Queued => {
                    out.joining = Some(group_id.clone());
                    Ran::Skipped
                }
                Joined::Failed(e) => Ran::Failed(e),
            }
        }
        Step::RemoveFromGroup { group_id, user_id } => ran(dir.remove_member(group_id, user_id).await),
        Step::AssignLicenses { user_id, add, remove } => {
            match dir.assign_user_licenses(user_id, add, remove).await {
                Err(e) if e.message_contains("does not have any available licenses") => {
                    dir.forget_skus().await;
                    out.no_seats = Some(seat_message(ctx, &e).await);
                    Ran::Skipped
                }
                other => ran(other),
            }
        }
        Step::RotatePassword { user_id, token, .. } => {
            out.password_set = true;
            let password = creds.begin_rotation(ral, &d.upn).await?;
            let patch = json!({"passwordProfile": {"password": password.expose(), "forceChangePasswordNextSignIn": false}});
            match dir.update_user(user_id, &patch).await {
                Ok(()) => creds
                    .finish_rotation(&password, token.as_deref())
                    .await
                    .map(|_| Ran::Done)?,
                Err(e) if e.status() == Some(403) => {
                    // The old password stays in the Secret and on the account; the new one
                    // waits in `password-next` for the next attempt (rate-limited).
                    out.password_refused = Some(missing_role_message(&d.upn, &e));
                    Ran::Skipped
                }
                Err(e) => Ran::Failed(e),
            }
        }
        Step::ReprocessLicenses { user_id, .. } => ran(dir.reprocess_licenses(user_id).await),
        Step::Enable { user_id } => ran(dir.update_user(user_id, &json!({"accountEnabled": true})).await),
        Step::Disable { user_id } => ran(dir.update_user(user_id, &json!({"accountEnabled": false})).await),
    })
}

/// Why Graph refused a password: almost always the directory role an app needs besides its
/// Graph permission, or a role whose scope does not hold this account.
fn missing_role_message(upn: &str, e: &GraphError) -> String {
    format!(
        "Graph refused to set the password of {upn} ({e}): the operator's app needs the User Administrator directory role, scoped to the administrative unit that holds the vendor accounts (docs/install.md#directory-role); the current password stays valid"
    )
}

async fn seat_message(ctx: &Context, e: &GraphError) -> String {
    let skus = ctx.directory.skus(true).await.unwrap_or_default();
    let exhausted: Vec<String> = skus
        .values()
        .filter(|s| s.free() == 0)
        .map(|s| s.part_number.clone())
        .collect();
    if exhausted.is_empty() {
        format!("no seats available: {e}")
    } else {
        format!(
            "no seats left for {}; the account is licensed when seats are added",
            exhausted.join(", ")
        )
    }
}
