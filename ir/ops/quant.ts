/**
 * Quantized ops (ONNX opsets 10 and 13), with round(v) half to even and saturate(v) clamping to the
 * quantized type's range (uint8 [0, 255], the default, or int8 [-128, 127]):
 *   QuantizeLinear         y = saturate(round(x / scale) + zero_point), of the zero point's type
 *   DequantizeLinear       y = (x - zero_point) * scale (x uint8, int8 or int32), of the scale's type
 *     (scale and zero point per tensor, or from opset 13 1-D along `axis`, default 1)
 *   DynamicQuantizeLinear  lo = min(0, min x), hi = max(0, max x), scale = (hi - lo) / 255 (a float32),
 *                          zero_point = saturate(round(-lo / scale)), y = QuantizeLinear(x, scale,
 *                          zero_point) as uint8; outputs y, scale, zero_point (all 0 when x is all 0)
 *   MatMulInteger          y = (A - a_zero_point) @ (B - b_zero_point), int32
 *   QLinearMatMul          y = saturate(round((a - a_zp) @ (b - b_zp) * (a_scale b_scale / y_scale)) + y_zp)
 *     (a's scale and zero point per tensor or per row (M values), b's and y's per column (N values))
 *   ConvInteger            y = Conv(x - x_zero_point, w - w_zero_point), int32
 *   QLinearConv            y = saturate(round((Conv(x - x_zp, w - w_zp) + B) * (x_scale w_scale / y_scale)) + y_zp)
 *     (Conv's attributes and window; padding reads 0 after the shift; x's and y's parameters per
 *     tensor, w's per tensor or per output channel; B int32, of scale x_scale w_scale)
 * The quotients x / scale are rounded to x's precision first (x and scale float32: float32
 * division, as ONNX's reference and runtimes compute it; the test data's ties depend on it).
 * Integer products are exact: they are computed on the shifted integers in float64 (by MatMul's and
 * Conv's own evals). All are non-polynomial on a secret (the default form): backends refuse them.
 */
import { defineOp, OpError, outputIndex, type InferContext, type OpDef, type RawAttrs } from '../op.js'
import { castValue, sizeOf, type DType, type Tensor, type TensorType } from '../tensor.js'
import { Conv, MatMul, type Window } from './nn.js'
import { broadcastTo, normAxis, requireFloat, withData } from './util.js'

const RANGE: Partial<Record<DType, readonly [number, number]>> = { uint8: [0, 255], int8: [-128, 127] }

/** Round half to even. */
function roundEven(v: number): number {
  const f = Math.floor(v)
  const r = v - f
  return r > 0.5 || (r === 0.5 && f % 2 !== 0) ? f + 1 : f
}

/** x / s at x's precision (see the header). */
function quotient(x: number, s: number, dtype: DType): number {
  return castValue(castValue(x, dtype) / castValue(s, dtype), dtype)
}

function saturate(v: number, dtype: DType): number {
  const [lo, hi] = RANGE[dtype]!
  return Number.isNaN(v) ? 0 : Math.min(Math.max(v, lo), hi)
}

/** The quantized type: the zero point's (uint8 or int8), or uint8 without one. */
function quantType(zp: TensorType | undefined, what: string): DType {
  if (!zp) return 'uint8'
  if (!RANGE[zp.dtype]) throw new OpError(`${what} must be uint8 or int8, got ${zp.dtype}`)
  return zp.dtype
}

function requireQuant(t: TensorType, what: string, like?: TensorType): void {
  if (!RANGE[t.dtype]) throw new OpError(`${what} must be uint8 or int8, got ${t.dtype}`)
  if (like && like.dtype !== t.dtype) throw new OpError(`${what} is ${t.dtype} but its zero point is ${like.dtype}`)
}

/**
 * The shape a scale or zero point broadcasts to `shape` from: a single value as a scalar, a 1-D
 * vector along `axis` (per axis, per row or per channel) padded with ones on the right; refused
 * when it does not fit or (`axis` undefined) is not a single value.
 */
function paramShape(p: TensorType, shape: readonly number[], axis: number | undefined, what: string): number[] {
  if (sizeOf(p.shape) === 1 && p.shape.length <= 1) return []
  if (axis === undefined) throw new OpError(`${what} must be a single value here, got shape [${p.shape.join(', ')}]`)
  const ax = normAxis(axis, shape.length)
  if (p.shape.length !== 1 || p.shape[0] !== shape[ax])
    throw new OpError(`${what} of shape [${p.shape.join(', ')}] must be a single value or ${shape[ax]} values (axis ${ax} of [${shape.join(', ')}])`)
  return [p.shape[0], ...new Array<number>(shape.length - ax - 1).fill(1)]
}

/** A parameter's values broadcast to `shape` (1 element: filled with `dflt` when absent). */
function paramValues(p: Tensor | undefined, shape: readonly number[], axis: number | undefined, what: string, dflt = 0): Float64Array {
  if (!p) return new Float64Array(sizeOf(shape)).fill(dflt)
  const ps = paramShape(p, shape, axis, what)
  return broadcastTo({ ...p, shape: ps }, shape).data
}

/** x - zero_point as float64 (the zero point broadcast per paramShape). */
function shifted(x: Tensor, zp: Tensor | undefined, axis: number | undefined, what: string): Tensor {
  const z = paramValues(zp, x.shape, axis, what)
  return { dtype: 'float64', shape: x.shape, data: x.data.map((v, i) => v - z[i]) }
}

const f64 = (t: TensorType | undefined): TensorType | undefined => t && { dtype: 'float64', shape: t.shape }

interface AxisAttrs {
  /** The per-axis axis (opset 13+); undefined before, where scale and zero point are single values. */
  axis?: number
}

function axisAttrs(r: RawAttrs): AxisAttrs {
  if (r.has('block_size') && r.int('block_size') !== 0) throw new OpError('blocked quantization (block_size) is not supported')
  if (r.has('output_dtype') && r.int('output_dtype') !== 0) throw new OpError('output_dtype is not supported: give a zero point of the output type')
  return r.opset >= 13 ? { axis: r.int('axis', 1) } : {}
}

function axisOnnx(a: AxisAttrs, opset: number) {
  if (a.axis === undefined || a.axis === 1) return {}
  if (opset < 13) throw new OpError('the quantization axis has no ONNX form before opset 13')
  return { axis: { i: a.axis } }
}

export const QuantizeLinear = defineOp<AxisAttrs>({
  doc: 'saturate(round(x / scale) + zero_point), uint8 or int8 (per tensor, or per axis from opset 13)',
  kind: 'nonlinear',
  arity: [2, 3],
  since: 10,
  attrs: axisAttrs,
  onnx: axisOnnx,
  infer: (ins, a) => {
    const [x, s, z] = ins
    requireFloat(x)
    requireFloat(s, 'the scale')
    paramShape(s, x.shape, a.axis, 'the scale')
    if (z) paramShape(z, x.shape, a.axis, 'the zero point')
    return { dtype: quantType(z, 'the zero point'), shape: x.shape }
  },
  eval: (ins, a, out) => {
    const [x, s, z] = ins
    const sv = paramValues(s, x.shape, a.axis, 'the scale')
    const zv = paramValues(z, x.shape, a.axis, 'the zero point')
    return withData(out, x.data.map((v, i) => saturate(roundEven(quotient(v, sv[i], x.dtype)) + zv[i], out.dtype)))
  },
})

export const DequantizeLinear = defineOp<AxisAttrs>({
  doc: '(x - zero_point) * scale for x uint8, int8 or int32 (per tensor, or per axis from opset 13)',
  kind: 'nonlinear',
  arity: [2, 3],
  since: 10,
  attrs: axisAttrs,
  onnx: axisOnnx,
  infer: (ins, a) => {
    const [x, s, z] = ins
    if (!RANGE[x.dtype] && x.dtype !== 'int32') throw new OpError(`DequantizeLinear input must be uint8, int8 or int32, got ${x.dtype}`)
    if (z && z.dtype !== x.dtype) throw new OpError(`the zero point is ${z.dtype} but the input is ${x.dtype}`)
    requireFloat(s, 'the scale')
    paramShape(s, x.shape, a.axis, 'the scale')
    if (z) paramShape(z, x.shape, a.axis, 'the zero point')
    return { dtype: s.dtype, shape: x.shape }
  },
  eval: (ins, a, out) => {
    const [x, s, z] = ins
    const sv = paramValues(s, x.shape, a.axis, 'the scale')
    const zv = paramValues(z, x.shape, a.axis, 'the zero point')
    return withData(out, x.data.map((v, i) => (v - zv[i]) * sv[i]))
  },
})

interface OutputAttrs {
  output?: number
  outputs?: number
}

export const DynamicQuantizeLinear: OpDef<OutputAttrs> = defineOp<OutputAttrs>({
  doc: 'x quantized to uint8 over its range widened to include 0; outputs y, the float32 scale and the uint8 zero point',
  kind: 'nonlinear',
  arity: [1, 1],
  since: 11,
  attrs: () => ({}),
  onnx: () => ({}),
  outputs: (a) => a.outputs ?? 1,
  infer: (ins, a) => {
    requireFloat(ins[0])
    const k = outputIndex(a)
    return k === 0 ? { dtype: 'uint8', shape: ins[0].shape } : { dtype: k === 1 ? 'float32' : 'uint8', shape: [] }
  },
  eval: (ins, a, out) => {
    const x = ins[0].data
    let lo = 0
    let hi = 0
    for (const v of x) {
      lo = Math.min(lo, v)
      hi = Math.max(hi, v)
    }
    const t = ins[0].dtype
    const scale = Math.fround(quotient(hi - lo, 255, t))
    const zp = scale === 0 ? 0 : saturate(roundEven(quotient(-lo, scale, t)), 'uint8')
    const k = outputIndex(a)
    if (k === 1) return withData(out, new Float64Array([scale]))
    if (k === 2) return withData(out, new Float64Array([zp]))
    return withData(out, x.map((v) => (scale === 0 ? 0 : saturate(roundEven(quotient(v, scale, t)) + zp, 'uint8'))))
  },
})

/** Per row of A (an M-vector: axis -2) and per column of B (an N-vector: axis -1); rank-1 operands take single values. */
const rowAxis = (shape: readonly number[]) => (shape.length >= 2 ? shape.length - 2 : undefined)
const colAxis = (shape: readonly number[]) => (shape.length >= 2 ? shape.length - 1 : undefined)

/** The axes of the product's rows and columns (undefined where a rank-1 operand dropped them). */
function productAxes(A: TensorType, B: TensorType, rank: number): { rows?: number; cols?: number } {
  const cols = B.shape.length >= 2 ? rank - 1 : undefined
  return { rows: A.shape.length >= 2 ? (cols === undefined ? rank - 1 : rank - 2) : undefined, cols }
}

function matmulShape(A: TensorType, B: TensorType, cx: InferContext): number[] {
  return [...MatMul.infer([f64(A)!, f64(B)!], {}, cx).shape]
}

export const MatMulInteger = defineOp<object>({
  doc: '(A - a_zero_point) @ (B - b_zero_point) as int32 (zero points per tensor, per row of A, per column of B)',
  kind: 'nonlinear',
  arity: [2, 4],
  since: 10,
  attrs: () => ({}),
  infer: (ins, _a, cx) => {
    const [A, B, za, zb] = ins
    requireQuant(A, 'A', za)
    requireQuant(B, 'B', zb)
    if (za) paramShape(za, A.shape, rowAxis(A.shape), "A's zero point")
    if (zb) paramShape(zb, B.shape, colAxis(B.shape), "B's zero point")
    return { dtype: 'int32', shape: matmulShape(A, B, cx) }
  },
  eval: (ins, _a, out) => {
    const [A, B, za, zb] = ins
    const a = shifted(A, za, rowAxis(A.shape), "A's zero point")
    const b = shifted(B, zb, colAxis(B.shape), "B's zero point")
    return withData(out, MatMul.eval([a, b], {}, { dtype: 'float64', shape: out.shape }).data)
  },
})

export const QLinearMatMul = defineOp<object>({
  doc: 'saturate(round((a - a_zp) @ (b - b_zp) * a_scale b_scale / y_scale) + y_zp), uint8 or int8',
  kind: 'nonlinear',
  arity: [8, 8],
  since: 10,
  attrs: () => ({}),
  infer: (ins, _a, cx) => {
    const [A, as, za, B, bs, zb, ys, zy] = ins
    requireQuant(A, 'a', za)
    requireQuant(B, 'b', zb)
    for (const [s, what] of [[as, "a's scale"], [bs, "b's scale"], [ys, "y's scale"]] as const) requireFloat(s, what)
    const shape = matmulShape(A, B, cx)
    const { cols } = productAxes(A, B, shape.length)
    paramShape(as, A.shape, rowAxis(A.shape), "a's scale")
    if (za) paramShape(za, A.shape, rowAxis(A.shape), "a's zero point")
    paramShape(bs, B.shape, colAxis(B.shape), "b's scale")
    if (zb) paramShape(zb, B.shape, colAxis(B.shape), "b's zero point")
    paramShape(ys, shape, cols, "y's scale")
    if (zy) paramShape(zy, shape, cols, "y's zero point")
    return { dtype: quantType(zy, "y's zero point"), shape }
  },
  eval: (ins, _a, out) => {
    const [A, as, za, B, bs, zb, ys, zy] = ins
    const acc = MatMul.eval([shifted(A, za, rowAxis(A.shape), "a's zero point"), shifted(B, zb, colAxis(B.shape), "b's zero point")], {}, { dtype: 'float64', shape: out.shape }).data
    const { rows, cols } = productAxes(A, B, out.shape.length)
    const sa = paramValues(as, out.shape, rows, "a's scale")
    const sb = paramValues(bs, out.shape, cols, "b's scale")
    const sy = paramValues(ys, out.shape, cols, "y's scale")
    const zv = paramValues(zy, out.shape, cols, "y's zero point")
    return withData(out, acc.map((v, i) => saturate(roundEven(v * ((sa[i] * sb[i]) / sy[i])) + zv[i], out.dtype)))
  },
})

/** Conv's attributes (its window and group). */
type ConvAttrs = Window & { group: number }

/** The float64 Conv of the shifted integers (and bias), shaped as Conv infers it. */
function convInfer(x: TensorType, w: TensorType, b: TensorType | undefined, a: ConvAttrs, cx: InferContext): number[] {
  return [...Conv.infer([f64(x)!, f64(w)!, ...(b ? [f64(b)!] : [])], a, cx).shape]
}

export const ConvInteger = defineOp<ConvAttrs>({
  doc: 'Conv(x - x_zero_point, w - w_zero_point) as int32 (w\'s zero point per tensor or per output channel)',
  kind: 'nonlinear',
  arity: [2, 4],
  since: 10,
  attrs: (r) => Conv.attrs(r),
  onnx: (a, opset) => Conv.onnx!(a, opset),
  infer: (ins, a, cx) => {
    const [x, w, zx, zw] = ins
    requireQuant(x, 'x', zx)
    requireQuant(w, 'w', zw)
    if (zx) paramShape(zx, x.shape, undefined, "x's zero point")
    if (zw) paramShape(zw, w.shape, 0, "w's zero point")
    return { dtype: 'int32', shape: convInfer(x, w, undefined, a, cx) }
  },
  eval: (ins, a, out) => {
    const [x, w, zx, zw] = ins
    const y = Conv.eval([shifted(x, zx, undefined, "x's zero point"), shifted(w, zw, 0, "w's zero point")], a, { dtype: 'float64', shape: out.shape })
    return withData(out, y.data)
  },
})

export const QLinearConv = defineOp<ConvAttrs>({
  doc: 'saturate(round((Conv(x - x_zp, w - w_zp) + B) * x_scale w_scale / y_scale) + y_zp), uint8 or int8',
  kind: 'nonlinear',
  arity: [8, 9],
  since: 10,
  attrs: (r) => Conv.attrs(r),
  onnx: (a, opset) => Conv.onnx!(a, opset),
  infer: (ins, a, cx) => {
    const [x, xs, zx, w, ws, zw, ys, zy, b] = ins
    requireQuant(x, 'x', zx)
    requireQuant(w, 'w', zw)
    for (const [s, what] of [[xs, "x's scale"], [ws, "w's scale"], [ys, "y's scale"]] as const) requireFloat(s, what)
    if (b && b.dtype !== 'int32') throw new OpError(`the bias must be int32, got ${b.dtype}`)
    const shape = convInfer(x, w, b, a, cx)
    paramShape(xs, x.shape, undefined, "x's scale")
    if (zx) paramShape(zx, x.shape, undefined, "x's zero point")
    paramShape(ws, w.shape, 0, "w's scale")
    if (zw) paramShape(zw, w.shape, 0, "w's zero point")
    paramShape(ys, shape, undefined, "y's scale")
    if (zy) paramShape(zy, shape, undefined, "y's zero point")
    return { dtype: quantType(zy, "y's zero point"), shape }
  },
  eval: (ins, a, out) => {
    const [x, xs, zx, w, ws, zw, ys, zy, b] = ins
    const bias = b ? [{ ...b, dtype: 'float64' as const }] : []
    const acc = Conv.eval([shifted(x, zx, undefined, "x's zero point"), shifted(w, zw, 0, "w's zero point"), ...bias], a, { dtype: 'float64', shape: out.shape }).data
    const sw = paramValues(ws, out.shape, 1, "w's scale")
    const sx = xs.data[0]
    const sy = ys.data[0]
    const z = zy ? zy.data[0] : 0
    return withData(out, acc.map((v, i) => saturate(roundEven(v * ((sx * sw[i]) / sy)) + z, out.dtype)))
  },
})

export const QUANT_OPS: Record<string, OpDef> = {
  QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, MatMulInteger, QLinearMatMul, ConvInteger, QLinearConv,
}
