//! Small building blocks (linear, layer norm, conv, MLP) whose variables carry the
//! reference's names and are initialised explicitly as PyTorch does: tch's defaults differ
//! (spec/libtorch.md), and matching the reference's initialisation keeps training comparable.

use tch::Tensor;
use tch::nn::{Init, Path};

/// How a weight is initialised; biases follow from the variant (see each doc).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WeightInit {
    /// PyTorch's `nn.Linear`/`nn.Conv2d` default: weight and bias U(±1/√fan_in).
    TorchDefault,
    /// Xavier-uniform weight (the reference's transformer reset), bias as `TorchDefault`.
    XavierDefaultBias,
    /// Xavier-uniform weight, zero bias (MSDeformAttn projections, MHA output).
    XavierZeroBias,
    /// Normal(0, std) weight, zero bias (the DINOv2 backbone: truncated at ±2, i.e. ±100σ).
    Normal(f64),
    /// Zero weight and bias (last layer of the box heads, attention-weight heads).
    Zeros,
}

fn uniform(bound: f64) -> Init {
    Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

fn weight_init(init: WeightInit, fan_in: i64, fan_out: i64) -> Init {
    match init {
        WeightInit::TorchDefault => uniform(1.0 / (fan_in as f64).sqrt()),
        WeightInit::XavierDefaultBias | WeightInit::XavierZeroBias => {
            uniform((6.0 / (fan_in + fan_out) as f64).sqrt())
        }
        WeightInit::Normal(std) => Init::Randn {
            mean: 0.0,
            stdev: std,
        },
        WeightInit::Zeros => Init::Const(0.0),
    }
}

fn bias_init(init: WeightInit, fan_in: i64) -> Init {
    match init {
        WeightInit::TorchDefault | WeightInit::XavierDefaultBias => {
            uniform(1.0 / (fan_in as f64).sqrt())
        }
        WeightInit::XavierZeroBias | WeightInit::Normal(_) | WeightInit::Zeros => Init::Const(0.0),
    }
}

/// `nn.Linear`: `weight` [out, in] and `bias` [out].
#[derive(Debug)]
pub struct Linear {
    /// [out, in].
    pub weight: Tensor,
    /// [out].
    pub bias: Tensor,
}

impl Linear {
    /// Creates `p.weight` and `p.bias`.
    pub fn new(p: &Path, in_dim: i64, out_dim: i64, init: WeightInit) -> Self {
        let weight = p.var(
            "weight",
            &[out_dim, in_dim],
            weight_init(init, in_dim, out_dim),
        );
        let bias = p.var("bias", &[out_dim], bias_init(init, in_dim));
        Linear { weight, bias }
    }

    /// `x W^T + b` over the last dimension.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.weight, Some(&self.bias))
    }

    /// Copies the values of `other` (same shapes) into this linear, as the reference's
    /// `copy.deepcopy` of a head does.
    pub fn copy_from(&self, other: &Linear) {
        tch::no_grad(|| {
            self.weight.shallow_clone().copy_(&other.weight);
            self.bias.shallow_clone().copy_(&other.bias);
        });
    }
}

/// `nn.LayerNorm` over the last dimension: `weight` ones, `bias` zeros.
#[derive(Debug)]
pub struct LayerNorm {
    /// [dim].
    pub weight: Tensor,
    /// [dim].
    pub bias: Tensor,
    dim: i64,
    eps: f64,
}

impl LayerNorm {
    /// Creates `p.weight` (ones) and `p.bias` (zeros).
    pub fn new(p: &Path, dim: i64, eps: f64) -> Self {
        LayerNorm {
            weight: p.var("weight", &[dim], Init::Const(1.0)),
            bias: p.var("bias", &[dim], Init::Const(0.0)),
            dim,
            eps,
        }
    }

    /// Normalises the last dimension.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.layer_norm(
            [self.dim],
            Some(&self.weight),
            Some(&self.bias),
            self.eps,
            true,
        )
    }

    /// Normalises the channels of an NCHW map (the ConvNeXt-style `LayerNorm` of the
    /// projector).
    pub fn forward_channels_first(&self, x: &Tensor) -> Tensor {
        self.forward(&x.permute([0, 2, 3, 1])).permute([0, 3, 1, 2])
    }
}

/// `nn.Conv2d` with a square kernel.
#[derive(Debug)]
pub struct Conv2d {
    /// [out, in / groups, k, k].
    pub weight: Tensor,
    /// [out], absent for `bias=False` convolutions.
    pub bias: Option<Tensor>,
    stride: i64,
    padding: i64,
    groups: i64,
}

/// Shape options of a [`Conv2d`].
#[derive(Debug, Clone, Copy)]
pub struct ConvSpec {
    /// Input channels.
    pub in_dim: i64,
    /// Output channels.
    pub out_dim: i64,
    /// Kernel side.
    pub kernel: i64,
    /// Stride.
    pub stride: i64,
    /// Zero padding on each side (kernel / 2 keeps the size at stride 1; 0 for patchify).
    pub padding: i64,
    /// Groups (in_dim for depthwise).
    pub groups: i64,
    /// Whether the conv has a bias.
    pub bias: bool,
}

impl Conv2d {
    /// Creates `p.weight` (and `p.bias`), PyTorch-default initialised.
    pub fn new(p: &Path, spec: ConvSpec, init: WeightInit) -> Self {
        let fan_in = spec.in_dim / spec.groups * spec.kernel * spec.kernel;
        let fan_out = spec.out_dim / spec.groups * spec.kernel * spec.kernel;
        let weight = p.var(
            "weight",
            &[
                spec.out_dim,
                spec.in_dim / spec.groups,
                spec.kernel,
                spec.kernel,
            ],
            weight_init(init, fan_in, fan_out),
        );
        let bias = spec
            .bias
            .then(|| p.var("bias", &[spec.out_dim], bias_init(init, fan_in)));
        Conv2d {
            weight,
            bias,
            stride: spec.stride,
            padding: spec.padding,
            groups: spec.groups,
        }
    }

    /// Applies the convolution to an NCHW map.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.conv2d(
            &self.weight,
            self.bias.as_ref(),
            [self.stride, self.stride],
            [self.padding, self.padding],
            [1, 1],
            self.groups,
        )
    }
}

/// The reference's `MLP`: `num_layers` linears under `layers.{i}`, ReLU between them.
#[derive(Debug)]
pub struct Mlp {
    /// The linears, first to last.
    pub layers: Vec<Linear>,
}

impl Mlp {
    /// Creates `p.layers.{i}`; `inits[i]` initialises layer i (the last entry repeats).
    pub fn new(p: &Path, dims: (i64, i64, i64), num_layers: usize, inits: &[WeightInit]) -> Self {
        let (input, hidden, output) = dims;
        let lp = p.sub("layers");
        let layers = (0..num_layers)
            .map(|i| {
                let in_dim = if i == 0 { input } else { hidden };
                let out_dim = if i + 1 == num_layers { output } else { hidden };
                let init = inits
                    .get(i)
                    .or(inits.last())
                    .copied()
                    .unwrap_or(WeightInit::TorchDefault);
                Linear::new(&lp.sub(i), in_dim, out_dim, init)
            })
            .collect();
        Mlp { layers }
    }

    /// Applies the layers with ReLU between them.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let n = self.layers.len();
        let mut h = x.shallow_clone();
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(&h);
            if i + 1 < n {
                h = h.relu();
            }
        }
        h
    }

    /// Copies the values of `other` (same shapes) into this MLP, as the reference's
    /// `copy.deepcopy` of a head does.
    pub fn copy_from(&self, other: &Mlp) {
        tch::no_grad(|| {
            for (a, b) in self.layers.iter().zip(&other.layers) {
                a.weight.shallow_clone().copy_(&b.weight);
                a.bias.shallow_clone().copy_(&b.bias);
            }
        });
    }
}
