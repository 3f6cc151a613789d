//! A bare AMQP 0-9-1 publisher that writes the frames by hand, for what no well-behaved client
//! sends: a `message_id` that is not UTF-8, headers nested deeper than any client's stack would
//! let it write, a content header frame larger than the consumer's frame size. Enough of the protocol to log in with PLAIN, open a
//! channel, publish one message to the default exchange and close; no confirms (the broker
//! handles a connection's frames in order, so the message is queued before `Close-Ok`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const FRAME_METHOD: u8 = 1;
const FRAME_HEADER: u8 = 2;
const FRAME_BODY: u8 = 3;
const FRAME_END: u8 = 0xCE;

fn short_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(u8::try_from(bytes.len()).expect("a short string is at most 255 bytes"));
    out.extend_from_slice(bytes);
}

fn long_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u32::try_from(bytes.len()).expect("size").to_be_bytes());
    out.extend_from_slice(bytes);
}

fn frame(stream: &mut TcpStream, kind: u8, channel: u16, payload: &[u8]) {
    let mut out = vec![kind];
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&u32::try_from(payload.len()).expect("size").to_be_bytes());
    out.extend_from_slice(payload);
    out.push(FRAME_END);
    stream.write_all(&out).expect("write a frame");
}

fn method(stream: &mut TcpStream, channel: u16, class: u16, id: u16, arguments: &[u8]) {
    let mut payload = Vec::new();
    payload.extend_from_slice(&class.to_be_bytes());
    payload.extend_from_slice(&id.to_be_bytes());
    payload.extend_from_slice(arguments);
    frame(stream, FRAME_METHOD, channel, &payload);
}

/// Reads frames until a method frame of `class`.`id` arrives; returns its arguments.
fn expect_method(stream: &mut TcpStream, class: u16, id: u16) -> Vec<u8> {
    loop {
        let mut header = [0u8; 7];
        stream.read_exact(&mut header).expect("read a frame header");
        let size = u32::from_be_bytes([header[3], header[4], header[5], header[6]]) as usize;
        let mut payload = vec![0u8; size + 1];
        stream.read_exact(&mut payload).expect("read a frame");
        if header[0] != FRAME_METHOD {
            continue;
        }
        let got = (
            u16::from_be_bytes([payload[0], payload[1]]),
            u16::from_be_bytes([payload[2], payload[3]]),
        );
        assert!(
            got != (10, 50) || (class, id) == (10, 50),
            "the broker closed the connection: {}",
            String::from_utf8_lossy(&payload)
        );
        assert!(
            got != (20, 40) || (class, id) == (20, 40),
            "the broker closed the channel: {}",
            String::from_utf8_lossy(&payload)
        );
        if got == (class, id) {
            return payload[4..size].to_vec();
        }
    }
}

/// Publishes `body` to `queue` on the broker of `amqp_url` (`amqp://user:password@host:port/vhost`)
/// with `message_id` written as the given bytes, whatever they are.
pub fn publish_with_raw_message_id(amqp_url: &str, queue: &str, message_id: &[u8], body: &[u8]) {
    publish_raw(amqp_url, queue, message_id, None, body);
}

/// Publishes `body` to `queue` with `message_id` and `headers`, the encoded field table of the
/// message's headers (its 4-byte length first; see [`nested_arrays`] and [`wide_table`]).
pub fn publish_with_raw_headers(
    amqp_url: &str,
    queue: &str,
    message_id: &[u8],
    headers: &[u8],
    body: &[u8],
) {
    publish_raw(amqp_url, queue, message_id, Some(headers), body);
}

/// A header table whose one entry, `deep`, holds `depth` arrays, each the only value of the
/// one around it (5 bytes a level), written without recursion.
pub fn nested_arrays(depth: usize) -> Vec<u8> {
    let mut value = vec![b'V']; // the innermost value: void
    for _ in 0..depth {
        let mut array = vec![b'A'];
        array.extend_from_slice(&u32::try_from(value.len()).expect("size").to_be_bytes());
        array.extend_from_slice(&value);
        value = array;
    }
    let mut entries = Vec::new();
    short_string(&mut entries, b"deep");
    entries.extend_from_slice(&value);
    let mut table = u32::try_from(entries.len())
        .expect("size")
        .to_be_bytes()
        .to_vec();
    table.extend(entries);
    table
}

/// A header table of `count` ordinary headers (`x-header-00001`: a 10-byte long string).
pub fn wide_table(count: usize) -> Vec<u8> {
    let mut entries = Vec::new();
    for n in 0..count {
        short_string(&mut entries, format!("x-header-{n:05}").as_bytes());
        entries.push(b'S');
        long_string(&mut entries, format!("value{n:05}").as_bytes());
    }
    let mut table = u32::try_from(entries.len())
        .expect("size")
        .to_be_bytes()
        .to_vec();
    table.extend(entries);
    table
}

fn publish_raw(
    amqp_url: &str,
    queue: &str,
    message_id: &[u8],
    headers: Option<&[u8]>,
    body: &[u8],
) {
    let rest = amqp_url.strip_prefix("amqp://").expect("an amqp:// URL");
    let (credentials, rest) = rest.split_once('@').expect("user:password@");
    let (user, password) = credentials.split_once(':').expect("user:password");
    let (address, vhost) = rest.split_once('/').expect("host:port/vhost");
    let mut stream = TcpStream::connect(address).expect("connect to the broker");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
        .write_all(b"AMQP\x00\x00\x09\x01")
        .expect("protocol header");
    expect_method(&mut stream, 10, 10); // Connection.Start
    let mut start_ok = Vec::new();
    start_ok.extend_from_slice(&0u32.to_be_bytes()); // client properties: an empty table
    short_string(&mut start_ok, b"PLAIN");
    long_string(&mut start_ok, format!("\0{user}\0{password}").as_bytes());
    short_string(&mut start_ok, b"en_US");
    method(&mut stream, 0, 10, 11, &start_ok);
    let tune = expect_method(&mut stream, 10, 30);
    let mut tune_ok = tune[..6].to_vec(); // channel-max and frame-max as offered
    tune_ok.extend_from_slice(&0u16.to_be_bytes()); // no heartbeats
    method(&mut stream, 0, 10, 31, &tune_ok);
    let mut open = Vec::new();
    short_string(&mut open, vhost.as_bytes());
    short_string(&mut open, b"");
    open.push(0);
    method(&mut stream, 0, 10, 40, &open);
    expect_method(&mut stream, 10, 41);
    let mut channel_open = Vec::new();
    short_string(&mut channel_open, b"");
    method(&mut stream, 1, 20, 10, &channel_open);
    expect_method(&mut stream, 20, 11);
    let mut publish = 0u16.to_be_bytes().to_vec(); // reserved
    short_string(&mut publish, b""); // the default exchange
    short_string(&mut publish, queue.as_bytes());
    publish.push(0); // neither mandatory nor immediate
    method(&mut stream, 1, 60, 40, &publish);
    let mut header = Vec::new();
    header.extend_from_slice(&60u16.to_be_bytes());
    header.extend_from_slice(&0u16.to_be_bytes()); // weight
    header.extend_from_slice(&(body.len() as u64).to_be_bytes());
    // Property flags: headers (bit 13), delivery-mode (bit 12) and message-id (bit 7).
    let headers_flag = if headers.is_some() { 1u16 << 13 } else { 0 };
    header.extend_from_slice(&(headers_flag | (1u16 << 12) | (1u16 << 7)).to_be_bytes());
    if let Some(headers) = headers {
        header.extend_from_slice(headers);
    }
    header.push(2); // persistent
    short_string(&mut header, message_id);
    frame(&mut stream, FRAME_HEADER, 1, &header);
    frame(&mut stream, FRAME_BODY, 1, body);
    let mut close = 200u16.to_be_bytes().to_vec();
    short_string(&mut close, b"bye");
    close.extend_from_slice(&[0, 0, 0, 0]);
    method(&mut stream, 0, 10, 50, &close);
    expect_method(&mut stream, 10, 51);
}
