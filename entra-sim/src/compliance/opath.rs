//! The subset of OPATH that `UserGroupFilter` accepts: `<Attribute> -eq '<value>'`, `-ne`,
//! `-and`, `-or` and parentheses, with `''` (or `""` in double quotes) standing for one quote
//! inside a value, and `$null` for "not set". Attribute names and values compare without
//! regard to case, as Exchange does.

use crate::model::User;
use std::collections::BTreeSet;

/// A user attribute a segment can filter on (the Entra name; `ExtensionAttributeN` is
/// `onPremisesExtensionAttributes.extensionAttributeN`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attr {
    Co,
    Company,
    Department,
    Extension(u8),
    MailNickname,
    UsageLocation,
    UserPrincipalName,
    Mail,
    Description,
    MemberOf,
}

pub const SUPPORTED: &str = "Co, Company, Department, ExtensionAttribute1-15, MailNickname, UsageLocation, UserPrincipalName, Mail, Description, MemberOf";

impl Attr {
    fn parse(name: &str) -> Option<Attr> {
        let lower = name.to_ascii_lowercase();
        Some(match lower.as_str() {
            "co" => Attr::Co,
            "company" => Attr::Company,
            "department" => Attr::Department,
            "mailnickname" => Attr::MailNickname,
            "usagelocation" => Attr::UsageLocation,
            "userprincipalname" => Attr::UserPrincipalName,
            "mail" => Attr::Mail,
            "description" => Attr::Description,
            "memberof" => Attr::MemberOf,
            other => {
                let n: u8 = other.strip_prefix("extensionattribute")?.parse().ok()?;
                if !(1..=15).contains(&n) {
                    return None;
                }
                Attr::Extension(n)
            }
        })
    }

    /// The user's value; the simulator's user model carries no country, mail or description.
    fn value<'a>(&self, user: &'a User) -> Option<&'a str> {
        match self {
            Attr::Company => user.company_name.as_deref(),
            Attr::Department => user.department.as_deref(),
            Attr::Extension(n) => user.extension_attributes.get(n).map(String::as_str),
            Attr::MailNickname => Some(user.mail_nickname.as_str()),
            Attr::UsageLocation => user.usage_location.as_deref(),
            Attr::UserPrincipalName => Some(user.upn.as_str()),
            Attr::Co | Attr::Mail | Attr::Description | Attr::MemberOf => None,
        }
        .filter(|v| !v.is_empty())
    }
}

/// A parsed filter.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// `attr -eq value` (or `-ne` when `negate`); `None` is `$null`.
    Compare {
        attr: Attr,
        negate: bool,
        value: Option<String>,
    },
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

/// Why a filter was refused.
#[derive(Debug, PartialEq)]
pub enum FilterError {
    /// Bad syntax at a character position.
    Syntax(usize),
    /// An attribute the filter does not support.
    Unsupported(String),
}

impl Expr {
    /// Whether `user`, a direct member of `groups` (object ids), matches.
    pub fn matches(&self, user: &User, groups: &BTreeSet<String>) -> bool {
        match self {
            Expr::And(a, b) => a.matches(user, groups) && b.matches(user, groups),
            Expr::Or(a, b) => a.matches(user, groups) || b.matches(user, groups),
            Expr::Compare { attr, negate, value } => {
                let equal = match (attr, value) {
                    (Attr::MemberOf, Some(v)) => groups.iter().any(|g| g.eq_ignore_ascii_case(v)),
                    (Attr::MemberOf, None) => groups.is_empty(),
                    (a, Some(v)) => a
                        .value(user)
                        .is_some_and(|x| x.to_lowercase() == v.to_lowercase()),
                    (a, None) => a.value(user).is_none(),
                };
                equal != *negate
            }
        }
    }

    /// The values compared with `MemberOf` (each must name an existing group).
    pub fn member_of_values(&self) -> Vec<&str> {
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => {
                let mut v = a.member_of_values();
                v.extend(b.member_of_values());
                v
            }
            Expr::Compare {
                attr: Attr::MemberOf,
                value: Some(v),
                ..
            } => vec![v.as_str()],
            Expr::Compare { .. } => vec![],
        }
    }
}

#[derive(Debug, PartialEq)]
enum Token {
    Open,
    Close,
    /// `-eq`, `-and`, ... lowercased, without the dash.
    Operator(String),
    Word(String),
    Quoted(String),
    Null,
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, FilterError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let token = match c {
            '(' => {
                i += 1;
                Token::Open
            }
            ')' => {
                i += 1;
                Token::Close
            }
            '\'' | '"' => {
                let mut value = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(FilterError::Syntax(start)),
                        Some(&q) if q == c && chars.get(i + 1) == Some(&c) => {
                            value.push(c);
                            i += 2;
                        }
                        Some(&q) if q == c => {
                            i += 1;
                            break;
                        }
                        Some(&other) => {
                            value.push(other);
                            i += 1;
                        }
                    }
                }
                Token::Quoted(value)
            }
            '-' | '$' => {
                i += 1;
                let word: String = chars[i..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphabetic())
                    .collect();
                i += word.len();
                match (c, word.to_ascii_lowercase().as_str()) {
                    ('$', "null") => Token::Null,
                    ('-', w) if !w.is_empty() => Token::Operator(w.to_owned()),
                    _ => return Err(FilterError::Syntax(start)),
                }
            }
            c if c.is_ascii_alphanumeric() || c == '_' => {
                let word: String = chars[i..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                    .collect();
                i += word.len();
                Token::Word(word)
            }
            _ => return Err(FilterError::Syntax(start)),
        };
        out.push((start, token));
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    at: usize,
    end: usize,
}

impl Parser {
    fn position(&self) -> usize {
        self.tokens.get(self.at).map_or(self.end, |(p, _)| *p)
    }

    fn peek_operator(&self, name: &str) -> bool {
        matches!(self.tokens.get(self.at), Some((_, Token::Operator(o))) if o == name)
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.and()?;
        while self.peek_operator("or") {
            self.at += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.primary()?;
        while self.peek_operator("and") {
            self.at += 1;
            left = Expr::And(Box::new(left), Box::new(self.primary()?));
        }
        Ok(left)
    }

    fn primary(&mut self) -> Result<Expr, FilterError> {
        let position = self.position();
        match self.tokens.get(self.at) {
            Some((_, Token::Open)) => {
                self.at += 1;
                let inner = self.or()?;
                match self.tokens.get(self.at) {
                    Some((_, Token::Close)) => {
                        self.at += 1;
                        Ok(inner)
                    }
                    _ => Err(FilterError::Syntax(self.position())),
                }
            }
            Some((_, Token::Word(name))) => {
                let name = name.clone();
                self.at += 1;
                let negate = match self.tokens.get(self.at) {
                    Some((_, Token::Operator(o))) if o == "eq" => false,
                    Some((_, Token::Operator(o))) if o == "ne" => true,
                    _ => return Err(FilterError::Syntax(self.position())),
                };
                self.at += 1;
                let value = match self.tokens.get(self.at) {
                    Some((_, Token::Quoted(v))) => Some(v.clone()),
                    Some((_, Token::Null)) => None,
                    _ => return Err(FilterError::Syntax(self.position())),
                };
                self.at += 1;
                let attr = Attr::parse(&name).ok_or(FilterError::Unsupported(name))?;
                Ok(Expr::Compare { attr, negate, value })
            }
            _ => Err(FilterError::Syntax(position)),
        }
    }
}

/// Parses a `UserGroupFilter`.
pub fn parse(text: &str) -> Result<Expr, FilterError> {
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        tokens,
        at: 0,
        end: text.chars().count(),
    };
    let expr = parser.or()?;
    if parser.at != parser.tokens.len() {
        return Err(FilterError::Syntax(parser.position()));
    }
    Ok(expr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn user() -> User {
        User {
            id: "u1".into(),
            upn: "v1.svc@vendors.abc.example".into(),
            display_name: "V1".into(),
            mail_nickname: "v1.svc".into(),
            account_enabled: true,
            enabled_at: None,
            enabled_uncovered: 0,
            usage_location: Some("US".into()),
            pending_usage_location: None,
            department: Some("O'Brien & Co".into()),
            company_name: None,
            employee_type: None,
            extension_attributes: BTreeMap::from([(1, "V1_RemoteAssistUser".into())]),
            password: None,
            directory_roles: vec![],
            tokens_valid_from: None,
            direct: vec![],
            states: vec![],
            created: String::new(),
            deleted: None,
            visible_at: std::time::Instant::now(),
        }
    }

    #[test]
    fn parses_and_evaluates() {
        let groups = BTreeSet::from(["g1".to_owned()]);
        let u = user();
        let yes = [
            "ExtensionAttribute1 -eq 'v1_remoteassistuser'",
            "Department -eq 'O''Brien & Co' -and MemberOf -eq 'G1'",
            "(Department -eq 'x' -or UsageLocation -eq 'US') -and MemberOf -ne 'g2'",
            "Company -eq $null -and department -NE $null",
            "Department -eq \"O'Brien & Co\"",
        ];
        for f in yes {
            assert!(parse(f).unwrap().matches(&u, &groups), "{f}");
        }
        let no = [
            "ExtensionAttribute2 -eq 'V1_RemoteAssistUser'",
            "MemberOf -eq 'g2' -or Company -eq 'ABC'",
            "Department -eq 'x' -or UsageLocation -eq 'US' -and MemberOf -eq 'g2'",
        ];
        for f in no {
            assert!(!parse(f).unwrap().matches(&u, &groups), "{f}");
        }
    }

    #[test]
    fn refuses_bad_syntax_and_unknown_attributes() {
        assert_eq!(parse("Department -eq 'x"), Err(FilterError::Syntax(15)));
        assert_eq!(parse("Department = 'x'"), Err(FilterError::Syntax(11)));
        assert_eq!(parse("Department -eq x"), Err(FilterError::Syntax(15)));
        assert_eq!(parse("(Department -eq 'x'"), Err(FilterError::Syntax(19)));
        assert_eq!(parse("Department -like 'x*'"), Err(FilterError::Syntax(11)));
        assert_eq!(parse(""), Err(FilterError::Syntax(0)));
        assert_eq!(
            parse("Title -eq 'x'"),
            Err(FilterError::Unsupported("Title".into()))
        );
        assert_eq!(
            parse("ExtensionAttribute16 -eq 'x'"),
            Err(FilterError::Unsupported("ExtensionAttribute16".into()))
        );
        let e = parse("MemberOf -eq 'a' -and (MemberOf -ne 'b' -or Co -eq 'c')").unwrap();
        assert_eq!(e.member_of_values(), vec!["a", "b"]);
    }
}
