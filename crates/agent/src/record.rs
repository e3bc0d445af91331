//! `--record <file>`: one JSON line per request (method, timeout_nano, request in protobuf text
//! format), so tests can assert on what arrived. CopyFile data is summarised, not dumped.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use protobuf::MessageFull;

/// Appends request records to a file.
#[derive(Debug)]
pub struct Recorder {
    file: Mutex<File>,
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Recorder {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Recorder {
            file: Mutex::new(file),
        })
    }

    pub fn record<M: MessageFull>(&self, method: &str, timeout_nano: i64, req: &M) {
        let text = summarise(req);
        let line = format!(
            "{{\"method\":{},\"timeoutNano\":\"{timeout_nano}\",\"request\":{}}}\n",
            json_string(method),
            json_string(&text)
        );
        // A failed record must not fail the call; the test reading the file will notice.
        if let Ok(mut f) = self.file.lock() {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

fn summarise<M: MessageFull>(req: &M) -> String {
    let mut dynamic = req.clone();
    let descriptor = M::descriptor();
    if let Some(field) = descriptor
        .field_by_name("data")
        .filter(|_| descriptor.name() == "CopyFileRequest")
    {
        let len = field
            .get_singular(&dynamic)
            .map_or(0, |v| v.to_bytes().map_or(0, <[u8]>::len));
        field.set_singular_field(
            &mut dynamic,
            protobuf::reflect::ReflectValueBox::Bytes(Vec::new()),
        );
        return format!(
            "{} data_len: {len}",
            protobuf::text_format::print_to_string(&dynamic)
        );
    }
    protobuf::text_format::print_to_string(req)
}
