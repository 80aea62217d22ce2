//! Numerical parity with the reference implementation (rfdetr 1.4.1 source on PyTorch 2.11):
//! the reference's nano and small models (random init, every parameter then perturbed so
//! that no path is hidden behind a zero init) are saved with `torch.save` together with
//! their outputs on a random input, in eval and train mode (13 groups), including a
//! non-square input that exercises the positional-grid interpolation and, for small, the
//! 2×2 windows. This test imports each state dict with the checkpoint reader (strictly), runs
//! the same input through our model and compares every output: final, auxiliary and
//! two-stage logits, boxes and masks. Measured: max |diff| ≤ 5e-6 on logits, ≤ 2e-7 on
//! boxes, ≤ 1.1e-4 on mask logits of magnitude ~40 (float32 round-off).
//!
//! The reference files (~500 MB) are not in the repository: they need PyTorch, transformers
//! and the rfdetr source. Generate them with [`PARITY_SCRIPT`] and run
//! `FLOW_PARITY_DIR=DIR cargo test -p flow-trainer --test model_parity -- --ignored`.

use std::path::PathBuf;

use flow_trainer::model::checkpoint::{StateDict, read_state_dict};
use flow_trainer::model::import::{LoadPolicy, load_state_dict};
use flow_trainer::model::{Mode, ModelConfig, ModelSize, RfDetrSeg};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// How the reference files were made: `python parity.py RFDETR_SRC STUBS OUT_DIR` with
/// torch 2.11, torchvision 0.26, transformers < 5, scipy; RFDETR_SRC holds `rfdetr/models`
/// and `rfdetr/util` of rfdetr 1.4.1 with an empty `rfdetr/__init__.py`, STUBS a `peft.py`
/// defining an empty `PeftModel` class.
pub const PARITY_SCRIPT: &str = r#""""Builds reference RF-DETR-Seg models (rfdetr 1.4.1 source, random init), saves their state
dicts and the outputs of a forward pass on a random input, for flow-train's parity test."""
import sys, argparse, torch
sys.path[:0] = [sys.argv[1], sys.argv[2]]  # rfdetr source, stubs (peft)
from rfdetr.models.lwdetr import build_model
out_dir = sys.argv[3]
torch.set_num_threads(1)

def args_for(size):
    res, win, dec, nq = {"nano": (312, 1, 4, 100), "small": (384, 2, 4, 100)}[size]
    return argparse.Namespace(
        encoder="dinov2_windowed_small", vit_encoder_num_layers=12, pretrained_encoder=None,
        window_block_indexes=None, drop_path=0.0, hidden_dim=256, out_feature_indexes=[3, 6, 9, 12],
        projector_scale=["P4"], use_cls_token=False, position_embedding="sine", freeze_encoder=False,
        layer_norm=True, resolution=res, rms_norm=False, backbone_lora=False, force_no_pretrain=False,
        gradient_checkpointing=False, pretrain_weights="none", patch_size=12, num_windows=win,
        positional_encoding_size=res // 12, encoder_only=False, backbone_only=False, sa_nheads=8,
        ca_nheads=16, num_queries=nq, dropout=0.0, dim_feedforward=2048, dec_layers=dec, group_detr=13,
        two_stage=True, dec_n_points=2, lite_refpoint_refine=True, decoder_norm="LN", bbox_reparam=True,
        segmentation_head=True, mask_downsample_ratio=4, num_classes=2, device="cpu", aux_loss=True)

for size, shape in [("nano", (1, 3, 312, 312)), ("nano", (2, 3, 144, 180)), ("small", (1, 3, 288, 240))]:
    torch.manual_seed(0)
    model = build_model(args_for(size))
    # Perturb every parameter: at init the box heads' last layers, the refpoints and the
    # deformable attention's offset/weight matrices are zero, which would hide their paths.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    tag = f"{size}-{shape[2]}x{shape[3]}"
    x = torch.randn(*shape)
    res = {"input": x}
    with torch.no_grad():
        model.eval()
        o = model(x)
        res["eval.pred_logits"] = o["pred_logits"]; res["eval.pred_boxes"] = o["pred_boxes"]
        res["eval.pred_masks"] = o["pred_masks"]
        for i, a in enumerate(o["aux_outputs"]):
            res[f"eval.aux{i}.pred_logits"] = a["pred_logits"]; res[f"eval.aux{i}.pred_boxes"] = a["pred_boxes"]
            res[f"eval.aux{i}.pred_masks"] = a["pred_masks"]
        for k in ["pred_logits", "pred_boxes", "pred_masks"]:
            res[f"eval.enc.{k}"] = o["enc_outputs"][k]
        model.train()
        o = model(x)
        res["train.pred_logits"] = o["pred_logits"]; res["train.pred_boxes"] = o["pred_boxes"]
        m = o["pred_masks"]  # sparse: spatial features, query features, bias
        res["train.pred_masks"] = torch.einsum("bchw,bnc->bnhw", m["spatial_features"], m["query_features"]) + m["bias"]
        for k in ["pred_logits", "pred_boxes"]:
            res[f"train.enc.{k}"] = o["enc_outputs"][k]
    torch.save({"model": model.state_dict()}, f"{out_dir}/{tag}.weights.pth")
    torch.save(res, f"{out_dir}/{tag}.outputs.pth")
    print(tag, "params", n, {k: tuple(v.shape) for k, v in res.items() if not k.startswith("eval.aux")})
"#;

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().double_value(&[])
}

fn compare(tag: &str, name: &str, ours: &Tensor, theirs: &Tensor, report: &mut Vec<String>) {
    assert_eq!(ours.size(), theirs.size(), "{tag} {name}: shape");
    let diff = max_abs(&(ours.to_kind(Kind::Double) - theirs.to_kind(Kind::Double)));
    let scale = max_abs(theirs);
    report.push(format!(
        "{tag} {name}: max |diff| {diff:.2e} (max |ref| {scale:.2e})"
    ));
    assert!(
        diff <= 1e-3 * (1.0 + scale),
        "{tag} {name}: max |diff| {diff} at scale {scale}"
    );
}

fn get<'a>(outputs: &'a StateDict, key: &str) -> &'a Tensor {
    outputs
        .get(key)
        .unwrap_or_else(|| panic!("reference output {key} missing"))
}

#[test]
#[ignore = "needs the reference outputs: set FLOW_PARITY_DIR (see the module docs)"]
fn outputs_match_the_reference_implementation() {
    let dir = PathBuf::from(std::env::var_os("FLOW_PARITY_DIR").expect("FLOW_PARITY_DIR"));
    tch::set_num_threads(1);
    let mut report = vec![];
    for (size, tag) in [
        (ModelSize::Nano, "nano-312x312"),
        (ModelSize::Nano, "nano-144x180"),
        (ModelSize::Small, "small-288x240"),
    ] {
        let weights = read_state_dict(&dir.join(format!("{tag}.weights.pth"))).expect("weights");
        let outputs = read_state_dict(&dir.join(format!("{tag}.outputs.pth"))).expect("outputs");
        let vs = VarStore::new(Device::Cpu);
        let model = RfDetrSeg::new(&vs.root(), &ModelConfig::preset(size, 2).expect("preset"))
            .expect("build");
        let loaded = load_state_dict(&vs, &weights, LoadPolicy::default()).expect("strict load");
        assert_eq!(loaded.loaded, weights.len());
        let x = get(&outputs, "input");
        let eval = tch::no_grad(|| model.forward(x, Mode::Eval)).expect("eval forward");
        compare(
            tag,
            "eval.pred_logits",
            &eval.main.logits,
            get(&outputs, "eval.pred_logits"),
            &mut report,
        );
        compare(
            tag,
            "eval.pred_boxes",
            &eval.main.boxes,
            get(&outputs, "eval.pred_boxes"),
            &mut report,
        );
        compare(
            tag,
            "eval.pred_masks",
            &eval.main.masks.dense(),
            get(&outputs, "eval.pred_masks"),
            &mut report,
        );
        for (i, aux) in eval.aux.iter().enumerate() {
            compare(
                tag,
                &format!("eval.aux{i}.pred_logits"),
                &aux.logits,
                get(&outputs, &format!("eval.aux{i}.pred_logits")),
                &mut report,
            );
            compare(
                tag,
                &format!("eval.aux{i}.pred_boxes"),
                &aux.boxes,
                get(&outputs, &format!("eval.aux{i}.pred_boxes")),
                &mut report,
            );
            compare(
                tag,
                &format!("eval.aux{i}.pred_masks"),
                &aux.masks.dense(),
                get(&outputs, &format!("eval.aux{i}.pred_masks")),
                &mut report,
            );
        }
        compare(
            tag,
            "eval.enc.pred_logits",
            &eval.enc.logits,
            get(&outputs, "eval.enc.pred_logits"),
            &mut report,
        );
        compare(
            tag,
            "eval.enc.pred_boxes",
            &eval.enc.boxes,
            get(&outputs, "eval.enc.pred_boxes"),
            &mut report,
        );
        compare(
            tag,
            "eval.enc.pred_masks",
            &eval.enc.masks.dense(),
            get(&outputs, "eval.enc.pred_masks"),
            &mut report,
        );
        let train = tch::no_grad(|| model.forward(x, Mode::Train)).expect("train forward");
        compare(
            tag,
            "train.pred_logits",
            &train.main.logits,
            get(&outputs, "train.pred_logits"),
            &mut report,
        );
        compare(
            tag,
            "train.pred_boxes",
            &train.main.boxes,
            get(&outputs, "train.pred_boxes"),
            &mut report,
        );
        compare(
            tag,
            "train.pred_masks",
            &train.main.masks.dense(),
            get(&outputs, "train.pred_masks"),
            &mut report,
        );
        compare(
            tag,
            "train.enc.pred_logits",
            &train.enc.logits,
            get(&outputs, "train.enc.pred_logits"),
            &mut report,
        );
        compare(
            tag,
            "train.enc.pred_boxes",
            &train.enc.boxes,
            get(&outputs, "train.enc.pred_boxes"),
            &mut report,
        );
    }
    for line in report {
        eprintln!("{line}");
    }
}
