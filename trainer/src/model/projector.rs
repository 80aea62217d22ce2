//! The multi-scale projector at a single level (`P4`, `backbone.0.projector.stages.0.*`): the
//! backbone's maps are concatenated on channels and fused by a C2f block (conv + LayerNorm +
//! SiLU units, 3 bottlenecks without shortcut), then LayerNormed.

use tch::Tensor;
use tch::nn::Path;

use super::config::ModelConfig;
use super::layers::{Conv2d, ConvSpec, LayerNorm, WeightInit};

/// The projector's LayerNorm eps (ConvNeXt-style channel LayerNorm).
const LN_EPS: f64 = 1e-6;

/// `ConvX`: conv (no bias) → channel LayerNorm (`bn`, named as the BatchNorm it replaces) → SiLU.
#[derive(Debug)]
struct ConvX {
    conv: Conv2d,
    bn: LayerNorm,
}

impl ConvX {
    fn new(p: &Path, in_dim: i64, out_dim: i64, kernel: i64) -> Self {
        let spec = ConvSpec {
            in_dim,
            out_dim,
            kernel,
            stride: 1,
            padding: kernel / 2,
            groups: 1,
            bias: false,
        };
        ConvX {
            conv: Conv2d::new(&p.sub("conv"), spec, WeightInit::TorchDefault),
            bn: LayerNorm::new(&p.sub("bn"), out_dim, LN_EPS),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        self.bn.forward_channels_first(&self.conv.forward(x)).silu()
    }
}

/// Two 3×3 ConvX without shortcut (C2f's default `shortcut=False`).
#[derive(Debug)]
struct Bottleneck {
    cv1: ConvX,
    cv2: ConvX,
}

/// C2f: split, a chain of bottlenecks on the second half, concatenate everything, fuse.
#[derive(Debug)]
struct C2f {
    cv1: ConvX,
    cv2: ConvX,
    m: Vec<Bottleneck>,
    hidden: i64,
}

/// The projector: `forward` maps the backbone's stage maps to one [B, hidden_dim, h, w] map.
#[derive(Debug)]
pub struct Projector {
    c2f: C2f,
    norm: LayerNorm,
}

impl Projector {
    /// Builds `p.stages.0.0` (C2f) and `p.stages.0.1` (LayerNorm); `p` = `backbone.0.projector`.
    pub fn new(p: &Path, cfg: &ModelConfig) -> Self {
        let stage = p.sub("stages").sub(0);
        let c2f_p = stage.sub(0);
        let in_dim = cfg.vit_width * cfg.out_feature_indexes.len() as i64;
        let out = cfg.hidden_dim;
        let hidden = out / 2;
        let n = cfg.projector_blocks;
        let m = (0..n)
            .map(|i| {
                let bp = c2f_p.sub("m").sub(i);
                Bottleneck {
                    cv1: ConvX::new(&bp.sub("cv1"), hidden, hidden, 3),
                    cv2: ConvX::new(&bp.sub("cv2"), hidden, hidden, 3),
                }
            })
            .collect();
        let c2f = C2f {
            cv1: ConvX::new(&c2f_p.sub("cv1"), in_dim, 2 * hidden, 1),
            cv2: ConvX::new(&c2f_p.sub("cv2"), (2 + n) * hidden, out, 1),
            m,
            hidden,
        };
        Projector {
            c2f,
            norm: LayerNorm::new(&stage.sub(1), out, LN_EPS),
        }
    }

    /// Fuses the stage maps (all the same spatial size).
    pub fn forward(&self, feats: &[Tensor]) -> Tensor {
        let x = Tensor::cat(feats, 1);
        let c = &self.c2f;
        let mut ys = c.cv1.forward(&x).split(c.hidden, 1);
        for b in &c.m {
            let last = ys.last().expect("split gives two halves").shallow_clone();
            ys.push(b.cv2.forward(&b.cv1.forward(&last)));
        }
        let fused = c.cv2.forward(&Tensor::cat(&ys, 1));
        self.norm.forward_channels_first(&fused)
    }
}
