/**
 * PIC's own ops beside ONNX's: `Poly`, an elementwise polynomial with per-channel coefficients in a
 * chosen basis, and `PartialRelu`, SENet's m * relu(x) + (1 - m) * x with a constant 0/1 mask
 * (optionally with the masked positions approximated by a polynomial).
 */
import { defineOp, OpError, type OpDef } from '../op.js'
import { evalRun, type Basis } from '../poly.js'
import { sizeOf, type Tensor, type TensorType } from '../tensor.js'
import { broadcastIndex, broadcastShapes, requireFloat, withData } from './util.js'

export interface PolyAttrs {
  basis: Basis
  /** Axis the per-channel rows run along (1 for NCHW and [N, C]). */
  axis: number
  /** [1 or C][degree + 1] coefficients: y = sum_k c_k B_k((x - shift) / scale). */
  coeffs: number[][]
  shift: number[]
  scale: number[]
  /** The op this polynomial replaces or was recognized from ('Relu', 'Square', ...), for reports. */
  of?: string
  /** Interval the fit is meant for, per channel or overall, for reports and CKKS range checks. */
  interval?: [number, number]
}

export function polyDegree(a: PolyAttrs): number {
  return coeffsDegree(a.coeffs)
}

/** Highest k with a nonzero coefficient in any row. */
export function coeffsDegree(rows: readonly (readonly number[])[]): number {
  let d = 0
  for (const row of rows) for (let k = row.length - 1; k > d; k--) if (row[k] !== 0) d = k
  return d
}

/** Paterson-Stockmeyer depth: ceil(log2(d + 1)). */
export function polyDepth(d: number): number {
  return d <= 0 ? 0 : Math.ceil(Math.log2(d + 1))
}

/** Non-scalar multiplications for a degree-d polynomial by baby-step giant-step. */
export function polyMuls(d: number): number {
  if (d <= 1) return 0
  if (d <= 3) return d - 1
  return Math.ceil(Math.sqrt(2 * d) + Math.log2(d)) - 1
}

function channels(a: PolyAttrs): number {
  return a.coeffs.length
}

/** Apply the polynomial to every element of x, row c of the coefficients on channel c of `axis`. */
export function applyPoly(a: PolyAttrs, x: Tensor, out: TensorType = x): Float64Array {
  const y = new Float64Array(x.data.length)
  const C = channels(a)
  const axis = C === 1 ? 0 : a.axis < 0 ? a.axis + out.shape.length : a.axis
  const inner = C === 1 ? y.length : sizeOf(out.shape.slice(axis + 1))
  // runs of `inner` elements share a channel: each run is one call of a loop specialised to the basis
  for (let start = 0, run = 0; start < y.length; start += inner, run++) {
    const ch = C === 1 ? 0 : run % C
    evalRun(a.basis, a.coeffs[ch], a.shift[ch], a.scale[ch], x.data, y, start, Math.min(y.length, start + inner))
  }
  return y
}

function checkPoly(a: PolyAttrs, t: TensorType): void {
  const C = channels(a)
  if (C < 1 || a.shift.length !== C || a.scale.length !== C) throw new OpError('Poly needs one shift and scale per coefficient row')
  if (a.coeffs.some((r) => r.length !== a.coeffs[0].length || r.some((v) => !Number.isFinite(v)))) throw new OpError('Poly coefficient rows must be finite and of equal length')
  if (C > 1) {
    const axis = a.axis < 0 ? a.axis + t.shape.length : a.axis
    if (t.shape[axis] !== C) throw new OpError(`Poly has ${C} coefficient rows but axis ${a.axis} has ${t.shape[axis]} channels`)
  }
}

export const Poly = defineOp<PolyAttrs>({
  doc: 'elementwise polynomial sum_k c_k B_k((x - shift) / scale), per channel, B = power, Chebyshev T or Hermite h',
  kind: 'poly',
  arity: [1, 1],
  attrs: () => {
    throw new OpError('Poly is created by passes, not read from ONNX')
  },
  infer: (ins, a) => {
    requireFloat(ins[0])
    checkPoly(a, ins[0])
    return { dtype: ins[0].dtype, shape: ins[0].shape }
  },
  eval: (ins, a, out) => withData(out, applyPoly(a, ins[0], out)),
  secret: (_ins, a) => ({ form: 'poly', poly: a }),
})

export interface PartialReluAttrs {
  /** 0/1 mask broadcastable to the input: 1 = ReLU, 0 = identity. */
  mask: Tensor
  /** When set, masked positions use this polynomial instead of ReLU. */
  poly?: PolyAttrs
}

/** Number of ReLU positions the mask selects in a tensor of the given shape. */
export function maskOnes(mask: Tensor, shape: readonly number[]): number {
  const idx = broadcastIndex(mask.shape, shape)
  const n = sizeOf(shape)
  let ones = 0
  for (let i = 0; i < n; i++) if (mask.data[idx ? idx[i] : i] !== 0) ones++
  return ones
}

export const PartialRelu = defineOp<PartialReluAttrs>({
  doc: 'SENet partial ReLU: m * relu(x) + (1 - m) * x with a constant 0/1 mask (masked positions may use a polynomial)',
  kind: 'nonlinear',
  arity: [1, 1],
  attrs: () => {
    throw new OpError('PartialRelu is created by passes, not read from ONNX')
  },
  infer: (ins, a) => {
    requireFloat(ins[0])
    const s = broadcastShapes([ins[0].shape, a.mask.shape])
    if (s.length !== ins[0].shape.length || s.some((d, i) => d !== ins[0].shape[i])) throw new OpError('mask must broadcast to the input')
    if (a.mask.data.some((v) => v !== 0 && v !== 1)) throw new OpError('mask must hold only 0 and 1')
    if (a.poly) checkPoly(a.poly, ins[0])
    return { dtype: ins[0].dtype, shape: ins[0].shape }
  },
  eval: (ins, a, out) => {
    const x = ins[0]
    const idx = broadcastIndex(a.mask.shape, out.shape)
    const p = a.poly ? applyPoly(a.poly, x, out) : undefined
    const y = new Float64Array(x.data.length)
    for (let i = 0; i < y.length; i++) {
      const v = x.data[i]
      y[i] = a.mask.data[idx ? idx[i] : i] !== 0 ? (p ? p[i] : v > 0 ? v : 0) : v
    }
    return withData(out, y)
  },
  secret: (_ins, a) => (a.poly ? { form: 'poly', poly: a.poly, positions: a.mask } : { form: 'compare', what: 'relu', positions: a.mask }),
})

export const PI_OPS: Record<string, OpDef> = { Poly, PartialRelu }
