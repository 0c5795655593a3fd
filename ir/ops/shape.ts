/**
 * Layout ops: values move, nothing is computed. Flatten, Reshape, Transpose, Squeeze, Unsqueeze,
 * Concat, Pad, Gather, Expand, Slice, Shape and ConstantOfShape. Shape-like operands (Reshape's
 * shape, Squeeze's axes, Pad's pads) must be compile-time constants.
 */
import { layoutForm, reshapePrim, type SecretForm } from '../linear.js'
import { defineOp, OpError, type OnnxAttrs, type OpDef, type Operand } from '../op.js'
import { isInteger, sizeOf, stridesOf, tensor, type Tensor, type TensorType } from '../tensor.js'
import { alloc, broadcastShapes, broadcastTo, checkShape, intsOf, normAxis, withData } from './util.js'

const reshapeEval = (ins: readonly Tensor[], _a: unknown, out: TensorType): Tensor => withData(out, ins[0].data)

/** Reshapes keep every element in place: a reshape of input 0 (the target shape must be a constant). */
function reshapeForm(ins: readonly Operand[], _a: unknown, out: TensorType): SecretForm {
  if (ins.slice(1).some((i) => i.secret)) return { form: 'nonpoly' }
  return { form: 'layout', terms: [{ input: 0, prims: [reshapePrim(ins[0].shape, out.shape)] }] }
}

export const Flatten = defineOp<{ axis: number }>({
  doc: 'reshape to 2-D: [prod(dims < axis), prod(dims >= axis)]',
  kind: 'layout',
  arity: [1, 1],
  since: 1,
  attrs: (r) => ({ axis: r.int('axis', 1) }),
  onnx: (a) => ({ axis: { i: a.axis } }),
  infer: (ins, a) => {
    const s = ins[0].shape
    const axis = a.axis < 0 ? a.axis + s.length : a.axis
    if (axis < 0 || axis > s.length) throw new OpError(`axis ${a.axis} is out of range for rank ${s.length}`)
    return { dtype: ins[0].dtype, shape: [sizeOf(s.slice(0, axis)), sizeOf(s.slice(axis))] }
  },
  eval: reshapeEval,
  secret: reshapeForm,
})

export const Reshape = defineOp<{ allowzero: boolean }>({
  doc: 'reshape to a constant target shape (0 copies a dim unless allowzero, -1 is inferred)',
  kind: 'layout',
  arity: [2, 2],
  since: 5,
  attrs: (r) => ({ allowzero: r.int('allowzero', 0) === 1 }),
  onnx: (a) => ({ allowzero: a.allowzero ? { i: 1 } : undefined }),
  infer: (ins, a, cx) => {
    const target = intsOf(cx.constant(1), 'Reshape shape')
    const src = ins[0].shape
    const shape = target.map((d, i) => (d === 0 && !a.allowzero ? src[i] : d))
    const neg = shape.filter((d) => d === -1).length
    if (neg > 1 || shape.some((d) => d < -1 || d === undefined)) throw new OpError(`invalid target shape [${target.join(', ')}]`)
    const known = sizeOf(shape.filter((d) => d !== -1))
    const total = sizeOf(src)
    if (neg === 1) {
      if (known === 0 || total % known !== 0) throw new OpError(`cannot reshape [${src.join(',')}] to [${target.join(', ')}]`)
      shape[shape.indexOf(-1)] = total / known
    }
    if (sizeOf(shape) !== total) throw new OpError(`cannot reshape [${src.join(',')}] (${total} elements) to [${shape.join(', ')}]`)
    return { dtype: ins[0].dtype, shape }
  },
  eval: reshapeEval,
  secret: reshapeForm,
})

function squeezeAxes(a: { axes?: number[] }, cx: { constant(i: number): Tensor | undefined }, hasInput: boolean): number[] | undefined {
  if (hasInput) return intsOf(cx.constant(1), 'axes')
  return a.axes
}

function axesOnnx(a: { axes?: number[] }, opset: number): OnnxAttrs {
  if (a.axes && opset >= 13) throw new OpError('axes are an input, not an attribute, from opset 13')
  return { axes: a.axes ? { ints: a.axes } : undefined }
}

export const Squeeze = defineOp<{ axes?: number[] }>({
  doc: 'remove size-1 dims (the given axes, or all)',
  kind: 'layout',
  arity: [1, 2],
  since: 1,
  attrs: (r) => ({ axes: r.has('axes') ? r.ints('axes') : undefined }),
  onnx: axesOnnx,
  infer: (ins, a, cx) => {
    const s = ins[0].shape
    const axes = squeezeAxes(a, cx, ins.length > 1 && !!ins[1])?.map((x) => normAxis(x, s.length))
    if (axes) for (const x of axes) if (s[x] !== 1) throw new OpError(`cannot squeeze axis ${x} of size ${s[x]}`)
    return { dtype: ins[0].dtype, shape: s.filter((d, i) => (axes ? !axes.includes(i) : d !== 1)) }
  },
  eval: reshapeEval,
  secret: reshapeForm,
})

export const Unsqueeze = defineOp<{ axes?: number[] }>({
  doc: 'insert size-1 dims at the given axes of the output',
  kind: 'layout',
  arity: [1, 2],
  since: 1,
  attrs: (r) => ({ axes: r.has('axes') ? r.ints('axes') : undefined }),
  onnx: axesOnnx,
  infer: (ins, a, cx) => {
    const raw = squeezeAxes(a, cx, ins.length > 1 && !!ins[1])
    if (!raw) throw new OpError('Unsqueeze needs axes')
    const rank = ins[0].shape.length + raw.length
    const axes = raw.map((x) => normAxis(x, rank))
    if (new Set(axes).size !== axes.length) throw new OpError('repeated axes')
    const shape: number[] = []
    let k = 0
    for (let i = 0; i < rank; i++) shape.push(axes.includes(i) ? 1 : ins[0].shape[k++])
    return { dtype: ins[0].dtype, shape }
  },
  eval: reshapeEval,
  secret: reshapeForm,
})

/** Permute `x` by `perm` into a new tensor of type `out`. */
export function transposeData(x: Tensor, perm: readonly number[], out: TensorType): Tensor {
  const rank = perm.length
  const inStrides = stridesOf(x.shape)
  const st = perm.map((p) => inStrides[p])
  const shape = out.shape
  const y = alloc(out)
  const counter = new Array<number>(rank).fill(0)
  let src = 0
  const n = y.data.length
  for (let k = 0; k < n; k++) {
    y.data[k] = x.data[src]
    for (let d = rank - 1; d >= 0; d--) {
      counter[d]++
      src += st[d]
      if (counter[d] < shape[d]) break
      src -= st[d] * shape[d]
      counter[d] = 0
    }
  }
  return y
}

export const Transpose = defineOp<{ perm?: number[] }>({
  doc: 'permute axes (default: reverse them)',
  kind: 'layout',
  secret: (ins, a, out): SecretForm => layoutForm(Transpose, ins, a, out),
  arity: [1, 1],
  since: 1,
  attrs: (r) => ({ perm: r.has('perm') ? r.ints('perm') : undefined }),
  onnx: (a) => ({ perm: a.perm ? { ints: a.perm } : undefined }),
  infer: (ins, a) => {
    const s = ins[0].shape
    const perm = a.perm ?? s.map((_, i) => s.length - 1 - i)
    if (perm.length !== s.length || [...perm].sort((x, y) => x - y).some((p, i) => p !== i))
      throw new OpError(`perm [${perm.join(', ')}] is not a permutation of ${s.length} axes`)
    return { dtype: ins[0].dtype, shape: perm.map((p) => s[p]) }
  },
  eval: (ins, a, out) => transposeData(ins[0], a.perm ?? ins[0].shape.map((_, i) => ins[0].shape.length - 1 - i), out),
})

export const Concat = defineOp<{ axis: number }>({
  doc: 'join inputs along an axis',
  kind: 'layout',
  secret: (ins, a, out): SecretForm => layoutForm(Concat, ins, a, out, () => true),
  arity: [1, 2 ** 16],
  since: 4,
  attrs: (r) => ({ axis: r.int('axis') }),
  onnx: (a) => ({ axis: { i: a.axis } }),
  infer: (ins, a) => {
    const s0 = ins[0].shape
    const axis = normAxis(a.axis, s0.length)
    let total = 0
    for (const t of ins) {
      if (t.dtype !== ins[0].dtype) throw new OpError('inputs have different dtypes')
      if (t.shape.length !== s0.length || t.shape.some((d, i) => i !== axis && d !== s0[i]))
        throw new OpError(`input shapes ${ins.map((x) => `[${x.shape.join(',')}]`).join(', ')} differ off axis ${a.axis}`)
      total += t.shape[axis]
    }
    const shape = [...s0]
    shape[axis] = total
    return { dtype: ins[0].dtype, shape: checkShape(shape) }
  },
  eval: (ins, a, out) => {
    const axis = normAxis(a.axis, out.shape.length)
    const outer = sizeOf(out.shape.slice(0, axis))
    const inner = sizeOf(out.shape.slice(axis + 1))
    const y = alloc(out)
    const rowOut = out.shape[axis] * inner
    let off = 0
    for (const t of ins) {
      const row = t.shape[axis] * inner
      for (let o = 0; o < outer; o++) y.data.set(t.data.subarray(o * row, (o + 1) * row), o * rowOut + off)
      off += row
    }
    return y
  },
})

interface PadAttrs {
  mode: 'constant' | 'reflect' | 'edge'
  pads?: number[]
  value: number
}

function padsOf(ins: readonly TensorType[], a: PadAttrs, cx: { constant(i: number): Tensor | undefined }): { pads: number[]; value: number } {
  const rank = ins[0].shape.length
  let pads = a.pads
  let value = a.value
  if (ins.length > 1 && ins[1]) pads = intsOf(cx.constant(1), 'Pad pads')
  if (ins.length > 2 && ins[2]) {
    const v = cx.constant(2)
    if (!v) throw new OpError('Pad constant_value must be a compile-time constant')
    value = v.data[0] ?? 0
  }
  if (ins.length > 3 && ins[3]) {
    const axes = intsOf(cx.constant(3), 'Pad axes').map((x) => normAxis(x, rank))
    const full = new Array(2 * rank).fill(0)
    axes.forEach((ax, i) => {
      full[ax] = pads![i]
      full[ax + rank] = pads![i + axes.length]
    })
    pads = full
  }
  if (!pads || pads.length !== 2 * rank) throw new OpError(`pads must have ${2 * rank} entries`)
  return { pads, value }
}

/** Is this Pad a no-op (all pads zero)? */
export function padIsNoop(ins: readonly TensorType[], a: PadAttrs, cx: { constant(i: number): Tensor | undefined }): boolean {
  return padsOf(ins, a, cx).pads.every((p) => p === 0)
}

export const Pad = defineOp<PadAttrs>({
  doc: "pad with a constant, by reflection or by repeating the edge (pads input, opset 11+); negative pads crop",
  kind: 'layout',
  secret: (ins, a, out): SecretForm => layoutForm(Pad, ins, a, out),
  arity: [1, 4],
  since: 2,
  attrs: (r) => {
    const mode = r.string('mode', 'constant')
    if (mode !== 'constant' && mode !== 'reflect' && mode !== 'edge') throw new OpError(`Pad mode '${mode}' is not supported`)
    return { mode, pads: r.has('pads') ? r.ints('pads') : undefined, value: r.float('value', 0) }
  },
  onnx: (a, opset) => {
    if (opset >= 11 && (a.pads || a.value !== 0)) throw new OpError('pads and value are inputs, not attributes, from opset 11')
    return { mode: { s: a.mode }, pads: a.pads ? { ints: a.pads } : undefined, value: a.value !== 0 ? { f: a.value } : undefined }
  },
  infer: (ins, a, cx) => {
    const { pads } = padsOf(ins, a, cx)
    const rank = ins[0].shape.length
    const shape = ins[0].shape.map((d, i) => d + pads[i] + pads[i + rank])
    if (shape.some((d) => d < 0)) throw new OpError('pads crop more than the input holds')
    if (a.mode === 'reflect' && ins[0].shape.some((d, i) => (pads[i] > 0 || pads[i + rank] > 0) && (pads[i] >= d || pads[i + rank] >= d)))
      throw new OpError('reflect pads must be smaller than the dimension')
    return { dtype: ins[0].dtype, shape: checkShape(shape) }
  },
  eval: (ins, a, out) => {
    const x = ins[0]
    const rank = x.shape.length
    const consts = ins.map((t) => t)
    const { pads, value } = padsOf(ins, a, { constant: (i) => consts[i] })
    const y = alloc(out)
    const inStrides = stridesOf(x.shape)
    const counter = new Array<number>(rank).fill(0)
    for (let k = 0; k < y.data.length; k++) {
      let src = 0
      let inside = true
      for (let d = 0; d < rank; d++) {
        let i = counter[d] - pads[d]
        const n = x.shape[d]
        if (i < 0 || i >= n) {
          if (a.mode === 'constant') {
            inside = false
            break
          }
          if (a.mode === 'edge') i = i < 0 ? 0 : n - 1
          else i = i < 0 ? -i : 2 * (n - 1) - i
        }
        src += i * inStrides[d]
      }
      y.data[k] = inside ? x.data[src] : value
      for (let d = rank - 1; d >= 0; d--) {
        if (++counter[d] < out.shape[d]) break
        counter[d] = 0
      }
    }
    return y
  },
})

export const Gather = defineOp<{ axis: number }>({
  doc: 'take slices along an axis at constant or computed indices (negative indices count from the end)',
  kind: 'layout',
  secret: (ins, a, out): SecretForm => layoutForm(Gather, ins, a, out),
  arity: [2, 2],
  since: 1,
  attrs: (r) => ({ axis: r.int('axis', 0) }),
  onnx: (a) => ({ axis: { i: a.axis } }),
  infer: (ins, a) => {
    const [x, idx] = ins
    if (!isInteger(idx.dtype)) throw new OpError('indices must be integers')
    const axis = normAxis(a.axis, x.shape.length)
    return { dtype: x.dtype, shape: checkShape([...x.shape.slice(0, axis), ...idx.shape, ...x.shape.slice(axis + 1)]) }
  },
  eval: (ins, a, out) => {
    const [x, idx] = ins
    const axis = normAxis(a.axis, x.shape.length)
    const outer = sizeOf(x.shape.slice(0, axis))
    const inner = sizeOf(x.shape.slice(axis + 1))
    const n = x.shape[axis]
    const y = alloc(out)
    const m = idx.data.length
    for (let o = 0; o < outer; o++)
      for (let j = 0; j < m; j++) {
        let i = idx.data[j]
        if (i < 0) i += n
        if (i < 0 || i >= n) throw new OpError(`index ${idx.data[j]} is out of range for a dimension of ${n}`)
        y.data.set(x.data.subarray((o * n + i) * inner, (o * n + i + 1) * inner), (o * m + j) * inner)
      }
    return y
  },
})

export const Expand = defineOp<object>({
  doc: 'broadcast to a constant shape',
  kind: 'layout',
  secret: (ins, a, out): SecretForm => layoutForm(Expand, ins, a, out),
  arity: [2, 2],
  since: 8,
  attrs: () => ({}),
  infer: (ins, _a, cx) => ({ dtype: ins[0].dtype, shape: broadcastShapes([ins[0].shape, intsOf(cx.constant(1), 'Expand shape')]) }),
  eval: (ins, _a, out) => ({ ...out, data: broadcastTo(ins[0], out.shape).data }),
})

interface SliceAttrs {
  starts?: number[]
  ends?: number[]
  axes?: number[]
}

function sliceSpec(ins: readonly TensorType[], a: SliceAttrs, cx: { constant(i: number): Tensor | undefined }) {
  const rank = ins[0].shape.length
  const starts = ins.length > 1 ? intsOf(cx.constant(1), 'Slice starts') : a.starts
  const ends = ins.length > 2 ? intsOf(cx.constant(2), 'Slice ends') : a.ends
  if (!starts || !ends || starts.length !== ends.length) throw new OpError('Slice needs starts and ends of equal length')
  const axes = (ins.length > 3 && ins[3] ? intsOf(cx.constant(3), 'Slice axes') : (a.axes ?? starts.map((_, i) => i))).map((x) => normAxis(x, rank))
  const steps = ins.length > 4 && ins[4] ? intsOf(cx.constant(4), 'Slice steps') : starts.map(() => 1)
  const begin = ins[0].shape.map(() => 0)
  const step = ins[0].shape.map(() => 1)
  const shape = [...ins[0].shape]
  axes.forEach((ax, i) => {
    const n = ins[0].shape[ax]
    const s = steps[i]
    if (s === 0) throw new OpError('Slice step must not be 0')
    const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v < 0 ? v + n : v, lo), hi)
    const b = s > 0 ? clamp(starts[i], 0, n) : clamp(starts[i], -1, n - 1)
    const e = s > 0 ? clamp(ends[i], 0, n) : clamp(ends[i], -1, n - 1)
    begin[ax] = b
    step[ax] = s
    shape[ax] = Math.max(0, Math.ceil((e - b) / s))
  })
  return { begin, step, shape }
}

export const Slice = defineOp<SliceAttrs>({
  doc: 'strided slice with constant starts, ends, axes and steps',
  kind: 'layout',
  secret: (ins, a, out): SecretForm => layoutForm(Slice, ins, a, out),
  arity: [1, 5],
  since: 1,
  attrs: (r) => ({ starts: r.has('starts') ? r.ints('starts') : undefined, ends: r.has('ends') ? r.ints('ends') : undefined, axes: r.has('axes') ? r.ints('axes') : undefined }),
  onnx: (a, opset) => {
    if (opset >= 10 && (a.starts || a.ends || a.axes)) throw new OpError('starts, ends and axes are inputs, not attributes, from opset 10')
    return { starts: a.starts && { ints: a.starts }, ends: a.ends && { ints: a.ends }, axes: a.axes && { ints: a.axes } }
  },
  infer: (ins, a, cx) => ({ dtype: ins[0].dtype, shape: sliceSpec(ins, a, cx).shape }),
  eval: (ins, a, out) => {
    const { begin, step } = sliceSpec(ins, a, { constant: (i) => ins[i] })
    const st = stridesOf(ins[0].shape)
    const rank = out.shape.length
    const y = alloc(out)
    const counter = new Array<number>(rank).fill(0)
    for (let k = 0; k < y.data.length; k++) {
      let src = 0
      for (let d = 0; d < rank; d++) src += (begin[d] + counter[d] * step[d]) * st[d]
      y.data[k] = ins[0].data[src]
      for (let d = rank - 1; d >= 0; d--) {
        if (++counter[d] < out.shape[d]) break
        counter[d] = 0
      }
    }
    return y
  },
})

export const Shape = defineOp<{ start: number; end?: number }>({
  doc: 'the input shape as an int64 vector (optionally a start..end slice)',
  kind: 'source',
  arity: [1, 1],
  since: 1,
  attrs: (r) => ({ start: r.int('start', 0), end: r.has('end') ? r.int('end') : undefined }),
  onnx: (a) => ({ start: a.start !== 0 ? { i: a.start } : undefined, end: a.end !== undefined ? { i: a.end } : undefined }),
  infer: (ins, a) => ({ dtype: 'int64', shape: [shapeSlice(ins[0].shape, a).length] }),
  eval: (ins, a, out) => tensor('int64', out.shape, shapeSlice(ins[0].shape, a)),
})

function shapeSlice(s: readonly number[], a: { start: number; end?: number }): number[] {
  const r = s.length
  const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + r : v, 0), r)
  return s.slice(clamp(a.start), clamp(a.end ?? r))
}

export const ConstantOfShape = defineOp<{ value?: Tensor }>({
  doc: 'a tensor of a constant shape filled with one value (default float32 0)',
  kind: 'source',
  arity: [1, 1],
  since: 9,
  attrs: (r) => ({ value: r.tensor('value') }),
  onnx: (a) => ({ value: a.value && { t: a.value } }),
  infer: (_ins, a, cx) => ({ dtype: a.value?.dtype ?? 'float32', shape: checkShape(intsOf(cx.constant(0), 'ConstantOfShape shape')) }),
  eval: (_ins, a, out) => withData(out, new Float64Array(sizeOf(out.shape)).fill(a.value?.data[0] ?? 0)),
})

export const SHAPE_OPS: Record<string, OpDef> = {
  Flatten, Reshape, Squeeze, Unsqueeze, Transpose, Concat, Pad, Gather, Expand, Slice, Shape, ConstantOfShape,
}
