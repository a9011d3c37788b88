//! The GitHub event fields the envelope carries, read in one pass over the
//! payload (`json_scan`). It proves the body is the JSON serde_json would
//! accept for these fields and takes `ref`, `after`, `installation.id`,
//! `repository.id`, `repository.full_name` and `pull_request.head.sha`.
//!
//! The verdict is serde_json's for the derived structs in `oracle.rs` (the
//! tests hold the two against each other): members in any order, unknown
//! ones skipped, a wanted one twice refused, `null` for an optional one is
//! absent, `installation` and `repository` need a u64 `id`, and a struct
//! may also come as an array of its fields in order, as serde derive allows.
//! Strings serde_json decodes (member names at these levels, wanted values)
//! must be UTF-8; skipped values are checked for grammar only, at any depth,
//! since serde_json's recursion limit and UTF-8 check do not reach them.

use std::borrow::Cow;

use super::json_scan::{Cursor, ScanError};

/// The wanted fields of one event.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Payload<'a> {
    pub(crate) git_ref: Option<Cow<'a, str>>,
    pub(crate) after: Option<Cow<'a, str>>,
    pub(crate) installation_id: Option<u64>,
    pub(crate) repository: Option<Repository<'a>>,
    /// `pull_request.head.sha`.
    pub(crate) head_sha: Option<Cow<'a, str>>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Repository<'a> {
    pub(crate) id: u64,
    pub(crate) full_name: Option<Cow<'a, str>>,
}

/// The members of a struct as serde derive reads it.
struct Shape {
    names: &'static [&'static str],
    /// Fields an object must have (one bit per name): neither `Option` nor
    /// `#[serde(default)]`.
    required: u8,
    /// Fields an array must have: every one without `#[serde(default)]`.
    required_in_array: u8,
}

const EVENT: Shape = Shape {
    names: &["ref", "after", "installation", "repository", "pull_request"],
    required: 0,
    required_in_array: 0,
};
const INSTALLATION: Shape = Shape {
    names: &["id"],
    required: 1,
    required_in_array: 1,
};
const REPOSITORY: Shape = Shape {
    names: &["id", "full_name"],
    required: 0b01,
    required_in_array: 0b11,
};
const PULL_REQUEST: Shape = Shape {
    names: &["head"],
    required: 0,
    required_in_array: 1,
};
const HEAD: Shape = Shape {
    names: &["sha"],
    required: 0,
    required_in_array: 1,
};

/// Reads a whole payload: one event, then only whitespace.
pub(crate) fn scan(json: &[u8]) -> Result<Payload<'_>, ScanError> {
    let mut cursor = Cursor::new(json);
    let mut payload = Payload::default();
    read_struct(&mut cursor, &EVENT, |cursor, field| {
        match field {
            0 => payload.git_ref = optional(cursor, string)?,
            1 => payload.after = optional(cursor, string)?,
            2 => payload.installation_id = optional(cursor, installation)?,
            3 => payload.repository = optional(cursor, repository)?,
            _ => payload.head_sha = optional(cursor, pull_request)?.flatten(),
        }
        Ok(())
    })?;
    cursor.end()?;
    Ok(payload)
}

fn installation(cursor: &mut Cursor<'_>) -> Result<u64, ScanError> {
    let mut id = 0;
    read_struct(cursor, &INSTALLATION, |cursor, _| {
        id = cursor.u64()?;
        Ok(())
    })?;
    Ok(id)
}

fn repository<'a>(cursor: &mut Cursor<'a>) -> Result<Repository<'a>, ScanError> {
    let mut repository = Repository {
        id: 0,
        full_name: None,
    };
    read_struct(cursor, &REPOSITORY, |cursor, field| {
        match field {
            0 => repository.id = cursor.u64()?,
            _ => repository.full_name = optional(cursor, string)?,
        }
        Ok(())
    })?;
    Ok(repository)
}

/// `head.sha`, when there is one.
fn pull_request<'a>(cursor: &mut Cursor<'a>) -> Result<Option<Cow<'a, str>>, ScanError> {
    let mut sha = None;
    read_struct(cursor, &PULL_REQUEST, |cursor, _| {
        sha = optional(cursor, head)?.flatten();
        Ok(())
    })?;
    Ok(sha)
}

fn head<'a>(cursor: &mut Cursor<'a>) -> Result<Option<Cow<'a, str>>, ScanError> {
    let mut sha = None;
    read_struct(cursor, &HEAD, |cursor, _| {
        sha = optional(cursor, string)?;
        Ok(())
    })?;
    Ok(sha)
}

fn string<'a>(cursor: &mut Cursor<'a>) -> Result<Cow<'a, str>, ScanError> {
    cursor.expect(b'"', "expected a string")?;
    cursor.string()
}

/// An `Option<T>`: `null` is `None`.
fn optional<'a, T>(
    cursor: &mut Cursor<'a>,
    read: impl FnOnce(&mut Cursor<'a>) -> Result<T, ScanError>,
) -> Result<Option<T>, ScanError> {
    if cursor.peek() == Some(b'n') {
        cursor.literal(b"null")?;
        return Ok(None);
    }
    read(cursor).map(Some)
}

/// A struct of `shape`, as an object or as an array; `field` reads the
/// value of the field at an index of `shape.names`, each at most once.
fn read_struct<'a>(
    cursor: &mut Cursor<'a>,
    shape: &Shape,
    mut field: impl FnMut(&mut Cursor<'a>, usize) -> Result<(), ScanError>,
) -> Result<(), ScanError> {
    match cursor.peek() {
        Some(b'{') => {
            cursor.bump();
            read_object(cursor, shape, &mut field)
        }
        Some(b'[') => {
            cursor.bump();
            read_array(cursor, shape, &mut field)
        }
        _ => cursor.fail("expected an object"),
    }
}

fn read_object<'a>(
    cursor: &mut Cursor<'a>,
    shape: &Shape,
    field: &mut impl FnMut(&mut Cursor<'a>, usize) -> Result<(), ScanError>,
) -> Result<(), ScanError> {
    let mut seen = 0u8;
    let mut first = true;
    loop {
        let mut next = cursor.peek();
        if next == Some(b'}') {
            cursor.bump();
            break;
        }
        if !first {
            if next != Some(b',') {
                return cursor.fail("expected , or } in object");
            }
            cursor.bump();
            next = cursor.peek();
        }
        first = false;
        if next != Some(b'"') {
            return cursor.fail("expected a member name");
        }
        cursor.bump();
        let index = cursor.field(shape.names)?;
        cursor.expect(b':', "expected :")?;
        match index {
            Some(index) if seen & 1 << index != 0 => {
                return cursor.fail("duplicate field");
            }
            Some(index) => {
                seen |= 1 << index;
                field(cursor, index)?;
            }
            None => cursor.skip_value()?,
        }
    }
    if seen & shape.required != shape.required {
        return cursor.fail("missing field `id`");
    }
    Ok(())
}

/// The array form: the fields in order; a missing trailing field is absent
/// where serde derive has a default, an error otherwise; more is an error.
fn read_array<'a>(
    cursor: &mut Cursor<'a>,
    shape: &Shape,
    field: &mut impl FnMut(&mut Cursor<'a>, usize) -> Result<(), ScanError>,
) -> Result<(), ScanError> {
    for index in 0..shape.names.len() {
        let next = cursor.peek();
        if next == Some(b']') {
            if shape.required_in_array & 1 << index != 0 {
                return cursor.fail("too few elements for the struct");
            }
            continue;
        }
        if index > 0 {
            if next != Some(b',') {
                return cursor.fail("expected , or ] in array");
            }
            cursor.bump();
            if matches!(cursor.peek(), Some(b']') | None) {
                return cursor.fail("expected a value");
            }
        }
        field(cursor, index)?;
    }
    cursor.expect(b']', "too many elements for the struct")
}
