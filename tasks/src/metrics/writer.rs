//! The versioned metrics file: [`RunMetrics`] as JSON, written by hand (flow-tasks has no JSON
//! serializer). Numbers are always finite (parsing turns NaN/Infinity into problems); a missing
//! value is `null`. Shape, version 1:
//!
//! ```text
//! {"version":1,"format":"log.txt"|"metrics.csv"|null,
//!  "best":{"epoch":1,"mask_map":0.25,"bbox_map":0.31|null,"track":"regular"|"ema"}|null,
//!  "epochs":[{"epoch":0,"train_loss":…,"train_lr":…,"test_loss":…,"ema_test_loss":…,
//!             "losses":{"name":…},"bbox":[12 × number|null]|null,"segm":…,"ema_bbox":…,"ema_segm":…}],
//!  "problems":[{"line":3|null,"what":"…"}]}
//! ```

use std::fmt::Write;

use super::model::{CocoSummary, Format, RunMetrics, Track};

/// Version of the metrics file's shape; bump it when the shape changes.
pub const METRICS_FILE_VERSION: u32 = 1;

impl RunMetrics {
    /// The versioned metrics file's text (one line of JSON).
    pub fn to_json(&self) -> String {
        let mut o = String::new();
        let _ = write!(o, "{{\"version\":{METRICS_FILE_VERSION},\"format\":");
        o.push_str(match self.format {
            Format::LogTxt => "\"log.txt\"",
            Format::MetricsCsv => "\"metrics.csv\"",
            Format::None => "null",
        });
        o.push_str(",\"best\":");
        match &self.best {
            Some(b) => {
                let _ = write!(o, "{{\"epoch\":{},\"mask_map\":", b.epoch);
                num(&mut o, Some(b.mask_map));
                o.push_str(",\"bbox_map\":");
                num(&mut o, b.bbox_map);
                o.push_str(match b.track {
                    Track::Regular => ",\"track\":\"regular\"}",
                    Track::Ema => ",\"track\":\"ema\"}",
                });
            }
            None => o.push_str("null"),
        }
        o.push_str(",\"epochs\":[");
        for (i, e) in self.epochs.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            let _ = write!(o, "{{\"epoch\":{}", e.epoch);
            for (k, v) in [
                ("train_loss", e.train_loss),
                ("train_lr", e.train_lr),
                ("test_loss", e.test_loss),
                ("ema_test_loss", e.ema_test_loss),
            ] {
                let _ = write!(o, ",\"{k}\":");
                num(&mut o, v);
            }
            o.push_str(",\"losses\":{");
            for (j, (k, v)) in e.losses.iter().enumerate() {
                if j > 0 {
                    o.push(',');
                }
                string(&mut o, k);
                o.push(':');
                num(&mut o, Some(*v));
            }
            o.push('}');
            for (k, s) in [
                ("bbox", &e.bbox),
                ("segm", &e.segm),
                ("ema_bbox", &e.ema_bbox),
                ("ema_segm", &e.ema_segm),
            ] {
                let _ = write!(o, ",\"{k}\":");
                coco(&mut o, s.as_ref());
            }
            o.push('}');
        }
        o.push_str("],\"problems\":[");
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            o.push_str("{\"line\":");
            match p.line {
                Some(l) => {
                    let _ = write!(o, "{l}");
                }
                None => o.push_str("null"),
            }
            o.push_str(",\"what\":");
            string(&mut o, &p.what);
            o.push('}');
        }
        o.push_str("]}");
        o
    }
}

fn num(o: &mut String, v: Option<f64>) {
    match v {
        Some(n) if n.is_finite() => {
            let _ = write!(o, "{n:?}");
        }
        _ => o.push_str("null"),
    }
}

fn coco(o: &mut String, s: Option<&CocoSummary>) {
    let Some(s) = s else {
        o.push_str("null");
        return;
    };
    o.push('[');
    for (i, v) in s.values.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        num(o, *v);
    }
    o.push(']');
}

fn string(o: &mut String, s: &str) {
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
}

#[cfg(test)]
mod tests {
    use super::super::json::{self, Json};
    use super::super::model::{Best, EpochMetrics, Problem};
    use super::*;

    #[test]
    fn round_trips_through_a_json_reader() {
        let mut e = EpochMetrics {
            epoch: 3,
            train_loss: Some(1.25),
            segm: Some(CocoSummary::default()),
            ..EpochMetrics::default()
        };
        e.losses.insert("train_loss".into(), 1.25);
        let m = RunMetrics {
            format: Format::LogTxt,
            epochs: vec![e],
            best: Some(Best {
                epoch: 3,
                mask_map: 0.5,
                bbox_map: None,
                track: Track::Ema,
            }),
            problems: vec![Problem::at(2, "`x` is \"NaN\"\n")],
        };
        let v = json::parse(&m.to_json()).unwrap();
        assert_eq!(v.get("version"), Some(&Json::Num(1.0)));
        assert_eq!(v.get("format"), Some(&Json::Str("log.txt".into())));
        let best = v.get("best").unwrap();
        assert_eq!(best.get("track"), Some(&Json::Str("ema".into())));
        assert_eq!(best.get("bbox_map"), Some(&Json::Null));
        let Some(Json::Arr(epochs)) = v.get("epochs") else {
            panic!()
        };
        assert_eq!(epochs[0].get("train_loss"), Some(&Json::Num(1.25)));
        assert_eq!(epochs[0].get("bbox"), Some(&Json::Null));
        let Some(Json::Arr(problems)) = v.get("problems") else {
            panic!()
        };
        assert_eq!(
            problems[0].get("what"),
            Some(&Json::Str("`x` is \"NaN\"\n".into()))
        );
    }
}
