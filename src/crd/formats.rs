//! String formats shared by the three kinds' schemas.
//!
//! Patterns are RE2-compatible (the apiserver evaluates them with Go's regexp) and deliberately
//! conservative: every value that later lands in an OData `$filter` or an information-barrier
//! filter is restricted here to characters that cannot be read as syntax there.

use schemars::{Schema, SchemaGenerator, json_schema};

/// An Entra object id or tenant id.
pub const GUID: &str = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// A DNS domain name in lower case (a verified domain of the host tenant).
pub const DOMAIN: &str = r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$";

/// The local part of a user principal name, and a mail nickname: the characters Entra allows,
/// no leading or trailing dot.
pub const NICKNAME: &str = r"^[A-Za-z0-9'_!#^~-]([A-Za-z0-9'._!#^~-]{0,62}[A-Za-z0-9'_!#^~-])?$";

/// A user principal name: a nickname, `@`, a domain.
pub const UPN: &str = r"^[A-Za-z0-9'_!#^~-]([A-Za-z0-9'._!#^~-]{0,62}[A-Za-z0-9'_!#^~-])?@([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z][a-zA-Z0-9-]{0,61}[a-zA-Z0-9]$";

/// Names of groups and segments the operator creates or looks up by name: plain ASCII, so no
/// Unicode look-alikes and nothing that needs quoting in a filter.
pub const DIRECTORY_NAME: &str = r"^[A-Za-z0-9][A-Za-z0-9 _.-]*$";

/// A licence SKU part number or a service plan name, e.g. `SPE_E5`, `MICROSOFT_REMOTE_ASSIST`.
pub const SKU_OR_PLAN: &str = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$";

/// A Kubernetes DNS-1123 subdomain (the names of Secrets and cluster-scoped objects).
pub const DNS_SUBDOMAIN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// A Kubernetes DNS-1123 label (namespace names).
pub const DNS_LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// A value matched against a user attribute in a barrier segment filter.
pub const ATTRIBUTE_VALUE: &str = r"^[A-Za-z0-9][A-Za-z0-9 _.:@-]*$";

/// Text shown to people (display names): anything printable, no control characters.
pub const PRINTABLE: &str = r"^[^\p{Cc}]+$";

/// The officially assigned ISO 3166-1 alpha-2 country codes, which Graph accepts as
/// `usageLocation`.
pub const COUNTRY_CODES: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ", "BA",
    "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS", "BT", "BV",
    "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN", "CO", "CR", "CU",
    "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE", "EG", "EH", "ER", "ES",
    "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF", "GG", "GH", "GI", "GL", "GM",
    "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM", "HN", "HR", "HT", "HU", "ID", "IE",
    "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM", "JO", "JP", "KE", "KG", "KH", "KI", "KM",
    "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC", "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY",
    "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK", "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT",
    "MU", "MV", "MW", "MX", "MY", "MZ", "NA", "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU",
    "NZ", "OM", "PA", "PE", "PF", "PG", "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA",
    "RE", "RO", "RS", "RU", "RW", "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM",
    "SN", "SO", "SR", "SS", "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL",
    "TM", "TN", "TO", "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE",
    "VG", "VI", "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// Schema of a usage location: one of [`COUNTRY_CODES`], so a typo is refused at admission with
/// the list of supported values rather than by Graph later.
pub fn country_code_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "description": "ISO 3166-1 alpha-2 country code in upper case, e.g. US, DE, JP.",
        "enum": COUNTRY_CODES.as_slice(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn country_codes_are_unique_sorted_and_well_formed() {
        let set: BTreeSet<_> = COUNTRY_CODES.iter().collect();
        assert_eq!(set.len(), COUNTRY_CODES.len(), "duplicates in the country list");
        assert!(
            COUNTRY_CODES.windows(2).all(|w| w[0] < w[1]),
            "country list not sorted"
        );
        assert!(
            COUNTRY_CODES
                .iter()
                .all(|c| c.len() == 2 && c.chars().all(|ch| ch.is_ascii_uppercase()))
        );
        for expected in ["US", "DE", "JP", "GB", "SS"] {
            assert!(set.contains(&expected), "{expected} missing");
        }
        assert!(!set.contains(&"UK"), "UK is not an ISO 3166-1 code (GB is)");
    }

    /// Checks the list against an independent source rather than the simulated tenant's copy.
    ///
    /// Graph's `usageLocation` is "a two-letter country code (ISO standard 3166)", examples US,
    /// JP and GB: user resource type, <https://learn.microsoft.com/en-us/graph/api/resources/user>.
    /// The codes: Debian's iso-codes 4.15.0 (<https://salsa.debian.org/iso-codes-team/iso-codes>),
    /// `iso_3166-1.json` (officially assigned alpha-2 codes, 249 of them) and `iso_3166-3.json`
    /// (withdrawn codes, with withdrawal dates). Both read 2026-12-02.
    #[test]
    fn country_codes_match_iso_3166_1() {
        // Officially assigned (iso_3166-1.json): Graph's own examples, Germany, South Sudan
        // (assigned 2011), Curaçao and Sint Maarten (2010, replacing AN).
        for code in ["US", "JP", "GB", "DE", "SS", "CW", "SX"] {
            assert!(
                COUNTRY_CODES.contains(&code),
                "{code} is an ISO 3166-1 alpha-2 code"
            );
        }
        // Absent from iso_3166-1.json: UK (the United Kingdom's code is GB), EU, XK (used for
        // Kosovo outside ISO 3166-1); withdrawn (iso_3166-3.json): AN (Netherlands Antilles,
        // 2010-12-15), CS (Serbia and Montenegro, 2006-09-26).
        for code in ["UK", "EU", "XK", "AN", "CS"] {
            assert!(
                !COUNTRY_CODES.contains(&code),
                "{code} is not an assigned ISO 3166-1 code"
            );
        }
        assert_eq!(COUNTRY_CODES.len(), 249, "iso_3166-1.json has 249 alpha-2 codes");
    }
}
