//! OData conventions of Graph: the error envelope, `$filter` (a parser, so quotes and
//! operators inside string literals are data, never syntax), `$select`, `$top` and paging.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// A Graph error: status, `error.code`, `error.message`, optional `details`.
#[derive(Debug, Clone)]
pub struct GraphError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Vec<Value>,
    pub retry_after: Option<u64>,
    pub extra_headers: Vec<(&'static str, String)>,
}

impl GraphError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        GraphError {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            retry_after: None,
            extra_headers: Vec::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Request_BadRequest", message)
    }

    pub fn not_found(key: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!(
                "Resource '{key}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }

    pub fn unsupported_query(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Request_UnsupportedQuery", message)
    }

    pub fn invalid_value(property: &str, resource: &str) -> Self {
        Self::bad_request(format!(
            "Invalid value specified for property '{property}' of resource '{resource}'."
        ))
    }

    pub fn denied() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
    }

    pub fn conflict(property: &str) -> Self {
        let mut e = Self::bad_request(format!(
            "Another object with the same value for property {property} already exists."
        ));
        e.details
            .push(json!({"code": "ObjectConflict", "message": e.message, "target": property}));
        e
    }

    /// Renders the documented envelope with `innerError` carrying the request's ids.
    pub fn render(&self, request_id: &str, client_request_id: Option<&str>) -> Response {
        let date = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S").to_string();
        let mut inner = json!({"date": date, "request-id": request_id, "client-request-id": client_request_id.unwrap_or(request_id)});
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            inner["code"] = json!("429");
            inner["status"] = json!("429");
            inner["message"] = json!("Please retry after");
        }
        let mut error = json!({"code": self.code, "message": self.message, "innerError": inner});
        if !self.details.is_empty() {
            error["details"] = Value::Array(self.details.clone());
        }
        let mut response = (self.status, axum::Json(json!({"error": error}))).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after {
            headers.insert("retry-after", HeaderValue::from(secs));
        }
        for (name, value) in &self.extra_headers {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(*name, v);
            }
        }
        response
    }
}

/// Parsed query options of a collection request.
#[derive(Debug, Default, Clone)]
pub struct Query {
    pub filter: Option<Filter>,
    pub select: Option<Vec<String>>,
    pub top: Option<usize>,
    pub skip_token: Option<usize>,
    pub count: bool,
    pub raw: Vec<(String, String)>,
}

impl Query {
    /// Parses `$filter`, `$select`, `$top`, `$skiptoken`, `$count`. `advanced` says whether the
    /// request carries `ConsistencyLevel: eventual`.
    pub fn parse(raw_query: Option<&str>, headers: &HeaderMap, max_top: usize) -> Result<Query, GraphError> {
        let mut q = Query::default();
        let pairs: Vec<(String, String)> = form_urlencoded::parse(raw_query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
        for (k, v) in &pairs {
            match k.as_str() {
                "$filter" => q.filter = Some(Filter::parse(v)?),
                "$select" => {
                    q.select = Some(
                        v.split(',')
                            .map(|s| s.trim().to_owned())
                            .filter(|s| !s.is_empty())
                            .collect(),
                    )
                }
                "$top" => {
                    let n: usize = v.parse().map_err(|_| {
                        GraphError::bad_request(format!(
                            "Invalid page size specified: '{v}'. Must be between 1 and {max_top} inclusive."
                        ))
                    })?;
                    if n == 0 || n > max_top {
                        return Err(GraphError::bad_request(format!(
                            "Invalid page size specified: '{v}'. Must be between 1 and {max_top} inclusive."
                        )));
                    }
                    q.top = Some(n);
                }
                "$skiptoken" => q.skip_token = Some(decode_skip_token(v)?),
                "$count" => q.count = v == "true",
                _ => {}
            }
        }
        let eventual = headers
            .get("consistencylevel")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"eventual"));
        if let Some(f) = &q.filter
            && f.is_advanced()
            && !(eventual && q.count)
        {
            return Err(GraphError::unsupported_query(
                "Operator 'ne', 'not' or 'endsWith' is an advanced query: it requires the ConsistencyLevel header set to 'eventual' and $count=true.",
            ));
        }
        // Counting directory objects is an advanced query: without the header Graph silently
        // ignores `$count=true` (aad-advanced-queries, "Error handling").
        if !eventual {
            q.count = false;
        }
        q.raw = pairs;
        Ok(q)
    }
}

fn decode_skip_token(token: &str) -> Result<usize, GraphError> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("offset:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| GraphError::bad_request("Invalid or expired $skiptoken."))
}

fn encode_skip_token(offset: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("offset:{offset}"))
}

/// Projects an object to the `$select`ed properties, or to `defaults` when there is none.
pub fn project(
    mut object: Map<String, Value>,
    select: Option<&Vec<String>>,
    defaults: Option<&[&str]>,
) -> Value {
    let keep: Vec<String> = match (select, defaults) {
        (Some(s), _) => s.clone(),
        (None, Some(d)) => d.iter().map(|s| s.to_string()).collect(),
        (None, None) => return Value::Object(object),
    };
    let mut out = Map::new();
    if let Some(t) = object.remove("@odata.type") {
        out.insert("@odata.type".into(), t);
    }
    for k in keep {
        if let Some(v) = object.remove(&k) {
            out.insert(k, v);
        } else {
            out.insert(k, Value::Null);
        }
    }
    Value::Object(out)
}

impl Query {
    /// The objects a collection request returns: those matching `$filter`, projected to
    /// `$select` (or to `defaults` without one).
    pub fn apply(
        &self,
        objects: impl Iterator<Item = Map<String, Value>>,
        defaults: Option<&[&str]>,
    ) -> Vec<Value> {
        objects
            .filter(|j| self.filter.as_ref().is_none_or(|f| f.matches(j)))
            .map(|j| project(j, self.select.as_ref(), defaults))
            .collect()
    }
}

/// One page of a collection, with `@odata.nextLink` when more remain.
pub fn page(
    items: Vec<Value>,
    query: &Query,
    base_url: &str,
    path: &str,
    context: &str,
    size: usize,
) -> Value {
    let total = items.len();
    let size = size.max(1);
    let start = query.skip_token.unwrap_or(0).min(total);
    let end = (start + size).min(total);
    let mut body = json!({"@odata.context": format!("{base_url}/v1.0/$metadata#{context}")});
    if query.count {
        body["@odata.count"] = json!(total);
    }
    body["value"] = Value::Array(items.into_iter().skip(start).take(end - start).collect());
    if end < total {
        let mut pairs: Vec<(String, String)> = query
            .raw
            .iter()
            .filter(|(k, _)| k != "$skiptoken")
            .cloned()
            .collect();
        pairs.push(("$skiptoken".into(), encode_skip_token(end)));
        let qs = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        body["@odata.nextLink"] = json!(format!("{base_url}/v1.0{path}?{qs}"));
    }
    body
}

/// A parsed `$filter` expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Eq(String, Literal),
    Ne(String, Literal),
    StartsWith(String, String),
    EndsWith(String, String),
    /// `assignedLicenses/any(x:x/skuId eq <guid>)`
    AnyLicense(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Bool(bool),
    Null,
    Guid(String),
}

impl Filter {
    pub fn parse(text: &str) -> Result<Filter, GraphError> {
        let tokens = tokenize(text)?;
        let mut p = Parser { tokens, pos: 0 };
        let f = p.or()?;
        if p.pos != p.tokens.len() {
            return Err(invalid_filter(text));
        }
        Ok(f)
    }

    fn is_advanced(&self) -> bool {
        match self {
            Filter::And(a, b) | Filter::Or(a, b) => a.is_advanced() || b.is_advanced(),
            Filter::Not(_) | Filter::Ne(..) | Filter::EndsWith(..) => true,
            _ => false,
        }
    }

    /// Evaluates the filter against an object's full JSON.
    pub fn matches(&self, object: &Map<String, Value>) -> bool {
        let get = |path: &str| -> Value {
            let mut v = Value::Object(object.clone());
            for part in path.split('/') {
                v = v.get(part).cloned().unwrap_or(Value::Null);
            }
            v
        };
        match self {
            Filter::And(a, b) => a.matches(object) && b.matches(object),
            Filter::Or(a, b) => a.matches(object) || b.matches(object),
            Filter::Not(a) => !a.matches(object),
            Filter::Eq(p, lit) => literal_eq(&get(p), lit),
            Filter::Ne(p, lit) => !literal_eq(&get(p), lit),
            Filter::StartsWith(p, s) => get(p)
                .as_str()
                .is_some_and(|v| v.to_lowercase().starts_with(&s.to_lowercase())),
            Filter::EndsWith(p, s) => get(p)
                .as_str()
                .is_some_and(|v| v.to_lowercase().ends_with(&s.to_lowercase())),
            Filter::AnyLicense(sku) => get("assignedLicenses").as_array().is_some_and(|a| {
                a.iter()
                    .any(|l| l["skuId"].as_str().is_some_and(|s| s.eq_ignore_ascii_case(sku)))
            }),
        }
    }

    /// Property paths the filter reads, to check them against the filterable ones.
    pub fn properties(&self) -> Vec<&str> {
        match self {
            Filter::And(a, b) | Filter::Or(a, b) => [a.properties(), b.properties()].concat(),
            Filter::Not(a) => a.properties(),
            Filter::Eq(p, _) | Filter::Ne(p, _) | Filter::StartsWith(p, _) | Filter::EndsWith(p, _) => {
                vec![p.as_str()]
            }
            Filter::AnyLicense(_) => vec!["assignedLicenses"],
        }
    }
}

fn literal_eq(value: &Value, lit: &Literal) -> bool {
    match lit {
        Literal::Str(s) | Literal::Guid(s) => value.as_str().is_some_and(|v| v.eq_ignore_ascii_case(s)),
        Literal::Bool(b) => value.as_bool() == Some(*b),
        Literal::Null => value.is_null(),
    }
}

fn invalid_filter(text: &str) -> GraphError {
    GraphError::bad_request(format!("Invalid filter clause: syntax error in '{text}'."))
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    LParen,
    RParen,
    Comma,
    Colon,
}

fn tokenize(text: &str) -> Result<Vec<Tok>, GraphError> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            ':' => {
                out.push(Tok::Colon);
                i += 1
            }
            '\'' => {
                // OData string literal; a quote inside is written as two quotes.
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(invalid_filter(text)),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            s.push('\'');
                            i += 2
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            s.push(*ch);
                            i += 1
                        }
                    }
                }
                out.push(Tok::Str(s));
            }
            _ if c.is_alphanumeric() || "_/-.@".contains(c) => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || "_/-.@".contains(chars[i])) {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            _ => return Err(invalid_filter(text)),
        }
    }
    Ok(out)
}

/// Values an `in` may list.
const MAX_IN_VALUES: usize = 15;

struct Parser {
    tokens: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek_word(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Tok::Ident(w)) if w.eq_ignore_ascii_case(word))
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expect(&mut self, tok: Tok) -> Result<(), GraphError> {
        if self.next() == Some(tok) {
            Ok(())
        } else {
            Err(self.err())
        }
    }

    fn err(&self) -> GraphError {
        GraphError::bad_request("Invalid filter clause.")
    }

    /// `prop in ('a', 'b', ...)`: Graph takes at most 15 values
    /// (https://learn.microsoft.com/graph/filter-query-parameter, "Operators and functions
    /// supported in filter expressions").
    fn in_list(&mut self, prop: String) -> Result<Filter, GraphError> {
        self.expect(Tok::LParen)?;
        let mut values = Vec::new();
        loop {
            match self.next() {
                Some(Tok::Str(s)) => values.push(Filter::Eq(prop.clone(), Literal::Str(s))),
                _ => return Err(self.err()),
            }
            match self.next() {
                Some(Tok::Comma) => continue,
                Some(Tok::RParen) => break,
                _ => return Err(self.err()),
            }
        }
        if values.len() > MAX_IN_VALUES {
            return Err(GraphError::unsupported_query(format!(
                "Too many child clauses specified in search filter expression containing 'OR' operators: {}. Max allowed: {MAX_IN_VALUES}.",
                values.len()
            )));
        }
        let mut values = values.into_iter();
        let first = values.next().ok_or_else(|| self.err())?;
        Ok(values.fold(first, |all, v| Filter::Or(Box::new(all), Box::new(v))))
    }

    fn or(&mut self) -> Result<Filter, GraphError> {
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.pos += 1;
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, GraphError> {
        let mut left = self.unary()?;
        while self.peek_word("and") {
            self.pos += 1;
            left = Filter::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, GraphError> {
        if self.peek_word("not") {
            self.pos += 1;
            return Ok(Filter::Not(Box::new(self.unary()?)));
        }
        match self.next() {
            Some(Tok::LParen) => {
                let f = self.or()?;
                self.expect(Tok::RParen)?;
                Ok(f)
            }
            Some(Tok::Ident(w))
                if w.eq_ignore_ascii_case("startswith") || w.eq_ignore_ascii_case("endswith") =>
            {
                self.expect(Tok::LParen)?;
                let Some(Tok::Ident(prop)) = self.next() else {
                    return Err(self.err());
                };
                self.expect(Tok::Comma)?;
                let Some(Tok::Str(s)) = self.next() else {
                    return Err(self.err());
                };
                self.expect(Tok::RParen)?;
                Ok(if w.eq_ignore_ascii_case("startswith") {
                    Filter::StartsWith(prop, s)
                } else {
                    Filter::EndsWith(prop, s)
                })
            }
            Some(Tok::Ident(w)) if w.eq_ignore_ascii_case("assignedLicenses/any") => {
                self.expect(Tok::LParen)?;
                let Some(Tok::Ident(var)) = self.next() else {
                    return Err(self.err());
                };
                self.expect(Tok::Colon)?;
                let Some(Tok::Ident(path)) = self.next() else {
                    return Err(self.err());
                };
                if !path.eq_ignore_ascii_case(&format!("{var}/skuId")) || !self.peek_word("eq") {
                    return Err(self.err());
                }
                self.pos += 1;
                let sku = match self.next() {
                    Some(Tok::Ident(g)) | Some(Tok::Str(g)) => g,
                    _ => return Err(self.err()),
                };
                self.expect(Tok::RParen)?;
                Ok(Filter::AnyLicense(sku))
            }
            Some(Tok::Ident(prop)) => {
                let Some(Tok::Ident(op)) = self.next() else {
                    return Err(self.err());
                };
                if op.eq_ignore_ascii_case("in") {
                    return self.in_list(prop);
                }
                let lit = match self.next() {
                    Some(Tok::Str(s)) => Literal::Str(s),
                    Some(Tok::Ident(w)) if w == "true" || w == "false" => Literal::Bool(w == "true"),
                    Some(Tok::Ident(w)) if w == "null" => Literal::Null,
                    Some(Tok::Ident(w)) if uuid::Uuid::parse_str(&w).is_ok() => Literal::Guid(w),
                    _ => return Err(self.err()),
                };
                match op.to_lowercase().as_str() {
                    "eq" => Ok(Filter::Eq(prop, lit)),
                    "ne" => Ok(Filter::Ne(prop, lit)),
                    _ => Err(GraphError::unsupported_query(format!(
                        "Unsupported query operator '{op}'."
                    ))),
                }
            }
            _ => Err(self.err()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_lists_up_to_fifteen_values() {
        let f = Filter::parse("id in ('a', 'b')").unwrap();
        let object = |id: &str| json!({"id": id}).as_object().unwrap().clone();
        assert!(f.matches(&object("b")) && !f.matches(&object("c")));
        let fifteen: Vec<String> = (0..15).map(|i| format!("'{i}'")).collect();
        assert!(Filter::parse(&format!("id in ({})", fifteen.join(","))).is_ok());
        let sixteen = format!("id in ({},'x')", fifteen.join(","));
        let e = Filter::parse(&sixteen).unwrap_err();
        assert!(e.message.contains("Max allowed: 15"), "{}", e.message);
        assert!(Filter::parse("id in ()").is_err());
    }

    #[test]
    fn quotes_inside_literals_are_data() {
        let f = Filter::parse("displayName eq 'V1'' or displayName eq ''x'").unwrap();
        assert_eq!(
            f,
            Filter::Eq(
                "displayName".into(),
                Literal::Str("V1' or displayName eq 'x".into())
            )
        );
    }

    #[test]
    fn parses_the_forms_graph_clients_use() {
        assert!(matches!(
            Filter::parse("startswith(displayName,'V1_')").unwrap(),
            Filter::StartsWith(..)
        ));
        assert!(matches!(
            Filter::parse("assignedLicenses/any(s:s/skuId eq 7a551360-26c4-4f61-84e6-ef715673e083)").unwrap(),
            Filter::AnyLicense(_)
        ));
        assert!(matches!(
            Filter::parse("accountEnabled eq true and usageLocation eq 'US'").unwrap(),
            Filter::And(..)
        ));
        assert!(Filter::parse("displayName eq 'unterminated").is_err());
        assert!(Filter::parse("displayName gt 'a'").is_err());
    }
}
