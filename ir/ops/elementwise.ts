/**
 * Elementwise ops: activations and other unary functions, and broadcasting binary and variadic
 * arithmetic (Add, Sub, Mul, Div, Pow, PRelu, Sum, Mean, Max, Min).
 */
import { broadcastPrims, powerPoly, reshapePrim, scaleBy, type SecretForm } from '../linear.js'
import { defineOp, OpError, type OnnxAttrs, type OpDef, type Operand, type RawAttrs } from '../op.js'
import { isInteger, sizeOf, type Tensor, type TensorType } from '../tensor.js'
import { alloc, broadcastIndex, broadcastShapes, broadcastTo, requireFloat, withData } from './util.js'

/** erf to about 1e-15: Taylor series near 0, continued fraction for erfc in the tails. */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN
  const ax = Math.abs(x)
  if (ax < 2.5) {
    let term = x
    let sum = x
    const x2 = x * x
    for (let n = 1; n < 100; n++) {
      term *= -x2 / n
      const add = term / (2 * n + 1)
      sum += add
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break
    }
    return (2 / Math.sqrt(Math.PI)) * sum
  }
  if (ax > 6) return Math.sign(x)
  let f = ax
  for (let k = 60; k >= 1; k--) f = ax + k / 2 / f
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f
  return Math.sign(x) * (1 - erfc)
}

export function unary<A>(
  doc: string, parse: OpDef<A>['attrs'], f: (a: A) => (x: number) => number, since = 6, write?: OpDef<A>['onnx'], secret?: OpDef<A>['secret'],
): OpDef<A> {
  return defineOp<A>({
    doc,
    kind: 'nonlinear',
    arity: [1, 1],
    since,
    attrs: parse,
    onnx: write,
    infer: (ins) => {
      requireFloat(ins[0])
      return { dtype: ins[0].dtype, shape: ins[0].shape }
    },
    eval: (ins, a, out) => {
      const fn = f(a)
      const x = ins[0].data
      const y = new Float64Array(x.length)
      for (let i = 0; i < x.length; i++) y[i] = fn(x[i])
      return withData(out, y)
    },
    secret,
  })
}

export const none = () => ({})
/** ONNX form of float attributes; defaults are left out (they need not be float32 values). */
const floats =
  (defaults: Record<string, number>) =>
  <A extends object>(a: A): OnnxAttrs =>
    Object.fromEntries(Object.entries(a).map(([k, v]) => [k, v === defaults[k] ? undefined : { f: v as number }]))
const sigmoid = (x: number) => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)))
const softplus = (x: number) => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x)))

export const Relu: OpDef<object> = {
  ...unary('max(x, 0)', none, () => (x) => (x > 0 ? x : 0), 6, undefined, () => ({ form: 'compare', what: 'relu' })),
  // its own loop: the shared one calls a closure per element, several times slower on the commonest activation
  eval: (ins, _a, out) => {
    const x = ins[0].data
    const y = new Float64Array(x.length)
    for (let i = 0; i < x.length; i++) y[i] = x[i] > 0 ? x[i] : 0
    return withData(out, y)
  },
}
export const LeakyRelu = unary(
  'x if x >= 0 else alpha x',
  (r) => ({ alpha: r.float('alpha', 0.01) }),
  (a) => (x) => (x >= 0 ? x : a.alpha * x),
  6,
  floats({ alpha: 0.01 }),
  (_ins, a, out) => ({ form: 'compare', what: 'relu', slope: new Float64Array(sizeOf(out.shape)).fill(a.alpha) }),
)
export const Sigmoid = unary('1 / (1 + exp(-x))', none, () => sigmoid)
export const Tanh = unary('tanh(x)', none, () => Math.tanh)
export const Elu = unary('x if x > 0 else alpha (exp(x) - 1)', (r) => ({ alpha: r.float('alpha', 1) }), (a) => (x) => (x > 0 ? x : a.alpha * Math.expm1(x)), 6, floats({ alpha: 1 }))
export const Selu = unary(
  'gamma (x if x > 0 else alpha (exp(x) - 1))',
  (r) => ({ alpha: r.float('alpha', 1.67326319217681884765625), gamma: r.float('gamma', 1.05070102214813232421875) }),
  (a) => (x) => a.gamma * (x > 0 ? x : a.alpha * Math.expm1(x)),
  6,
  floats({}),
)
export const Softplus = unary('log(1 + exp(x))', none, () => softplus, 1)
export const HardSigmoid = unary(
  'max(0, min(1, alpha x + beta))',
  (r) => ({ alpha: r.float('alpha', 0.2), beta: r.float('beta', 0.5) }),
  (a) => (x) => Math.max(0, Math.min(1, a.alpha * x + a.beta)),
  6,
  floats({ alpha: 0.2, beta: 0.5 }),
)
export const HardSwish = unary('x max(0, min(1, x / 6 + 1 / 2))', none, () => (x) => x * Math.max(0, Math.min(1, x / 6 + 0.5)), 14)
export const Sqrt = unary('sqrt(x)', none, () => Math.sqrt)
export const Exp = unary('exp(x)', none, () => Math.exp)
export const Erf = unary('erf(x)', none, () => erf, 9)
export const Abs = unary('|x|', none, () => Math.abs)
export const Gelu = unary(
  "x Phi(x) (approximate 'none') or its tanh form (approximate 'tanh'), as ONNX opset 20",
  (r) => {
    const approximate = r.string('approximate', 'none')
    if (approximate !== 'none' && approximate !== 'tanh') throw new OpError(`Gelu approximate must be 'none' or 'tanh', got '${approximate}'`)
    return { approximate }
  },
  (a) =>
    a.approximate === 'tanh'
      ? (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)))
      : (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
  20,
  (a) => ({ approximate: { s: a.approximate } }),
)
export const Silu = unary('x sigmoid(x) (SiLU / Swish; PIC op, recognized from Mul(x, Sigmoid(x)))', none, () => (x) => x * sigmoid(x))

export const Neg = defineOp<object>({
  doc: '-x',
  kind: 'arith',
  arity: [1, 1],
  since: 6,
  attrs: none,
  infer: (ins) => ({ dtype: ins[0].dtype, shape: ins[0].shape }),
  eval: (ins, _a, out) => withData(out, ins[0].data.map((v) => -v)),
  secret: (_ins, _a, out) => ({ form: 'affine', terms: [{ input: 0, prims: [scaleBy(out.shape, -1)] }] }),
})

const passThrough = (doc: string) =>
  defineOp<object>({
    doc,
    kind: 'layout',
    arity: [1, 3],
    since: 1,
    attrs: none,
    infer: (ins) => ({ dtype: ins[0].dtype, shape: ins[0].shape }),
    eval: (ins) => ins[0],
    secret: (ins) => (ins.slice(1).some((i) => i.secret) ? { form: 'nonpoly' } : { form: 'layout', terms: [{ input: 0, prims: [reshapePrim(ins[0].shape, ins[0].shape)] }] }),
  })

export const Identity = passThrough('y = x')
const dropoutPass = passThrough('Identity at inference (the ratio input is ignored; training_mode must be false); output 1, the mask, is all true')
const training = (t: Tensor | undefined) => t !== undefined && t.data.length > 0 && t.data[0] !== 0
export const Dropout: OpDef<{ output?: number; outputs?: number }> = {
  ...dropoutPass,
  attrs: () => ({}),
  onnx: () => ({}),
  outputs: (a) => a.outputs ?? 1,
  infer: (ins, a, cx) => {
    if (training(cx.constant(2))) throw new OpError('Dropout in training mode is not supported: PIC runs inference')
    return a.output === 1 ? { dtype: 'bool', shape: ins[0].shape } : dropoutPass.infer(ins, a, cx)
  },
  eval: (ins, a, out) => {
    if (a.output === 1) return withData(out, new Float64Array(sizeOf(out.shape)).fill(1))
    if (training(ins[2])) throw new OpError('Dropout in training mode is not supported: PIC runs inference')
    return dropoutPass.eval(ins, a, out)
  },
  // the mask does not depend on the input's values
  secret: (ins, a, out) => (a.output === 1 ? { form: 'public' } : dropoutPass.secret!(ins, a, out)),
}

export const Clip = defineOp<{ min?: number; max?: number }>({
  doc: 'min(max(x, lo), hi); scalar bounds from inputs 2 and 3 (opset 11+) or attributes, absent bounds unbounded',
  kind: 'nonlinear',
  arity: [1, 3],
  since: 6,
  attrs: (r) => ({ min: r.has('min') ? r.float('min') : undefined, max: r.has('max') ? r.float('max') : undefined }),
  onnx: (a, opset) => {
    if (opset >= 11 && (a.min !== undefined || a.max !== undefined)) throw new OpError('Clip bounds are inputs, not attributes, from opset 11')
    return { min: a.min !== undefined ? { f: a.min } : undefined, max: a.max !== undefined ? { f: a.max } : undefined }
  },
  infer: (ins) => {
    for (const i of [1, 2]) if (ins[i] && sizeOf(ins[i].shape) !== 1) throw new OpError('Clip bounds must be scalars')
    return { dtype: ins[0].dtype, shape: ins[0].shape }
  },
  eval: (ins, a, out) => {
    const lo = ins[1] ? ins[1].data[0] : (a.min ?? -Infinity)
    const hi = ins[2] ? ins[2].data[0] : (a.max ?? Infinity)
    return withData(out, ins[0].data.map((v) => Math.min(Math.max(v, lo), hi)))
  },
})

export function binaryEval(ins: readonly Tensor[], out: TensorType, f: (a: number, b: number) => number): Tensor {
  const [a, b] = ins
  const y = alloc(out)
  const ia = broadcastIndex(a.shape, out.shape)
  const ib = broadcastIndex(b.shape, out.shape)
  const ad = a.data
  const bd = b.data
  const yd = y.data
  const n = yd.length
  if (!ia && !ib) for (let i = 0; i < n; i++) yd[i] = f(ad[i], bd[i])
  else if (!ia && bd.length === 1) {
    const bv = bd[0]
    for (let i = 0; i < n; i++) yd[i] = f(ad[i], bv)
  } else for (let i = 0; i < n; i++) yd[i] = f(ad[ia ? ia[i] : i], bd[ib ? ib[i] : i])
  return y
}

/**
 * Before opset 7, Add, Sub, Mul and Div broadcast only with `broadcast = 1`, B's dims aligned to A's
 * from `axis` (default: the trailing dims, as NumPy). `legacyAxis` holds that axis when it differs
 * from NumPy's alignment; B then reads as B's shape padded with ones on the right.
 */
interface BinaryAttrs {
  legacyAxis?: number
}

function binaryAttrs(r: RawAttrs): BinaryAttrs {
  if (r.opset >= 7 || r.int('broadcast', 0) !== 1 || !r.has('axis')) return {}
  return { legacyAxis: r.int('axis') }
}

/** The inputs as NumPy broadcasting sees them: B padded on the right for a legacy axis. */
function aligned<T extends TensorType>(ins: readonly T[], a: BinaryAttrs): T[] {
  if (a.legacyAxis === undefined) return [...ins]
  const [x, y] = ins
  const axis = a.legacyAxis < 0 ? a.legacyAxis + x.shape.length : a.legacyAxis
  const pad = x.shape.length - axis - y.shape.length
  if (pad < 0) throw new OpError(`B of rank ${y.shape.length} does not fit A of rank ${x.shape.length} from axis ${a.legacyAxis}`)
  const shape = [...y.shape, ...new Array<number>(pad).fill(1)]
  const value = (y as { value?: Tensor }).value
  return [x, { ...y, shape, ...(value ? { value: { ...value, shape } } : {}) }, ...ins.slice(2)]
}

function binary(doc: string, f: (a: number, b: number) => number, secret: OpDef['secret'], intF?: (a: number, b: number) => number): OpDef<BinaryAttrs> {
  return defineOp<BinaryAttrs>({
    doc: `${doc}; before opset 7 with the legacy broadcast and axis attributes`,
    kind: 'arith',
    arity: [2, 2],
    since: 1,
    attrs: binaryAttrs,
    onnx: (a) => {
      if (a.legacyAxis !== undefined) throw new OpError('the legacy broadcast axis has no ONNX form from opset 7; reshape B first')
      return {}
    },
    infer: (ins0, a) => {
      const ins = aligned(ins0, a)
      if (ins[0].dtype !== ins[1].dtype) throw new OpError(`input types differ: ${ins[0].dtype} and ${ins[1].dtype}`)
      return { dtype: ins[0].dtype, shape: broadcastShapes([ins[0].shape, ins[1].shape]) }
    },
    eval: (ins, a, out) => binaryEval(aligned(ins, a), out, isInteger(out.dtype) && intF ? intF : f),
    secret: (ins, a, out) => (a.legacyAxis !== undefined && ins[1].secret ? { form: 'nonpoly' } : secret!(aligned(ins, a), a, out)),
  })
}

/** Secret inputs summed with the given signs (constants go to the bias), each broadcast to the output. */
function sumForm(ins: readonly Operand[], out: TensorType, weight: (i: number) => number): SecretForm {
  const terms = ins.flatMap((o, i) => {
    if (!o.secret) return []
    const w = weight(i)
    return [{ input: i, prims: [...broadcastPrims(o.shape, out.shape), ...(w !== 1 ? [scaleBy(out.shape, w)] : [])] }]
  })
  return { form: 'affine', terms }
}

/** A secret times (or divided by) a constant is a scale; two secrets are a product (a square when equal). */
function productForm(ins: readonly Operand[], out: TensorType, divide: boolean): SecretForm {
  const [a, b] = ins
  if (a.secret && b.secret) return divide ? { form: 'nonpoly' } : { form: 'product' }
  if (divide && b.secret) return { form: 'nonpoly' }
  const [x, c] = a.secret ? [0, b] : [1, a]
  const v = c.value!
  const f = divide ? { ...v, data: v.data.map((d) => 1 / d) } : v
  return { form: 'affine', terms: [{ input: x, prims: [...broadcastPrims(ins[x].shape, out.shape), scaleBy(out.shape, f)] }] }
}

export const Add = binary('a + b (broadcasting)', (a, b) => a + b, (ins, _a, out) => sumForm(ins, out, () => 1))
export const Sub = binary('a - b (broadcasting)', (a, b) => a - b, (ins, _a, out) => sumForm(ins, out, (i) => (i === 0 ? 1 : -1)))
export const Mul = binary('a * b (broadcasting)', (a, b) => a * b, (ins, _a, out) => productForm(ins, out, false))
export const Div = binary('a / b (broadcasting; integer division truncates)', (a, b) => a / b, (ins, _a, out) => productForm(ins, out, true), (a, b) => Math.trunc(a / b))

/** The exponent of Pow when it is a constant non-negative integer, else undefined. */
export function integerExponent(e: Tensor | undefined): number | undefined {
  if (!e || sizeOf(e.shape) !== 1) return undefined
  const v = e.data[0]
  return Number.isInteger(v) && v >= 0 && v <= 64 ? v : undefined
}

export const Pow = defineOp<BinaryAttrs>({
  doc: 'a ^ b (broadcasting); exponent may have another numeric dtype; before opset 7 with the legacy broadcast and axis attributes',
  kind: 'arith',
  arity: [2, 2],
  since: 1,
  attrs: binaryAttrs,
  onnx: (a) => {
    if (a.legacyAxis !== undefined) throw new OpError('the legacy broadcast axis has no ONNX form from opset 7; reshape the exponent first')
    return {}
  },
  infer: (ins0, a) => {
    const ins = aligned(ins0, a)
    return { dtype: ins[0].dtype, shape: broadcastShapes([ins[0].shape, ins[1].shape]) }
  },
  eval: (ins, a, out) => binaryEval(aligned(ins, a), out, (x, y) => (y === 2 ? x * x : Math.pow(x, y))),
  secret: (ins0, a, out) => {
    const ins = aligned(ins0, a)
    const e = ins[1].secret ? undefined : integerExponent(ins[1].value)
    if (e === undefined || !ins[0].secret || sizeOf(ins[0].shape) !== sizeOf(out.shape)) return { form: 'nonpoly' }
    return { form: 'poly', poly: powerPoly(e) }
  },
})

/** Before opset 7 a slope of C values is per channel (axis 1); as a [C, 1, ...] slope it broadcasts the same way since. */
function preluSlope<T extends TensorType>(ins: readonly T[], a: { legacy: boolean }): T[] {
  const [x, s] = ins
  if (!a.legacy || s.shape.length !== 1 || x.shape.length < 3 || s.shape[0] !== x.shape[1]) return [...ins]
  const shape = [s.shape[0], ...new Array<number>(x.shape.length - 2).fill(1)]
  const value = (s as { value?: Tensor }).value
  return [x, { ...s, shape, ...(value ? { value: { ...value, shape } } : {}) }]
}

export const PRelu = defineOp<{ legacy: boolean }>({
  doc: 'x if x >= 0 else slope x (slope broadcasts to x; before opset 7 a slope of C values is per channel)',
  kind: 'nonlinear',
  arity: [2, 2],
  since: 1,
  attrs: (r) => ({ legacy: r.opset < 7 }),
  onnx: (a) => {
    if (a.legacy) throw new OpError('a per-channel PRelu slope of opset < 7 has no ONNX form from opset 7; reshape the slope first')
    return {}
  },
  infer: (ins0, a) => {
    const ins = preluSlope(ins0, a)
    const shape = broadcastShapes([ins[0].shape, ins[1].shape])
    if (shape.length !== ins[0].shape.length || shape.some((d, i) => d !== ins[0].shape[i]))
      throw new OpError('PRelu slope must broadcast to the input shape')
    return { dtype: ins[0].dtype, shape: ins[0].shape }
  },
  eval: (ins, a, out) => binaryEval(preluSlope(ins, a), out, (x, s) => (x >= 0 ? x : s * x)),
  secret: (ins0, a, out) => {
    const ins = preluSlope(ins0, a)
    if (ins[1].secret) return { form: 'nonpoly' }
    return { form: 'compare', what: 'relu', slope: scaleBy(out.shape, ins[1].value!).f }
  },
})

function variadic(doc: string, combine: (vals: Float64Array[], n: number) => Float64Array, kind: 'arith' | 'nonlinear', secret?: OpDef['secret']): OpDef<object> {
  return defineOp<object>({
    doc,
    kind,
    arity: [1, 2 ** 16],
    since: 6,
    attrs: none,
    infer: (ins) => {
      for (const t of ins) if (t.dtype !== ins[0].dtype) throw new OpError('all inputs must have the same dtype')
      return { dtype: ins[0].dtype, shape: broadcastShapes(ins.map((t) => t.shape)) }
    },
    eval: (ins, _a, out) => {
      const n = sizeOf(out.shape)
      const vals = ins.map((t) => broadcastTo(t, out.shape).data)
      return withData(out, combine(vals, n))
    },
    secret,
  })
}

const fold = (f: (acc: number, v: number) => number) => (vals: Float64Array[], n: number) => {
  const y = Float64Array.from(vals[0].subarray(0, n))
  for (let k = 1; k < vals.length; k++) for (let i = 0; i < n; i++) y[i] = f(y[i], vals[k][i])
  return y
}

export const Sum = variadic('elementwise sum of all inputs (broadcasting)', fold((a, b) => a + b), 'arith', (ins, _a, out) => sumForm(ins, out, () => 1))
export const Mean = variadic(
  'elementwise mean of all inputs (broadcasting)',
  (vals, n) => fold((a, b) => a + b)(vals, n).map((v) => v / vals.length),
  'arith',
  (ins, _a, out) => sumForm(ins, out, () => 1 / ins.length),
)
export const Max = variadic('elementwise maximum (broadcasting)', fold(Math.max), 'nonlinear')
export const Min = variadic('elementwise minimum (broadcasting)', fold(Math.min), 'nonlinear')

export const ELEMENTWISE_OPS: Record<string, OpDef> = {
  Relu, LeakyRelu, Sigmoid, Tanh, Elu, Selu, Softplus, HardSigmoid, HardSwish, Sqrt, Exp, Erf, Abs, Gelu, Silu,
  Neg, Identity, Dropout, Clip, Add, Sub, Mul, Div, Pow, PRelu, Sum, Mean, Max, Min,
}
