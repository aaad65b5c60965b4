//! Runs a VendorTenant [`Plan`]'s steps in order: the only place the vendor reconciler writes
//! to the tenant (and the generated BarrierSegments to the cluster).

use super::groups::nickname;
use super::plan::{GroupRef, Role, Step};
use crate::context::{Context, MANAGER};
use crate::crd::BarrierSegment;
use crate::directory::{DirGroup, Directory, MANAGED_GROUP_PREFIX};
use crate::error::Error;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use std::collections::BTreeMap;

/// What acting did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Event reason and message of each step done.
    pub done: Vec<(&'static str, String)>,
    /// Groups created by this pass, by role.
    pub created: BTreeMap<Role, DirGroup>,
    /// The tenant refused the group's licences (a 400): the `LicensesAssigned` message.
    pub group_license_refused: Option<String>,
}

impl Outcome {
    fn id(&self, group: &GroupRef) -> Option<String> {
        match group {
            GroupRef::Existing { id, .. } => Some(id.clone()),
            GroupRef::New { role, .. } => self.created.get(role).map(|g| g.id.clone()),
        }
    }
}

/// Runs `steps`; `owner_uid` marks the groups it creates.
pub async fn act(ctx: &Context, owner_uid: &str, steps: &[Step]) -> Result<Outcome, Error> {
    let dir = &ctx.directory;
    let mut out = Outcome::default();
    for step in steps {
        let message = match step {
            Step::CreateGroup { role, name } => {
                let g = create_group(dir, name, owner_uid).await?;
                let message = format!("created group {name} ({})", g.id);
                out.created.insert(*role, g);
                message
            }
            Step::PlaceEngineer {
                user_id, attribute, ..
            } => {
                let mut patch = serde_json::Map::new();
                attribute.patch(&mut patch);
                dir.update_user(user_id, &serde_json::Value::Object(patch))
                    .await?;
                step.describe()
            }
            Step::AddMembers { group, ids } => {
                let Some(id) = out.id(group) else { continue };
                dir.add_members(&id, ids).await?;
                step.describe()
            }
            Step::RemoveMember { group_id, id, .. } => {
                dir.remove_member(group_id, id).await?;
                step.describe()
            }
            Step::ApplySegment { segment } => {
                apply_segment(ctx, segment).await?;
                step.describe()
            }
            Step::DeleteSegment { name } => {
                let api: Api<BarrierSegment> = Api::all(ctx.kube.clone());
                match api.delete(name, &kube::api::DeleteParams::default()).await {
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    other => drop(other?),
                }
                step.describe()
            }
            Step::AssignGroupLicenses { group, add, remove } => {
                let Some(id) = out.id(group) else { continue };
                match dir.assign_group_licenses(&id, add, remove).await {
                    Ok(()) => step.describe(),
                    Err(e) if e.status() == Some(400) => {
                        out.group_license_refused = Some(e.to_string());
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        out.done.push((step.event_reason(), message));
    }
    Ok(out)
}

/// Creates a vendor group, marked with the VendorTenant's uid.
async fn create_group(dir: &Directory, name: &str, owner_uid: &str) -> Result<DirGroup, Error> {
    let description = format!("{MANAGED_GROUP_PREFIX}{owner_uid}");
    // The uid keeps nicknames unique when two names differ only in dropped characters.
    let unique: String = format!(
        "{}-{}",
        nickname(name).chars().take(55).collect::<String>(),
        &owner_uid[..owner_uid.len().min(8)]
    );
    Ok(dir.create_group(name, &unique, &description).await?)
}

/// Creates or updates a generated BarrierSegment (server-side apply, owned by the vendor).
async fn apply_segment(ctx: &Context, want: &BarrierSegment) -> Result<(), Error> {
    let api: Api<BarrierSegment> = Api::all(ctx.kube.clone());
    let name = want.name_any();
    let patch = serde_json::json!({
        "apiVersion": BarrierSegment::api_version(&()),
        "kind": BarrierSegment::kind(&()),
        "metadata": {"name": name, "labels": want.labels(), "ownerReferences": want.owner_references()},
        "spec": want.spec,
    });
    api.patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&patch))
        .await?;
    Ok(())
}
