//! Weight import from a real `torch.save` checkpoint (shared/spec/fixtures/): every tensor's
//! shape, dtype, sum and first values as PyTorch wrote them, loading into a nano VarStore,
//! and the errors for a strict load, a wrong model size and a file that is not a checkpoint.

use std::path::PathBuf;

use flow_trainer::model::checkpoint::{CheckpointError, read_state_dict};
use flow_trainer::model::import::{
    ImportError, LoadPolicy, import_checkpoint, import_to_safetensors, load_state_dict,
};
use flow_trainer::model::pickle::{self, Value};
use flow_trainer::model::{ModelConfig, ModelSize, RfDetrSeg};
use serde_json::Value as Json;
use tch::nn::VarStore;
use tch::{Device, Kind};

fn fixture(ext: &str) -> PathBuf {
    let dir = std::env::var_os("FLOW_SPEC_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/spec"));
    dir.join("fixtures")
        .join(format!("rfdetr-seg-nano-subset.{ext}"))
}

fn expected() -> serde_json::Map<String, Json> {
    let text = std::fs::read_to_string(fixture("expected.json")).expect("read expected.json");
    let json: Json = serde_json::from_str(&text).expect("parse expected.json");
    json["expected"]
        .as_object()
        .expect("expected is an object")
        .clone()
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Float => "float32",
        Kind::Bool => "bool",
        Kind::Double => "float64",
        Kind::Int64 => "int64",
        _ => "other",
    }
}

fn model(size: ModelSize) -> VarStore {
    tch::set_num_threads(1);
    let vs = VarStore::new(Device::Cpu);
    RfDetrSeg::new(&vs.root(), &ModelConfig::preset(size, 2).expect("preset")).expect("build");
    vs
}

fn check_values(name: &str, t: &tch::Tensor, want: &Json) {
    let shape: Vec<i64> = want["shape"]
        .as_array()
        .expect("shape")
        .iter()
        .map(|d| d.as_i64().expect("dim"))
        .collect();
    assert_eq!(t.size(), shape, "{name}: shape");
    assert_eq!(
        kind_name(t.kind()),
        want["dtype"].as_str().expect("dtype"),
        "{name}: dtype"
    );
    let sum = t.to_kind(Kind::Double).sum(Kind::Double).double_value(&[]);
    let want_sum = want["sum"].as_f64().expect("sum");
    assert!(
        (sum - want_sum).abs() <= 1e-4 * (1.0 + want_sum.abs()),
        "{name}: sum {sum} != {want_sum}"
    );
    let flat = t.to_kind(Kind::Double).flatten(0, -1);
    for (i, v) in want["first"].as_array().expect("first").iter().enumerate() {
        let got = flat.double_value(&[i as i64]);
        let v = v.as_f64().expect("value");
        assert_eq!(got as f32, v as f32, "{name}[{i}]");
    }
}

#[test]
fn reads_every_tensor_of_the_fixture_as_pytorch_wrote_it() {
    let state = read_state_dict(&fixture("pth")).expect("read fixture");
    let want = expected();
    assert_eq!(state.len(), 56);
    assert_eq!(state.len(), want.len());
    for (name, w) in &want {
        let t = state.get(name).unwrap_or_else(|| panic!("{name} not read"));
        check_values(name, t, w);
    }
}

#[test]
fn loads_the_fixture_into_a_nano_model() {
    let vs = model(ModelSize::Nano);
    let report = import_checkpoint(
        &vs,
        &fixture("pth"),
        LoadPolicy {
            allow_missing: true,
            allow_unexpected: false,
        },
    )
    .expect("partial load");
    assert_eq!(report.loaded, 56);
    assert_eq!(report.skipped.missing.len(), 545 - 56);
    let vars = vs.variables();
    for (name, w) in &expected() {
        check_values(name, &vars[name], w);
    }
}

#[test]
fn a_strict_load_reports_the_missing_names() {
    let vs = model(ModelSize::Nano);
    let err = import_checkpoint(&vs, &fixture("pth"), LoadPolicy::default())
        .expect_err("subset is incomplete");
    let ImportError::Incompatible(inc) = &err else {
        panic!("unexpected error {err}")
    };
    assert_eq!(inc.missing.len(), 545 - 56);
    assert!(inc.unexpected.is_empty() && inc.mismatched.is_empty());
    assert!(
        err.to_string().contains("489 missing from the checkpoint"),
        "{err}"
    );
}

#[test]
fn a_wrong_model_size_names_the_first_mismatch_with_both_shapes() {
    let vs = model(ModelSize::Tiny);
    let before = vs.variables()["transformer.decoder.norm.weight"].copy();
    let state = read_state_dict(&fixture("pth")).expect("read fixture");
    let err = load_state_dict(
        &vs,
        &state,
        LoadPolicy {
            allow_missing: true,
            allow_unexpected: true,
        },
    )
    .expect_err("tiny is narrower");
    let msg = err.to_string();
    assert!(
        msg.contains("`transformer.decoder.layers.0.cross_attn.attention_weights.bias`: model [8], checkpoint [32]"),
        "{msg}"
    );
    // Nothing was copied.
    assert!(vs.variables()["transformer.decoder.norm.weight"].equal(&before));
}

#[test]
fn imports_to_safetensors_and_loads_back() {
    tch::set_num_threads(1);
    let dir = std::env::temp_dir().join(format!("flow-import-st-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out = dir.join("nano.safetensors");
    let partial = LoadPolicy {
        allow_missing: true,
        allow_unexpected: false,
    };
    // The subset has no `class_embed.bias` to infer the class count from.
    let err = import_to_safetensors(&fixture("pth"), &out, ModelSize::Nano, None, partial)
        .expect_err("no class count");
    assert!(matches!(err, ImportError::UnknownClassCount(_)), "{err}");
    let (cfg, report) =
        import_to_safetensors(&fixture("pth"), &out, ModelSize::Nano, Some(2), partial)
            .expect("import");
    assert_eq!(cfg.num_classes, 2);
    assert_eq!(report.loaded, 56);
    let mut vs = model(ModelSize::Nano);
    vs.load(&out).expect("load safetensors");
    let vars = vs.variables();
    for (name, w) in &expected() {
        check_values(name, &vars[name], w);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_file_that_is_not_a_checkpoint_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("flow-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bogus = dir.join("bogus.pth");
    std::fs::write(&bogus, b"not a zip").expect("write");
    let err = read_state_dict(&bogus).expect_err("not a zip");
    assert!(matches!(err, CheckpointError::Zip { .. }), "{err}");
    assert!(err.to_string().contains("bogus.pth"), "{err}");
    let missing = read_state_dict(&dir.join("absent.pth")).expect_err("absent");
    assert!(matches!(missing, CheckpointError::Io { .. }), "{missing}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_pickle_reader_never_calls_arbitrary_globals() {
    // pickle.dumps of a REDUCE on os.system (protocol 2): decoded as an inert object.
    let evil = b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00echo\x85R.";
    assert_eq!(
        pickle::parse(evil).expect("parse"),
        Value::Object("os".into(), "system".into())
    );
    // pickle.dumps(OrderedDict(a=1) with `_metadata` set, protocol 2), as a state dict is
    // pickled: the attribute (BUILD) must not turn into an item.
    let state_dict = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01X\x01\x00\x00\x00aq\x02K\x01s}q\x03X\x09\x00\x00\x00_metadataq\x04h\x00)Rq\x05X\x00\x00\x00\x00q\x06}q\x07X\x07\x00\x00\x00versionq\x08K\x01sssb.";
    assert_eq!(
        pickle::parse(state_dict).expect("parse"),
        Value::Dict(vec![(Value::Str("a".into()), Value::Int(1))])
    );
    let truncated = b"\x80\x02X\xff\x00\x00\x00ab";
    assert!(pickle::parse(truncated).is_err());
}

#[test]
fn a_fresh_model_initialises_like_the_reference() {
    // The fixture holds a freshly initialised reference model: its deterministic tensors
    // (norms, zero biases, the deformable attention's zero weights and circular offset
    // bias) must equal ours exactly; the random ones must respect PyTorch's bounds.
    let state = read_state_dict(&fixture("pth")).expect("read fixture");
    let vs = model(ModelSize::Nano);
    let vars = vs.variables();
    let random = [
        ".linear1.bias",
        ".linear2.bias",
        ".out_proj.weight",
        ".value_proj.weight",
        ".output_proj.weight",
    ];
    for (name, theirs) in &state {
        let ours = &vars[name];
        if random.iter().any(|r| name.ends_with(r)) {
            let bound = |t: &tch::Tensor| t.abs().max().double_value(&[]);
            let fan_in = if name.ends_with("linear2.bias") {
                2048.0
            } else {
                256.0
            };
            let limit = if name.ends_with(".bias") {
                1.0 / f64::sqrt(fan_in)
            } else {
                f64::sqrt(6.0 / 512.0)
            };
            assert!(
                bound(ours) <= limit && bound(theirs) <= limit,
                "{name}: beyond ±{limit}"
            );
        } else {
            assert!(
                ours.equal(theirs),
                "{name}: ours {ours} vs reference {theirs}"
            );
        }
    }
    // The reference clones one decoder layer: FFN biases start equal in every layer.
    assert!(
        vars["transformer.decoder.layers.0.linear1.bias"]
            .equal(&vars["transformer.decoder.layers.3.linear1.bias"])
    );
}
