/**
 * Linear operators over secret values, built from what the ops declare (`OpDef.secret`), never by
 * evaluating an op once per input element.
 *
 * A secret value that is an affine function of some *sources* (values a backend holds in its own form:
 * the graph input, the output of a garbled ReLU, a power of a polynomial's input) is kept in a normal
 * form: `y = sum_t chain_t(source_t) + bias`, where each term's chain is a short list of primitives
 * applied in order:
 *
 *   reshape   same elements, new shape                       (Reshape, Flatten, Squeeze, Identity)
 *   index     out[i] = in[map[i]], or 0 where map[i] = -1    (Transpose, Slice, Pad, Concat, Gather, broadcasting)
 *   scale     out[i] = f[i] in[i]                            (Mul/Div by constants, BatchNorm, Neg, Sub)
 *   conv      a 2-D convolution: kernel, strides, pads, dilations, groups (Conv)
 *   dense     out[r, n] = sum_k in[r, k] W[k, n]             (Gemm, MatMul by a constant)
 *   sumpool   window sums of a 2-D pooling window            (AveragePool, with a scale)
 *   segsum    out[map[i]] += in[i]                           (GlobalAveragePool, ReduceSum/Mean, with a scale)
 *
 * Every primitive applies itself to a stack of vectors (forward and transposed) and counts its
 * multiply-adds; the bias comes from the ops' own reference `eval` at the inputs' biases (exact for an
 * affine op). Concat and Add of two secrets are sums of terms. `simplify` then folds scales into the
 * neighbouring convolution or dense layer where the structure allows (a per-channel scale before or
 * after a convolution is a convolution), so most terms carry one weighted primitive.
 */
import { PicError } from './errors.js'
import { constantOf, describeNode, type Graph, type Node } from './graph.js'
import type { OpDef, Operand } from './op.js'
import type { PolyAttrs } from './ops/pi.js'
import { OPS } from './ops/index.js'
import { matmulAcc } from './ops/nn.js'
import { broadcastIndex } from './ops/util.js'
import { sizeOf, type Tensor, type TensorType } from './tensor.js'

export class LinearError extends PicError {}

export interface ConvGeom {
  /** Input [C, H, W] and output [M, OH, OW] of one image. */
  c: number
  h: number
  w: number
  m: number
  oh: number
  ow: number
  kh: number
  kw: number
  strides: [number, number]
  /** [top, left, bottom, right] */
  pads: [number, number, number, number]
  dilations: [number, number]
  group: number
}

export type Prim =
  | { kind: 'reshape'; in: readonly number[]; out: readonly number[] }
  | { kind: 'index'; in: readonly number[]; out: readonly number[]; map: Int32Array }
  | { kind: 'scale'; in: readonly number[]; out: readonly number[]; f: Float64Array }
  | { kind: 'conv'; in: readonly number[]; out: readonly number[]; geom: ConvGeom; weight: Float64Array }
  | { kind: 'dense'; in: readonly number[]; out: readonly number[]; k: number; n: number; weight: Float64Array }
  | { kind: 'sumpool'; in: readonly number[]; out: readonly number[]; geom: ConvGeom }
  | { kind: 'segsum'; in: readonly number[]; out: readonly number[]; map: Int32Array }

export interface Term {
  /** Source id, as the caller numbers its sources. */
  readonly source: number
  readonly prims: readonly Prim[]
}

/** The coefficients of x^e as a Poly (power basis, no normalization). */
export function powerPoly(e: number): PolyAttrs {
  const c = new Array<number>(e + 1).fill(0)
  c[e] = 1
  return { basis: 'power', axis: 1, coeffs: [c], shift: [0], scale: [1] }
}

/** A secret value in normal form: the sum of its terms plus a bias, of the given shape. */
export interface Affine {
  readonly shape: readonly number[]
  readonly terms: readonly Term[]
  readonly bias: Float64Array
}

/** How an op acts on its secret inputs (asked of the op table, `OpDef.secret`). */
export type SecretForm =
  | { form: 'public' }
  /** Moves values only; each term names the input it reads. */
  | { form: 'layout'; terms: { input: number; prims: Prim[] }[] }
  /** Affine in its secret inputs, with constant weights; the bias comes from `eval`. */
  | { form: 'affine'; terms: { input: number; prims: Prim[] }[] }
  /** An elementwise polynomial of input 0 (on the mask's ones only, when `positions` is given; identity elsewhere). */
  | { form: 'poly'; poly: PolyAttrs; positions?: Tensor }
  /**
   * Comparisons of input 0: ReLU (with a slope per element for leaky ReLU; on the mask's ones only when
   * `positions` is given, identity elsewhere), or the maximum over each pooling window.
   */
  | { form: 'compare'; what: 'relu'; slope?: Float64Array; positions?: Tensor }
  | { form: 'compare'; what: 'max'; window: ConvGeom }
  /** A product of two secret values. */
  | { form: 'product' }
  /** Anything else: must be approximated first, or (`why`) cannot run on a secret at all. */
  | { form: 'nonpoly'; why?: string }

// ---------------------------------------------------------------------------------------------
// primitive constructors (used by the op table)

export function reshapePrim(from: readonly number[], to: readonly number[]): Prim {
  return { kind: 'reshape', in: from, out: to }
}

export function indexPrim(from: readonly number[], to: readonly number[], map: Int32Array): Prim {
  return { kind: 'index', in: from, out: to, map }
}

/** out = in broadcast to `to` (an index map), or nothing when the shapes agree. */
export function broadcastPrims(from: readonly number[], to: readonly number[]): Prim[] {
  const idx = broadcastIndex(from, to)
  if (!idx) return []
  if (sizeOf(from) === sizeOf(to)) return [reshapePrim(from, to)]
  return [indexPrim(from, to, idx)]
}

export function scalePrim(shape: readonly number[], f: Float64Array): Prim & { kind: 'scale' } {
  return { kind: 'scale', in: shape, out: shape, f }
}

/** A constant factor of any broadcastable shape as an elementwise scale over `shape`. */
export function scaleBy(shape: readonly number[], factor: Tensor | number): Prim & { kind: 'scale' } {
  if (typeof factor === 'number') return scalePrim(shape, new Float64Array(sizeOf(shape)).fill(factor))
  const idx = broadcastIndex(factor.shape, shape)
  const f = new Float64Array(sizeOf(shape))
  for (let i = 0; i < f.length; i++) f[i] = factor.data[idx ? idx[i] : i]
  return scalePrim(shape, f)
}

/**
 * The index map of a layout op on input `which`: one evaluation of the op's reference semantics on
 * the input's positions (i + 1 + OFFSET, other secret inputs at zero), read back. Values that are no
 * position (padding constants) map to -1 and stay in the bias.
 */
export function layoutMap<A>(def: Pick<OpDef<A>, 'eval'>, ins: readonly Operand[], attrs: A, out: TensorType, which: number): Int32Array {
  const OFFSET = 2 ** 40
  const n = sizeOf(ins[which].shape)
  const args = ins.map((o, i) => {
    if (i === which) {
      const data = new Float64Array(n)
      for (let k = 0; k < n; k++) data[k] = k + 1 + OFFSET
      return { dtype: 'float64' as const, shape: o.shape, data }
    }
    if (o.secret) return { dtype: o.dtype, shape: o.shape, data: new Float64Array(sizeOf(o.shape)) }
    return o.value ?? { dtype: o.dtype, shape: o.shape, data: new Float64Array(sizeOf(o.shape)) }
  })
  const y = def.eval(args, attrs, { dtype: 'float64', shape: out.shape }).data
  const map = new Int32Array(y.length)
  for (let i = 0; i < y.length; i++) {
    const k = y[i] - 1 - OFFSET
    map[i] = Number.isInteger(k) && k >= 0 && k < n ? k : -1
  }
  return map
}

/**
 * Terms of a layout op: one per secret input among `data` (the others must be constants, as shapes,
 * indices and pads are), each its index map, or a plain reshape when it is one.
 */
export function layoutForm<A>(def: Pick<OpDef<A>, 'eval'>, ins: readonly Operand[], attrs: A, out: TensorType, data: (i: number) => boolean = (i) => i === 0): SecretForm {
  if (ins.some((o, i) => o.secret && !data(i))) return { form: 'nonpoly' }
  const terms: { input: number; prims: Prim[] }[] = []
  ins.forEach((o, i) => {
    if (!o.secret) return
    const map = layoutMap(def, ins, attrs, out, i)
    const plain = map.length === sizeOf(o.shape) && map.every((v, k) => v === k)
    terms.push({ input: i, prims: [plain ? reshapePrim(o.shape, out.shape) : indexPrim(o.shape, out.shape, map)] })
  })
  return { form: 'layout', terms }
}

// ---------------------------------------------------------------------------------------------
// applying primitives to a stack of `count` vectors (vector v at [v * size, (v + 1) * size))

function convForward(p: ConvGeom, w: Float64Array, x: Float64Array): Float64Array {
  const conv = OPS.Conv
  const attrs = {
    kernel: [p.kh, p.kw], strides: p.strides, pads: p.pads, dilations: p.dilations, autoPad: 'NOTSET', ceil: false, group: p.group,
  }
  const images = x.length / (p.c * p.h * p.w)
  const xt = { dtype: 'float64' as const, shape: [images, p.c, p.h, p.w], data: x }
  const wt = { dtype: 'float64' as const, shape: [p.m, p.c / p.group, p.kh, p.kw], data: w }
  return conv.eval([xt, wt], attrs, { dtype: 'float64', shape: [images, p.m, p.oh, p.ow] }).data
}

/** x^T: scatter each output back through its taps. */
function convTranspose(p: ConvGeom, w: Float64Array | undefined, y: Float64Array): Float64Array {
  const cg = p.c / p.group
  const mg = p.m / p.group
  const inSize = p.c * p.h * p.w
  const outSize = p.m * p.oh * p.ow
  const count = y.length / outSize
  const x = new Float64Array(count * inSize)
  for (let v = 0; v < count; v++)
    for (let m = 0; m < p.m; m++) {
      const g = Math.floor(m / mg)
      for (let ci = 0; ci < cg; ci++) {
        const c = g * cg + ci
        for (let ki = 0; ki < p.kh; ki++)
          for (let kj = 0; kj < p.kw; kj++) {
            const wv = w ? w[((m * cg + ci) * p.kh + ki) * p.kw + kj] : m === c ? 1 : 0
            if (wv === 0) continue
            for (let oh = 0; oh < p.oh; oh++) {
              const ih = oh * p.strides[0] - p.pads[0] + ki * p.dilations[0]
              if (ih < 0 || ih >= p.h) continue
              const yo = v * outSize + (m * p.oh + oh) * p.ow
              const xo = v * inSize + (c * p.h + ih) * p.w
              for (let ow = 0; ow < p.ow; ow++) {
                const iw = ow * p.strides[1] - p.pads[1] + kj * p.dilations[1]
                if (iw >= 0 && iw < p.w) x[xo + iw] += wv * y[yo + ow]
              }
            }
          }
      }
    }
  return x
}

function sumpoolForward(p: ConvGeom, x: Float64Array): Float64Array {
  const planes = x.length / (p.h * p.w)
  const y = new Float64Array(planes * p.oh * p.ow)
  for (let pl = 0; pl < planes; pl++)
    for (let oh = 0; oh < p.oh; oh++)
      for (let ow = 0; ow < p.ow; ow++) {
        let acc = 0
        for (let ki = 0; ki < p.kh; ki++) {
          const ih = oh * p.strides[0] - p.pads[0] + ki * p.dilations[0]
          if (ih < 0 || ih >= p.h) continue
          for (let kj = 0; kj < p.kw; kj++) {
            const iw = ow * p.strides[1] - p.pads[1] + kj * p.dilations[1]
            if (iw >= 0 && iw < p.w) acc += x[(pl * p.h + ih) * p.w + iw]
          }
        }
        y[(pl * p.oh + oh) * p.ow + ow] = acc
      }
  return y
}

/** Apply one primitive to `count` stacked vectors. */
export function applyPrim(p: Prim, x: Float64Array, count: number): Float64Array {
  const nIn = sizeOf(p.in)
  const nOut = sizeOf(p.out)
  switch (p.kind) {
    case 'reshape':
      return x
    case 'index': {
      const y = new Float64Array(count * nOut)
      for (let v = 0; v < count; v++) {
        const xo = v * nIn
        const yo = v * nOut
        for (let i = 0; i < nOut; i++) {
          const k = p.map[i]
          if (k >= 0) y[yo + i] = x[xo + k]
        }
      }
      return y
    }
    case 'scale': {
      const y = new Float64Array(count * nOut)
      for (let v = 0; v < count; v++)
        for (let i = 0, o = v * nOut; i < nOut; i++) {
          const f = p.f[i]
          if (f === f) y[o + i] = f * x[o + i]
        }
      return y
    }
    case 'conv':
      return convForward(p.geom, p.weight, x)
    case 'dense': {
      const rows = (count * nIn) / p.k
      const y = new Float64Array(rows * p.n)
      matmulAcc(x, 0, p.weight, 0, y, 0, rows, p.k, p.n)
      return y
    }
    case 'sumpool':
      return sumpoolForward(p.geom, x)
    case 'segsum': {
      const y = new Float64Array(count * nOut)
      for (let v = 0; v < count; v++) {
        const xo = v * nIn
        const yo = v * nOut
        for (let i = 0; i < nIn; i++) {
          const k = p.map[i]
          if (k >= 0) y[yo + k] += x[xo + i]
        }
      }
      return y
    }
  }
}

/** Apply the transpose of one primitive to `count` stacked vectors of its output size. */
export function applyPrimT(p: Prim, y: Float64Array, count: number): Float64Array {
  const nIn = sizeOf(p.in)
  const nOut = sizeOf(p.out)
  switch (p.kind) {
    case 'reshape':
      return y
    case 'index': {
      const x = new Float64Array(count * nIn)
      for (let v = 0; v < count; v++)
        for (let i = 0; i < nOut; i++) {
          const k = p.map[i]
          if (k >= 0) x[v * nIn + k] += y[v * nOut + i]
        }
      return x
    }
    case 'scale':
      return applyPrim(p, y, count)
    case 'conv':
      return convTranspose(p.geom, p.weight, y)
    case 'dense': {
      const rows = (count * nOut) / p.n
      const wt = new Float64Array(p.k * p.n)
      for (let k = 0; k < p.k; k++) for (let n = 0; n < p.n; n++) wt[n * p.k + k] = p.weight[k * p.n + n]
      const x = new Float64Array(rows * p.k)
      matmulAcc(y, 0, wt, 0, x, 0, rows, p.n, p.k)
      return x
    }
    case 'sumpool': {
      const g = p.geom
      const planes = y.length / (g.oh * g.ow)
      return convTranspose({ ...g, c: planes, m: planes, group: planes }, undefined, y)
    }
    case 'segsum': {
      const x = new Float64Array(count * nIn)
      for (let v = 0; v < count; v++)
        for (let i = 0; i < nIn; i++) {
          const k = p.map[i]
          if (k >= 0) x[v * nIn + i] = y[v * nOut + k]
        }
      return x
    }
  }
}

/** Multiply-adds of one application (one vector). */
export function primMacs(p: Prim): number {
  switch (p.kind) {
    case 'reshape':
      return 0
    case 'index':
      return 0
    case 'scale':
      return sizeOf(p.out)
    case 'conv':
      return sizeOf(p.out) * (p.geom.c / p.geom.group) * p.geom.kh * p.geom.kw
    case 'dense':
      return (sizeOf(p.in) / p.k) * p.k * p.n
    case 'sumpool':
      return sizeOf(p.out) * p.geom.kh * p.geom.kw
    case 'segsum':
      return sizeOf(p.in)
  }
}

/** One line per primitive, as a person reads it. */
export function describePrim(p: Prim): string {
  const shape = (s: readonly number[]) => `[${s.join(',')}]`
  switch (p.kind) {
    case 'conv': {
      const g = p.geom
      return `conv ${g.m}x${g.c / g.group}x${g.kh}x${g.kw} stride ${g.strides.join('x')} pad ${g.pads.join(',')}${g.group > 1 ? ` groups ${g.group}` : ''} ${shape(p.in)} -> ${shape(p.out)}`
    }
    case 'dense':
      return `dense ${p.k}x${p.n} ${shape(p.in)} -> ${shape(p.out)}`
    case 'sumpool':
      return `sumpool ${p.geom.kh}x${p.geom.kw} stride ${p.geom.strides.join('x')} ${shape(p.in)} -> ${shape(p.out)}`
    default:
      return `${p.kind} ${shape(p.in)} -> ${shape(p.out)}`
  }
}

/** Apply a term's chain to `count` stacked vectors of its source. */
export function applyChain(prims: readonly Prim[], x: Float64Array, count: number): Float64Array {
  let v = x
  for (const p of prims) v = applyPrim(p, v, count)
  return v
}

export function applyChainT(prims: readonly Prim[], y: Float64Array, count: number): Float64Array {
  let v = y
  for (let i = prims.length - 1; i >= 0; i--) v = applyPrimT(prims[i], v, count)
  return v
}

/** y = A(sources) + bias, sources by id. */
export function applyAffine(a: Affine, sources: (id: number) => Float64Array): Float64Array {
  const y = Float64Array.from(a.bias)
  for (const t of a.terms) {
    const v = applyChain(t.prims, sources(t.source), 1)
    for (let i = 0; i < y.length; i++) y[i] += v[i]
  }
  return y
}

/** The transpose of the linear part: per source id, A^T y. */
export function applyAffineT(a: Affine, y: Float64Array, sizes: (id: number) => number): Map<number, Float64Array> {
  const out = new Map<number, Float64Array>()
  for (const t of a.terms) {
    const v = applyChainT(t.prims, y, 1)
    let acc = out.get(t.source)
    if (!acc) out.set(t.source, (acc = new Float64Array(sizes(t.source))))
    for (let i = 0; i < acc.length; i++) acc[i] += v[i]
  }
  return out
}

export function affineMacs(a: Affine): number {
  return a.terms.reduce((s, t) => s + t.prims.reduce((u, p) => u + primMacs(p), 0), 0)
}

// ---------------------------------------------------------------------------------------------
// simplification: fold scales into their neighbours

const isNum = (f: number) => f === f

/** The value f takes on every cared-for element of each group (NaN where a group is all don't-care), or undefined if it varies. */
function constantPer(f: Float64Array, groupOf: (i: number) => number, groups: number): Float64Array | undefined {
  const g = new Float64Array(groups).fill(NaN)
  for (let i = 0; i < f.length; i++) {
    const v = f[i]
    if (!isNum(v)) continue
    const k = groupOf(i)
    if (!isNum(g[k])) g[k] = v
    else if (g[k] !== v) return undefined
  }
  return g
}

const nanTo0 = (v: number) => (isNum(v) ? v : 0)

/** Move a scale past the primitive after it, or fold it in; undefined when it cannot. */
function pushScale(s: Prim & { kind: 'scale' }, next: Prim): Prim[] | undefined {
  switch (next.kind) {
    case 'reshape':
      return [next, scalePrim(next.out, s.f)]
    case 'index': {
      const f = new Float64Array(next.map.length)
      for (let i = 0; i < f.length; i++) f[i] = next.map[i] >= 0 ? s.f[next.map[i]] : NaN
      return [next, scalePrim(next.out, f)]
    }
    case 'scale': {
      const f = new Float64Array(s.f.length)
      for (let i = 0; i < f.length; i++) f[i] = s.f[i] * next.f[i]
      return [scalePrim(next.out, f)]
    }
    case 'segsum': {
      const g = constantPer(s.f, (i) => (next.map[i] >= 0 ? next.map[i] : 0), sizeOf(next.out))
      if (!g) return undefined
      return [next, scalePrim(next.out, g)]
    }
    case 'sumpool': {
      const geo = next.geom
      const plane = geo.h * geo.w
      const g = constantPer(s.f, (i) => Math.floor(i / plane), sizeOf(next.in) / plane)
      if (!g) return undefined
      const out = new Float64Array(sizeOf(next.out))
      const op = geo.oh * geo.ow
      for (let i = 0; i < out.length; i++) out[i] = g[Math.floor(i / op)]
      return [next, scalePrim(next.out, out)]
    }
    case 'conv': {
      const geo = next.geom
      const plane = geo.h * geo.w
      const g = constantPer(s.f, (i) => Math.floor(i / plane) % geo.c, geo.c)
      if (!g) return undefined
      const cg = geo.c / geo.group
      const mg = geo.m / geo.group
      const taps = geo.kh * geo.kw
      const w = Float64Array.from(next.weight)
      for (let m = 0; m < geo.m; m++)
        for (let ci = 0; ci < cg; ci++) {
          const f = nanTo0(g[Math.floor(m / mg) * cg + ci])
          const o = (m * cg + ci) * taps
          for (let t = 0; t < taps; t++) w[o + t] *= f
        }
      return [{ ...next, weight: w }]
    }
    case 'dense': {
      const g = constantPer(s.f, (i) => i % next.k, next.k)
      if (!g) return undefined
      const w = Float64Array.from(next.weight)
      for (let k = 0; k < next.k; k++) for (let n = 0; n < next.n; n++) w[k * next.n + n] *= nanTo0(g[k])
      return [{ ...next, weight: w }]
    }
  }
}

/** Fold a scale that follows a conv or dense layer into its output channels; undefined when it cannot. */
function foldAfter(prev: Prim, s: Prim & { kind: 'scale' }): Prim | undefined {
  if (prev.kind === 'conv') {
    const geo = prev.geom
    const plane = geo.oh * geo.ow
    const g = constantPer(s.f, (i) => Math.floor(i / plane) % geo.m, geo.m)
    if (!g) return undefined
    const per = (geo.c / geo.group) * geo.kh * geo.kw
    const w = Float64Array.from(prev.weight)
    for (let m = 0; m < geo.m; m++) for (let t = 0; t < per; t++) w[m * per + t] *= nanTo0(g[m])
    return { ...prev, weight: w }
  }
  if (prev.kind === 'dense') {
    const g = constantPer(s.f, (i) => i % prev.n, prev.n)
    if (!g) return undefined
    const w = Float64Array.from(prev.weight)
    for (let k = 0; k < prev.k; k++) for (let n = 0; n < prev.n; n++) w[k * prev.n + n] *= nanTo0(g[n])
    return { ...prev, weight: w }
  }
  return undefined
}

/**
 * Fold every scale as far toward the output as it goes: past layout and summing primitives (when it
 * is constant over what they sum), into the next convolution or dense layer (per input channel), or
 * back into the previous one (per output channel). Scales that are all ones disappear. The chain
 * computes the same map.
 */
export function simplifyChain(prims: readonly Prim[]): Prim[] {
  let out = [...prims]
  for (let changed = true; changed; ) {
    changed = false
    for (let i = 0; i < out.length; i++) {
      const p = out[i]
      if (p.kind !== 'scale') continue
      if (p.f.every((v) => v === 1 || !isNum(v))) {
        out.splice(i, 1)
        changed = true
        break
      }
      if (i + 1 < out.length) {
        const r = pushScale(p, out[i + 1])
        if (r) {
          out.splice(i, 2, ...r)
          changed = true
          break
        }
      }
      if (i > 0) {
        const r = foldAfter(out[i - 1], p)
        if (r) {
          out.splice(i - 1, 2, r)
          changed = true
          break
        }
      }
    }
    // a reshape that changes nothing between two others is dropped
    out = out.filter((p, i) => !(p.kind === 'reshape' && i > 0))
  }
  return out
}

/** Primitives whose weights are not all integers (the weighted stages a fixed-point backend quantizes). */
export function weightedPrims(prims: readonly Prim[]): Prim[] {
  return prims.filter((p) => (p.kind === 'conv' || p.kind === 'dense' ? true : p.kind === 'scale' ? !p.f.every((v) => !isNum(v) || Number.isInteger(v)) : false))
}

/** One dense primitive equal to the chain (rows from the transposed chain applied to unit vectors). */
export function denseOfChain(prims: readonly Prim[]): Prim & { kind: 'dense' } {
  const from = prims[0].in
  const to = prims[prims.length - 1].out
  const k = sizeOf(from)
  const n = sizeOf(to)
  const eye = new Float64Array(n * n)
  for (let i = 0; i < n; i++) eye[i * n + i] = 1
  const rows = applyChainT(prims, eye, n) // row i: (A^T e_i), i.e. row i of A
  const w = new Float64Array(k * n)
  for (let i = 0; i < n; i++) for (let j = 0; j < k; j++) w[j * n + i] = rows[i * k + j]
  return { kind: 'dense', in: [1, k], out: [1, n], k, n, weight: w }
}

// ---------------------------------------------------------------------------------------------
// the analysis: normal forms of the secret values of a graph

/** Which values depend on a graph input. */
export function secretNodes(g: Graph): Set<string> {
  const secret = new Set<string>()
  for (const n of g.nodes) {
    if (n.op === 'Input') secret.add(n.name)
    else if (OPS[n.op]?.kind !== 'source' && n.inputs.some((i) => i && secret.has(i))) secret.add(n.name)
  }
  return secret
}

/** The op's declared form for this node, given which inputs are secret. */
export function secretFormOf(n: Node, operands: readonly Operand[]): SecretForm {
  if (!operands.some((o) => o.secret)) return { form: 'public' }
  const def = OPS[n.op]
  return def.secret ? def.secret(operands, n.attrs as never, n.type) : { form: 'nonpoly' }
}

/**
 * Normal forms of secret values. `leaf(node)` gives the normal form of values the caller holds
 * itself (its sources, or values it defines in terms of them, such as a polynomial's output); every
 * other secret value must be layout or affine in its inputs, composed through the ops' declarations.
 */
export class LinearAnalysis {
  readonly nodes = new Map<string, Node>()
  readonly secret: Set<string>
  private readonly forms = new Map<string, Affine>()
  private readonly publics = new Map<string, Tensor>()

  constructor(
    readonly graph: Graph,
    private readonly leaf: (n: Node) => Affine | undefined,
  ) {
    for (const n of graph.nodes) this.nodes.set(n.name, n)
    this.secret = secretNodes(graph)
  }

  operands(n: Node): Operand[] {
    return n.inputs.map((i) => {
      if (!i) return { dtype: 'float32', shape: [], secret: false }
      const p = this.nodes.get(i)!
      const secret = this.secret.has(i)
      return { ...p.type, secret, value: secret ? undefined : this.publicValue(i) }
    })
  }

  form(n: Node): SecretForm {
    return secretFormOf(n, this.operands(n))
  }

  /** The value of a public node (evaluated from constants, once). */
  publicValue(name: string): Tensor {
    const hit = this.publics.get(name)
    if (hit) return hit
    const n = this.nodes.get(name)!
    const c = constantOf(n)
    let v: Tensor
    if (c) v = c
    else {
      // source ops (Shape) read only the type of a secret input, as the builder evaluates them
      const ins = n.inputs.map((i) => {
        if (!i) return undefined as unknown as Tensor
        return this.secret.has(i) ? { ...this.nodes.get(i)!.type, data: new Float64Array(0) } : this.publicValue(i)
      })
      v = OPS[n.op].eval(ins, n.attrs as never, n.type)
    }
    this.publics.set(name, v)
    return v
  }

  /** The normal form of secret value `name` (memoized). */
  affine(name: string): Affine {
    const hit = this.forms.get(name)
    if (hit) return hit
    const n = this.nodes.get(name)!
    let a = this.leaf(n)
    if (!a) {
      const ops = this.operands(n)
      const f = secretFormOf(n, ops)
      if (f.form !== 'affine' && f.form !== 'layout')
        throw new LinearError(`${describeNode(n)}: not a linear function of the values before it (${f.form})`)
      const ins = n.inputs.map((i, k) => (i && ops[k].secret ? this.affine(i) : undefined))
      const terms: Term[] = []
      for (const t of f.terms) for (const u of ins[t.input]!.terms) terms.push({ source: u.source, prims: [...u.prims, ...t.prims] })
      const args = n.inputs.map((i, k) => {
        if (!i) return undefined as unknown as Tensor
        const s = ins[k]
        return s ? { dtype: 'float64' as const, shape: s.shape, data: s.bias } : this.publicValue(i)
      })
      const bias = Float64Array.from(OPS[n.op].eval(args, n.attrs as never, { dtype: 'float64', shape: n.type.shape }).data)
      a = { shape: n.type.shape, terms, bias }
    }
    this.forms.set(name, a)
    return a
  }
}

/** The normal form of a plain source: itself. */
export function sourceAffine(id: number, shape: readonly number[]): Affine {
  return { shape, terms: [{ source: id, prims: [] }], bias: new Float64Array(sizeOf(shape)) }
}
