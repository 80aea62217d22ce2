//! Serde types of COCO annotation files and COCO results files, read with errors that name
//! the file, the JSON line and column, and what was expected there.
//!
//! Only the fields that training and evaluation use are typed; anything else (`info`,
//! `licenses`, extra keys Roboflow adds) is accepted and ignored, as pycocotools does.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::mask::{MaskError, Rle};

/// A COCO annotation file (`_annotations.coco.json`, `instances_val2017.json`, ...).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct AnnotationFile {
    /// The images, with the size that masks are rasterised at.
    pub images: Vec<Image>,
    /// The categories; their ids are what annotations and detections refer to.
    #[serde(default)]
    pub categories: Vec<Category>,
    /// The ground-truth objects.
    #[serde(default)]
    pub annotations: Vec<Annotation>,
}

/// One image entry of an annotation file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Image {
    /// Id that annotations and detections refer to.
    pub id: i64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// File name relative to the split's directory (absent in some evaluation-only files).
    #[serde(default)]
    pub file_name: String,
}

/// One category entry of an annotation file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Category {
    /// Id that annotations and detections refer to.
    pub id: i64,
    /// Human-readable class name.
    #[serde(default)]
    pub name: String,
    /// Parent name; RF-DETR keeps only categories whose supercategory is not "none", so its
    /// absence is kept distinguishable from an empty string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supercategory: Option<String>,
}

/// One ground-truth object of an annotation file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Annotation {
    /// Annotation id. pycocotools treats id 0 as "no match" (see the evaluator).
    pub id: i64,
    /// The image it lies in.
    pub image_id: i64,
    /// Its category.
    pub category_id: i64,
    /// Box `[x, y, w, h]` in pixels; required for bbox evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bbox: Option<Vec<f64>>,
    /// Area in pixels, which decides the small/medium/large range; required by RF-DETR's
    /// loader and by pycocotools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<f64>,
    /// 1 for a crowd region: never a positive, and detections on it are ignored.
    #[serde(default, deserialize_with = "crowd_flag")]
    pub iscrowd: u8,
    /// Mask as polygons or RLE; required for segm evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segmentation: Option<Segmentation>,
}

/// One detection of a results file, as COCO's results format and RF-DETR write them.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Detection {
    /// The image it was found in; must be an image of the annotation file.
    pub image_id: i64,
    /// Predicted category; unknown categories are dropped by the evaluator.
    pub category_id: i64,
    /// Confidence; detections are ranked by it.
    pub score: f64,
    /// Box `[x, y, w, h]` (RF-DETR writes it for bbox evaluation only). An empty list counts
    /// as absent, as in pycocotools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bbox: Option<Vec<f64>>,
    /// Mask (RF-DETR writes compressed RLE for segm evaluation only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segmentation: Option<Segmentation>,
}

/// A COCO mask: a list of polygons, or run lengths with the mask size.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Segmentation {
    /// Polygons `[x0, y0, x1, y1, ...]` whose union is the object (several for occlusions).
    Polygons(Vec<Vec<f64>>),
    /// Run-length encoding of a `size = [height, width]` mask.
    Rle(RleJson),
}

/// An RLE mask as stored in JSON.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct RleJson {
    /// `[height, width]`.
    pub size: [u32; 2],
    /// Compressed string (pycocotools' `counts`) or the plain run lengths.
    pub counts: RleCounts,
}

/// The two spellings of RLE counts in COCO files.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RleCounts {
    /// pycocotools' compressed string (what `mask.encode` produces and results files hold).
    Compressed(String),
    /// Plain run lengths (the "uncompressed RLE" of crowd annotations).
    Runs(Vec<u32>),
}

impl RleJson {
    /// The mask as an [`Rle`], checked to cover exactly `size` pixels.
    pub fn to_rle(&self) -> Result<Rle, MaskError> {
        let [height, width] = self.size;
        let rle = match &self.counts {
            RleCounts::Compressed(s) => Rle::from_compressed(s, height, width)?,
            RleCounts::Runs(runs) => Rle {
                height,
                width,
                counts: runs.clone(),
            },
        };
        rle.validate()?;
        Ok(rle)
    }

    /// The compressed form of `rle`, as pycocotools writes results.
    pub fn from_rle(rle: &Rle) -> RleJson {
        RleJson {
            size: [rle.height, rle.width],
            counts: RleCounts::Compressed(rle.to_compressed()),
        }
    }
}

/// Why a COCO file could not be read.
#[derive(Debug, Error)]
pub enum FormatError {
    /// The file could not be read at all.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not the expected JSON (syntax, or a field of the wrong type or missing).
    #[error("{}:{line}:{column}: {message} (expected {expected})", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// serde_json's description, e.g. "missing field `image_id`".
        message: String,
        /// What the file should hold.
        expected: &'static str,
    },
}

impl FormatError {
    fn json(path: &Path, err: serde_json::Error, expected: &'static str) -> FormatError {
        // serde_json appends " at line L column C"; the position is reported separately.
        let mut message = err.to_string();
        if let Some(cut) = message.rfind(" at line ") {
            message.truncate(cut);
        }
        FormatError::Json {
            path: path.to_path_buf(),
            line: err.line(),
            column: err.column(),
            message,
            expected,
        }
    }
}

const ANNOTATIONS_EXPECTED: &str = "a COCO annotation object with \"images\", \"categories\" and \
                                    \"annotations\"";
const RESULTS_EXPECTED: &str = "a COCO results list of {\"image_id\", \"category_id\", \"score\", \
                                \"bbox\" and/or \"segmentation\"}";

impl AnnotationFile {
    /// Reads and parses an annotation file.
    pub fn read(path: &Path) -> Result<AnnotationFile, FormatError> {
        let bytes = read_bytes(path)?;
        AnnotationFile::parse(&bytes, path)
    }

    /// Parses annotation JSON; `path` is only used in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<AnnotationFile, FormatError> {
        serde_json::from_slice(bytes).map_err(|e| FormatError::json(path, e, ANNOTATIONS_EXPECTED))
    }
}

/// Reads a results file: a JSON list of detections.
pub fn read_results(path: &Path) -> Result<Vec<Detection>, FormatError> {
    let bytes = read_bytes(path)?;
    parse_results(&bytes, path)
}

/// Parses results JSON; `path` is only used in errors.
pub fn parse_results(bytes: &[u8], path: &Path) -> Result<Vec<Detection>, FormatError> {
    serde_json::from_slice(bytes).map_err(|e| FormatError::json(path, e, RESULTS_EXPECTED))
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, FormatError> {
    std::fs::read(path).map_err(|source| FormatError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// `iscrowd` as 0/1 from an integer or a boolean (both occur in the wild).
fn crowd_flag<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    struct Flag;
    impl Visitor<'_> for Flag {
        type Value = u8;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("0, 1 or a boolean")
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<u8, E> {
            Ok(u8::from(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u8, E> {
            Ok(u8::from(v != 0))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u8, E> {
            Ok(u8::from(v != 0))
        }
    }
    d.deserialize_any(Flag)
}

// Hand-written so that a malformed mask says what a mask may be, instead of serde's "did not
// match any variant of untagged enum".
impl<'de> Deserialize<'de> for Segmentation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Segmentation, D::Error> {
        struct SegVisitor;
        impl<'de> Visitor<'de> for SegVisitor {
            type Value = Segmentation;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a segmentation: a list of polygons [[x0, y0, x1, y1, ...], ...] or an RLE \
                     object {\"size\": [height, width], \"counts\": ...}",
                )
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Segmentation, A::Error> {
                let polys =
                    Vec::<Vec<f64>>::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(Segmentation::Polygons(polys))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Segmentation, A::Error> {
                let rle = RleJson::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Segmentation::Rle(rle))
            }
        }
        d.deserialize_any(SegVisitor)
    }
}

impl<'de> Deserialize<'de> for RleCounts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RleCounts, D::Error> {
        struct CountsVisitor;
        impl<'de> Visitor<'de> for CountsVisitor {
            type Value = RleCounts;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("RLE counts: a compressed string or a list of run lengths")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RleCounts, E> {
                Ok(RleCounts::Compressed(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<RleCounts, E> {
                Ok(RleCounts::Compressed(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RleCounts, A::Error> {
                let runs = Vec::<u32>::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(RleCounts::Runs(runs))
            }
        }
        d.deserialize_any(CountsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> &'static Path {
        Path::new("gt.json")
    }

    #[test]
    fn reads_polygons_compressed_and_uncompressed_rle() {
        let json = br#"{"images":[{"id":1,"width":4,"height":3,"file_name":"a.jpg"}],
            "categories":[{"id":1,"name":"x","supercategory":"none"}],
            "annotations":[
              {"id":1,"image_id":1,"category_id":1,"bbox":[0,0,2,2],"area":4,"iscrowd":0,
               "segmentation":[[0,0,2,0,2,2]]},
              {"id":2,"image_id":1,"category_id":1,"area":3,"iscrowd":1,
               "segmentation":{"size":[3,4],"counts":[1,3,8]}},
              {"id":3,"image_id":1,"category_id":1,"area":3,"iscrowd":true,
               "segmentation":{"size":[3,4],"counts":"138"}}]}"#;
        let file = AnnotationFile::parse(json, path()).expect("valid file");
        let anns = &file.annotations;
        assert!(
            matches!(&anns[0].segmentation, Some(Segmentation::Polygons(p)) if p[0].len() == 6)
        );
        assert_eq!(anns[1].iscrowd, 1);
        assert_eq!(anns[2].iscrowd, 1);
        let Some(Segmentation::Rle(runs)) = &anns[1].segmentation else {
            panic!("rle")
        };
        let Some(Segmentation::Rle(text)) = &anns[2].segmentation else {
            panic!("rle")
        };
        assert_eq!(runs.to_rle().expect("valid").counts, vec![1, 3, 8]);
        assert_eq!(text.to_rle().expect("valid").counts, vec![1, 3, 8]);
        assert_eq!(file.categories[0].supercategory.as_deref(), Some("none"));
    }

    #[test]
    fn errors_name_file_position_and_expectation() {
        let json = b"{\"images\":[{\"id\":1,\"width\":4}],\n \"annotations\":[]}";
        let err = AnnotationFile::parse(json, path()).expect_err("height is missing");
        let text = err.to_string();
        assert!(text.starts_with("gt.json:1:"), "{text}");
        assert!(text.contains("missing field `height`"), "{text}");
        assert!(text.contains("expected a COCO annotation object"), "{text}");

        let json = b"[{\"image_id\":1,\"category_id\":1,\"score\":0.5,\n\"segmentation\":7}]";
        let err = parse_results(json, Path::new("pred.json")).expect_err("bad mask");
        let FormatError::Json { line, message, .. } = &err else {
            panic!("json error")
        };
        assert_eq!(*line, 2);
        assert!(message.contains("list of polygons"), "{message}");
    }

    #[test]
    fn rle_with_wrong_size_is_refused() {
        let rle = RleJson {
            size: [2, 2],
            counts: RleCounts::Runs(vec![1, 1]),
        };
        assert!(matches!(
            rle.to_rle(),
            Err(MaskError::WrongLength {
                sum: 2,
                pixels: 4,
                ..
            })
        ));
    }

    #[test]
    fn results_round_trip_through_json() {
        let det = Detection {
            image_id: 3,
            category_id: 2,
            score: 0.25,
            bbox: None,
            segmentation: Some(Segmentation::Rle(RleJson::from_rle(&Rle::empty(2, 3)))),
        };
        let json = serde_json::to_vec(std::slice::from_ref(&det)).expect("serialise");
        assert_eq!(parse_results(&json, path()).expect("parse"), vec![det]);
    }
}
