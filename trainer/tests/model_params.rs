//! Parameter parity with the reference: for every published size, the variables of the
//! VarStore (name, shape, trainable) equal the reference's list in
//! shared/spec/rfdetr-seg-params/ one to one (identical names), and the trainable count
//! equals the spec's exact numbers for 2 and 8 classes. Builds the models on the CPU without
//! running them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use flow_trainer::model::params::{breakdown, named_shapes, trainable_count};
use flow_trainer::model::{ModelConfig, ModelSize, RfDetrSeg};
use tch::Device;
use tch::nn::VarStore;

/// spec/rfdetr.md §1: exact trainable parameter counts for 2 and 8 classes.
const SPEC_COUNTS: [(ModelSize, i64, i64); 6] = [
    (ModelSize::Nano, 33_260_851, 33_282_439),
    (ModelSize::Small, 33_394_483, 33_416_071),
    (ModelSize::Medium, 35_377_635, 35_399_223),
    (ModelSize::Large, 35_557_347, 35_578_935),
    (ModelSize::XLarge, 37_797_011, 37_818_599),
    (ModelSize::XXLarge, 38_331_539, 38_353_127),
];

/// The tiny preset's count with 2 classes (documented in trainer/README.md).
const TINY_COUNT_2: i64 = 854_043;

fn spec_dir() -> PathBuf {
    std::env::var_os("FLOW_SPEC_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/spec"))
}

fn reference(size: ModelSize) -> BTreeMap<String, (Vec<i64>, bool)> {
    let path = spec_dir()
        .join("rfdetr-seg-params")
        .join(format!("{size}.tsv"));
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert_eq!(cols.len(), 3, "bad line {l:?}");
            let shape = cols[1]
                .split('x')
                .map(|d| d.parse::<i64>().expect("dimension"))
                .collect();
            (cols[0].to_owned(), (shape, cols[2] == "1"))
        })
        .collect()
}

fn build(size: ModelSize, num_classes: i64) -> VarStore {
    tch::set_num_threads(1);
    let vs = VarStore::new(Device::Cpu);
    let cfg = ModelConfig::preset(size, num_classes).expect("preset");
    RfDetrSeg::new(&vs.root(), &cfg).expect("build");
    vs
}

#[test]
fn every_size_matches_the_reference_names_shapes_and_counts() {
    for (size, count2, count8) in SPEC_COUNTS {
        let vs = build(size, 2);
        let ours = named_shapes(&vs);
        let theirs = reference(size);
        let only_ours: Vec<_> = ours.keys().filter(|k| !theirs.contains_key(*k)).collect();
        let only_theirs: Vec<_> = theirs.keys().filter(|k| !ours.contains_key(*k)).collect();
        assert!(
            only_ours.is_empty() && only_theirs.is_empty(),
            "{size}: only ours {only_ours:?}, only reference {only_theirs:?}"
        );
        for (name, want) in &theirs {
            assert_eq!(&ours[name], want, "{size}: {name} (shape, trainable)");
        }
        assert_eq!(trainable_count(&vs), count2, "{size}, 2 classes");
        drop(vs);
        assert_eq!(
            trainable_count(&build(size, 8)),
            count8,
            "{size}, 8 classes"
        );
    }
}

#[test]
fn breakdown_adds_up_to_the_total() {
    let vs = build(ModelSize::Nano, 2);
    let parts = breakdown(&vs);
    assert_eq!(parts.values().sum::<i64>(), 33_260_851);
    assert!(parts.contains_key("backbone.0.encoder"), "{parts:?}");
    assert!(parts.contains_key("transformer.decoder"), "{parts:?}");
}

#[test]
fn tiny_has_the_documented_count_and_the_same_structure() {
    let vs = build(ModelSize::Tiny, 2);
    assert_eq!(trainable_count(&vs), TINY_COUNT_2);
    // Each class adds a logit to 14 heads (13 two-stage groups + the decoder's) of width 64.
    assert_eq!(
        trainable_count(&build(ModelSize::Tiny, 8)),
        TINY_COUNT_2 + 6 * 14 * 65
    );
    // Same module tree as nano (names modulo layer indexes).
    let strip = |n: &str| {
        n.split('.')
            .filter(|p| p.parse::<u32>().is_err())
            .collect::<Vec<_>>()
            .join(".")
    };
    let tiny: std::collections::BTreeSet<_> = named_shapes(&vs).keys().map(|n| strip(n)).collect();
    let nano: std::collections::BTreeSet<_> = reference(ModelSize::Nano)
        .keys()
        .map(|n| strip(n))
        .collect();
    assert_eq!(tiny, nano);
}

#[test]
fn unknown_sizes_and_bad_class_counts_are_errors() {
    assert!("huge".parse::<ModelSize>().is_err());
    assert_eq!(
        "2xlarge".parse::<ModelSize>().expect("size"),
        ModelSize::XXLarge
    );
    assert!(ModelConfig::preset(ModelSize::Nano, 0).is_err());
}
