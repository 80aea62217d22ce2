//! Numerical checks of the model's parts against hand computations: the sine embedding of
//! boxes, the box reparametrisation, deformable attention against a naive per-point bilinear
//! sampler, and the ViT's window partitioning against running each window as its own image.

use flow_trainer::model::backbone::Backbone;
use flow_trainer::model::decoder::sine_embed;
use flow_trainer::model::deform_attn::DeformAttn;
use flow_trainer::model::transformer::apply_box_delta;
use flow_trainer::model::{ModelConfig, ModelSize};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

fn close(a: &Tensor, b: &Tensor, tol: f64) -> bool {
    (a - b).abs().max().double_value(&[]) <= tol
}

#[test]
fn sine_embedding_of_a_box_by_hand() {
    let boxes = Tensor::from_slice(&[0.5f32, 0.25, 0.1, 0.2]).view([1, 1, 4]);
    let e = sine_embed(&boxes, 4);
    assert_eq!(e.size(), [1, 1, 16]);
    // dim_t = 10000^(2·⌊i/2⌋/4) = [1, 1, 100, 100]; features (sin, cos, sin, cos); order y, x, w, h.
    let tau = 2.0 * std::f64::consts::PI;
    let mut want = vec![];
    for v in [0.25f64, 0.5, 0.1, 0.2] {
        let x = v * tau;
        want.extend([x.sin(), x.cos(), (x / 100.0).sin(), (x / 100.0).cos()].map(|f| f as f32));
    }
    assert!(
        close(&e.view([16]), &Tensor::from_slice(&want), 1e-6),
        "{e}"
    );
}

#[test]
fn box_delta_reparametrisation_by_hand() {
    let boxes = Tensor::from_slice(&[0.5f32, 0.5, 0.2, 0.4]);
    assert!(close(
        &apply_box_delta(&Tensor::zeros([4], (Kind::Float, Device::Cpu)), &boxes),
        &boxes,
        0.0
    ));
    let delta = Tensor::from_slice(&[0.5f32, -1.0, 2f32.ln(), 0.0]);
    let want = Tensor::from_slice(&[0.6f32, 0.1, 0.4, 0.4]);
    assert!(close(&apply_box_delta(&delta, &boxes), &want, 1e-6));
}

/// Bilinear sample of `map` [C, H, W] at normalised (x, y), zero outside, pixel centres at
/// (i + 0.5) / size (grid_sample with align_corners = false).
fn bilinear(map: &[Vec<Vec<f64>>], x: f64, y: f64) -> Vec<f64> {
    let (h, w) = (map[0].len() as i64, map[0][0].len() as i64);
    let px = x * w as f64 - 0.5;
    let py = y * h as f64 - 0.5;
    let (x0, y0) = (px.floor() as i64, py.floor() as i64);
    let mut out = vec![0.0; map.len()];
    for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
        let (xi, yi) = (x0 + dx, y0 + dy);
        if xi < 0 || yi < 0 || xi >= w || yi >= h {
            continue;
        }
        let wx = 1.0 - (px - xi as f64).abs();
        let wy = 1.0 - (py - yi as f64).abs();
        for (c, o) in out.iter_mut().enumerate() {
            *o += wx * wy * map[c][yi as usize][xi as usize];
        }
    }
    out
}

fn to_vec(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(&t.to_kind(Kind::Double).flatten(0, -1)).expect("values")
}

#[test]
fn deformable_attention_matches_a_naive_sampler() {
    tch::set_num_threads(1);
    tch::manual_seed(3);
    let (c, heads, points, h, w, q) = (8i64, 2i64, 2i64, 4i64, 5i64, 3i64);
    let vs = VarStore::new(Device::Cpu);
    let attn = DeformAttn::new(&vs.root().sub("cross_attn"), c, heads, points);
    tch::no_grad(|| {
        for (name, mut v) in vs.variables() {
            if name.ends_with("weight") || name.ends_with("attention_weights.bias") {
                v.copy_(&(Tensor::randn(v.size(), (Kind::Float, Device::Cpu)) * 0.5));
            }
        }
    });
    let opts = (Kind::Float, Device::Cpu);
    let query = Tensor::randn([1, q, c], opts);
    let value = Tensor::randn([1, h * w, c], opts);
    let reference = Tensor::from_slice(&[
        0.5f32, 0.5, 0.4, 0.6, 0.1, 0.9, 0.3, 0.2, 0.8, 0.2, 0.5, 0.5,
    ])
    .view([1, q, 4]);
    let got = attn.forward(&query, &reference, &value, (h, w));

    let vars = vs.variables();
    let lin = |name: &str, x: &Tensor| {
        x.linear(
            &vars[&format!("cross_attn.{name}.weight")],
            Some(&vars[&format!("cross_attn.{name}.bias")]),
        )
    };
    let v = to_vec(&lin("value_proj", &value)); // [HW, C]
    let off = to_vec(&lin("sampling_offsets", &query)); // [Q, heads·points·2]
    let aw = to_vec(&lin("attention_weights", &query)); // [Q, heads·points]
    let r = to_vec(&reference);
    let hd = (c / heads) as usize;
    let mut mixed = vec![0.0f64; (q * c) as usize];
    for qi in 0..q as usize {
        for hi in 0..heads as usize {
            let map: Vec<Vec<Vec<f64>>> = (0..hd)
                .map(|ch| {
                    (0..h as usize)
                        .map(|y| {
                            (0..w as usize)
                                .map(|x| v[(y * w as usize + x) * c as usize + hi * hd + ch])
                                .collect()
                        })
                        .collect()
                })
                .collect();
            let logits: Vec<f64> = (0..points as usize)
                .map(|p| aw[qi * (heads * points) as usize + hi * points as usize + p])
                .collect();
            let z: f64 = logits.iter().map(|l| l.exp()).sum();
            for (p, logit) in logits.iter().enumerate() {
                let o = qi * (heads * points * 2) as usize + (hi * points as usize + p) * 2;
                let x = r[qi * 4] + off[o] / points as f64 * r[qi * 4 + 2] * 0.5;
                let y = r[qi * 4 + 1] + off[o + 1] / points as f64 * r[qi * 4 + 3] * 0.5;
                let s = bilinear(&map, x, y);
                for ch in 0..hd {
                    mixed[qi * c as usize + hi * hd + ch] += logit.exp() / z * s[ch];
                }
            }
        }
    }
    let mixed = Tensor::from_slice(&mixed)
        .to_kind(Kind::Float)
        .view([1, q, c]);
    let want = lin("output_proj", &mixed);
    assert!(close(&got, &want, 1e-5), "got {got}\nwant {want}");
}

#[test]
fn windowed_attention_equals_running_each_window_alone() {
    tch::set_num_threads(1);
    tch::manual_seed(5);
    // Every layer windowed (a single output stage, the last), positions zeroed: then a window
    // sees exactly what the same network sees on that window cropped as its own image.
    let mut cfg = ModelConfig::preset(ModelSize::Tiny, 2).expect("preset");
    cfg.vit_layers = 3;
    cfg.out_feature_indexes = vec![3];
    let windowed_vs = VarStore::new(Device::Cpu);
    let windowed = Backbone::new(&windowed_vs.root(), &cfg);
    let mut single_cfg = cfg.clone();
    single_cfg.num_windows = 1;
    let mut single_vs = VarStore::new(Device::Cpu);
    let single = Backbone::new(&single_vs.root(), &single_cfg);
    tch::no_grad(|| {
        let _ = windowed_vs.variables()["embeddings.position_embeddings"]
            .shallow_clone()
            .zero_();
    });
    single_vs.copy(&windowed_vs).expect("same variables");
    let images = Tensor::randn([2, 3, 96, 96], (Kind::Float, Device::Cpu));
    let full = tch::no_grad(|| windowed.forward(&images)).expect("forward");
    assert_eq!(full.len(), 1);
    assert_eq!(full[0].size(), [2, 64, 8, 8]);
    for (wy, wx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
        let crop = images.narrow(2, wy * 48, 48).narrow(3, wx * 48, 48);
        let alone = tch::no_grad(|| single.forward(&crop)).expect("forward");
        let part = full[0].narrow(2, wy * 4, 4).narrow(3, wx * 4, 4);
        assert!(close(&alone[0], &part, 1e-4), "window ({wy}, {wx}) differs");
    }
}
