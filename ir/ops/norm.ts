/**
 * Normalizations over axes with statistics of the input itself: LayerNormalization (its mean and
 * inverse standard deviation outputs as IR nodes of their own), InstanceNormalization,
 * MeanVarianceNormalization and LRN. All divide by a root of a secret statistic, so they are
 * non-polynomial on a secret until a pass approximates them.
 */
import { defineOp, OpError, outputIndex, type OpDef } from '../op.js'
import { sizeOf } from '../tensor.js'
import { broadcastIndex, nextIndex, normAxis, requireFloat, withData } from './util.js'

interface LayerNormAttrs {
  axis: number
  epsilon: number
  output?: number
  outputs?: number
}

export const LayerNormalization: OpDef<LayerNormAttrs> = defineOp<LayerNormAttrs>({
  doc: '(x - mean) / sqrt(var + epsilon) * scale + bias over the axes from `axis` on; outputs 1 and 2 are the mean and 1 / sqrt(var + epsilon)',
  kind: 'nonlinear',
  arity: [2, 3],
  since: 17,
  attrs: (r) => {
    if (r.has('stash_type') && r.int('stash_type') !== 1) throw new OpError('LayerNormalization stash_type other than float is not supported')
    return { axis: r.int('axis', -1), epsilon: r.float('epsilon', 1e-5) }
  },
  onnx: (a) => ({ axis: a.axis !== -1 ? { i: a.axis } : undefined, epsilon: a.epsilon !== 1e-5 ? { f: a.epsilon } : undefined }),
  outputs: (a) => a.outputs ?? 1,
  infer: (ins, a) => {
    requireFloat(ins[0])
    const axis = normAxis(a.axis, ins[0].shape.length)
    if (outputIndex(a) === 0) return { dtype: ins[0].dtype, shape: ins[0].shape }
    return { dtype: 'float32', shape: ins[0].shape.map((d, i) => (i < axis ? d : 1)) }
  },
  eval: (ins, a, out) => {
    const x = ins[0]
    const axis = normAxis(a.axis, x.shape.length)
    const outer = sizeOf(x.shape.slice(0, axis))
    const len = sizeOf(x.shape.slice(axis))
    const k = outputIndex(a)
    const y = new Float64Array(k === 0 ? x.data.length : outer)
    const inner = x.shape.slice(axis)
    const si = broadcastIndex(ins[1].shape, inner)
    const bi = ins[2] ? broadcastIndex(ins[2].shape, inner) : null
    for (let o = 0; o < outer; o++) {
      const base = o * len
      let m = 0
      for (let j = 0; j < len; j++) m += x.data[base + j]
      m /= len
      let v = 0
      for (let j = 0; j < len; j++) v += (x.data[base + j] - m) ** 2
      const inv = 1 / Math.sqrt(v / len + a.epsilon)
      if (k === 1) y[o] = m
      else if (k === 2) y[o] = inv
      else
        for (let j = 0; j < len; j++) {
          const s = ins[1].data[si ? si[j] : j]
          const b = ins[2] ? ins[2].data[bi ? bi[j] : j] : 0
          y[base + j] = (x.data[base + j] - m) * inv * s + b
        }
    }
    return withData(out, y)
  },
})

/** Mean and variance normalization of each (outer, inner) row of length `len` with stride `inner`. */
function normalizeRows(x: Float64Array, outer: number, len: number, inner: number, eps: number, affine?: (o: number) => [number, number]): Float64Array {
  const y = new Float64Array(x.length)
  for (let o = 0; o < outer; o++)
    for (let i = 0; i < inner; i++) {
      const base = o * len * inner + i
      let m = 0
      for (let t = 0; t < len; t++) m += x[base + t * inner]
      m /= len
      let v = 0
      for (let t = 0; t < len; t++) v += (x[base + t * inner] - m) ** 2
      const inv = 1 / Math.sqrt(v / len + eps)
      const [s, b] = affine ? affine(o) : [1, 0]
      for (let t = 0; t < len; t++) y[base + t * inner] = (x[base + t * inner] - m) * inv * s + b
    }
  return y
}

export const InstanceNormalization = defineOp<{ epsilon: number }>({
  doc: 'per image and channel: (x - mean) / sqrt(var + epsilon) * scale[c] + bias[c] over the spatial dims',
  kind: 'nonlinear',
  arity: [3, 3],
  since: 6,
  attrs: (r) => ({ epsilon: r.float('epsilon', 1e-5) }),
  onnx: (a) => ({ epsilon: a.epsilon !== 1e-5 ? { f: a.epsilon } : undefined }),
  infer: (ins) => {
    requireFloat(ins[0])
    if (ins[0].shape.length < 3) throw new OpError('InstanceNormalization needs [N, C, spatial...]')
    return { dtype: ins[0].dtype, shape: ins[0].shape }
  },
  eval: (ins, a, out) => {
    const [N, C] = ins[0].shape
    const len = sizeOf(ins[0].shape.slice(2))
    return withData(out, normalizeRows(ins[0].data, N * C, len, 1, a.epsilon, (o) => [ins[1].data[o % C], ins[2].data[o % C]]))
  },
})

export const MeanVarianceNormalization = defineOp<{ axes: number[] }>({
  doc: '(x - mean) / sqrt(var) over the axes (default 0, 2, 3), as ONNX defines it (epsilon 1e-9)',
  kind: 'nonlinear',
  arity: [1, 1],
  since: 9,
  attrs: (r) => ({ axes: r.has('axes') ? r.ints('axes') : [0, 2, 3] }),
  onnx: (a) => ({ axes: { ints: a.axes } }),
  infer: (ins) => {
    requireFloat(ins[0])
    return { dtype: ins[0].dtype, shape: ins[0].shape }
  },
  eval: (ins, a, out) => {
    const x = ins[0]
    const rank = x.shape.length
    const axes = new Set(a.axes.map((v) => normAxis(v, rank)))
    // gather each group (the kept coordinates) and normalize it
    const kept = x.shape.map((d, i) => (axes.has(i) ? 1 : d))
    const n = x.data.length
    const group = new Int32Array(n)
    const ks = kept.map((_, i) => sizeOf(kept.slice(i + 1)))
    const c = new Array<number>(rank).fill(0)
    for (let e = 0; e < n; e++) {
      let gi = 0
      for (let d = 0; d < rank; d++) if (!axes.has(d)) gi += c[d] * ks[d]
      group[e] = gi
      nextIndex(c, x.shape)
    }
    const G = sizeOf(kept)
    const sum = new Float64Array(G)
    const sq = new Float64Array(G)
    const cnt = n / G
    for (let e = 0; e < n; e++) sum[group[e]] += x.data[e]
    for (let e = 0; e < n; e++) sq[group[e]] += (x.data[e] - sum[group[e]] / cnt) ** 2
    return withData(out, Float64Array.from(x.data, (v, e) => (v - sum[group[e]] / cnt) / (Math.sqrt(sq[group[e]] / cnt) + 1e-9)))
  },
})

export const LRN = defineOp<{ alpha: number; beta: number; bias: number; size: number }>({
  doc: 'x / (bias + alpha / size * sum of x^2 over `size` neighbouring channels)^beta',
  kind: 'nonlinear',
  arity: [1, 1],
  since: 1,
  attrs: (r) => ({ alpha: r.float('alpha', 1e-4), beta: r.float('beta', 0.75), bias: r.float('bias', 1), size: r.int('size') }),
  onnx: (a) => ({ alpha: { f: a.alpha }, beta: { f: a.beta }, bias: { f: a.bias }, size: { i: a.size } }),
  infer: (ins) => {
    requireFloat(ins[0])
    if (ins[0].shape.length < 3) throw new OpError('LRN needs [N, C, spatial...]')
    return { dtype: ins[0].dtype, shape: ins[0].shape }
  },
  eval: (ins, a, out) => {
    const x = ins[0]
    const [N, C] = x.shape
    const inner = sizeOf(x.shape.slice(2))
    const lo = Math.floor((a.size - 1) / 2)
    const hi = Math.ceil((a.size - 1) / 2)
    const y = new Float64Array(x.data.length)
    for (let n = 0; n < N; n++)
      for (let c = 0; c < C; c++)
        for (let i = 0; i < inner; i++) {
          let s = 0
          for (let j = Math.max(0, c - lo); j <= Math.min(C - 1, c + hi); j++) s += x.data[(n * C + j) * inner + i] ** 2
          const at = (n * C + c) * inner + i
          y[at] = x.data[at] / (a.bias + (a.alpha / a.size) * s) ** a.beta
        }
    return withData(out, y)
  },
})

export const NORM_OPS: Record<string, OpDef> = { LayerNormalization, InstanceNormalization, MeanVarianceNormalization, LRN }
