/**
 * Resize (opset 11 on) and Upsample (opset 9): every axis resampled by a scale or to a size (both
 * compile-time constants), with nearest, N-linear or cubic interpolation, separable over the axes,
 * as ONNX's reference implementation does it: the source coordinate of each output coordinate by
 * the coordinate transformation mode, then the n nearest source indices (ties to the smaller, edge
 * values beyond the ends) weighted by the mode's coefficients. Nearest is a layout op on a secret;
 * linear and cubic are fixed linear maps that no backend lowers yet (non-polynomial form).
 */
import { layoutForm, type SecretForm } from '../linear.js'
import { defineOp, OpError, type OpDef, type RawAttrs } from '../op.js'
import { sizeOf, stridesOf, type Tensor, type TensorType } from '../tensor.js'
import { checkShape, nextIndex, withData } from './util.js'

type Mode = 'nearest' | 'linear' | 'cubic'
type Transform = 'half_pixel' | 'pytorch_half_pixel' | 'align_corners' | 'asymmetric' | 'tf_half_pixel_for_nn' | 'tf_crop_and_resize'
type Nearest = 'round_prefer_floor' | 'round_prefer_ceil' | 'floor' | 'ceil'

interface ResizeAttrs {
  mode: Mode
  transform: Transform
  nearest: Nearest
  cubicA: number
  excludeOutside: boolean
  extrapolation: number
  /** Upsample: scales from input 1 (opset 9) or this attribute (opset 7). */
  upsample?: { scales?: number[] }
}

function oneOf<T extends string>(v: string, allowed: readonly T[], what: string): T {
  if (!(allowed as readonly string[]).includes(v)) throw new OpError(`${what} '${v}' is not supported (${allowed.join(', ')})`)
  return v as T
}

function resizeAttrs(r: RawAttrs): ResizeAttrs {
  return {
    mode: oneOf(r.string('mode', 'nearest'), ['nearest', 'linear', 'cubic'], 'mode'),
    transform: oneOf(r.string('coordinate_transformation_mode', 'half_pixel'), ['half_pixel', 'pytorch_half_pixel', 'align_corners', 'asymmetric', 'tf_half_pixel_for_nn', 'tf_crop_and_resize'], 'coordinate_transformation_mode'),
    nearest: oneOf(r.string('nearest_mode', 'round_prefer_floor'), ['round_prefer_floor', 'round_prefer_ceil', 'floor', 'ceil'], 'nearest_mode'),
    cubicA: r.float('cubic_coeff_a', -0.75),
    excludeOutside: r.int('exclude_outside', 0) === 1,
    extrapolation: r.float('extrapolation_value', 0),
  }
}

/** Scales, sizes and roi from the inputs (X, roi, scales, sizes) or Upsample's (X, scales). */
function geometry(shape: readonly number[], a: ResizeAttrs, constant: (i: number) => Tensor | undefined, present: (i: number) => boolean): { scales: number[]; sizes: number[]; roi?: number[] } {
  const rank = shape.length
  const floats = (i: number, what: string) => {
    const t = constant(i)
    if (!t) throw new OpError(`${what} must be a compile-time constant`)
    return Array.from(t.data)
  }
  let scales: number[] | undefined
  let sizes: number[] | undefined
  if (a.upsample) scales = a.upsample.scales ?? floats(1, 'Upsample scales')
  else {
    if (present(3)) sizes = floats(3, 'Resize sizes')
    else if (present(2)) scales = floats(2, 'Resize scales')
    if (scales && scales.length === 0) scales = undefined
    if (!scales && !sizes) throw new OpError('Resize needs scales or sizes')
  }
  if (scales) {
    if (scales.length !== rank || scales.some((s) => !(s > 0))) throw new OpError(`Resize needs ${rank} positive scales, got [${scales.join(', ')}]`)
    sizes = shape.map((d, i) => Math.floor(d * scales![i]))
  } else {
    if (sizes!.length !== rank || sizes!.some((s) => !Number.isInteger(s) || s < 0)) throw new OpError(`Resize needs ${rank} sizes, got [${sizes!.join(', ')}]`)
    scales = sizes!.map((s, i) => s / shape[i])
  }
  const roi = a.transform === 'tf_crop_and_resize' && present(1) ? floats(1, 'Resize roi') : undefined
  return { scales, sizes: sizes!, roi }
}

function cubicCoeffs(r: number, A: number): number[] {
  return [
    ((A * (r + 1) - 5 * A) * (r + 1) + 8 * A) * (r + 1) - 4 * A,
    ((A + 2) * r - (A + 3)) * r * r + 1,
    ((A + 2) * (1 - r) - (A + 3)) * (1 - r) * (1 - r) + 1,
    ((A * (1 - r + 1) - 5 * A) * (1 - r + 1) + 8 * A) * (1 - r + 1) - 4 * A,
  ]
}

function nearestCoeffs(r: number, mode: Nearest, integral: boolean): number[] {
  if (integral) return [0, 1]
  switch (mode) {
    case 'round_prefer_floor':
      return [r <= 0.5 ? 1 : 0, r > 0.5 ? 1 : 0]
    case 'round_prefer_ceil':
      return [r < 0.5 ? 1 : 0, r >= 0.5 ? 1 : 0]
    case 'floor':
      return [1, 0]
    case 'ceil':
      return [0, 1]
  }
}

/** Source indices (clamped to the edge) and weights of one output coordinate along one axis; undefined: the extrapolation value. */
function taps(x: number, len: number, scale: number, a: ResizeAttrs, roi?: [number, number]): { idx: number[]; w: number[] } | undefined {
  const outLen = scale * len
  let xo: number
  switch (a.transform) {
    case 'align_corners':
      xo = outLen === 1 ? 0 : (x * (len - 1)) / (outLen - 1)
      break
    case 'asymmetric':
      xo = x / scale
      break
    case 'pytorch_half_pixel':
      xo = outLen === 1 ? -0.5 : (x + 0.5) / scale - 0.5
      break
    case 'tf_half_pixel_for_nn':
      xo = (x + 0.5) / scale
      break
    case 'tf_crop_and_resize': {
      const [s, e] = roi ?? [0, 1]
      xo = (outLen === 1 ? ((e - s) * (len - 1)) / 2 : (x * (e - s) * (len - 1)) / (outLen - 1)) + s * (len - 1)
      if (xo < 0 || xo > len - 1) return undefined
      break
    }
    default:
      xo = (x + 0.5) / scale - 0.5
  }
  const integral = Number.isInteger(xo)
  const r = integral ? 1 : xo - Math.floor(xo)
  let w = a.mode === 'cubic' ? cubicCoeffs(r, a.cubicA) : a.mode === 'linear' ? [1 - r, r] : nearestCoeffs(r, a.nearest, integral)
  const n = w.length
  // the n nearest integer positions to xo, ties to the smaller, in ascending order
  const first = Math.floor(xo) - (n / 2 - 1) - (integral ? 1 : 0)
  const raw = Array.from({ length: n }, (_, k) => first + k)
  if (a.excludeOutside) {
    w = w.map((v, k) => (raw[k] < 0 || raw[k] >= len ? 0 : v))
    const s = w.reduce((p, q) => p + q, 0)
    w = w.map((v) => v / s)
  }
  return { idx: raw.map((i) => Math.min(Math.max(i, 0), len - 1)), w }
}

function resizeEval(ins: readonly Tensor[], a: ResizeAttrs, out: TensorType): Tensor {
  const x = ins[0]
  const rank = x.shape.length
  const { scales, roi } = geometry(x.shape, a, (i) => ins[i], (i) => !!ins[i] && ins[i].data.length > 0)
  const strides = stridesOf(x.shape)
  const perAxis = out.shape.map((n, d) =>
    Array.from({ length: n }, (_, j) => taps(j, x.shape[d], scales[d], a, roi ? [roi[d], roi[rank + d]] : undefined)),
  )
  const y = new Float64Array(sizeOf(out.shape))
  const c = new Array<number>(rank).fill(0)
  const acc = (d: number, off: number, w: number): number => {
    if (d === rank) return w * x.data[off]
    const t = perAxis[d][c[d]]!
    let s = 0
    for (let k = 0; k < t.idx.length; k++) if (t.w[k] !== 0) s += acc(d + 1, off + t.idx[k] * strides[d], w * t.w[k])
    return s
  }
  for (let e = 0; e < y.length; e++) {
    y[e] = c.some((j, d) => perAxis[d][j] === undefined) ? a.extrapolation : acc(0, 0, 1)
    nextIndex(c, out.shape)
  }
  return withData(out, y)
}

function resizeInfer(ins: readonly TensorType[], a: ResizeAttrs, constant: (i: number) => Tensor | undefined): TensorType {
  const { sizes } = geometry(ins[0].shape, a, constant, (i) => !!ins[i] && sizeOf(ins[i].shape) > 0)
  return { dtype: ins[0].dtype, shape: checkShape(sizes) }
}

const secretForm = (def: () => OpDef<ResizeAttrs>) => (ins: Parameters<NonNullable<OpDef['secret']>>[0], a: ResizeAttrs, out: TensorType): SecretForm =>
  a.mode === 'nearest' && a.transform !== 'tf_crop_and_resize' ? layoutForm(def(), ins, a, out) : { form: 'nonpoly' }

export const Resize: OpDef<ResizeAttrs> = defineOp<ResizeAttrs>({
  doc: 'resampled by scales or to sizes (constant inputs): nearest, linear or cubic, with ONNX coordinate transformation modes',
  kind: 'linear',
  arity: [1, 4],
  since: 11,
  attrs: resizeAttrs,
  onnx: (a) => ({
    mode: { s: a.mode },
    coordinate_transformation_mode: { s: a.transform },
    nearest_mode: { s: a.nearest },
    cubic_coeff_a: { f: a.cubicA },
    exclude_outside: { i: a.excludeOutside ? 1 : 0 },
    extrapolation_value: { f: a.extrapolation },
  }),
  infer: (ins, a, cx) => resizeInfer(ins, a, (i) => cx.constant(i)),
  eval: resizeEval,
  secret: secretForm(() => Resize),
})

export const Upsample: OpDef<ResizeAttrs> = defineOp<ResizeAttrs>({
  doc: 'Resize before opset 10: scales (input 1 from opset 9, attribute before), asymmetric coordinates, nearest rounds down',
  kind: 'linear',
  arity: [1, 2],
  since: 7,
  attrs: (r) => {
    const mode = oneOf(r.string('mode', 'nearest'), ['nearest', 'linear'], 'mode')
    return { mode, transform: 'asymmetric', nearest: 'floor', cubicA: -0.75, excludeOutside: false, extrapolation: 0, upsample: { scales: r.has('scales') ? r.floats('scales') : undefined } }
  },
  onnx: (a, opset) => {
    if (opset >= 10) throw new OpError('Upsample is deprecated from opset 10; write Resize')
    return { mode: { s: a.mode }, scales: a.upsample?.scales ? { floats: a.upsample.scales } : undefined }
  },
  infer: (ins, a, cx) => resizeInfer(ins, a, (i) => cx.constant(i)),
  eval: resizeEval,
  secret: secretForm(() => Upsample),
})

export const RESIZE_OPS: Record<string, OpDef> = { Resize, Upsample }
