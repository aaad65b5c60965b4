//! An answer's JSON kept as the text it came in, and decoded straight into the type its reader
//! wants. A page of 999 users parsed into `serde_json::Value` is a tree several times the size
//! of its text; decoded into `DirUser`s it is smaller than the text, and the tree is never
//! built. A `$batch` answer is taken apart the same way: each item's body stays text.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;

/// The JSON of one answer; empty when the answer had no body or it was not JSON.
#[derive(Clone, Debug, Default)]
pub struct Body(Option<Box<RawValue>>);

impl Body {
    /// The body of an HTTP answer. Text that is not JSON is kept as no body (an error answer
    /// is still typed from its status; a success answer that needs a body fails to decode).
    pub fn from_bytes(bytes: Vec<u8>) -> Body {
        let raw = String::from_utf8(bytes)
            .ok()
            .filter(|s| !s.trim().is_empty())
            .and_then(|s| RawValue::from_string(s).ok());
        Body(raw)
    }

    /// The body as `T`; an empty body is read as `null`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.text())
    }

    /// The body as a `Value` (`Null` when empty): for small answers read field by field.
    pub fn value(&self) -> Value {
        self.decode().unwrap_or(Value::Null)
    }

    fn text(&self) -> &str {
        self.0.as_deref().map_or("null", RawValue::get)
    }
}

impl From<&RawValue> for Body {
    fn from(raw: &RawValue) -> Body {
        Body(Some(raw.to_owned()))
    }
}

/// One item of a `$batch` answer, its body still text borrowed from the whole answer. `id`,
/// `status` and `headers` are read loosely (as `Value`): a malformed item is reported for what
/// it lacks, not as a batch that cannot be read.
#[derive(Deserialize)]
pub(super) struct BatchItem<'a> {
    #[serde(default)]
    pub id: Value,
    #[serde(default)]
    pub status: Value,
    #[serde(default)]
    pub headers: Value,
    #[serde(borrow, default)]
    pub body: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct BatchAnswer<'a> {
    #[serde(borrow, default)]
    responses: Vec<BatchItem<'a>>,
}

/// The items of a `$batch` answer; none when it is not one.
pub(super) fn batch_items(body: &Body) -> Vec<BatchItem<'_>> {
    serde_json::from_str::<BatchAnswer<'_>>(body.text()).map_or_else(|_| Vec::new(), |a| a.responses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_decodes_into_the_type_asked_for() {
        #[derive(Deserialize)]
        struct User {
            id: String,
        }
        let body = Body::from_bytes(br#"{"id":"u1","displayName":"A"}"#.to_vec());
        assert_eq!(body.decode::<User>().unwrap().id, "u1");
        assert_eq!(body.value()["displayName"], "A");
    }

    #[test]
    fn no_body_or_text_that_is_not_json_reads_as_null() {
        for bytes in [&b""[..], b"  ", b"<html>busy</html>", &[0xff, 0xfe]] {
            let body = Body::from_bytes(bytes.to_vec());
            assert_eq!(body.value(), Value::Null, "{bytes:?}");
            assert_eq!(body.decode::<Option<String>>().unwrap(), None);
        }
    }

    #[test]
    fn batch_items_keep_each_body_as_text_and_tolerate_odd_fields() {
        let body = Body::from_bytes(
            br#"{"responses":[{"id":"1","status":204},{"id":0,"status":"x","headers":[],"body":{"a":[1,2]}}]}"#
                .to_vec(),
        );
        let items = batch_items(&body);
        assert_eq!(items.len(), 2);
        assert!(items[0].body.is_none());
        assert_eq!(items[1].body.unwrap().get(), r#"{"a":[1,2]}"#);
        assert_eq!(items[1].id, Value::from(0));
        assert!(batch_items(&Body::from_bytes(b"[1]".to_vec())).is_empty());
    }
}
