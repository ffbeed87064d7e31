//! Canonical JSON (RFC 8785, JCS): the byte string that hashes and signatures cover.
//!
//! A serde `Serializer` that writes JCS directly: object members sorted by the UTF-16 code units
//! of their keys, strings escaped as ECMAScript's `JSON.stringify` does, numbers as IEEE-754
//! doubles in ECMAScript's shortest form (`ryu-js`). The `serde_json_canonicalizer` crate is the
//! reference: `tests/canonical.rs` checks this writer byte-for-byte against it on random values
//! and on audit records. We write our own because that crate re-parses every object key to sort
//! it (audit appends ran at ~45k records/s through it; the target is 200k/s).

use std::borrow::Cow;
use std::ops::Range;

use serde::Serialize;
use serde::ser::{self, Impossible};
use serde_json::{Map, Value};

use crate::error::AuditError;

/// Appends the JCS encoding of `value` to `out`.
pub fn write_canonical<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), AuditError> {
    value
        .serialize(Canon { out })
        .map_err(|e| AuditError::Serialize(e.0))
}

/// The JCS encoding of `value`.
pub fn to_canonical_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, AuditError> {
    let mut out = Vec::with_capacity(512);
    write_canonical(value, &mut out)?;
    Ok(out)
}

/// A value that cannot be written as JSON (non-string map key, non-finite float, bytes).
#[derive(Debug)]
pub struct CanonError(String);

impl std::fmt::Display for CanonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CanonError {}

impl ser::Error for CanonError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        CanonError(msg.to_string())
    }
}

type Result<T = (), E = CanonError> = std::result::Result<T, E>;

struct Canon<'a> {
    out: &'a mut Vec<u8>,
}

/// Integers beyond ±2^53 are written as the double they round to, as JCS requires.
fn write_i128(v: i128, out: &mut Vec<u8>) {
    const EXACT: i128 = 1 << 53;
    if (-EXACT..=EXACT).contains(&v) {
        out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    } else {
        write_f64(v as f64, out);
    }
}

fn write_f64(f: f64, out: &mut Vec<u8>) {
    if f == 0.0 {
        // ECMAScript prints -0 as 0.
        out.push(b'0');
    } else {
        let mut buf = ryu_js::Buffer::new();
        out.extend_from_slice(buf.format_finite(f).as_bytes());
    }
}

/// Appends the JCS encoding of a JSON value: what [`write_canonical`] writes for it, without
/// going through serde (no key copied, no member list unless a map's order is not JCS order).
/// The decision path writes `context.args_json` with it.
pub fn write_json(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => write_i128(i.into(), out),
            (_, Some(u), _) => write_i128(u.into(), out),
            // serde_json numbers are finite; a non-finite one could not have been built.
            (_, _, Some(f)) if f.is_finite() => write_f64(f, out),
            _ => out.extend_from_slice(b"null"),
        },
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => write_json_object(map, out),
    }
}

/// A map's members in JCS order: as they come when the map already iterates in that order
/// (serde_json's sorted map does, unless keys hold characters at or above U+E000).
pub(crate) fn write_json_object(map: &Map<String, Value>, out: &mut Vec<u8>) {
    let in_order = map
        .keys()
        .zip(map.keys().skip(1))
        .all(|(a, b)| key_cmp(a, b).is_lt());
    let member = |i: usize, (k, v): (&String, &Value), out: &mut Vec<u8>| {
        if i > 0 {
            out.push(b',');
        }
        write_string(k, out);
        out.push(b':');
        write_json(v, out);
    };
    out.push(b'{');
    if in_order {
        for (i, kv) in map.iter().enumerate() {
            member(i, kv, out);
        }
    } else {
        let mut members: Vec<(&String, &Value)> = map.iter().collect();
        members.sort_by(|a, b| key_cmp(a.0, b.0));
        for (i, kv) in members.into_iter().enumerate() {
            member(i, kv, out);
        }
    }
    out.push(b'}');
}

/// Bytes that must be escaped in a JSON string.
const fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// A JSON string as `JSON.stringify` writes it: `"` and `\` escaped, the control characters
/// U+0000..U+001F as `\b \t \n \f \r` or `\u00xx` (lowercase hex), everything else as is.
fn write_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Skip 8 plain bytes at a time (SWAR: no byte < 0x20, no '"', no '\').
        if let Some(chunk) = bytes.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let w = u64::from_le_bytes(word);
            const ONES: u64 = 0x0101_0101_0101_0101;
            const HIGH: u64 = 0x8080_8080_8080_8080;
            let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
            let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
            if control
                | has_zero(w ^ (ONES * u64::from(b'"')))
                | has_zero(w ^ (ONES * u64::from(b'\\')))
                == 0
            {
                i += 8;
                continue;
            }
        }
        let Some(&b) = bytes.get(i) else { break };
        if needs_escape(b) {
            out.extend_from_slice(bytes.get(start..i).unwrap_or_default());
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                0x08 => out.extend_from_slice(b"\\b"),
                0x09 => out.extend_from_slice(b"\\t"),
                0x0a => out.extend_from_slice(b"\\n"),
                0x0c => out.extend_from_slice(b"\\f"),
                0x0d => out.extend_from_slice(b"\\r"),
                _ => {
                    let hex = |n: u8| HEX.get(usize::from(n)).copied().unwrap_or(b'0');
                    out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hex(b >> 4), hex(b & 0xf)]);
                }
            }
            start = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(bytes.get(start..).unwrap_or_default());
    out.push(b'"');
}

/// Key order of JCS: UTF-16 code units. UTF-8 byte order agrees unless the first differing
/// bytes start characters at or above U+E000 (lead byte ≥ 0xEE): surrogate pairs sort below
/// U+E000..U+FFFF in UTF-16.
fn key_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    match x.iter().zip(y).find(|(p, q)| p != q) {
        None => x.len().cmp(&y.len()),
        Some((p, q)) if *p < 0xEE && *q < 0xEE => p.cmp(q),
        Some(_) => a.encode_utf16().cmp(b.encode_utf16()),
    }
}

impl<'a> ser::Serializer for Canon<'a> {
    type Ok = ();
    type Error = CanonError;
    type SerializeSeq = Seq<'a>;
    type SerializeTuple = Seq<'a>;
    type SerializeTupleStruct = Seq<'a>;
    type SerializeTupleVariant = Seq<'a>;
    type SerializeMap = Object<'a>;
    type SerializeStruct = Object<'a>;
    type SerializeStructVariant = Object<'a>;

    fn serialize_bool(self, v: bool) -> Result {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result {
        self.serialize_i64(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result {
        self.serialize_i64(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result {
        self.serialize_i64(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result {
        write_i128(v.into(), self.out);
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> Result {
        write_i128(v, self.out);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result {
        self.serialize_i64(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result {
        self.serialize_i64(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result {
        self.serialize_i64(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result {
        write_i128(v.into(), self.out);
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result {
        self.serialize_f64(v.into())
    }
    fn serialize_f64(self, v: f64) -> Result {
        if !v.is_finite() {
            return Err(CanonError(format!("{v} is not a JSON number")));
        }
        write_f64(v, self.out);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result {
        write_string(v.encode_utf8(&mut [0; 4]), self.out);
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result {
        write_string(v, self.out);
        Ok(())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result {
        Err(CanonError("bytes have no JSON form".into()))
    }
    fn serialize_none(self) -> Result {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result {
        self.serialize_unit()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result {
        let mut o = Object::new(self.out);
        ser::SerializeStruct::serialize_field(&mut o, variant, value)?;
        ser::SerializeStruct::end(o)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Seq<'a>> {
        self.out.push(b'[');
        Ok(Seq {
            out: self.out,
            first: true,
            wrap: false,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Seq<'a>> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Seq<'a>> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Seq<'a>> {
        self.out.push(b'{');
        write_string(variant, self.out);
        self.out.extend_from_slice(b":[");
        Ok(Seq {
            out: self.out,
            first: true,
            wrap: true,
        })
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Object<'a>> {
        Ok(Object::new(self.out))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Object<'a>> {
        Ok(Object::new(self.out))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Object<'a>> {
        self.out.push(b'{');
        write_string(variant, self.out);
        self.out.push(b':');
        let mut o = Object::new(self.out);
        o.wrap = Some(variant);
        Ok(o)
    }
}

struct Seq<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
    wrap: bool,
}

impl Seq<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        value.serialize(Canon { out: self.out })
    }
    fn finish(self) -> Result {
        self.out.push(b']');
        if self.wrap {
            self.out.push(b'}');
        }
        Ok(())
    }
}

impl ser::SerializeSeq for Seq<'_> {
    type Ok = ();
    type Error = CanonError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        self.element(value)
    }
    fn end(self) -> Result {
        self.finish()
    }
}

impl ser::SerializeTuple for Seq<'_> {
    type Ok = ();
    type Error = CanonError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        self.element(value)
    }
    fn end(self) -> Result {
        self.finish()
    }
}

impl ser::SerializeTupleStruct for Seq<'_> {
    type Ok = ();
    type Error = CanonError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        self.element(value)
    }
    fn end(self) -> Result {
        self.finish()
    }
}

impl ser::SerializeTupleVariant for Seq<'_> {
    type Ok = ();
    type Error = CanonError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        self.element(value)
    }
    fn end(self) -> Result {
        self.finish()
    }
}

/// An object being written: members go to `out` as they come, in their own order; if that is
/// not JCS order, they are rearranged when the object ends.
struct Object<'a> {
    out: &'a mut Vec<u8>,
    /// Position of the opening brace.
    start: usize,
    members: Vec<(Cow<'static, str>, Range<usize>)>,
    in_order: bool,
    pending_key: Option<String>,
    wrap: Option<&'static str>,
}

impl<'a> Object<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        let start = out.len();
        out.push(b'{');
        Object {
            out,
            start,
            members: Vec::with_capacity(12),
            in_order: true,
            pending_key: None,
            wrap: None,
        }
    }

    fn member<T: Serialize + ?Sized>(&mut self, key: Cow<'static, str>, value: &T) -> Result {
        if let Some((last, _)) = self.members.last() {
            self.out.push(b',');
            self.in_order &= key_cmp(last, &key).is_lt();
        }
        let begin = self.out.len();
        write_string(&key, self.out);
        self.out.push(b':');
        value.serialize(Canon { out: self.out })?;
        self.members.push((key, begin..self.out.len()));
        Ok(())
    }

    fn finish(mut self) -> Result {
        if !self.in_order {
            self.members.sort_by(|a, b| key_cmp(&a.0, &b.0));
            let distinct = self.members.windows(2).all(|w| match w {
                [a, b] => a.0 != b.0,
                _ => true,
            });
            if !distinct {
                return Err(CanonError("duplicate object key".into()));
            }
            let body = self.out.split_off(self.start + 1);
            let offset = self.start + 1;
            for (i, (_, range)) in self.members.iter().enumerate() {
                if i > 0 {
                    self.out.push(b',');
                }
                let piece = body
                    .get(range.start - offset..range.end - offset)
                    .unwrap_or_default();
                self.out.extend_from_slice(piece);
            }
        }
        self.out.push(b'}');
        if self.wrap.is_some() {
            self.out.push(b'}');
        }
        Ok(())
    }
}

impl ser::SerializeMap for Object<'_> {
    type Ok = ();
    type Error = CanonError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result {
        self.pending_key = Some(key.serialize(KeyCapture)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        let key = self
            .pending_key
            .take()
            .ok_or_else(|| CanonError("value without a key".into()))?;
        self.member(Cow::Owned(key), value)
    }
    fn end(self) -> Result {
        self.finish()
    }
}

impl ser::SerializeStruct for Object<'_> {
    type Ok = ();
    type Error = CanonError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result {
        self.member(Cow::Borrowed(key), value)
    }
    fn end(self) -> Result {
        self.finish()
    }
}

impl ser::SerializeStructVariant for Object<'_> {
    type Ok = ();
    type Error = CanonError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result {
        self.member(Cow::Borrowed(key), value)
    }
    fn end(self) -> Result {
        self.finish()
    }
}

/// Map keys must be strings.
struct KeyCapture;

impl ser::Serializer for KeyCapture {
    type Ok = String;
    type Error = CanonError;
    type SerializeSeq = Impossible<String, CanonError>;
    type SerializeTuple = Impossible<String, CanonError>;
    type SerializeTupleStruct = Impossible<String, CanonError>;
    type SerializeTupleVariant = Impossible<String, CanonError>;
    type SerializeMap = Impossible<String, CanonError>;
    type SerializeStruct = Impossible<String, CanonError>;
    type SerializeStructVariant = Impossible<String, CanonError>;

    fn serialize_str(self, v: &str) -> Result<String> {
        Ok(v.to_owned())
    }
    fn serialize_char(self, v: char) -> Result<String> {
        Ok(v.to_string())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<String> {
        Ok(variant.to_owned())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<String> {
        value.serialize(self)
    }
    fn serialize_bool(self, _: bool) -> Result<String> {
        Err(not_a_key())
    }
    fn serialize_i8(self, _: i8) -> Result<String> {
        Err(not_a_key())
    }
    fn serialize_i16(self, _: i16) -> Result<String> {
        Err(not_a_key())
    }
    fn serialize_i32(self, _: i32) -> Result<String> {
        Err(not_a_key())
    }
    fn serialize_i64(self, _: i64) -> Result<String> {
        Err(not_a_key())
    }
    fn serialize_u8(self, _: u8) -> Result<String> {
        Err(not_a_key())
    }
    fn serialize_u16(self, _: u16) -> Result<String> {
        Err(not_a_key())
    }
    fn serialize_u32(self, _: u32) -> Result<String> {
        Err(not_a_key())
    }
    fn serialize_u64(self, _: u64) -> Result<String> {
        Err(not_a_key())
    }
    fn serialize_f32(self, _: f32) -> Result<String> {
        Err(not_a_key())
    }
    fn serialize_f64(self, _: f64) -> Result<String> {
        Err(not_a_key())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<String> {
        Err(not_a_key())
    }
    fn serialize_none(self) -> Result<String> {
        Err(not_a_key())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<String> {
        Err(not_a_key())
    }
    fn serialize_unit(self) -> Result<String> {
        Err(not_a_key())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<String> {
        Err(not_a_key())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<String> {
        Err(not_a_key())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq> {
        Err(not_a_key())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple> {
        Err(not_a_key())
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct> {
        Err(not_a_key())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        Err(not_a_key())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap> {
        Err(not_a_key())
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct> {
        Err(not_a_key())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant> {
        Err(not_a_key())
    }
}

fn not_a_key() -> CanonError {
    CanonError("object keys must be strings".into())
}
