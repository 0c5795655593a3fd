/**
 * Ops that arrange, repeat, scatter or enumerate values: Split (one IR node per output), Tile,
 * DepthToSpace, SpaceToDepth, GatherND, ScatterElements (and Scatter, its name before opset 11),
 * ScatterND, ReverseSequence, CumSum, Range, OneHot, EyeLike, Einsum, Det.
 * The pure rearrangements declare their layout form (an index map, computed once from the op's own
 * evaluation); the others are non-polynomial on a secret or compile-time values.
 */
import { layoutForm, type SecretForm } from '../linear.js'
import { defineOp, OpError, outputIndex, type OpDef } from '../op.js'
import { dtypeOfElemType, isInteger, sizeOf, stridesOf, type DType, type Tensor } from '../tensor.js'
import { none } from './elementwise.js'
import { checkShape, elementOffsets, intsOf, nextIndex, normAxis, withData } from './util.js'

interface SplitAttrs {
  axis: number
  split?: number[]
  parts?: number
  output?: number
  outputs?: number
}

/** The sizes of Split's parts: the `split` input or attribute, else equal parts (the last smaller from opset 18). */
function splitSizes(len: number, a: SplitAttrs, given: number[] | undefined, count: number): number[] {
  const s = given ?? a.split
  if (s) {
    if (s.reduce((x, y) => x + y, 0) !== len) throw new OpError(`Split sizes [${s.join(', ')}] do not add up to ${len}`)
    return s
  }
  const n = a.parts ?? count
  const part = Math.ceil(len / n)
  return Array.from({ length: n }, (_, k) => Math.max(0, Math.min(part, len - k * part)))
}

function splitPart(shape: readonly number[], a: SplitAttrs, given: number[] | undefined): { axis: number; from: number; size: number } {
  const axis = normAxis(a.axis, shape.length)
  const sizes = splitSizes(shape[axis], a, given, a.outputs ?? 1)
  const k = outputIndex(a)
  if (k >= sizes.length) throw new OpError(`Split has ${sizes.length} parts, no output ${k}`)
  return { axis, from: sizes.slice(0, k).reduce((x, y) => x + y, 0), size: sizes[k] }
}

export const Split: OpDef<SplitAttrs> = defineOp<SplitAttrs>({
  doc: 'one part of x along an axis (sizes from the split input or attribute, else equal parts); one IR node per output',
  kind: 'layout',
  arity: [1, 2],
  since: 2,
  attrs: (r) => ({ axis: r.int('axis', 0), split: r.has('split') ? r.ints('split') : undefined, parts: r.has('num_outputs') ? r.int('num_outputs') : undefined }),
  onnx: (a) => ({ axis: a.axis ? { i: a.axis } : undefined, split: a.split ? { ints: a.split } : undefined, num_outputs: a.parts !== undefined ? { i: a.parts } : undefined }),
  outputs: (a) => a.outputs ?? a.split?.length ?? a.parts ?? 1,
  infer: (ins, a, cx) => {
    const given = ins[1] ? intsOf(cx.constant(1), 'Split split') : undefined
    const { axis, size } = splitPart(ins[0].shape, a, given)
    return { dtype: ins[0].dtype, shape: ins[0].shape.map((d, i) => (i === axis ? size : d)) }
  },
  eval: (ins, a, out) => {
    const x = ins[0]
    const { axis, from, size } = splitPart(x.shape, a, ins[1] ? intsOf(ins[1], 'Split split') : undefined)
    const outer = sizeOf(x.shape.slice(0, axis))
    const inner = sizeOf(x.shape.slice(axis + 1))
    const len = x.shape[axis]
    const y = new Float64Array(outer * size * inner)
    for (let o = 0; o < outer; o++) y.set(x.data.subarray((o * len + from) * inner, (o * len + from + size) * inner), o * size * inner)
    return withData(out, y)
  },
  secret: (ins, a, out): SecretForm => layoutForm(Split, ins, a, out),
})

export const Tile: OpDef<object> = defineOp<object>({
  doc: 'x repeated along each axis (repeats: a constant input)',
  kind: 'layout',
  arity: [2, 2],
  since: 6,
  attrs: none,
  infer: (ins, _a, cx) => {
    const r = intsOf(cx.constant(1), 'Tile repeats')
    if (r.length !== ins[0].shape.length) throw new OpError(`Tile needs ${ins[0].shape.length} repeats, got ${r.length}`)
    return { dtype: ins[0].dtype, shape: checkShape(ins[0].shape.map((d, i) => d * r[i])) }
  },
  eval: (ins, _a, out) => {
    const x = ins[0]
    const xs = stridesOf(x.shape)
    const n = sizeOf(out.shape)
    const y = new Float64Array(n)
    const rank = out.shape.length
    const c = new Array<number>(rank).fill(0)
    for (let e = 0; e < n; e++) {
      let off = 0
      for (let d = 0; d < rank; d++) off += (c[d] % x.shape[d]) * xs[d]
      y[e] = x.data[off]
      nextIndex(c, out.shape)
    }
    return withData(out, y)
  },
  secret: (ins, a, out): SecretForm => layoutForm(Tile, ins, a, out),
})

interface BlockAttrs {
  block: number
  mode: 'DCR' | 'CRD'
}

/** The source offset of output element (n, c, h, w) of DepthToSpace (to = true) or SpaceToDepth. */
function blockIndex(x: readonly number[], a: BlockAttrs, toSpace: boolean): (n: number, c: number, h: number, w: number) => number {
  const [, C, H, W] = x
  const b = a.block
  if (toSpace) {
    const c2 = C / (b * b)
    return (n, c, h, w) => {
      const bh = h % b
      const bw = w % b
      const src = a.mode === 'DCR' ? (bh * b + bw) * c2 + c : c * b * b + bh * b + bw
      return ((n * C + src) * H + Math.floor(h / b)) * W + Math.floor(w / b)
    }
  }
  return (n, c, h, w) => {
    const c1 = C
    const src = c % c1
    const blk = Math.floor(c / c1)
    return ((n * C + src) * H + h * b + Math.floor(blk / b)) * W + w * b + (blk % b)
  }
}

function blockOp(toSpace: boolean): OpDef<BlockAttrs> {
  const def: OpDef<BlockAttrs> = defineOp<BlockAttrs>({
    doc: toSpace ? 'channels moved into blocks of space (DCR or CRD order)' : 'blocks of space moved into channels',
    kind: 'layout',
    arity: [1, 1],
    since: toSpace ? 11 : 1,
    attrs: (r) => {
      const mode = r.string('mode', 'DCR')
      if (mode !== 'DCR' && mode !== 'CRD') throw new OpError(`mode must be DCR or CRD, got '${mode}'`)
      return { block: r.int('blocksize'), mode }
    },
    onnx: (a) => ({ blocksize: { i: a.block }, ...(toSpace ? { mode: { s: a.mode } } : {}) }),
    infer: (ins, a) => {
      const s = ins[0].shape
      const b = a.block
      if (s.length !== 4 || b < 1) throw new OpError('needs a rank-4 input and a positive blocksize')
      if (toSpace) {
        if (s[1] % (b * b) !== 0) throw new OpError(`channels ${s[1]} are not divisible by blocksize^2 = ${b * b}`)
        return { dtype: ins[0].dtype, shape: [s[0], s[1] / (b * b), s[2] * b, s[3] * b] }
      }
      if (s[2] % b !== 0 || s[3] % b !== 0) throw new OpError(`spatial dims ${s[2]}x${s[3]} are not divisible by blocksize ${b}`)
      return { dtype: ins[0].dtype, shape: [s[0], s[1] * b * b, s[2] / b, s[3] / b] }
    },
    eval: (ins, a, out) => {
      const src = blockIndex(ins[0].shape, a, toSpace)
      const [N, C, H, W] = out.shape
      const y = new Float64Array(sizeOf(out.shape))
      let e = 0
      for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) for (let h = 0; h < H; h++) for (let w = 0; w < W; w++) y[e++] = ins[0].data[src(n, c, h, w)]
      return withData(out, y)
    },
    secret: (ins, a, out): SecretForm => layoutForm(def, ins, a, out),
  })
  return def
}

export const DepthToSpace = blockOp(true)
export const SpaceToDepth = blockOp(false)

/** Offsets of the slices GatherND / ScatterND address: indices [..., k] into the first k dims of x. */
function ndOffsets(x: readonly number[], idx: Tensor, batchDims: number): { offsets: number[]; slice: number; groups: number } {
  const k = idx.shape[idx.shape.length - 1]
  if (k > x.length - batchDims) throw new OpError(`indices address ${k} dims of a rank-${x.length} tensor`)
  const strides = stridesOf(x)
  const slice = sizeOf(x.slice(batchDims + k))
  const count = idx.data.length / Math.max(k, 1)
  const groups = sizeOf(idx.shape.slice(0, batchDims))
  const perGroup = count / Math.max(groups, 1)
  const batchStride = batchDims > 0 ? strides[batchDims - 1] : 0
  const offsets: number[] = []
  for (let t = 0; t < count; t++) {
    let off = Math.floor(t / perGroup) * batchStride
    for (let j = 0; j < k; j++) {
      let v = idx.data[t * k + j]
      const dim = x[batchDims + j]
      if (v < 0) v += dim
      if (!(v >= 0 && v < dim)) throw new OpError(`index ${idx.data[t * k + j]} is out of range for a dimension of size ${dim}`)
      off += v * strides[batchDims + j]
    }
    offsets.push(off)
  }
  return { offsets, slice, groups }
}

export const GatherND = defineOp<{ batchDims: number }>({
  doc: 'slices of x addressed by the last axis of indices (after batch_dims leading batch axes)',
  kind: 'layout',
  arity: [2, 2],
  since: 12,
  attrs: (r) => ({ batchDims: r.int('batch_dims', 0) }),
  onnx: (a) => ({ batch_dims: a.batchDims ? { i: a.batchDims } : undefined }),
  infer: (ins, a) => {
    const [x, idx] = ins
    if (!isInteger(idx.dtype)) throw new OpError(`indices must be integers, got ${idx.dtype}`)
    const k = idx.shape[idx.shape.length - 1]
    return { dtype: x.dtype, shape: checkShape([...idx.shape.slice(0, -1), ...x.shape.slice(a.batchDims + k)]) }
  },
  eval: (ins, a, out) => {
    const { offsets, slice } = ndOffsets(ins[0].shape, ins[1], a.batchDims)
    const y = new Float64Array(offsets.length * slice)
    offsets.forEach((off, t) => y.set(ins[0].data.subarray(off, off + slice), t * slice))
    return withData(out, y)
  },
})

type Reduction = 'none' | 'add' | 'mul' | 'max' | 'min'

const combine = (r: Reduction) => (old: number, v: number) => (r === 'add' ? old + v : r === 'mul' ? old * v : r === 'max' ? Math.max(old, v) : r === 'min' ? Math.min(old, v) : v)

function reductionAttr(r: { string(n: string, d?: string): string }): Reduction {
  const v = r.string('reduction', 'none')
  if (!['none', 'add', 'mul', 'max', 'min'].includes(v)) throw new OpError(`unknown reduction '${v}'`)
  return v as Reduction
}

export const ScatterND = defineOp<{ reduction: Reduction }>({
  doc: 'x with the slices addressed by indices replaced by (or combined with) updates',
  kind: 'nonlinear',
  arity: [3, 3],
  since: 11,
  attrs: (r) => ({ reduction: reductionAttr(r) }),
  onnx: (a) => ({ reduction: a.reduction !== 'none' ? { s: a.reduction } : undefined }),
  infer: (ins) => {
    if (!isInteger(ins[1].dtype)) throw new OpError(`indices must be integers, got ${ins[1].dtype}`)
    return { dtype: ins[0].dtype, shape: ins[0].shape }
  },
  eval: (ins, a, out) => {
    const y = Float64Array.from(ins[0].data)
    const { offsets, slice } = ndOffsets(ins[0].shape, ins[1], 0)
    const f = combine(a.reduction)
    offsets.forEach((off, t) => {
      for (let j = 0; j < slice; j++) y[off + j] = f(y[off + j], ins[2].data[t * slice + j])
    })
    return withData(out, y)
  },
})

export const ScatterElements = defineOp<{ axis: number; reduction: Reduction }>({
  doc: 'x with x[i with its axis coordinate replaced by indices[i]] set to (or combined with) updates[i]',
  kind: 'nonlinear',
  arity: [3, 3],
  since: 11,
  attrs: (r) => ({ axis: r.int('axis', 0), reduction: reductionAttr(r) }),
  onnx: (a) => ({ axis: a.axis ? { i: a.axis } : undefined, reduction: a.reduction !== 'none' ? { s: a.reduction } : undefined }),
  infer: (ins) => {
    if (!isInteger(ins[1].dtype)) throw new OpError(`indices must be integers, got ${ins[1].dtype}`)
    return { dtype: ins[0].dtype, shape: ins[0].shape }
  },
  eval: (ins, a, out) => {
    const [x, idx, upd] = ins
    const y = Float64Array.from(x.data)
    const f = combine(a.reduction)
    elementOffsets(x.shape, idx, normAxis(a.axis, x.shape.length)).forEach((off, e) => (y[off] = f(y[off], upd.data[e])))
    return withData(out, y)
  },
})

export const CumSum = defineOp<{ exclusive: boolean; reverse: boolean }>({
  doc: 'running sum along an axis (a constant input), optionally exclusive and from the end',
  kind: 'nonlinear',
  arity: [2, 2],
  since: 11,
  attrs: (r) => ({ exclusive: r.int('exclusive', 0) === 1, reverse: r.int('reverse', 0) === 1 }),
  onnx: (a) => ({ exclusive: a.exclusive ? { i: 1 } : undefined, reverse: a.reverse ? { i: 1 } : undefined }),
  infer: (ins, _a, cx) => {
    normAxis(intsOf(cx.constant(1), 'CumSum axis')[0], ins[0].shape.length)
    return { dtype: ins[0].dtype, shape: ins[0].shape }
  },
  eval: (ins, a, out) => {
    const x = ins[0]
    const axis = normAxis(intsOf(ins[1], 'CumSum axis')[0], x.shape.length)
    const outer = sizeOf(x.shape.slice(0, axis))
    const len = x.shape[axis]
    const inner = sizeOf(x.shape.slice(axis + 1))
    const y = new Float64Array(x.data.length)
    for (let o = 0; o < outer; o++)
      for (let i = 0; i < inner; i++) {
        let s = 0
        for (let t = 0; t < len; t++) {
          const k = a.reverse ? len - 1 - t : t
          const at = (o * len + k) * inner + i
          if (a.exclusive) {
            y[at] = s
            s += x.data[at]
          } else y[at] = s += x.data[at]
        }
      }
    return withData(out, y)
  },
})

const scalarOf = (t: Tensor | undefined, what: string): number => {
  if (!t || t.data.length !== 1) throw new OpError(`${what} must be a compile-time scalar`)
  return t.data[0]
}

export const Range = defineOp<object>({
  doc: 'start, start + delta, ... up to limit (exclusive); the three inputs must be compile-time scalars',
  kind: 'source',
  arity: [3, 3],
  since: 11,
  attrs: none,
  infer: (ins, _a, cx) => {
    const [s, l, d] = [0, 1, 2].map((i) => scalarOf(cx.constant(i), 'Range start, limit and delta'))
    if (d === 0) throw new OpError('Range delta must not be 0')
    return { dtype: ins[0].dtype, shape: checkShape([Math.max(Math.ceil((l - s) / d), 0)]) }
  },
  eval: (ins, _a, out) => {
    const s = ins[0].data[0]
    const d = ins[2].data[0]
    return withData(out, Float64Array.from({ length: out.shape[0] }, (_, k) => s + k * d))
  },
})

export const OneHot = defineOp<{ axis: number }>({
  doc: 'values[1] where the axis coordinate equals the index, values[0] elsewhere (depth: a compile-time scalar)',
  kind: 'nonlinear',
  arity: [3, 3],
  since: 11,
  attrs: (r) => ({ axis: r.int('axis', -1) }),
  onnx: (a) => ({ axis: a.axis !== -1 ? { i: a.axis } : undefined }),
  infer: (ins, a, cx) => {
    const depth = Math.trunc(scalarOf(cx.constant(1), 'OneHot depth'))
    const rank = ins[0].shape.length + 1
    const axis = normAxis(a.axis, rank)
    const shape = [...ins[0].shape]
    shape.splice(axis, 0, depth)
    return { dtype: ins[2].dtype, shape: checkShape(shape) }
  },
  eval: (ins, a, out) => {
    const [idx, , values] = ins
    const axis = normAxis(a.axis, out.shape.length)
    const depth = out.shape[axis]
    const outer = sizeOf(out.shape.slice(0, axis))
    const inner = sizeOf(out.shape.slice(axis + 1))
    const y = new Float64Array(sizeOf(out.shape)).fill(values.data[0])
    for (let o = 0; o < outer; o++)
      for (let i = 0; i < inner; i++) {
        let k = Math.trunc(idx.data[o * inner + i])
        if (k < 0) k += depth
        if (k >= 0 && k < depth) y[(o * depth + k) * inner + i] = values.data[1]
      }
    return withData(out, y)
  },
})

export const EyeLike = defineOp<{ k: number; dtype?: DType }>({
  doc: 'ones on diagonal k of a matrix shaped like x, zeros elsewhere',
  kind: 'source',
  arity: [1, 1],
  since: 9,
  attrs: (r) => {
    const code = r.has('dtype') ? r.int('dtype') : undefined
    const dtype = code !== undefined ? dtypeOfElemType(code) : undefined
    if (code !== undefined && !dtype) throw new OpError(`EyeLike dtype ${code} is not supported`)
    return { k: r.int('k', 0), dtype }
  },
  onnx: (a) => ({ k: a.k ? { i: a.k } : undefined }),
  infer: (ins, a) => {
    if (ins[0].shape.length !== 2) throw new OpError('EyeLike needs a matrix')
    return { dtype: a.dtype ?? ins[0].dtype, shape: ins[0].shape }
  },
  eval: (_ins, a, out) => {
    const [r, c] = out.shape
    const y = new Float64Array(r * c)
    for (let i = 0; i < r; i++) if (i + a.k >= 0 && i + a.k < c) y[i * c + i + a.k] = 1
    return withData(out, y)
  },
})

export const Scatter: OpDef = { ...ScatterElements, doc: 'ScatterElements under its name before opset 11', since: 9 }

export const ReverseSequence = defineOp<{ batchAxis: number; timeAxis: number }>({
  doc: 'the first sequence_lens[b] steps along time_axis reversed, for each b along batch_axis',
  kind: 'layout',
  arity: [2, 2],
  since: 10,
  attrs: (r) => ({ batchAxis: r.int('batch_axis', 1), timeAxis: r.int('time_axis', 0) }),
  onnx: (a) => ({ batch_axis: { i: a.batchAxis }, time_axis: { i: a.timeAxis } }),
  infer: (ins, a) => {
    if (!isInteger(ins[1].dtype)) throw new OpError(`sequence_lens must be integers, got ${ins[1].dtype}`)
    if (ins[0].shape.length < 2 || (a.batchAxis !== 0 && a.batchAxis !== 1) || a.timeAxis !== 1 - a.batchAxis) throw new OpError('batch_axis and time_axis must be 0 and 1 in some order')
    return { dtype: ins[0].dtype, shape: ins[0].shape }
  },
  eval: (ins, a, out) => {
    const x = ins[0]
    const st = stridesOf(x.shape)
    const y = new Float64Array(x.data.length)
    const inner = sizeOf(x.shape.slice(2))
    const [B, T] = [x.shape[a.batchAxis], x.shape[a.timeAxis]]
    for (let b = 0; b < B; b++) {
      const len = Math.min(Math.max(Math.trunc(ins[1].data[b]), 0), T)
      for (let t = 0; t < T; t++) {
        const src = t < len ? len - 1 - t : t
        const o = b * st[a.batchAxis] + t * st[a.timeAxis]
        const i = b * st[a.batchAxis] + src * st[a.timeAxis]
        for (let k = 0; k < inner; k++) y[o + k] = x.data[i + k]
      }
    }
    return withData(out, y)
  },
})

/** An Einsum equation: each input's labels (ellipsis expanded to '0', '1', ... right-aligned) and the output's. */
function einsumLabels(eq: string, shapes: readonly (readonly number[])[]): { ins: string[][]; out: string[]; size: Map<string, number> } {
  const e = eq.replace(/\s+/g, '')
  const [lhs, rhs] = e.includes('->') ? e.split('->') : [e, undefined]
  const terms = lhs.split(',')
  if (terms.length !== shapes.length) throw new OpError(`Einsum equation '${eq}' has ${terms.length} inputs, the node ${shapes.length}`)
  const ell = Math.max(0, ...terms.map((t, k) => (t.includes('...') ? shapes[k].length - t.replace('...', '').length : 0)))
  const ellLabels = Array.from({ length: ell }, (_, i) => String(i))
  const size = new Map<string, number>()
  const ins = terms.map((t, k) => {
    const parts = t.split('...')
    if (parts.length > 2 || [...parts.join('')].some((c) => !/[a-zA-Z]/.test(c))) throw new OpError(`Einsum term '${t}' is not supported`)
    const n = parts.length === 2 ? shapes[k].length - parts[0].length - parts[1].length : 0
    const labels = [...parts[0], ...ellLabels.slice(ell - n), ...(parts[1] ?? '')]
    if (labels.length !== shapes[k].length) throw new OpError(`Einsum term '${t}' does not match input ${k} of rank ${shapes[k].length}`)
    labels.forEach((l, i) => {
      const d = shapes[k][i]
      const had = size.get(l)
      if (had === undefined || had === 1) size.set(l, d)
      else if (d !== had && d !== 1) throw new OpError(`Einsum label '${l}' is ${had} and ${d}`)
    })
    return labels
  })
  let out: string[]
  if (rhs !== undefined) {
    const parts = rhs.split('...')
    out = [...parts[0], ...(parts.length === 2 ? ellLabels : []), ...(parts[1] ?? '')]
  } else {
    const count = new Map<string, number>()
    for (const l of ins.flat()) if (!/^\d+$/.test(l)) count.set(l, (count.get(l) ?? 0) + 1)
    out = [...ellLabels, ...[...count].filter(([, c]) => c === 1).map(([l]) => l).sort()]
  }
  for (const l of out) if (!size.has(l)) throw new OpError(`Einsum output label '${l}' is not in the inputs`)
  return { ins, out, size }
}

export const Einsum = defineOp<{ equation: string }>({
  doc: 'sum of products over the labels an Einstein-summation equation leaves out (ellipsis, diagonals and implicit output included)',
  kind: 'nonlinear',
  arity: [1, 16],
  since: 12,
  attrs: (r) => ({ equation: r.string('equation') }),
  onnx: (a) => ({ equation: { s: a.equation } }),
  infer: (ins, a) => {
    const { out, size } = einsumLabels(a.equation, ins.map((t) => t.shape))
    return { dtype: ins[0].dtype, shape: checkShape(out.map((l) => size.get(l)!)) }
  },
  eval: (ins, a, outT) => {
    const { ins: labels, out, size } = einsumLabels(a.equation, ins.map((t) => t.shape))
    const all = [...new Set([...out, ...labels.flat()])]
    const dims = all.map((l) => size.get(l)!)
    const pos = new Map(all.map((l, i) => [l, i]))
    // per input: stride of each label in the full index (0 where the input broadcasts)
    const strides = ins.map((t, k) => {
      const st = stridesOf(t.shape)
      const s = new Array<number>(all.length).fill(0)
      labels[k].forEach((l, i) => {
        if (t.shape[i] !== 1) s[pos.get(l)!] += st[i]
      })
      return s
    })
    const ost = stridesOf(out.map((l) => size.get(l)!))
    const os = new Array<number>(all.length).fill(0)
    out.forEach((l, i) => (os[pos.get(l)!] = ost[i]))
    const y = new Float64Array(sizeOf(outT.shape))
    const idx = new Array<number>(all.length).fill(0)
    const total = sizeOf(dims)
    for (let e = 0; e < total; e++) {
      let p = 1
      for (let k = 0; k < ins.length; k++) {
        let off = 0
        for (let j = 0; j < all.length; j++) off += idx[j] * strides[k][j]
        p *= ins[k].data[off]
      }
      let o = 0
      for (let j = 0; j < all.length; j++) o += idx[j] * os[j]
      y[o] += p
      nextIndex(idx, dims)
    }
    return withData(outT, y)
  },
})

export const Det = defineOp<object>({
  doc: 'determinant of each matrix in the last two dims (LU with partial pivoting)',
  kind: 'nonlinear',
  arity: [1, 1],
  since: 11,
  attrs: none,
  infer: (ins) => {
    const s = ins[0].shape
    if (s.length < 2 || s[s.length - 1] !== s[s.length - 2]) throw new OpError('Det needs square matrices in the last two dims')
    return { dtype: ins[0].dtype, shape: s.slice(0, -2) }
  },
  eval: (ins, _a, out) => {
    const n = ins[0].shape[ins[0].shape.length - 1]
    const count = sizeOf(out.shape)
    const y = new Float64Array(count)
    for (let b = 0; b < count; b++) {
      const m = Float64Array.from(ins[0].data.subarray(b * n * n, (b + 1) * n * n))
      let det = 1
      for (let c = 0; c < n; c++) {
        let p = c
        for (let r = c + 1; r < n; r++) if (Math.abs(m[r * n + c]) > Math.abs(m[p * n + c])) p = r
        if (m[p * n + c] === 0) {
          det = 0
          break
        }
        if (p !== c) {
          for (let k = 0; k < n; k++) [m[c * n + k], m[p * n + k]] = [m[p * n + k], m[c * n + k]]
          det = -det
        }
        det *= m[c * n + c]
        for (let r = c + 1; r < n; r++) {
          const f = m[r * n + c] / m[c * n + c]
          for (let k = c; k < n; k++) m[r * n + k] -= f * m[c * n + k]
        }
      }
      y[b] = det
    }
    return withData(out, y)
  },
})

export const ARRANGE_OPS: Record<string, OpDef> = { Split, Tile, DepthToSpace, SpaceToDepth, GatherND, ScatterND, ScatterElements, Scatter, ReverseSequence, CumSum, Range, OneHot, EyeLike, Einsum, Det }
