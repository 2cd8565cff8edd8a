//! One test per rule the wire decoders enforce (`docs/protocol.md` §3 and §8): each breach is
//! refused with the error code that names it, and frames, rows and bundle frames hold exactly
//! one value, nothing after it.

use weft_core::bundle;
use weft_core::sync::{
    decode_frame, decode_rows, encode_frame, encode_rows, Ack, BlobData, BlobWant, Changes,
    DigestMessage, ErrorCode, ErrorMessage, FrameDecoder, Hello, Message, RangePart, RangeSplit,
    Reconcile, Role,
};
use weft_core::{Change, Cursor, Incarnation, SiteId, Value};

fn code_of(frame: &[u8]) -> ErrorCode {
    decode_frame(frame).expect_err("refused").code
}

fn change(key: i64) -> Change {
    Change {
        table: "t".into(),
        pk: vec![Value::Integer(key)],
        column: Some("v".into()),
        value: Value::Text(format!("value {key}")),
        clock: 1 << 20,
        site: SiteId([3; 16]),
        cl: 1,
        db_version: 7,
    }
}

fn batch(rows: Vec<u8>, count: u32) -> Message {
    Message::Changes(Changes {
        from: Cursor::since(0),
        to: Cursor::since(1),
        done: true,
        count,
        checksum: blake3::hash(&rows).as_bytes().to_vec(),
        rows,
    })
}

fn hello(database: String) -> Message {
    Message::Hello(Hello {
        protocol: weft_core::sync::PROTOCOL_VERSION,
        site: SiteId([1; 16]),
        incarnation: Incarnation([2; 16]),
        role: Role::Client,
        database,
        db_version: 0,
        resume: vec![],
        reconcile: false,
    })
}

#[test]
fn a_frame_with_bytes_after_its_message_is_refused_as_trailing_bytes() {
    let mut frame = encode_frame(&Message::Ack(Ack {
        to: Cursor::since(4),
        resend: false,
    }));
    assert!(decode_frame(&frame).is_ok());
    frame.push(0xc0);
    assert_eq!(code_of(&frame), ErrorCode::TrailingBytes);
}

#[test]
fn rows_with_bytes_after_them_are_refused_as_trailing_bytes() {
    let mut rows = encode_rows(&[change(1), change(2)]);
    assert_eq!(decode_rows(&rows, 10).unwrap().len(), 2);
    rows.extend_from_slice(&[0x90]);
    assert_eq!(
        decode_rows(&rows, 10).unwrap_err().code,
        ErrorCode::TrailingBytes
    );
}

#[test]
fn a_bundle_frame_with_bytes_after_its_changes_is_refused() {
    let mut frame = bundle::encode_changes_frame(&[change(1)]).unwrap();
    assert_eq!(
        bundle::decode_changes_frame(&frame).unwrap(),
        vec![change(1)]
    );
    frame.push(0xc0);
    // A whole bundle around that frame, its checksum right: refused all the same.
    let mut file = b"WEFTBNDL\x01".to_vec();
    file.extend_from_slice(&(frame.len() as u32).to_be_bytes());
    file.extend_from_slice(&frame);
    file.extend_from_slice(&0u32.to_be_bytes());
    file.extend_from_slice(&1u64.to_be_bytes());
    let hash = blake3::hash(&file);
    file.extend_from_slice(hash.as_bytes());
    let error = bundle::verify(file.as_slice(), 1 << 20).unwrap_err();
    assert!(
        matches!(&error, weft_core::Error::InvalidBundle(m) if m.contains("after the end")),
        "{error}"
    );
}

#[test]
fn bytes_that_are_not_a_message_are_refused_as_undecodable() {
    assert_eq!(code_of(b"\xc1garbage"), ErrorCode::UndecodableFrame);
    // A known type with a field of the wrong shape.
    let map = rmpv::Value::Map(vec![
        ("type".into(), "ack".into()),
        ("to".into(), "not a cursor".into()),
        ("resend".into(), false.into()),
    ]);
    let mut frame = Vec::new();
    rmpv::encode::write_value(&mut frame, &map).unwrap();
    assert_eq!(code_of(&frame), ErrorCode::UndecodableFrame);
    // Rows that are not rows (three lists where the form has four).
    assert_eq!(
        decode_rows(b"\x93\x01\x02\x03", 10).unwrap_err().code,
        ErrorCode::UndecodableFrame
    );
}

#[test]
fn a_message_type_this_version_lacks_is_refused_as_unknown() {
    let map = rmpv::Value::Map(vec![
        ("type".into(), "teleport".into()),
        ("to".into(), 3.into()),
    ]);
    let mut frame = Vec::new();
    rmpv::encode::write_value(&mut frame, &map).unwrap();
    let error = decode_frame(&frame).unwrap_err();
    assert_eq!(error.code, ErrorCode::UnknownMessageType);
    assert!(error.message.contains("teleport"), "{}", error.message);
}

#[test]
fn texts_and_lists_over_their_limits_are_refused_as_too_long() {
    assert!(decode_frame(&encode_frame(&hello("a".repeat(4096)))).is_ok());
    assert_eq!(
        code_of(&encode_frame(&hello("a".repeat(4097)))),
        ErrorCode::FieldTooLong
    );
    let chunk = Message::BlobData(BlobData {
        hash: vec![1; 32],
        offset: 0,
        size: 1 << 30,
        bytes: vec![0; weft_core::blobs::BLOB_CHUNK_BYTES + 1],
    });
    assert_eq!(code_of(&encode_frame(&chunk)), ErrorCode::FieldTooLong);
}

#[test]
fn hashes_checksums_and_digests_of_the_wrong_length_are_refused_as_wrong_length() {
    let mut short_checksum = batch(encode_rows(&[]), 0);
    if let Message::Changes(changes) = &mut short_checksum {
        changes.checksum.pop();
    }
    let digest = Message::Digest(DigestMessage {
        db_version: 1,
        state_hash: vec![0; 33],
        reply: false,
        fetching: false,
    });
    let want = Message::BlobWant(BlobWant {
        hash: vec![0; 31],
        offset: 0,
    });
    for message in [short_checksum, digest, want] {
        assert_eq!(
            code_of(&encode_frame(&message)),
            ErrorCode::WrongLength,
            "{message:?}"
        );
    }
}

#[test]
fn a_batch_whose_count_differs_from_its_rows_is_refused_as_count_mismatch() {
    let decoder = FrameDecoder::new(100);
    let rows = encode_rows(&[change(1), change(2)]);
    let right = decoder.decode(&encode_frame(&batch(rows.clone(), 2)));
    assert_eq!(right.error(), None);
    assert_eq!(right.changes().map(<[Change]>::len), Some(2));
    let wrong = decoder.decode(&encode_frame(&batch(rows, 3)));
    assert_eq!(wrong.error().unwrap().code, ErrorCode::CountMismatch);
}

#[test]
fn a_batch_whose_rows_do_not_match_its_checksum_is_refused_as_checksum_mismatch() {
    let mut message = batch(encode_rows(&[change(1)]), 1);
    if let Message::Changes(changes) = &mut message {
        changes.checksum[0] ^= 1;
    }
    let decoded = FrameDecoder::new(100).decode(&encode_frame(&message));
    assert_eq!(decoded.error().unwrap().code, ErrorCode::ChecksumMismatch);
}

#[test]
fn rows_naming_a_table_column_or_site_they_lack_are_refused_as_dangling() {
    // [tables, columns, sites, rows]: one row of table #1, of which the batch has none.
    let wire = rmpv::Value::Array(vec![
        rmpv::Value::Array(vec!["t".into()]),
        rmpv::Value::Array(vec![]),
        rmpv::Value::Array(vec![rmpv::Value::Binary(vec![1; 16])]),
        rmpv::Value::Array(vec![rmpv::Value::Array(vec![
            1.into(),
            rmpv::Value::Array(vec![]),
            rmpv::Value::Array(vec![]),
        ])]),
    ]);
    let mut rows = Vec::new();
    rmpv::encode::write_value(&mut rows, &wire).unwrap();
    assert_eq!(
        decode_rows(&rows, 10).unwrap_err().code,
        ErrorCode::DanglingIndex
    );
}

#[test]
fn a_chunk_past_its_blobs_end_is_refused_as_out_of_range() {
    let chunk = Message::BlobData(BlobData {
        hash: vec![1; 32],
        offset: 10,
        size: 12,
        bytes: vec![0; 3],
    });
    assert_eq!(code_of(&encode_frame(&chunk)), ErrorCode::OutOfRange);
}

#[test]
fn a_round_part_that_is_neither_summary_nor_rows_is_refused_as_malformed() {
    let round = Message::Reconcile(Reconcile {
        round: 3,
        rows: None,
        digest: None,
        ranges: vec![RangeSplit(0, 9, vec![RangePart(0, None, None)])],
        want: vec![],
        done: false,
        fallback: false,
    });
    assert_eq!(code_of(&encode_frame(&round)), ErrorCode::MalformedRound);
}

#[test]
fn a_frame_over_the_size_limit_is_refused_as_too_large() {
    let frame = vec![0u8; weft_core::sync::FRAME_BYTES_MAX + 1];
    assert_eq!(code_of(&frame), ErrorCode::TooLarge);
}

#[test]
fn an_error_code_from_a_newer_peer_decodes_as_unrecognized() {
    let map = rmpv::Value::Map(vec![
        ("type".into(), "error".into()),
        ("code".into(), "from_the_future".into()),
        ("message".into(), "hello from v9".into()),
    ]);
    let mut frame = Vec::new();
    rmpv::encode::write_value(&mut frame, &map).unwrap();
    assert_eq!(
        decode_frame(&frame).unwrap(),
        Message::Error(ErrorMessage {
            code: ErrorCode::Unrecognized,
            message: "hello from v9".into(),
        })
    );
}

#[test]
fn every_error_code_travels_as_its_name() {
    use ErrorCode::*;
    for code in [
        UnsupportedProtocol,
        BadFrame,
        TooLarge,
        ChecksumMismatch,
        UnexpectedMessage,
        WrongDatabase,
        WrongRole,
        SameSite,
        ApplyFailed,
        Timeout,
        Internal,
        UndecodableFrame,
        UnknownMessageType,
        TrailingBytes,
        FieldTooLong,
        WrongLength,
        CountMismatch,
        DanglingIndex,
        OutOfRange,
        TooManyWants,
        MalformedRound,
    ] {
        let frame = encode_frame(&Message::Error(ErrorMessage {
            code,
            message: String::new(),
        }));
        let generic = rmpv::decode::read_value(&mut frame.as_slice()).unwrap();
        let sent = generic.as_map().unwrap().iter().find_map(|(k, v)| {
            (k.as_str() == Some("code")).then(|| v.as_str().unwrap().to_owned())
        });
        assert_eq!(sent.as_deref(), Some(code.as_str()));
        assert_eq!(code.to_string(), code.as_str());
        assert!(matches!(decode_frame(&frame), Ok(Message::Error(e)) if e.code == code));
    }
}

/// The hexdump in a fenced block of `docs/protocol.md` that starts with `first_line`.
fn hexdump_in_protocol_md(first_line: &str) -> Vec<u8> {
    let doc = include_str!("../../docs/protocol.md");
    let start = doc.find(first_line).expect("the example is in protocol.md");
    doc[start..]
        .lines()
        .take_while(|line| !line.starts_with("```"))
        .flat_map(|line| {
            // "00000010  74 6f ... 11   |tocol..site.....|": the bytes between offset and text.
            let bytes = line.get(10..).unwrap_or("");
            let bytes = bytes.split("  |").next().unwrap_or("");
            bytes
                .split_whitespace()
                .map(|byte| u8::from_str_radix(byte, 16).expect("a hex byte"))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_hello_example_of_protocol_md_is_what_the_encoder_writes() {
    let hello = Message::Hello(Hello {
        protocol: weft_core::sync::PROTOCOL_VERSION,
        site: SiteId([0x11; 16]),
        incarnation: Incarnation([0x22; 16]),
        role: Role::Client,
        database: "notes".into(),
        db_version: 4,
        resume: vec![weft_core::sync::Resume {
            site: SiteId([0x33; 16]),
            incarnation: Incarnation([0x44; 16]),
            cursor: Cursor::since(42),
        }],
        reconcile: false,
    });
    let documented = hexdump_in_protocol_md("00000000  88 a4 74 79 70 65 a5 68 65 6c 6c 6f");
    assert_eq!(documented.len(), 201, "the page says 201 bytes");
    assert_eq!(encode_frame(&hello), documented);
}
