//! Input digests: blake3 over a length-prefixed, typed stream of exactly what an output shows.

use super::render::RENDERER_VERSION;

/// Builds one output's input digest. Every value is written with a type tag and strings with
/// their length, so two different inputs cannot stream to the same bytes.
pub(crate) struct Digest(blake3::Hasher);

impl Digest {
    /// Starts a digest for `domain` (the output's file name), under the renderer version.
    pub(crate) fn new(domain: &str) -> Self {
        let mut d = Digest(blake3::Hasher::new());
        d.u64(RENDERER_VERSION);
        d.str(domain);
        d
    }

    pub(crate) fn str(&mut self, s: &str) -> &mut Self {
        self.0.update(b"s");
        self.0.update(&(s.len() as u64).to_le_bytes());
        self.0.update(s.as_bytes());
        self
    }

    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.0.update(b"u");
        self.0.update(&v.to_le_bytes());
        self
    }

    pub(crate) fn f64(&mut self, v: f64) -> &mut Self {
        self.0.update(b"f");
        self.0.update(&v.to_bits().to_le_bytes());
        self
    }

    pub(crate) fn opt_f64(&mut self, v: Option<f64>) -> &mut Self {
        match v {
            Some(v) => self.f64(v),
            None => {
                self.0.update(b"n");
                self
            }
        }
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.update(b"b");
        self.0.update(&(b.len() as u64).to_le_bytes());
        self.0.update(b);
        self
    }

    /// The digest as lowercase hex.
    pub(crate) fn finish(&self) -> String {
        self.0.finalize().to_hex().to_string()
    }
}

/// The blake3 of a file's content, as lowercase hex: what the state records per output.
pub(crate) fn content_digest(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}
