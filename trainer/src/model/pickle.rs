//! A restricted reader of the pickles that `torch.save` writes (`data.pkl` in its zip
//! container). It knows exactly what a state dict needs — dicts, lists, tuples, scalars,
//! strings, `OrderedDict`, `torch._utils._rebuild_tensor_v2` / `_rebuild_parameter` and the
//! storage persistent ids — and never executes anything: any other class or callable (such
//! as the `argparse.Namespace` RF-DETR stores under `args`) becomes an opaque
//! [`Value::Object`] whose state is dropped.
//!
//! The memo stores copies, not references: a container memoised before it is filled and
//! fetched again later would come back as it was when memoised. `torch.save`'s state dicts
//! only re-fetch globals, strings, storages and finished tuples, for which this is exact.

use std::collections::HashMap;

use thiserror::Error;

/// Where and why a pickle could not be read.
#[derive(Debug, Error)]
#[error("byte {offset}: {message}")]
pub struct PickleError {
    /// Offset of the opcode in the pickle.
    pub offset: usize,
    /// What was wrong.
    pub message: String,
}

/// Element types of torch storages (`torch.FloatStorage`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageKind {
    /// float32.
    Float,
    /// float64.
    Double,
    /// float16.
    Half,
    /// bfloat16.
    BFloat16,
    /// int64.
    Long,
    /// int32.
    Int,
    /// int16.
    Short,
    /// int8.
    Char,
    /// uint8.
    Byte,
    /// bool.
    Bool,
}

impl StorageKind {
    fn from_class(name: &str) -> Option<Self> {
        Some(match name {
            "FloatStorage" => StorageKind::Float,
            "DoubleStorage" => StorageKind::Double,
            "HalfStorage" => StorageKind::Half,
            "BFloat16Storage" => StorageKind::BFloat16,
            "LongStorage" => StorageKind::Long,
            "IntStorage" => StorageKind::Int,
            "ShortStorage" => StorageKind::Short,
            "CharStorage" => StorageKind::Char,
            "ByteStorage" => StorageKind::Byte,
            "BoolStorage" => StorageKind::Bool,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn element_size(self) -> usize {
        match self {
            StorageKind::Double | StorageKind::Long => 8,
            StorageKind::Float | StorageKind::Int => 4,
            StorageKind::Half | StorageKind::BFloat16 | StorageKind::Short => 2,
            StorageKind::Char | StorageKind::Byte | StorageKind::Bool => 1,
        }
    }

    /// The matching tch kind.
    pub fn kind(self) -> tch::Kind {
        match self {
            StorageKind::Float => tch::Kind::Float,
            StorageKind::Double => tch::Kind::Double,
            StorageKind::Half => tch::Kind::Half,
            StorageKind::BFloat16 => tch::Kind::BFloat16,
            StorageKind::Long => tch::Kind::Int64,
            StorageKind::Int => tch::Kind::Int,
            StorageKind::Short => tch::Kind::Int16,
            StorageKind::Char => tch::Kind::Int8,
            StorageKind::Byte => tch::Kind::Uint8,
            StorageKind::Bool => tch::Kind::Bool,
        }
    }
}

/// A storage named by a persistent id: its bytes are the zip entry `data/{key}`.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageRef {
    /// Element type.
    pub kind: StorageKind,
    /// Entry name under `data/`.
    pub key: String,
    /// Elements in the storage.
    pub numel: i64,
}

/// A tensor view on a storage (`_rebuild_tensor_v2`'s arguments).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    /// The storage.
    pub storage: StorageRef,
    /// Offset in elements.
    pub offset: i64,
    /// Shape.
    pub size: Vec<i64>,
    /// Strides in elements.
    pub stride: Vec<i64>,
}

/// A decoded pickle value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// `bool`.
    Bool(bool),
    /// `int` (within i64).
    Int(i64),
    /// `float`.
    Float(f64),
    /// `str`.
    Str(String),
    /// `bytes`.
    Bytes(Vec<u8>),
    /// `tuple`.
    Tuple(Vec<Value>),
    /// `list` (and sets).
    List(Vec<Value>),
    /// `dict` / `OrderedDict`, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A global reference (`module.name`), never imported.
    Global(String, String),
    /// A storage persistent id.
    Storage(StorageRef),
    /// A tensor.
    Tensor(TensorRef),
    /// An instance of a class this reader does not interpret (its state is dropped).
    Object(String, String),
    /// The MARK sentinel (internal to the reader).
    Mark,
}

impl Value {
    /// The entry `key` of a dict with string keys.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items
                .iter()
                .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    op_start: usize,
}

impl<'a> Reader<'a> {
    fn err<T>(&self, message: impl Into<String>) -> Result<T, PickleError> {
        Err(PickleError {
            offset: self.op_start,
            message: message.into(),
        })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        if n > self.data.len() - self.pos {
            return self.err(format!("truncated: needs {n} more bytes"));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn le<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn len_u64(&mut self) -> Result<usize, PickleError> {
        let n = u64::from_le_bytes(self.le::<8>()?);
        usize::try_from(n).or_else(|_| self.err("length does not fit in memory"))
    }

    fn line(&mut self) -> Result<String, PickleError> {
        let rest = &self.data[self.pos..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return self.err("unterminated GLOBAL line");
        };
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(s)
    }

    fn string(&mut self, n: usize) -> Result<Value, PickleError> {
        let bytes = self.take(n)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Value::Str(s.to_owned())),
            Err(_) => self.err("string is not UTF-8"),
        }
    }
}

/// The VM: a stack, a mark stack and the memo.
struct Machine {
    stack: Vec<Value>,
    memo: HashMap<u64, Value>,
}

impl Machine {
    fn pop(&mut self, r: &Reader<'_>) -> Result<Value, PickleError> {
        match self.stack.pop() {
            Some(Value::Mark) | None => r.err("stack underflow"),
            Some(v) => Ok(v),
        }
    }

    fn pop_mark(&mut self, r: &Reader<'_>) -> Result<Vec<Value>, PickleError> {
        let Some(at) = self.stack.iter().rposition(|v| *v == Value::Mark) else {
            return r.err("no MARK on the stack");
        };
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items)
    }

    fn top(&mut self, r: &Reader<'_>) -> Result<&mut Value, PickleError> {
        match self.stack.last_mut() {
            Some(Value::Mark) | None => r.err("stack underflow"),
            Some(v) => Ok(v),
        }
    }
}

fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Bool(b) => Some(*b as i64),
        _ => None,
    }
}

fn ints_of(v: &Value) -> Option<Vec<i64>> {
    match v {
        Value::Tuple(items) | Value::List(items) => items.iter().map(int_of).collect(),
        _ => None,
    }
}

/// Calls the few callables a state dict needs; everything else yields an opaque object.
fn call(r: &Reader<'_>, callable: Value, args: Value) -> Result<Value, PickleError> {
    let Value::Global(module, name) = callable else {
        return r.err("REDUCE on a value that is not a global");
    };
    let args = match args {
        Value::Tuple(a) => a,
        _ => return r.err(format!("{module}.{name}: arguments are not a tuple")),
    };
    match (module.as_str(), name.as_str()) {
        ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") => {
            let (Some(Value::Storage(storage)), Some(offset), Some(size), Some(stride)) = (
                args.first().cloned(),
                args.get(1).and_then(int_of),
                args.get(2).and_then(ints_of),
                args.get(3).and_then(ints_of),
            ) else {
                return r.err(format!("{module}.{name}: unexpected arguments"));
            };
            if size.len() != stride.len() {
                return r.err("tensor size and stride differ in length");
            }
            Ok(Value::Tensor(TensorRef {
                storage,
                offset,
                size,
                stride,
            }))
        }
        ("torch._utils", "_rebuild_parameter")
        | ("torch._utils", "_rebuild_parameter_with_state") => match args.into_iter().next() {
            Some(t @ Value::Tensor(_)) => Ok(t),
            _ => r.err(format!("{module}.{name}: first argument is not a tensor")),
        },
        ("collections", "OrderedDict") | ("builtins", "dict") => match args.into_iter().next() {
            None => Ok(Value::Dict(vec![])),
            Some(Value::List(pairs)) | Some(Value::Tuple(pairs)) => {
                let mut items = vec![];
                for p in pairs {
                    match p {
                        Value::Tuple(mut kv) | Value::List(mut kv) if kv.len() == 2 => {
                            let v = kv.pop().unwrap_or(Value::None);
                            let k = kv.pop().unwrap_or(Value::None);
                            items.push((k, v));
                        }
                        _ => return r.err("OrderedDict item is not a pair"),
                    }
                }
                Ok(Value::Dict(items))
            }
            Some(_) => Ok(Value::Dict(vec![])),
        },
        _ => Ok(Value::Object(module, name)),
    }
}

/// Decodes a pickle (protocols 2–5, as `torch.save` writes) into a [`Value`].
pub fn parse(data: &[u8]) -> Result<Value, PickleError> {
    let mut r = Reader {
        data,
        pos: 0,
        op_start: 0,
    };
    let mut m = Machine {
        stack: vec![],
        memo: HashMap::new(),
    };
    loop {
        r.op_start = r.pos;
        let op = r.u8()?;
        match op {
            0x80 => {
                let proto = r.u8()?;
                if proto > 5 {
                    return r.err(format!("unsupported pickle protocol {proto}"));
                }
            }
            0x95 => {
                r.take(8)?;
            }
            b'.' => return m.pop(&r),
            b'(' => m.stack.push(Value::Mark),
            b'}' => m.stack.push(Value::Dict(vec![])),
            b']' | 0x8f => m.stack.push(Value::List(vec![])),
            b')' => m.stack.push(Value::Tuple(vec![])),
            b't' => {
                let items = m.pop_mark(&r)?;
                m.stack.push(Value::Tuple(items));
            }
            0x91 => {
                let items = m.pop_mark(&r)?;
                m.stack.push(Value::List(items));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                let mut items = (0..n).map(|_| m.pop(&r)).collect::<Result<Vec<_>, _>>()?;
                items.reverse();
                m.stack.push(Value::Tuple(items));
            }
            b'X' => {
                let n = u32::from_le_bytes(r.le::<4>()?) as usize;
                let v = r.string(n)?;
                m.stack.push(v);
            }
            0x8c => {
                let n = r.u8()? as usize;
                let v = r.string(n)?;
                m.stack.push(v);
            }
            0x8d => {
                let n = r.len_u64()?;
                let v = r.string(n)?;
                m.stack.push(v);
            }
            b'B' => {
                let n = u32::from_le_bytes(r.le::<4>()?) as usize;
                m.stack.push(Value::Bytes(r.take(n)?.to_vec()));
            }
            b'C' => {
                let n = r.u8()? as usize;
                m.stack.push(Value::Bytes(r.take(n)?.to_vec()));
            }
            0x8e => {
                let n = r.len_u64()?;
                m.stack.push(Value::Bytes(r.take(n)?.to_vec()));
            }
            b'J' => m
                .stack
                .push(Value::Int(i32::from_le_bytes(r.le::<4>()?) as i64)),
            b'K' => m.stack.push(Value::Int(r.u8()? as i64)),
            b'M' => m
                .stack
                .push(Value::Int(u16::from_le_bytes(r.le::<2>()?) as i64)),
            0x8a | 0x8b => {
                let n = if op == 0x8a {
                    r.u8()? as usize
                } else {
                    u32::from_le_bytes(r.le::<4>()?) as usize
                };
                let bytes = r.take(n)?;
                if n > 8 {
                    return r.err("integer wider than 64 bits");
                }
                let mut buf = if bytes.last().is_some_and(|b| b & 0x80 != 0) {
                    [0xffu8; 8]
                } else {
                    [0u8; 8]
                };
                buf[..n].copy_from_slice(bytes);
                m.stack.push(Value::Int(i64::from_le_bytes(buf)));
            }
            b'G' => m.stack.push(Value::Float(f64::from_be_bytes(r.le::<8>()?))),
            b'N' => m.stack.push(Value::None),
            0x88 => m.stack.push(Value::Bool(true)),
            0x89 => m.stack.push(Value::Bool(false)),
            b'q' | b'r' | 0x94 => {
                let key = match op {
                    b'q' => r.u8()? as u64,
                    b'r' => u32::from_le_bytes(r.le::<4>()?) as u64,
                    _ => m.memo.len() as u64,
                };
                let v = m.top(&r)?.clone();
                m.memo.insert(key, v);
            }
            b'h' | b'j' => {
                let key = if op == b'h' {
                    r.u8()? as u64
                } else {
                    u32::from_le_bytes(r.le::<4>()?) as u64
                };
                let Some(v) = m.memo.get(&key).cloned() else {
                    return r.err(format!("memo key {key} not defined"));
                };
                m.stack.push(v);
            }
            b'c' => {
                let module = r.line()?;
                let name = r.line()?;
                m.stack.push(Value::Global(module, name));
            }
            0x93 => {
                let name = m.pop(&r)?;
                let module = m.pop(&r)?;
                let (Value::Str(module), Value::Str(name)) = (module, name) else {
                    return r.err("STACK_GLOBAL needs two strings");
                };
                m.stack.push(Value::Global(module, name));
            }
            b'R' => {
                let args = m.pop(&r)?;
                let callable = m.pop(&r)?;
                let v = call(&r, callable, args)?;
                m.stack.push(v);
            }
            0x81 | 0x92 => {
                if op == 0x92 {
                    m.pop(&r)?; // kwargs
                }
                let args = m.pop(&r)?;
                let cls = m.pop(&r)?;
                let v = match cls {
                    Value::Global(module, name) => call(&r, Value::Global(module, name), args)?,
                    _ => return r.err("NEWOBJ on a value that is not a class"),
                };
                m.stack.push(v);
            }
            b'b' => {
                // BUILD sets attributes, never items: a state dict's OrderedDict carries its
                // `_metadata` (module versions) this way, and opaque objects their fields.
                // Both are dropped.
                m.pop(&r)?;
                m.top(&r)?;
            }
            b's' => {
                let v = m.pop(&r)?;
                let k = m.pop(&r)?;
                if let Value::Dict(items) = m.top(&r)? {
                    items.push((k, v));
                }
            }
            b'u' => {
                let flat = m.pop_mark(&r)?;
                if flat.len() % 2 != 0 {
                    return r.err("SETITEMS with an odd number of items");
                }
                let mut it = flat.into_iter();
                let mut pairs = vec![];
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((k, v));
                }
                if let Value::Dict(items) = m.top(&r)? {
                    items.extend(pairs);
                }
            }
            b'a' => {
                let v = m.pop(&r)?;
                if let Value::List(items) = m.top(&r)? {
                    items.push(v);
                }
            }
            b'e' | 0x90 => {
                let vs = m.pop_mark(&r)?;
                if let Value::List(items) = m.top(&r)? {
                    items.extend(vs);
                }
            }
            b'Q' => {
                let pid = m.pop(&r)?;
                let v = match &pid {
                    Value::Tuple(items) if matches!(items.first(), Some(Value::Str(s)) if s == "storage") =>
                    {
                        let (Some(Value::Global(_, class)), Some(Value::Str(key)), Some(numel)) =
                            (items.get(1), items.get(2), items.get(4).and_then(int_of))
                        else {
                            return r.err("malformed storage persistent id");
                        };
                        let Some(kind) = StorageKind::from_class(class) else {
                            return r.err(format!("unsupported storage type {class}"));
                        };
                        Value::Storage(StorageRef {
                            kind,
                            key: key.clone(),
                            numel,
                        })
                    }
                    _ => return r.err("unsupported persistent id (not a torch storage)"),
                };
                m.stack.push(v);
            }
            b'0' => {
                m.stack.pop();
            }
            b'1' => {
                m.pop_mark(&r)?;
            }
            b'2' => {
                let v = m.top(&r)?.clone();
                m.stack.push(v);
            }
            other => return r.err(format!("unsupported opcode 0x{other:02x}")),
        }
    }
}
