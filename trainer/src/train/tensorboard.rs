//! TensorBoard event files (`events.out.tfevents.*`) with scalar summaries, written without a
//! TensorFlow or protobuf dependency: TFRecord framing (length, masked CRC-32C of the length,
//! the record, masked CRC-32C of the record) around hand-encoded `Event` protos with a
//! `Summary { Value { tag, simple_value } }`. That subset is all TensorBoard's scalar
//! dashboard reads.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// An open event file.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Creates a new event file in `dir` (a new file per invocation, as TensorBoard expects
    /// of restarted runs; it merges the files of a directory).
    pub fn create(dir: &Path) -> std::io::Result<EventWriter> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty() && !h.contains('/'))
            .unwrap_or_else(|| "flow-train".to_owned());
        let path = dir.join(format!(
            "events.out.tfevents.{}.{host}.{}",
            now.as_secs(),
            std::process::id()
        ));
        let mut w = EventWriter {
            out: BufWriter::new(File::create(&path)?),
            path,
        };
        let mut ev = Vec::new();
        put_f64(&mut ev, 1, wall_time());
        put_bytes(&mut ev, 3, b"brain.Event:2");
        w.record(&ev)?;
        w.out.flush()?;
        Ok(w)
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one event with `scalars` (tag, value) at `step`, and flushes.
    pub fn scalars(&mut self, step: i64, scalars: &[(String, f64)]) -> std::io::Result<()> {
        let mut summary = Vec::new();
        for (tag, v) in scalars {
            if !v.is_finite() {
                continue;
            }
            let mut value = Vec::new();
            put_bytes(&mut value, 1, tag.as_bytes());
            value.push((2 << 3) | 5);
            value.extend_from_slice(&(*v as f32).to_le_bytes());
            put_bytes(&mut summary, 1, &value);
        }
        let mut ev = Vec::new();
        put_f64(&mut ev, 1, wall_time());
        ev.push(2 << 3);
        put_varint(&mut ev, step as u64);
        put_bytes(&mut ev, 5, &summary);
        self.record(&ev)?;
        self.out.flush()
    }

    fn record(&mut self, data: &[u8]) -> std::io::Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        self.out.write_all(&len)?;
        self.out.write_all(&masked_crc(&len).to_le_bytes())?;
        self.out.write_all(data)?;
        self.out.write_all(&masked_crc(data).to_le_bytes())
    }
}

fn wall_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, field: u8, b: &[u8]) {
    out.push((field << 3) | 2);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_f64(out: &mut Vec<u8>, field: u8, v: f64) {
    out.push((field << 3) | 1);
    out.extend_from_slice(&v.to_le_bytes());
}

/// CRC-32C (Castagnoli), bitwise: event files are small, so no table is needed.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// TFRecord's masked CRC.
pub fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c(data);
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// Reads back the scalars of an event file as (step, tag, value), checking every CRC (used by
/// tests; TensorBoard itself is the real reader).
pub fn read_scalars(path: &Path) -> Result<Vec<(i64, String, f32)>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let take = |pos: usize, n: usize| {
            bytes
                .get(pos..pos + n)
                .ok_or_else(|| "truncated record".to_owned())
        };
        let len_b = take(pos, 8)?;
        let len = u64::from_le_bytes(len_b.try_into().map_err(|_| "bad length")?) as usize;
        let crc = u32::from_le_bytes(take(pos + 8, 4)?.try_into().map_err(|_| "bad crc")?);
        if crc != masked_crc(len_b) {
            return Err(format!("length CRC mismatch at byte {pos}"));
        }
        let data = take(pos + 12, len)?;
        let crc = u32::from_le_bytes(take(pos + 12 + len, 4)?.try_into().map_err(|_| "bad crc")?);
        if crc != masked_crc(data) {
            return Err(format!("data CRC mismatch at byte {pos}"));
        }
        parse_event(data, &mut out)?;
        pos += 16 + len;
    }
    Ok(out)
}

/// One protobuf field: (number, wire type, length-delimited or fixed payload, varint value).
type Field<'a> = (u64, u8, &'a [u8], u64);

/// The fields of a protobuf message, for the subset written here.
fn fields(mut b: &[u8]) -> Result<Vec<Field<'_>>, String> {
    let mut out = Vec::new();
    let varint = |b: &mut &[u8]| -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first().ok_or("truncated varint")?;
            *b = rest;
            v |= ((byte & 0x7f) as u64) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    };
    while !b.is_empty() {
        let key = varint(&mut b)?;
        let (field, wire) = (key >> 3, (key & 7) as u8);
        match wire {
            0 => {
                let v = varint(&mut b)?;
                out.push((field, wire, &b[..0], v));
            }
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                let (p, rest) = b.split_at_checked(n).ok_or("truncated fixed")?;
                out.push((field, wire, p, 0));
                b = rest;
            }
            2 => {
                let n = varint(&mut b)? as usize;
                let (p, rest) = b.split_at_checked(n).ok_or("truncated bytes")?;
                out.push((field, wire, p, 0));
                b = rest;
            }
            w => return Err(format!("unexpected wire type {w}")),
        }
    }
    Ok(out)
}

fn parse_event(data: &[u8], out: &mut Vec<(i64, String, f32)>) -> Result<(), String> {
    let ev = fields(data)?;
    let step = ev.iter().find(|f| f.0 == 2).map_or(0, |f| f.3 as i64);
    for (_, _, summary, _) in ev.iter().filter(|f| f.0 == 5) {
        for (_, _, value, _) in fields(summary)?.iter().filter(|f| f.0 == 1) {
            let vf = fields(value)?;
            let tag = vf
                .iter()
                .find(|f| f.0 == 1)
                .map(|f| String::from_utf8_lossy(f.2).into_owned())
                .unwrap_or_default();
            if let Some(v) = vf.iter().find(|f| f.0 == 2 && f.1 == 5) {
                let x = f32::from_le_bytes(v.2.try_into().map_err(|_| "bad float")?);
                out.push((step, tag, x));
            }
        }
    }
    Ok(())
}
