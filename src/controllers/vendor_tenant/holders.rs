//! Who still holds a vendor's segments: enabled users in its accounts group (managed, adopted
//! or orphaned). A vendor's segments and groups are not removed while any of them is enabled,
//! so that an orphaned account never outlives the barrier that keeps it from other vendors.

use crate::context::Context;
use crate::crd::VendorTenant;
use crate::error::Error;

/// The most holders named in a message.
const NAMED: usize = 10;

/// User principal names of the enabled members of the vendor's accounts group.
pub async fn enabled_holders(ctx: &Context, vt: &VendorTenant) -> Result<Vec<String>, Error> {
    let Some(group) = vt.status.as_ref().and_then(|s| s.accounts_group_id.clone()) else {
        return Ok(Vec::new());
    };
    let dir = &ctx.directory;
    if dir.group(&group).await?.is_none() {
        return Ok(Vec::new());
    }
    let mut holders = Vec::new();
    for id in dir.members(&group).await? {
        if let Some(user) = dir.user(&id).await?
            && user.account_enabled == Some(true)
        {
            holders.push(user.user_principal_name);
        }
    }
    holders.sort();
    Ok(holders)
}

/// The wait message naming the accounts that hold the segments.
pub fn holding_message(holders: &[String]) -> String {
    let named: Vec<&str> = holders.iter().take(NAMED).map(String::as_str).collect();
    let more = holders.len().saturating_sub(NAMED);
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!(
        "{} enabled account(s) are still in this vendor's segments ({}{tail}); its barriers are kept until they are disabled or deleted",
        holders.len(),
        named.join(", ")
    )
}
