/** Reductions and normalizations over axes: ReduceMean, ReduceSum, ReduceMax, ReduceMin, ReduceProd, the norms and log-sums, Softmax, LogSoftmax, Hardmax. */
import { scaleBy } from '../linear.js'
import { defineOp, OpError, type OpDef } from '../op.js'
import { broadcastIndex } from './util.js'
import { sizeOf, type Tensor, type TensorType } from '../tensor.js'
import { alloc, intsOf, normAxis, withData } from './util.js'

interface ReduceAttrs {
  axes?: number[]
  keepdims: boolean
  noopWithEmptyAxes: boolean
}

function reduceAxes(ins: readonly TensorType[], a: ReduceAttrs, constant: (i: number) => Tensor | undefined): number[] {
  const rank = ins[0].shape.length
  const raw = ins.length > 1 && ins[1] ? intsOf(constant(1), 'axes') : a.axes
  if (!raw || raw.length === 0) return a.noopWithEmptyAxes ? [] : ins[0].shape.map((_, i) => i)
  return [...new Set(raw.map((x) => normAxis(x, rank)))].sort((x, y) => x - y)
}

function reduce(doc: string, init: number, step: (acc: number, v: number) => number, finish: (acc: number, n: number) => number, kind: 'linear' | 'nonlinear', pre?: (v: number) => number) {
  return defineOp<ReduceAttrs>({
    doc,
    kind,
    arity: [1, 2],
    since: 1,
    attrs: (r) => ({ axes: r.has('axes') ? r.ints('axes') : undefined, keepdims: r.int('keepdims', 1) === 1, noopWithEmptyAxes: r.int('noop_with_empty_axes', 0) === 1 }),
    onnx: (a) => ({
      axes: a.axes ? { ints: a.axes } : undefined,
      keepdims: { i: a.keepdims ? 1 : 0 },
      noop_with_empty_axes: a.noopWithEmptyAxes ? { i: 1 } : undefined,
    }),
    infer: (ins, a, cx) => {
      const axes = reduceAxes(ins, a, (i) => cx.constant(i))
      const shape = ins[0].shape.flatMap((d, i) => (axes.includes(i) ? (a.keepdims ? [1] : []) : [d]))
      return { dtype: ins[0].dtype, shape }
    },
    eval: (ins, a, out) => {
      const x = ins[0]
      const axes = reduceAxes(ins, a, (i) => ins[i])
      const rank = x.shape.length
      const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d))
      const y = alloc(out)
      y.data.fill(init)
      const n = sizeOf(axes.map((i) => x.shape[i]))
      const counter = new Array<number>(rank).fill(0)
      const keptStrides = new Array<number>(rank)
      let acc = 1
      for (let i = rank - 1; i >= 0; i--) {
        keptStrides[i] = kept[i] === 1 ? 0 : acc
        acc *= kept[i]
      }
      let dst = 0
      for (let k = 0; k < x.data.length; k++) {
        y.data[dst] = step(y.data[dst], pre ? pre(x.data[k]) : x.data[k])
        for (let d = rank - 1; d >= 0; d--) {
          counter[d]++
          dst += keptStrides[d]
          if (counter[d] < x.shape[d]) break
          dst -= keptStrides[d] * x.shape[d]
          counter[d] = 0
        }
      }
      for (let i = 0; i < y.data.length; i++) y.data[i] = finish(y.data[i], n)
      return y
    },
    secret: (ins, a, out) => {
      if (kind !== 'linear' || (ins[1] && ins[1].secret)) return { form: 'nonpoly' }
      const x = ins[0]
      const axes = reduceAxes(ins, a, (i) => ins[i].value)
      const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d))
      const map = broadcastIndex(kept, x.shape) ?? Int32Array.from({ length: sizeOf(x.shape) }, (_, i) => i)
      const n = sizeOf(axes.map((i) => x.shape[i]))
      const mean = finish(n, n) !== n
      return { form: 'affine', terms: [{ input: 0, prims: [{ kind: 'segsum', in: x.shape, out: out.shape, map }, ...(mean ? [scaleBy(out.shape, 1 / n)] : [])] }] }
    },
  })
}

export const ReduceMean = reduce('mean over axes (attribute before opset 18, input after)', 0, (s, v) => s + v, (s, n) => s / n, 'linear')
export const ReduceSum = reduce('sum over axes (axes input since opset 13)', 0, (s, v) => s + v, (s) => s, 'linear')
export const ReduceMax = reduce('maximum over axes', -Infinity, Math.max, (s) => s, 'nonlinear')
export const ReduceMin = reduce('minimum over axes', Infinity, Math.min, (s) => s, 'nonlinear')
export const ReduceProd = reduce('product over axes', 1, (s, v) => s * v, (s) => s, 'nonlinear')
export const ReduceL1 = reduce('sum of |x| over axes', 0, (s, v) => s + v, (s) => s, 'nonlinear', Math.abs)
export const ReduceL2 = reduce('sqrt of the sum of x^2 over axes', 0, (s, v) => s + v, Math.sqrt, 'nonlinear', (v) => v * v)
export const ReduceSumSquare = reduce('sum of x^2 over axes', 0, (s, v) => s + v, (s) => s, 'nonlinear', (v) => v * v)
export const ReduceLogSum = reduce('log of the sum over axes', 0, (s, v) => s + v, Math.log, 'nonlinear')
export const ReduceLogSumExp = reduce('log of the sum of exp(x) over axes', 0, (s, v) => s + v, Math.log, 'nonlinear', Math.exp)

/** An op along one axis (before opset 13: over the flattened dims from the axis on), row by row. */
function alongAxis(doc: string, row: (x: Float64Array, y: Float64Array) => void): OpDef<{ axis: number; legacy: boolean }> {
  return defineOp<{ axis: number; legacy: boolean }>({
    doc,
    kind: 'nonlinear',
    arity: [1, 1],
    since: 1,
    attrs: (r) => ({ axis: r.int('axis', r.opset < 13 ? 1 : -1), legacy: r.opset < 13 }),
    onnx: (a, opset) => {
      if (a.legacy !== opset < 13) throw new OpError(`${a.legacy ? 'the flattened form' : 'the one-axis form'} has no ONNX spelling at opset ${opset}`)
      return { axis: { i: a.axis } }
    },
    infer: (ins, a) => {
      normAxis(a.axis, Math.max(ins[0].shape.length, 1))
      return { dtype: ins[0].dtype, shape: ins[0].shape }
    },
    eval: (ins, a, out) => {
      const x = ins[0]
      const rank = Math.max(x.shape.length, 1)
      const shape = x.shape.length === 0 ? [1] : x.shape
      const axis = normAxis(a.axis, rank)
      const outer = sizeOf(shape.slice(0, axis))
      const len = a.legacy ? sizeOf(shape.slice(axis)) : shape[axis]
      const inner = a.legacy ? 1 : sizeOf(shape.slice(axis + 1))
      const y = new Float64Array(x.data.length)
      const xr = new Float64Array(len)
      const yr = new Float64Array(len)
      for (let o = 0; o < outer; o++)
        for (let i = 0; i < inner; i++) {
          const base = o * len * inner + i
          for (let k = 0; k < len; k++) xr[k] = x.data[base + k * inner]
          row(xr, yr)
          for (let k = 0; k < len; k++) y[base + k * inner] = yr[k]
        }
      return withData(out, y)
    },
  })
}

export const LogSoftmax = alongAxis('x - log sum exp(x) along an axis (before opset 13: over the flattened dims from axis on)', (x, y) => {
  let m = -Infinity
  for (const v of x) m = Math.max(m, v)
  let s = 0
  for (const v of x) s += Math.exp(v - m)
  const l = m + Math.log(s)
  for (let k = 0; k < x.length; k++) y[k] = x[k] - l
})

export const Hardmax = alongAxis('1 at the first largest element along an axis, 0 elsewhere (before opset 13: over the flattened dims)', (x, y) => {
  let best = 0
  for (let k = 1; k < x.length; k++) if (x[k] > x[best]) best = k
  y.fill(0)
  if (x.length > 0) y[best] = 1
})

export const Softmax = alongAxis('exp(x) / sum exp(x) along an axis (before opset 13: over the flattened dims from axis on)', (x, y) => {
  let m = -Infinity
  for (const v of x) m = Math.max(m, v)
  let s = 0
  for (let k = 0; k < x.length; k++) s += y[k] = Math.exp(x[k] - m)
  for (let k = 0; k < x.length; k++) y[k] /= s
})

export const REDUCE_OPS: Record<string, OpDef> = { ReduceMean, ReduceSum, ReduceMax, ReduceMin, ReduceProd, ReduceL1, ReduceL2, ReduceSumSquare, ReduceLogSum, ReduceLogSumExp, Softmax, LogSoftmax, Hardmax }
