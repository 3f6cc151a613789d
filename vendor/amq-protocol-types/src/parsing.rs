use crate::{flags::*, types::*, value::*};
use nom::{
    self, Parser,
    bytes::streaming::take,
    combinator::{all_consuming, complete, flat_map, map, map_opt, map_parser, map_res},
    error::{ContextError, ErrorKind, ParseError, context},
    multi::fold_many0,
    number::streaming::{
        be_f32, be_f64, be_i16, be_i32, be_i64, be_u16, be_u32, be_u64, i8 as be_i8, u8 as be_u8,
    },
    sequence::pair,
};
use std::{error, fmt};
use traits::*;

/// Error context for `ParserErrors`
#[derive(Clone, Debug, Eq, PartialEq)]
enum VerboseErrorKind {
    /// Static string added by the `context` function
    Context(&'static str),
    /// Indicates which character was expected by the `char` function
    Char(char),
    /// Error kind given by various nom parsers
    Nom(ErrorKind),
    /// infor_comm patch: field tables and arrays nested deeper than [`MAX_NESTING`]
    TooDeep,
}

/// Struct holding the errors stack
#[derive(Clone, Debug, PartialEq)]
pub struct ParserErrors {
    error: VerboseErrorKind,
    errors: Option<Vec<VerboseErrorKind>>,
}

impl ParserErrors {
    #[cfg(not(feature = "verbose-errors"))]
    fn init_errors() -> Option<Vec<VerboseErrorKind>> {
        None
    }
    #[cfg(feature = "verbose-errors")]
    fn init_errors() -> Option<Vec<VerboseErrorKind>> {
        Some(Vec::new())
    }
}

impl<I> ParseError<I> for ParserErrors {
    fn from_error_kind(_input: I, kind: ErrorKind) -> Self {
        Self {
            error: VerboseErrorKind::Nom(kind),
            errors: Self::init_errors(),
        }
    }

    fn append(_input: I, kind: ErrorKind, mut other: Self) -> Self {
        if let Some(errors) = other.errors.as_mut() {
            errors.push(VerboseErrorKind::Nom(kind));
        }
        other
    }

    fn from_char(_input: I, c: char) -> Self {
        Self {
            error: VerboseErrorKind::Char(c),
            errors: Self::init_errors(),
        }
    }
}

impl<I> ContextError<I> for ParserErrors {
    fn add_context(_input: I, ctx: &'static str, mut other: Self) -> Self {
        if let Some(errors) = other.errors.as_mut() {
            errors.push(VerboseErrorKind::Context(ctx));
        }
        other
    }
}

impl<I, E> nom::error::FromExternalError<I, E> for ParserErrors {
    fn from_external_error(input: I, kind: ErrorKind, _e: E) -> Self {
        Self::from_error_kind(input, kind)
    }
}

impl fmt::Display for ParserErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Parser error: {:?}", self.error)?;
        if let Some(errors) = self.errors.as_ref() {
            for error in errors {
                writeln!(f)?;
                write!(f, "\tat {error:?}")?;
            }
        }
        Ok(())
    }
}

impl error::Error for ParserErrors {}

/// Error returned by parsers
pub type ParserError = nom::Err<ParserErrors>;
/// Return type of parsers
pub type ParserResult<I, T> = Result<(I, T), ParserError>;

/// Parse the [AMQPValue](../type.AMQPValue.html) of the given [AMQPType](../type.AMQPType.html)
#[must_use]
pub fn parse_raw_value<I: ParsableInput>(
    amqp_type: AMQPType,
) -> impl Parser<I, Output = AMQPValue, Error = ParserErrors> {
    context("parse_raw_value", move |i| match amqp_type {
        AMQPType::Boolean => map(parse_boolean, AMQPValue::Boolean).parse(i),
        AMQPType::ShortShortInt => map(parse_short_short_int, AMQPValue::ShortShortInt).parse(i),
        AMQPType::ShortShortUInt => map(parse_short_short_uint, AMQPValue::ShortShortUInt).parse(i),
        AMQPType::ShortInt => map(parse_short_int, AMQPValue::ShortInt).parse(i),
        AMQPType::ShortUInt => map(parse_short_uint, AMQPValue::ShortUInt).parse(i),
        AMQPType::LongInt => map(parse_long_int, AMQPValue::LongInt).parse(i),
        AMQPType::LongUInt => map(parse_long_uint, AMQPValue::LongUInt).parse(i),
        AMQPType::LongLongInt => map(parse_long_long_int, AMQPValue::LongLongInt).parse(i),
        /* RabbitMQ treats LongLongUInt as a LongLongInt hence expose it as such */
        AMQPType::LongLongUInt => map(parse_long_long_int, AMQPValue::LongLongInt).parse(i),
        AMQPType::Float => map(parse_float, AMQPValue::Float).parse(i),
        AMQPType::Double => map(parse_double, AMQPValue::Double).parse(i),
        AMQPType::DecimalValue => map(parse_decimal_value, AMQPValue::DecimalValue).parse(i),
        AMQPType::ShortString => map(parse_short_string, AMQPValue::ShortString).parse(i),
        AMQPType::LongString => map(parse_long_string, AMQPValue::LongString).parse(i),
        // infor_comm patch: nested values go through the depth-bounded parsers.
        AMQPType::FieldArray => raw_value_at(i, amqp_type, 0),
        AMQPType::Timestamp => map(parse_timestamp, AMQPValue::Timestamp).parse(i),
        AMQPType::FieldTable => raw_value_at(i, amqp_type, 0),
        AMQPType::ByteArray => map(parse_byte_array, AMQPValue::ByteArray).parse(i),
        AMQPType::Void => Ok((i, AMQPValue::Void)),
    })
}

/// Parse an [AMQPValue](../type.AMQPValue.html)
pub fn parse_value<I: ParsableInput>(i: I) -> ParserResult<I, AMQPValue> {
    // infor_comm patch: through the depth-bounded parsers.
    context("parse_value", |i| value_at(i, 0)).parse(i)
}

/// Parse an [AMQPType](../type.AMQPType.html)
pub fn parse_type<I: ParsableInput>(i: I) -> ParserResult<I, AMQPType> {
    context(
        "parse_type",
        map_opt(be_u8, |t| AMQPType::from_id(t as char)),
    )
    .parse(i)
}

/// Parse an id [(ShortUInt)](../type.ShortUInt.html)
pub fn parse_id<I: ParsableInput>(i: I) -> ParserResult<I, ShortUInt> {
    context("parse_id", parse_short_uint).parse(i)
}

/// Parse a [Boolean](../type.Boolean.html)
pub fn parse_boolean<I: ParsableInput>(i: I) -> ParserResult<I, Boolean> {
    context("parse_boolean", map(be_u8, |b| b != 0)).parse(i)
}

/// Parse a [ShortShortInt](../type.ShortShortInt.html)
pub fn parse_short_short_int<I: ParsableInput>(i: I) -> ParserResult<I, ShortShortInt> {
    context("parse_short_short_int", be_i8).parse(i)
}

/// Parse a [ShortShortUInt](../type.ShortShortUInt.html)
pub fn parse_short_short_uint<I: ParsableInput>(i: I) -> ParserResult<I, ShortShortUInt> {
    context("parse_short_short_uint", be_u8).parse(i)
}

/// Parse a [ShortInt](../type.ShortInt.html)
pub fn parse_short_int<I: ParsableInput>(i: I) -> ParserResult<I, ShortInt> {
    context("parse_short_int", be_i16).parse(i)
}

/// Parse a [ShortUInt](../type.ShortUInt.html)
pub fn parse_short_uint<I: ParsableInput>(i: I) -> ParserResult<I, ShortUInt> {
    context("parse_short_uint", be_u16).parse(i)
}

/// Parse a [LongInt](../type.LongInt.html)
pub fn parse_long_int<I: ParsableInput>(i: I) -> ParserResult<I, LongInt> {
    context("parse_long_int", be_i32).parse(i)
}

/// Parse a [LongUInt](../type.LongUInt.html)
pub fn parse_long_uint<I: ParsableInput>(i: I) -> ParserResult<I, LongUInt> {
    context("parse_long_uint", be_u32).parse(i)
}

/// Parse a [LongLongInt](../type.LongLongInt.html)
pub fn parse_long_long_int<I: ParsableInput>(i: I) -> ParserResult<I, LongLongInt> {
    context("parse_long_long_int", be_i64).parse(i)
}

/// Parse a [LongLongUInt](../type.LongLongUInt.html)
pub fn parse_long_long_uint<I: ParsableInput>(i: I) -> ParserResult<I, LongLongUInt> {
    context("parse_long_long_uint", be_u64).parse(i)
}

/// Parse a [Float](../type.Float.html)
pub fn parse_float<I: ParsableInput>(i: I) -> ParserResult<I, Float> {
    context("parse_float", be_f32).parse(i)
}

/// Parse a [Double](../type.Double.html)
pub fn parse_double<I: ParsableInput>(i: I) -> ParserResult<I, Double> {
    context("parse_double", be_f64).parse(i)
}

/// Parse a [DecimalValue](../type.DecimalValue.html)
pub fn parse_decimal_value<I: ParsableInput>(i: I) -> ParserResult<I, DecimalValue> {
    context(
        "parse_decimal_value",
        map(
            pair(parse_short_short_uint, parse_long_uint),
            |(scale, value)| DecimalValue { scale, value },
        ),
    )
    .parse(i)
}

fn make_str<I: Input<Item = u8>>(i: I) -> Result<String, std::string::FromUtf8Error> {
    // infor_comm patch: a short string that is not UTF-8 (a message id, a header name) used to
    // fail the whole frame, which closed the connection; the broker then delivered the same
    // message again, for ever. Its invalid bytes are escaped instead (see `escape_invalid_utf8`).
    Ok(String::from_utf8(i.iter_elements().collect())
        .unwrap_or_else(|error| escape_invalid_utf8(error.as_bytes())))
}

/// The first code point of the escapes of [`escape_invalid_utf8`]: byte `b` (0x80–0xFF) that is
/// not part of valid UTF-8 becomes U+F700 + `b` (U+F780–U+F7FF, in the Private Use Area).
pub const INVALID_BYTE_ESCAPE_BASE: u32 = 0xF700;

/// infor_comm patch: the text of `bytes` with every byte that is not part of valid UTF-8 turned
/// into the character U+F700 + byte, so that the bytes can be recovered
/// ([`unescape_invalid_utf8`]) and the frame still parses.
pub fn escape_invalid_utf8(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 3);
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        for byte in chunk.invalid() {
            text.extend(char::from_u32(INVALID_BYTE_ESCAPE_BASE + u32::from(*byte)));
        }
    }
    text
}

/// infor_comm patch: the bytes [`escape_invalid_utf8`] escaped, back. A string without such
/// escapes is returned as its UTF-8 bytes.
pub fn unescape_invalid_utf8(text: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(text.len());
    for c in text.chars() {
        match u32::from(c).checked_sub(INVALID_BYTE_ESCAPE_BASE) {
            Some(byte @ 0x80..=0xFF) => bytes.push(byte as u8),
            _ => bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    bytes
}

/// Parse a [ShortString](../type.ShortString.html)
pub fn parse_short_string<I: ParsableInput>(i: I) -> ParserResult<I, ShortString> {
    context(
        "parse_short_string",
        map(
            map_res(flat_map(parse_short_short_uint, take), make_str),
            ShortString::from,
        ),
    )
    .parse(i)
}

/// Parse a [LongString](../type.LongString.html)
pub fn parse_long_string<I: ParsableInput>(i: I) -> ParserResult<I, LongString> {
    context(
        "parse_long_string",
        map(flat_map(parse_long_uint, take), |i: I| {
            i.iter_elements().collect::<Vec<u8>>().into()
        }),
    )
    .parse(i)
}

/// Parse a [FieldArray](../type.FieldArray.html)
///
/// infor_comm patch: arrays and tables nested deeper than [`MAX_NESTING`] fail the parse (see
/// [`parse_field_table`] for a header table).
pub fn parse_field_array<I: ParsableInput>(i: I) -> ParserResult<I, FieldArray> {
    field_array_at(i, 1)
}

/// Parse a [Timestamp](../type.Timestamp.html)
pub fn parse_timestamp<I: ParsableInput>(i: I) -> ParserResult<I, Timestamp> {
    context("parse_timestamp", parse_long_long_uint).parse(i)
}

/// Parse a [FieldTable](../type.FieldTable.html)
///
/// infor_comm patch: a table whose values nest field tables and arrays deeper than
/// [`MAX_NESTING`] levels (the table itself is level 1) is not parsed further: the parser used
/// to recurse once per level, and about 1,500 levels (7.5 KB, which RabbitMQ accepts in a
/// message's headers) overflowed the stack of the thread that parses frames, aborting the
/// process. Such a table is consumed whole (its length prefix says how far) and given as
/// [`over_limit_table`], which [`over_limit_reason`] recognises, so that the frame still parses
/// and the message can be dealt with as content.
pub fn parse_field_table<I: ParsableInput>(i: I) -> ParserResult<I, FieldTable> {
    context("parse_field_table", |i: I| {
        let (rest, bytes) = flat_map(parse_long_uint, take).parse(i)?;
        match field_table_entries(bytes, 1) {
            Ok((_, table)) => Ok((rest, table)),
            Err(nom::Err::Failure(error)) if error.error == VerboseErrorKind::TooDeep => Ok((
                rest,
                over_limit_table(format!(
                    "the header table nests field tables and arrays deeper than {MAX_NESTING} levels"
                )),
            )),
            Err(error) => Err(error),
        }
    })
    .parse(i)
}

/// infor_comm patch: the deepest nesting of field tables and arrays the parser follows; a
/// top-level field table is level 1, a value of it that is an array level 2, and so on. Each
/// level costs the parser about 1.4 KB of stack in an optimised build and about 10 KB in a debug
/// build, so 32 levels stay well within a thread's 2 MiB even unoptimised, and far above what
/// brokers and clients nest (RabbitMQ's `x-death` header: 3 levels).
pub const MAX_NESTING: usize = 32;

/// infor_comm patch: the one key of an [`over_limit_table`]: `infor_comm.over_limit.` and 16
/// hexadecimal digits drawn at random once per process, so that no sender can write a table
/// that passes for one the parser made.
pub fn over_limit_key() -> &'static str {
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_nanos()),
        );
        format!("infor_comm.over_limit.{:016x}", hasher.finish())
    })
}

/// infor_comm patch: the table that stands for a field table over the parser's limits: one
/// entry, [`over_limit_key`], whose value (a long string) is `reason`.
pub fn over_limit_table(reason: String) -> FieldTable {
    let mut table = FieldTable::default();
    table.insert(
        ShortString::from(over_limit_key()),
        AMQPValue::LongString(reason.into_bytes().into()),
    );
    table
}

/// infor_comm patch: why `table` was not parsed, when it stands for a field table over the
/// parser's limits (see [`over_limit_table`]); `None` for any table read as sent.
pub fn over_limit_reason(table: &FieldTable) -> Option<String> {
    if table.inner().len() != 1 {
        return None;
    }
    match table.inner().get(over_limit_key()) {
        Some(AMQPValue::LongString(reason)) => {
            Some(String::from_utf8_lossy(reason.as_bytes()).into_owned())
        }
        _ => None,
    }
}

/// The error of a value nested deeper than [`MAX_NESTING`]: a failure, so that no caller takes
/// it for the end of a list of entries and the outermost [`parse_field_table`] sees it.
fn too_deep<I>() -> ParserError {
    nom::Err::Failure(ParserErrors {
        error: VerboseErrorKind::TooDeep,
        errors: ParserErrors::init_errors(),
    })
}

/// An [AMQPValue](../type.AMQPValue.html), its type first, whose field tables and arrays are at
/// level `depth` + 1.
fn value_at<I: ParsableInput>(i: I, depth: usize) -> ParserResult<I, AMQPValue> {
    let (i, amqp_type) = parse_type(i)?;
    raw_value_at(i, amqp_type, depth)
}

/// The value of `amqp_type`; a field table or array is at level `depth` + 1.
fn raw_value_at<I: ParsableInput>(
    i: I,
    amqp_type: AMQPType,
    depth: usize,
) -> ParserResult<I, AMQPValue> {
    match amqp_type {
        AMQPType::FieldArray => context("parse_raw_value", |i| field_array_at(i, depth + 1))
            .parse(i)
            .map(|(i, array)| (i, AMQPValue::FieldArray(array))),
        AMQPType::FieldTable => context("parse_raw_value", |i| field_table_at(i, depth + 1))
            .parse(i)
            .map(|(i, table)| (i, AMQPValue::FieldTable(table))),
        other => parse_raw_value(other).parse(i),
    }
}

/// A field array at level `depth`.
fn field_array_at<I: ParsableInput>(i: I, depth: usize) -> ParserResult<I, FieldArray> {
    if depth > MAX_NESTING {
        return Err(too_deep::<I>());
    }
    context(
        "parse_field_array",
        map_parser(
            flat_map(parse_long_uint, take),
            all_consuming(fold_many0(
                context("parse_field_array_entry", complete(|i| value_at(i, depth))),
                FieldArray::default,
                |mut acc, elem| {
                    acc.push(elem);
                    acc
                },
            )),
        ),
    )
    .parse(i)
}

/// A field table at level `depth`, its length prefix first.
fn field_table_at<I: ParsableInput>(i: I, depth: usize) -> ParserResult<I, FieldTable> {
    if depth > MAX_NESTING {
        return Err(too_deep::<I>());
    }
    context(
        "parse_field_table",
        map_parser(flat_map(parse_long_uint, take), |bytes| {
            field_table_entries(bytes, depth)
        }),
    )
    .parse(i)
}

/// The entries of a field table at level `depth`, without its length prefix: all of `i`.
fn field_table_entries<I: ParsableInput>(i: I, depth: usize) -> ParserResult<I, FieldTable> {
    all_consuming(fold_many0(
        context(
            "parse_field_table_entry",
            complete(pair(parse_short_string, |i| value_at(i, depth))),
        ),
        FieldTable::default,
        |mut acc, (key, value)| {
            acc.insert(key, value);
            acc
        },
    ))
    .parse(i)
}

/// Parse a [ByteArray](../type.ByteArray.html)
pub fn parse_byte_array<I: ParsableInput>(i: I) -> ParserResult<I, ByteArray> {
    context(
        "parse_byte_array",
        map(flat_map(parse_long_uint, take), |i: I| {
            i.iter_elements().collect::<Vec<u8>>().into()
        }),
    )
    .parse(i)
}

/// Parse the [AMQPFlags](../type.AMQPFlags.html) for which the names are provided
pub fn parse_flags<I: ParsableInput>(i: I, names: &[&str]) -> ParserResult<I, AMQPFlags> {
    context(
        "parse_flags",
        map(take(names.len().div_ceil(8)), |b| {
            AMQPFlags::from_bytes(names, b)
        }),
    )
    .parse(i)
}

/// Traits required for parsing
pub mod traits {
    /// Reexport nom traits required for parsing
    pub use nom::{Compare, CompareResult, Input, Needed};

    /// Trait used to ensure we can properly parse input
    pub trait ParsableInput: Clone + Compare<&'static [u8]> + Input<Item = u8> + PartialEq {}

    impl<T: Clone + Compare<&'static [u8]> + Input<Item = u8> + PartialEq> ParsableInput for T {}
}

#[cfg(test)]
mod infor_comm_patch_tests {
    use super::*;

    #[test]
    fn a_short_string_that_is_not_utf8_parses_and_its_bytes_come_back() {
        let bytes: &[u8] = &[5, b'a', b'b', 0xFF, b'c', 0xC3];
        let (rest, parsed) = parse_short_string(bytes).expect("parses");
        assert!(rest.is_empty());
        assert_eq!(unescape_invalid_utf8(parsed.as_str()), &bytes[1..]);
        assert_eq!(unescape_invalid_utf8("plain ü \0"), "plain ü \0".as_bytes());
    }

    /// A field table whose one entry `key` holds `depth` - 1 nested values below the table (so
    /// that the table's deepest array or table is at level `depth`), alternating arrays and
    /// tables as `pattern`'s bits say, each level also holding `width` plain values.
    fn nested(depth: usize, width: usize, pattern: u64) -> Vec<u8> {
        // Built from the innermost level out, without recursion (the deep cases would overflow
        // the test's own stack).
        let mut below: Vec<u8> = Vec::new();
        for level in (2..=depth).rev() {
            let as_table = (pattern >> (level % 64)) & 1 == 1;
            let mut inner = Vec::new();
            for n in 0..width {
                if as_table {
                    inner.extend_from_slice(&[1, b'a' + (n % 26) as u8]);
                }
                inner.extend_from_slice(&[b'I', 0, 0, 0, n as u8]);
            }
            if !below.is_empty() {
                if as_table {
                    inner.extend_from_slice(&[1, b'~']);
                }
                inner.extend_from_slice(&below);
            }
            below = vec![if as_table { b'F' } else { b'A' }];
            below.extend_from_slice(&(inner.len() as u32).to_be_bytes());
            below.extend(inner);
        }
        let mut entries = vec![3, b'k', b'e', b'y'];
        if below.is_empty() {
            entries.extend_from_slice(&[b'I', 0, 0, 0, 7]);
        } else {
            entries.extend(below);
        }
        let mut table = (entries.len() as u32).to_be_bytes().to_vec();
        table.extend(entries);
        table
    }

    /// The deepest level of nested tables and arrays in `table` (itself level 1), counted
    /// without recursion, so that the check never depends on the stack either.
    fn depth_of(table: &FieldTable) -> usize {
        let mut deepest = 1;
        let mut stack: Vec<(&AMQPValue, usize)> = table.inner().values().map(|v| (v, 2)).collect();
        while let Some((value, level)) = stack.pop() {
            match value {
                AMQPValue::FieldArray(array) => {
                    deepest = deepest.max(level);
                    stack.extend(array.as_slice().iter().map(|v| (v, level + 1)));
                }
                AMQPValue::FieldTable(table) => {
                    deepest = deepest.max(level);
                    stack.extend(table.inner().values().map(|v| (v, level + 1)));
                }
                _ => {}
            }
        }
        deepest
    }

    /// Runs `check` on a thread with a small stack (512 KiB, a quarter of a default thread's):
    /// if the parser still recursed once per level, the deep cases below would overflow it.

    fn on_a_small_stack(check: impl FnOnce() + Send + 'static) {
        std::thread::Builder::new()
            .stack_size(512 * 1024)
            .spawn(check)
            .expect("a thread")
            .join()
            .expect("no panic, no overflow");
    }

    #[test]
    fn a_table_nested_up_to_the_limit_parses_and_one_level_more_stands_for_its_reason() {
        on_a_small_stack(|| {
            for depth in [1, 2, 3, MAX_NESTING - 1, MAX_NESTING] {
                let mut bytes = nested(depth, 1, 0);
                bytes.push(0xAB);
                let (rest, table) = parse_field_table(bytes.as_slice()).expect("parses");
                assert_eq!(rest, &[0xAB], "depth {depth}");
                assert_eq!(depth_of(&table), depth);
                assert_eq!(over_limit_reason(&table), None);
            }
            for depth in [MAX_NESTING + 1, MAX_NESTING + 2, 1_250, 1_500, 5_000] {
                let mut bytes = nested(depth, 1, 0);
                bytes.push(0xAB);
                let (rest, table) = parse_field_table(bytes.as_slice()).expect("parses");
                assert_eq!(
                    rest,
                    &[0xAB],
                    "the whole table is consumed at depth {depth}"
                );
                let reason = over_limit_reason(&table).expect("over the limit");
                assert!(reason.contains("deeper than 32 levels"), "{reason}");
            }
        });
    }

    #[test]
    fn property_every_nesting_and_width_parses_exactly_or_stands_for_its_reason() {
        on_a_small_stack(|| {
            // A small deterministic generator: the same cases on every run.
            let mut state = 0x2545_F491_4F6C_DD1Du64;
            let mut next = move || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            let mut cases = 0;
            for depth in (1..=MAX_NESTING + 3).chain([200, 1_000, 1_499, 1_500, 3_000]) {
                for _ in 0..6 {
                    let width = (next() % 8) as usize;
                    let pattern = next();
                    let bytes = nested(depth, width, pattern);
                    let (rest, table) = parse_field_table(bytes.as_slice()).expect("parses");
                    assert!(rest.is_empty());
                    if depth <= MAX_NESTING {
                        assert_eq!(depth_of(&table), depth, "width {width} pattern {pattern:x}");
                        assert_eq!(over_limit_reason(&table), None);
                    } else {
                        assert!(over_limit_reason(&table).is_some(), "depth {depth}");
                    }
                    // Any value read alone obeys the same bound, and fails instead of recursing.
                    let value = &bytes[8..];
                    let parsed = parse_value(value);
                    assert_eq!(parsed.is_ok(), depth - 1 <= MAX_NESTING, "depth {depth}");
                    cases += 1;
                }
            }
            // Random bytes and random truncations of nested tables never panic either.
            for _ in 0..2_000 {
                let mut bytes = nested(1 + (next() % 120) as usize, (next() % 3) as usize, next());
                let cut = (next() as usize) % (bytes.len() + 1);
                bytes.truncate(cut);
                for _ in 0..(next() % 4) {
                    if !bytes.is_empty() {
                        let at = (next() as usize) % bytes.len();
                        bytes[at] = next() as u8;
                    }
                }
                let _ = parse_field_table(bytes.as_slice());
                let _ = parse_value(bytes.as_slice());
                cases += 1;
            }
            assert!(cases > 2_000);
        });
    }

    #[test]
    fn no_table_read_from_the_wire_passes_for_an_over_limit_one() {
        assert!(over_limit_key().starts_with("infor_comm.over_limit."));
        assert_eq!(over_limit_key(), over_limit_key(), "one key per process");
        let table = over_limit_table("why".into());
        assert_eq!(over_limit_reason(&table).as_deref(), Some("why"));
        let mut sent = FieldTable::default();
        sent.insert("x-death".into(), AMQPValue::LongString("why".into()));
        assert_eq!(over_limit_reason(&sent), None);
        let mut guessed = FieldTable::default();
        guessed.insert(
            "infor_comm.over_limit.0000000000000000".into(),
            AMQPValue::LongString("why".into()),
        );
        assert_eq!(over_limit_reason(&guessed), None);
        assert_eq!(over_limit_reason(&FieldTable::default()), None);
    }
}

#[cfg(test)]
mod test {
    use super::*;

    const EMPTY: &[u8] = b"";

    #[test]
    fn test_parse_value() {
        assert_eq!(
            parse_value(&[84, 42, 42, 42, 42, 42, 42, 42, 42][..]),
            Ok((EMPTY, AMQPValue::Timestamp(3038287259199220266)))
        );
        assert_eq!(
            parse_value(&[83, 0, 0, 0, 4, 116, 101, 115, 116][..]),
            Ok((EMPTY, AMQPValue::LongString("test".into())))
        );
    }

    #[test]
    fn test_parse_raw_value() {
        assert_eq!(
            parse_raw_value(AMQPType::Timestamp).parse(&[42, 42, 42, 42, 42, 42, 42, 42][..]),
            Ok((EMPTY, AMQPValue::Timestamp(3038287259199220266)))
        );
        assert_eq!(
            parse_raw_value(AMQPType::LongString).parse(&[0, 0, 0, 4, 116, 101, 115, 116][..]),
            Ok((EMPTY, AMQPValue::LongString("test".into())))
        );
        /* Test internal exceptions */
        assert_eq!(
            parse_raw_value(AMQPType::LongLongUInt).parse(&[42, 42, 42, 42, 42, 42, 42, 42][..]),
            Ok((EMPTY, AMQPValue::LongLongInt(3038287259199220266)))
        );
        assert_eq!(
            parse_raw_value(AMQPType::ShortString).parse(&[4, 116, 101, 115, 116][..]),
            Ok((EMPTY, AMQPValue::ShortString("test".into())))
        );
    }

    #[test]
    fn test_parse_type() {
        assert_eq!(parse_type(&[116][..]), Ok((EMPTY, AMQPType::Boolean)));
        assert_eq!(parse_type(&[102][..]), Ok((EMPTY, AMQPType::Float)));
    }

    #[test]
    fn test_parse_id() {
        assert_eq!(parse_id(&[0, 0][..]), Ok((EMPTY, 0)));
        assert_eq!(parse_id(&[255, 255][..]), Ok((EMPTY, 65535)));
    }

    #[test]
    fn test_parse_boolean() {
        assert_eq!(parse_boolean(&[0][..]), Ok((EMPTY, false)));
        assert_eq!(parse_boolean(&[1][..]), Ok((EMPTY, true)));
    }

    #[test]
    fn test_parse_short_short_int() {
        assert_eq!(parse_short_short_int(&[0][..]), Ok((EMPTY, 0)));
        assert_eq!(parse_short_short_int(&[255][..]), Ok((EMPTY, -1)));
    }

    #[test]
    fn test_parse_short_short_uint() {
        assert_eq!(parse_short_short_uint(&[0][..]), Ok((EMPTY, 0)));
        assert_eq!(parse_short_short_uint(&[255][..]), Ok((EMPTY, 255)));
    }

    #[test]
    fn test_parse_short_int() {
        assert_eq!(parse_short_int(&[0, 0][..]), Ok((EMPTY, 0)));
        assert_eq!(parse_short_int(&[255, 255][..]), Ok((EMPTY, -1)));
    }

    #[test]
    fn test_parse_short_uint() {
        assert_eq!(parse_short_uint(&[0, 0][..]), Ok((EMPTY, 0)));
        assert_eq!(parse_short_uint(&[255, 255][..]), Ok((EMPTY, 65535)));
    }

    #[test]
    fn test_parse_long_int() {
        assert_eq!(parse_long_int(&[0, 0, 0, 0][..]), Ok((EMPTY, 0)));
        assert_eq!(parse_long_int(&[255, 255, 255, 255][..]), Ok((EMPTY, -1)));
    }

    #[test]
    fn test_parse_long_uint() {
        assert_eq!(parse_long_uint(&[0, 0, 0, 0][..]), Ok((EMPTY, 0)));
        assert_eq!(
            parse_long_uint(&[255, 255, 255, 255][..]),
            Ok((EMPTY, 4294967295))
        );
    }

    #[test]
    fn test_parse_long_long_int() {
        assert_eq!(
            parse_long_long_int(&[0, 0, 0, 0, 0, 0, 0, 0][..]),
            Ok((EMPTY, 0))
        );
        assert_eq!(
            parse_long_long_int(&[255, 255, 255, 255, 255, 255, 255, 255][..]),
            Ok((EMPTY, -1))
        );
    }

    #[test]
    fn test_parse_long_long_uint() {
        assert_eq!(
            parse_long_long_uint(&[0, 0, 0, 0, 0, 0, 0, 0][..]),
            Ok((EMPTY, 0))
        );
        assert_eq!(
            parse_long_long_uint(&[255, 255, 255, 255, 255, 255, 255, 255][..]),
            Ok((EMPTY, 18446744073709551615))
        );
    }

    #[test]
    fn test_parse_float() {
        assert_eq!(parse_float(&[0, 0, 0, 0][..]), Ok((EMPTY, 0.)));
        assert_eq!(parse_float(&[66, 41, 174, 20][..]), Ok((EMPTY, 42.42)));
    }

    #[test]
    fn test_parse_double() {
        assert_eq!(parse_double(&[0, 0, 0, 0, 0, 0, 0, 0][..]), Ok((EMPTY, 0.)));
        assert_eq!(
            parse_double(&[64, 69, 53, 194, 143, 92, 40, 246][..]),
            Ok((EMPTY, 42.42))
        );
    }

    #[test]
    fn test_parse_decimal_value() {
        assert_eq!(
            parse_decimal_value(&[0, 0, 0, 0, 0][..]),
            Ok((EMPTY, DecimalValue { scale: 0, value: 0 }))
        );
        assert_eq!(
            parse_decimal_value(&[255, 255, 255, 255, 255][..]),
            Ok((
                EMPTY,
                DecimalValue {
                    scale: 255,
                    value: 4294967295
                }
            ))
        );
    }

    #[test]
    fn test_parse_short_string() {
        assert_eq!(
            parse_short_string(&[0][..]),
            Ok((EMPTY, ShortString::default()))
        );
        assert_eq!(
            parse_short_string(&[4, 116, 101, 115, 116][..]),
            Ok((EMPTY, "test".into()))
        );
    }

    #[test]
    fn test_parse_long_string() {
        assert_eq!(
            parse_long_string(&[0, 0, 0, 0][..]),
            Ok((EMPTY, LongString::default()))
        );
        assert_eq!(
            parse_long_string(&[0, 0, 0, 4, 116, 101, 115, 116][..]),
            Ok((EMPTY, "test".into()))
        );
    }

    #[test]
    fn test_parse_field_array() {
        assert_eq!(
            parse_field_array(&[0, 0, 0, 0][..]),
            Ok((EMPTY, FieldArray::default()))
        );
        assert_eq!(
            parse_field_array(&[0, 0, 0, 10, 83, 0, 0, 0, 4, 116, 101, 115, 116, 86][..]),
            Ok((
                EMPTY,
                vec![AMQPValue::LongString("test".into()), AMQPValue::Void].into()
            ))
        );
    }

    #[test]
    fn test_parse_timestamp() {
        assert_eq!(
            parse_timestamp(&[0, 0, 0, 0, 0, 0, 0, 0][..]),
            Ok((EMPTY, 0))
        );
        assert_eq!(
            parse_timestamp(&[255, 255, 255, 255, 255, 255, 255, 255][..]),
            Ok((EMPTY, 18446744073709551615))
        );
    }

    #[test]
    fn test_parse_field_table() {
        let mut table = FieldTable::default();
        table.insert("test".into(), AMQPValue::LongString("test".into()));
        table.insert("tt".into(), AMQPValue::Void);
        assert_eq!(
            parse_field_table(&[0, 0, 0, 0][..]),
            Ok((EMPTY, FieldTable::default()))
        );
        assert_eq!(
            parse_field_table(
                &[
                    0, 0, 0, 18, 4, 116, 101, 115, 116, 83, 0, 0, 0, 4, 116, 101, 115, 116, 2, 116,
                    116, 86
                ][..]
            ),
            Ok((EMPTY, table))
        );
    }

    #[test]
    fn test_parse_byte_array() {
        assert_eq!(
            parse_byte_array(&[0, 0, 0, 0][..]),
            Ok((EMPTY, ByteArray::default()))
        );
        assert_eq!(
            parse_byte_array(&[0, 0, 0, 4, 42, 1, 2, 3][..]),
            Ok((EMPTY, vec![42, 1, 2, 3].into()))
        );
    }

    #[test]
    fn test_parse_flags() {
        let mut flags = AMQPFlags::default();
        let mut names = Vec::new();
        names.push("a");
        flags.add_flag("a".to_string(), true);
        names.push("b");
        flags.add_flag("b".to_string(), false);
        names.push("c");
        flags.add_flag("c".to_string(), true);
        names.push("d");
        flags.add_flag("d".to_string(), true);
        assert_eq!(
            parse_flags(&[0b00001101][..], &names),
            Ok((EMPTY, flags.clone()))
        );
        names.push("e");
        flags.add_flag("e".to_string(), true);
        names.push("f");
        flags.add_flag("f".to_string(), false);
        names.push("g");
        flags.add_flag("g".to_string(), true);
        names.push("h");
        flags.add_flag("h".to_string(), true);
        names.push("i");
        flags.add_flag("i".to_string(), false);
        names.push("j");
        flags.add_flag("j".to_string(), true);
        assert_eq!(
            parse_flags(&[0b11011101, 0b00000010][..], &names),
            Ok((EMPTY, flags))
        );
    }
}
