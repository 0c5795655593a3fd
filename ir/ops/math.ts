/**
 * The rest of ONNX's inference math: unary functions (logarithm, reciprocal, trigonometry, rounding),
 * comparisons and logic with boolean results, Where, Mod, ArgMax / ArgMin, Trilu, Cast / CastLike, GatherElements and Size. None is a polynomial on a secret except Trilu
 * (a constant mask: affine); the others take the default non-polynomial form, so a backend refuses
 * them on encrypted values unless a pass replaces them.
 */
import { scaleBy } from '../linear.js'
import { defineOp, OpError, type OpDef } from '../op.js'
import { castValue, dtypeOfElemType, isInteger, sizeOf, tensor, type DType, type Tensor, type TensorType } from '../tensor.js'
import { binaryEval, none, unary } from './elementwise.js'
import { broadcastShapes, broadcastTo, elementOffsets, intsOf, normAxis, withData } from './util.js'

/** Round half to even, as ONNX's Round. */
function roundEven(x: number): number {
  const r = Math.round(x)
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r
}

const alphaAttr = (dflt: number) => (r: { float(n: string, d?: number): number }) => ({ alpha: r.float('alpha', dflt) })
const alphaOnnx = (dflt: number) => (a: { alpha: number }) => ({ alpha: a.alpha === dflt ? undefined : { f: a.alpha } })

export const Log = unary('ln(x)', none, () => Math.log)
export const Reciprocal = unary('1 / x', none, () => (x) => 1 / x)
export const Cos = unary('cos(x)', none, () => Math.cos, 7)
export const Sin = unary('sin(x)', none, () => Math.sin, 7)
export const Tan = unary('tan(x)', none, () => Math.tan, 7)
export const Acos = unary('arccos(x)', none, () => Math.acos, 7)
export const Asin = unary('arcsin(x)', none, () => Math.asin, 7)
export const Atan = unary('arctan(x)', none, () => Math.atan, 7)
export const Cosh = unary('cosh(x)', none, () => Math.cosh, 9)
export const Sinh = unary('sinh(x)', none, () => Math.sinh, 9)
export const Acosh = unary('arcosh(x)', none, () => Math.acosh, 9)
export const Asinh = unary('arsinh(x)', none, () => Math.asinh, 9)
export const Atanh = unary('artanh(x)', none, () => Math.atanh, 9)
export const Ceil = unary('ceil(x)', none, () => Math.ceil)
export const Floor = unary('floor(x)', none, () => Math.floor)
export const Round = unary('x rounded to the nearest integer, halves to even', none, () => roundEven, 11)
export const Sign = unary('-1, 0 or 1 by the sign of x', none, () => (x) => (x > 0 ? 1 : x < 0 ? -1 : x), 9)
export const Softsign = unary('x / (1 + |x|)', none, () => (x) => x / (1 + Math.abs(x)), 1)
export const Celu = unary('max(0, x) + min(0, alpha (exp(x / alpha) - 1))', alphaAttr(1), (a) => (x) => Math.max(0, x) + Math.min(0, a.alpha * Math.expm1(x / a.alpha)), 12, alphaOnnx(1))
export const ThresholdedRelu = unary('x if x > alpha else 0', alphaAttr(1), (a) => (x) => (x > a.alpha ? x : 0), 10, alphaOnnx(1))
export const Shrink = unary(
  'x + bias if x < -lambd, x - bias if x > lambd, else 0',
  (r) => ({ lambd: r.float('lambd', 0.5), bias: r.float('bias', 0) }),
  (a) => (x) => (x < -a.lambd ? x + a.bias : x > a.lambd ? x - a.bias : 0),
  9,
  (a) => ({ lambd: a.lambd === 0.5 ? undefined : { f: a.lambd }, bias: a.bias === 0 ? undefined : { f: a.bias } }),
)

/** A broadcasting binary op with a boolean result. */
function predicate(doc: string, f: (a: number, b: number) => boolean, since = 7, inputs?: DType): OpDef<object> {
  return defineOp<object>({
    doc,
    kind: 'nonlinear',
    arity: [2, 2],
    since,
    attrs: none,
    infer: (ins) => {
      if (ins[0].dtype !== ins[1].dtype) throw new OpError(`input types differ: ${ins[0].dtype} and ${ins[1].dtype}`)
      if (inputs && ins[0].dtype !== inputs) throw new OpError(`inputs must be ${inputs} tensors, got ${ins[0].dtype}`)
      return { dtype: 'bool', shape: broadcastShapes([ins[0].shape, ins[1].shape]) }
    },
    eval: (ins, _a, out) => binaryEval(ins, out, (a, b) => (f(a, b) ? 1 : 0)),
  })
}

export const Equal = predicate('a == b (broadcasting)', (a, b) => a === b)
export const Greater = predicate('a > b (broadcasting)', (a, b) => a > b)
export const Less = predicate('a < b (broadcasting)', (a, b) => a < b)
export const GreaterOrEqual = predicate('a >= b (broadcasting)', (a, b) => a >= b, 12)
export const LessOrEqual = predicate('a <= b (broadcasting)', (a, b) => a <= b, 12)
export const And = predicate('a and b (booleans, broadcasting)', (a, b) => a !== 0 && b !== 0, 7, 'bool')
export const Or = predicate('a or b (booleans, broadcasting)', (a, b) => a !== 0 || b !== 0, 7, 'bool')
export const Xor = predicate('a xor b (booleans, broadcasting)', (a, b) => (a !== 0) !== (b !== 0), 7, 'bool')

export const Not = defineOp<object>({
  doc: 'not x (booleans)',
  kind: 'nonlinear',
  arity: [1, 1],
  since: 1,
  attrs: none,
  infer: (ins) => {
    if (ins[0].dtype !== 'bool') throw new OpError(`input must be a bool tensor, got ${ins[0].dtype}`)
    return { dtype: 'bool', shape: ins[0].shape }
  },
  eval: (ins, _a, out) => withData(out, ins[0].data.map((v) => (v ? 0 : 1))),
})

export const Where = defineOp<object>({
  doc: 'x where cond, else y (broadcasting all three)',
  kind: 'nonlinear',
  arity: [3, 3],
  since: 9,
  attrs: none,
  infer: (ins) => {
    if (ins[0].dtype !== 'bool') throw new OpError(`condition must be a bool tensor, got ${ins[0].dtype}`)
    if (ins[1].dtype !== ins[2].dtype) throw new OpError(`input types differ: ${ins[1].dtype} and ${ins[2].dtype}`)
    return { dtype: ins[1].dtype, shape: broadcastShapes(ins.map((t) => t.shape)) }
  },
  eval: (ins, _a, out) => {
    const [c, x, y] = ins.map((t) => broadcastTo(t, out.shape).data)
    return withData(out, Float64Array.from(c, (v, i) => (v ? x[i] : y[i])))
  },
})

export const Mod = defineOp<{ fmod: boolean }>({
  doc: "remainder: the divisor's sign (fmod = 0, integers), or the dividend's as C fmod (fmod = 1)",
  kind: 'nonlinear',
  arity: [2, 2],
  since: 10,
  attrs: (r) => ({ fmod: r.int('fmod', 0) === 1 }),
  onnx: (a) => ({ fmod: a.fmod ? { i: 1 } : undefined }),
  infer: (ins, a) => {
    if (ins[0].dtype !== ins[1].dtype) throw new OpError(`input types differ: ${ins[0].dtype} and ${ins[1].dtype}`)
    if (!a.fmod && !isInteger(ins[0].dtype)) throw new OpError('Mod of floats needs fmod = 1')
    return { dtype: ins[0].dtype, shape: broadcastShapes([ins[0].shape, ins[1].shape]) }
  },
  eval: (ins, a, out) =>
    binaryEval(ins, out, (x, y) => {
      const r = x % y
      return a.fmod || r === 0 || Math.sign(r) === Math.sign(y) ? r : r + y
    }),
})

interface ArgAttrs {
  axis: number
  keepdims: boolean
  last: boolean
}

function argReduce(doc: string, better: (v: number, best: number) => boolean): OpDef<ArgAttrs> {
  return defineOp<ArgAttrs>({
    doc,
    kind: 'nonlinear',
    arity: [1, 1],
    since: 1,
    attrs: (r) => ({ axis: r.int('axis', 0), keepdims: r.int('keepdims', 1) === 1, last: r.int('select_last_index', 0) === 1 }),
    onnx: (a) => ({ axis: a.axis ? { i: a.axis } : undefined, keepdims: a.keepdims ? undefined : { i: 0 }, select_last_index: a.last ? { i: 1 } : undefined }),
    infer: (ins, a) => {
      const axis = normAxis(a.axis, ins[0].shape.length)
      return { dtype: 'int64', shape: ins[0].shape.flatMap((d, i) => (i === axis ? (a.keepdims ? [1] : []) : [d])) }
    },
    eval: (ins, a, out) => {
      const x = ins[0]
      const axis = normAxis(a.axis, x.shape.length)
      const outer = sizeOf(x.shape.slice(0, axis))
      const len = x.shape[axis]
      const inner = sizeOf(x.shape.slice(axis + 1))
      const y = new Float64Array(outer * inner)
      for (let o = 0; o < outer; o++)
        for (let i = 0; i < inner; i++) {
          const base = o * len * inner + i
          let best = 0
          for (let k = 1; k < len; k++) {
            const v = x.data[base + k * inner]
            const b = x.data[base + best * inner]
            if (better(v, b) || (a.last && v === b)) best = k
          }
          y[o * inner + i] = best
        }
      return withData(out, y)
    },
  })
}

export const ArgMax = argReduce('index of the largest element along an axis (first, or last with select_last_index)', (v, b) => v > b)
export const ArgMin = argReduce('index of the smallest element along an axis (first, or last with select_last_index)', (v, b) => v < b)

/** The Trilu mask of a [.., rows, cols] shape: keep the upper (j - i >= k) or lower (j - i <= k) triangle. */
function triluMask(shape: readonly number[], upper: boolean, k: number): Tensor {
  const r = shape[shape.length - 2]
  const c = shape[shape.length - 1]
  const n = sizeOf(shape)
  const m = new Float64Array(n)
  for (let e = 0; e < n; e++) {
    const j = e % c
    const i = Math.floor(e / c) % r
    m[e] = (upper ? j - i >= k : j - i <= k) ? 1 : 0
  }
  return tensor('float64', [...shape], m)
}

/** Trilu's diagonal offset: the optional constant input k, default 0. */
const triluK = (k: Tensor | undefined, given: boolean) => (given ? intsOf(k, 'Trilu k')[0] : 0)

export const Trilu = defineOp<{ upper: boolean }>({
  doc: 'the upper (upper = 1) or lower triangle of the last two dims, from diagonal k (input 2, default 0)',
  kind: 'linear',
  arity: [1, 2],
  since: 14,
  attrs: (r) => ({ upper: r.int('upper', 1) === 1 }),
  onnx: (a) => ({ upper: a.upper ? undefined : { i: 0 } }),
  infer: (ins, _a, cx) => {
    if (ins[0].shape.length < 2) throw new OpError('Trilu needs a tensor of rank 2 or more')
    if (ins[1]) intsOf(cx.constant(1), 'Trilu k')
    return { dtype: ins[0].dtype, shape: ins[0].shape }
  },
  eval: (ins, a, out) => {
    const mask = triluMask(ins[0].shape, a.upper, triluK(ins[1], !!ins[1]))
    return withData(out, ins[0].data.map((v, e) => (mask.data[e] ? v : 0)))
  },
  secret: (ins, a, out) => {
    if (ins[1]?.secret) return { form: 'nonpoly' }
    const mask = triluMask(out.shape, a.upper, triluK(ins[1]?.value, !!ins[1]))
    return { form: 'affine', terms: [{ input: 0, prims: [scaleBy(out.shape, mask)] }] }
  },
})

/** The PIC dtype of an ONNX element type for Cast. */
function castDtype(to: number): DType {
  const d = dtypeOfElemType(to)
  if (!d) throw new OpError(`Cast to ONNX element type ${to} is not supported`)
  return d
}

/** A value converted to a dtype: floats round, integers truncate toward zero and wrap, NaN is true. */
function convert(v: number, to: DType): number {
  if (to === 'bool') return v !== 0 ? 1 : 0
  return castValue(v, to)
}

export const Cast = defineOp<{ to: number }>({
  doc: 'x converted to the element type `to`',
  kind: 'nonlinear',
  arity: [1, 1],
  since: 6,
  attrs: (r) => ({ to: r.int('to') }),
  onnx: (a) => ({ to: { i: a.to } }),
  infer: (ins, a) => ({ dtype: castDtype(a.to), shape: ins[0].shape }),
  eval: (ins, _a, out) => withData(out, ins[0].data.map((v) => convert(v, out.dtype))),
})

export const CastLike = defineOp<object>({
  doc: "x converted to the element type of the second input",
  kind: 'nonlinear',
  arity: [2, 2],
  since: 15,
  attrs: none,
  infer: (ins) => ({ dtype: ins[1].dtype, shape: ins[0].shape }),
  eval: (ins, _a, out) => withData(out, ins[0].data.map((v) => convert(v, out.dtype))),
})

export const GatherElements = defineOp<{ axis: number }>({
  doc: 'y[i] = x[i with its axis coordinate replaced by indices[i]] (output shaped like the indices)',
  kind: 'layout',
  arity: [2, 2],
  since: 11,
  attrs: (r) => ({ axis: r.int('axis', 0) }),
  onnx: (a) => ({ axis: a.axis ? { i: a.axis } : undefined }),
  infer: (ins, a) => {
    if (!isInteger(ins[1].dtype)) throw new OpError(`indices must be integers, got ${ins[1].dtype}`)
    if (ins[1].shape.length !== ins[0].shape.length) throw new OpError('indices must have the rank of the data')
    normAxis(a.axis, ins[0].shape.length)
    return { dtype: ins[0].dtype, shape: ins[1].shape }
  },
  eval: (ins, a, out) => {
    const [x, idx] = ins
    const offsets = elementOffsets(x.shape, idx, normAxis(a.axis, x.shape.length))
    return withData(out, Float64Array.from(offsets, (off) => x.data[off]))
  },
})

export const Size = defineOp<object>({
  doc: 'the number of elements of x (an int64 scalar, known at compile time)',
  kind: 'source',
  arity: [1, 1],
  since: 1,
  attrs: none,
  infer: () => ({ dtype: 'int64', shape: [] }),
  eval: (ins, _a, out: TensorType) => withData(out, new Float64Array([sizeOf(ins[0].shape)])),
})

export const IsNaN = defineOp<object>({
  doc: 'x is NaN (bool)',
  kind: 'nonlinear',
  arity: [1, 1],
  since: 9,
  attrs: none,
  infer: (ins) => ({ dtype: 'bool', shape: ins[0].shape }),
  eval: (ins, _a, out) => withData(out, ins[0].data.map((v) => (Number.isNaN(v) ? 1 : 0))),
})

export const IsInf = defineOp<{ positive: boolean; negative: boolean }>({
  doc: 'x is +inf (detect_positive) or -inf (detect_negative) (bool)',
  kind: 'nonlinear',
  arity: [1, 1],
  since: 10,
  attrs: (r) => ({ positive: r.int('detect_positive', 1) === 1, negative: r.int('detect_negative', 1) === 1 }),
  onnx: (a) => ({ detect_positive: a.positive ? undefined : { i: 0 }, detect_negative: a.negative ? undefined : { i: 0 } }),
  infer: (ins) => ({ dtype: 'bool', shape: ins[0].shape }),
  eval: (ins, a, out) => withData(out, ins[0].data.map((v) => ((a.positive && v === Infinity) || (a.negative && v === -Infinity) ? 1 : 0))),
})

export const BitShift = defineOp<{ left: boolean }>({
  doc: 'x shifted left or right by y bits (unsigned integers, broadcasting)',
  kind: 'nonlinear',
  arity: [2, 2],
  since: 11,
  attrs: (r) => {
    const d = r.string('direction')
    if (d !== 'LEFT' && d !== 'RIGHT') throw new OpError(`direction must be LEFT or RIGHT, got '${d}'`)
    return { left: d === 'LEFT' }
  },
  onnx: (a) => ({ direction: { s: a.left ? 'LEFT' : 'RIGHT' } }),
  infer: (ins) => {
    if (ins[0].dtype !== ins[1].dtype || !ins[0].dtype.startsWith('uint')) throw new OpError(`BitShift needs two unsigned integer inputs of one type, got ${ins[0].dtype} and ${ins[1].dtype}`)
    return { dtype: ins[0].dtype, shape: broadcastShapes([ins[0].shape, ins[1].shape]) }
  },
  eval: (ins, a, out) => binaryEval(ins, out, (x, y) => (a.left ? x * 2 ** y : Math.floor(x / 2 ** y))),
})

export const MATH_OPS: Record<string, OpDef> = {
  IsNaN, IsInf, BitShift,
  Log, Reciprocal, Cos, Sin, Tan, Acos, Asin, Atan, Cosh, Sinh, Acosh, Asinh, Atanh, Ceil, Floor, Round, Sign, Softsign, Celu,
  ThresholdedRelu, Shrink, Equal, Greater, Less, GreaterOrEqual, LessOrEqual, And, Or, Xor, Not, Where, Mod, ArgMax, ArgMin,
  Trilu, Cast, CastLike, GatherElements, Size,
}
