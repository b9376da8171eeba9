//! JSON lines (one document a line) as the JSON array the batch insert
//! reads. Joining lines with commas is not enough on its own: a line that
//! is not exactly one value (a string or container running on over the
//! line break, two documents on one line) would merge with its neighbours
//! into other documents while the count could still come out right. So
//! each line is first checked to hold one whole value, by a scan of its
//! brackets and strings (the parse that follows checks the rest); then the
//! array's elements are exactly the lines.

use super::json::document_from_json_slice;
use crate::error::{Error, Result};

/// Runs `insert` over the lines of `text` (each ends with `\n`, the last
/// one may not) as one JSON array, one element a line: `[` line 1 `,\n`
/// line 2 … `]`. A line that is empty (or only whitespace), that holds
/// more than one value, or whose string or bracket is still open at its
/// end is [`Error::InvalidArgument`] before `insert` runs; that error, and
/// `insert`'s own [`Error::InvalidArgument`] from parsing the array (whose
/// places are the array's), name the first line (from 1) that is not one
/// document. Empty text is an empty array.
pub fn insert_lines<T>(text: &[u8], insert: impl FnOnce(&[u8]) -> Result<T>) -> Result<T> {
    let not_one_document = || first_bad_line(text);
    // (A line check_line refuses is one first_bad_line names.)
    let array = lines_as_array(text).ok_or_else(|| {
        not_one_document().unwrap_or_else(|| Error::invalid("a line is not one JSON document"))
    })?;
    insert(&array).map_err(|e| match e {
        Error::InvalidArgument(_) => not_one_document().unwrap_or(e),
        e => e,
    })
}

/// The lines of `text` as one JSON array; `None` when a line fails
/// [`check_line`].
fn lines_as_array(text: &[u8]) -> Option<Vec<u8>> {
    let mut array = Vec::with_capacity(text.len() + text.len() / 64 + 2);
    array.push(b'[');
    for (i, line) in split_lines(text).enumerate() {
        check_line(line).ok()?;
        if i > 0 {
            array.extend_from_slice(b",\n");
        }
        array.extend_from_slice(line);
    }
    array.push(b']');
    Some(array)
}

/// The lines of `text` without their `\n`; no line after a final `\n`.
fn split_lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let any = !text.is_empty();
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    text.split(|&b| b == b'\n').filter(move |_| any)
}

/// JSON whitespace within a line.
fn is_line_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r')
}

const TWO_VALUES: &str = "the line holds more than one JSON value: each line holds one document";
const CLOSES_UNOPENED: &str = "a bracket closes that this line did not open";

/// Why `rest`, what follows a document on its line, should not be there.
fn after_the_end(rest: &[u8]) -> &'static str {
    let mut bytes = rest.iter().copied().skip_while(|&b| is_line_space(b));
    match bytes.next() {
        Some(b',') if bytes.all(is_line_space) => {
            "a comma after the document: lines are not separated by commas (one document a line)"
        }
        Some(b'}' | b']') => CLOSES_UNOPENED,
        Some(b) if b.is_ascii_alphanumeric() || b"{[\",-".contains(&b) => TWO_VALUES,
        _ => "unexpected text after the end of the document",
    }
}

/// The first line of `text` that is not one JSON document, read alone:
/// its error, naming it. (The checks of [`lines_as_array`] run over all
/// lines before any is parsed; this names the first line at fault.)
fn first_bad_line(text: &[u8]) -> Option<Error> {
    split_lines(text).enumerate().find_map(|(i, line)| {
        let parsed = match document_from_json_slice(line) {
            // (The parser's "line 1" is this line.)
            Err(Error::InvalidArgument(why)) => Some(why.replace(" at line 1 column ", " at column ")),
            _ => None,
        };
        let why = match (check_line(line), parsed) {
            // The parser's place inside the line says more ("key must be a
            // string at column 2"), but for a line that ends too soon or
            // goes on after its document, the scan says why.
            (Err(scan), Some(p)) if p.contains("EOF while parsing") || p.contains("trailing characters") => {
                scan.to_string()
            }
            (_, Some(p)) => p,
            (Err(scan), None) => scan.to_string(),
            (Ok(()), None) => return None,
        };
        Some(Error::invalid(format!("line {}: {why}", i + 1)))
    })
}

/// Why `line` is not one whole JSON value by its brackets and strings.
fn check_line(line: &[u8]) -> std::result::Result<(), &'static str> {
    let Some(last) = line.iter().rposition(|&b| !is_line_space(b)) else {
        return Err("the line is empty: each line holds one JSON document");
    };
    let line = &line[..=last];
    let mut depth = 0usize;
    let mut i = 0;
    while i < line.len() {
        match line[i] {
            b'"' => {
                i += 1;
                loop {
                    match line.get(i) {
                        None => {
                            return Err("a string runs on past the end of the line (a line break inside \
                                        a string is written \\n in JSON)")
                        }
                        Some(b'"') => break,
                        Some(b'\\') => i += 2,
                        Some(_) => i += 1,
                    }
                }
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1).ok_or(CLOSES_UNOPENED)?;
                if depth == 0 && i != last {
                    return Err(after_the_end(&line[i + 1..]));
                }
            }
            b',' if depth == 0 => return Err(after_the_end(&line[i..])),
            _ => {}
        }
        i += 1;
    }
    if depth > 0 {
        return Err("a bracket is still open at the end of the line: each line holds one whole document");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::json::documents_from_json_slice;

    /// What insert_lines says of `text` when the array is parsed.
    fn why(text: &str) -> String {
        match insert_lines(text.as_bytes(), documents_from_json_slice) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn one_document_a_line_makes_one_element_a_line() {
        let text = b"{\"a\":1}\n{\"b\":[1,{\"c\":\"}, {\"}]}\r\n  {\"s\":\"x\\\"y,\"}\n";
        assert_eq!(insert_lines(text, documents_from_json_slice).unwrap().len(), 3);
        assert_eq!(lines_as_array(b"").unwrap(), b"[]");
        assert_eq!(insert_lines(b"{}", documents_from_json_slice).unwrap().len(), 1);
    }

    #[test]
    fn a_line_that_is_not_one_value_is_named() {
        assert!(why("{\"a\":1}\n{\"text\":\"hello\nworld\"}").contains("line 2: a string runs on"));
        assert!(why("{\"a\":[1,\n2]}").contains("line 1: a bracket is still open"));
        assert!(why("{\"a\":1}\n1]}").contains("line 2: a bracket closes"));
        assert!(why("{\"a\":1},{\"b\":2}").contains("line 1: the line holds more than one"));
        assert!(why("{\"a\":1} {\"b\":2}").contains("line 1: the line holds more than one"));
        assert!(why("{\"a\":1}\n\n{\"b\":2}").contains("line 2: the line is empty"));
        assert!(why(" \t\r\n").contains("line 1: the line is empty"));
        // A backslash before the end of the line does not hide it.
        assert!(why("{\"a\":\"x\\").contains("line 1: a string runs on"));
        // What follows a document says what it is.
        assert!(why("{\"a\":1}]").contains("line 1: a bracket closes"));
        assert!(why("{\"a\":1}\u{c}").contains("line 1: unexpected text after the end"));
        assert!(why("{\"a\":1}\0").contains("line 1: unexpected text after the end"));
        assert!(why("{\"a\":1},").contains("line 1: a comma after the document"));
        assert!(why("{\"a\":1} , ").contains("line 1: a comma after the document"));
        assert!(why("1,2").contains("line 1: the line holds more than one"));
        // A line whose brackets are whole but whose JSON is not: the
        // array's parse error is replaced with the line's own.
        let e = why("{\"a\":1}\n{\"b\":}");
        assert!(e.ends_with("line 2: JSON document: expected value at column 6"), "{e}");
        // A syntax error inside a line is the parser's, with its column.
        assert!(why("{\"a\":1}\n{bad\n").ends_with("line 2: JSON document: key must be a string at column 2"));
        // The first bad line is named, whatever is wrong with it: line 1's
        // syntax before line 2's open bracket.
        assert!(
            why("{\"a\":tru}\n{\"b\":[1,\n2]}").starts_with("invalid argument: line 1: "),
            "{}",
            why("{\"a\":tru}\n{\"b\":[1,\n2]}")
        );
    }

    #[test]
    fn lines_are_split_on_line_feeds_only() {
        let lines: Vec<&[u8]> = split_lines(b"a\nb\r\n\nc").collect();
        assert_eq!(lines, [&b"a"[..], b"b\r", b"", b"c"]);
        assert_eq!(split_lines(b"a\n").count(), 1);
        assert_eq!(split_lines(b"").count(), 0);
        assert_eq!(split_lines(b"\n").count(), 1);
    }
}
