/**
 * recognize-normalizations: LayerNorm and Softmax as exporters spell them out become one op each,
 * so the backends see one op in either spelling. LayerNorm (before opset 17):
 *
 *   d = x - ReduceMean(x, axes A)            A: the trailing axes axis..rank-1, keepdims
 *   y = d / Sqrt(ReduceMean(d^2, axes A) + eps)            (d^2 as Pow(d, 2) or d * d)
 *     -> LayerNormalization(x, ones, zeros; axis, eps)
 *
 * and a constant scale or shift after it, which varies only along the normalized axes, folds into
 * the op's own scale and bias: LN(x, s, b) * c -> LN(x, s c, b c), LN(x, s, b) + c -> LN(x, s, b + c).
 * Softmax and LogSoftmax over one axis a, with or without the max subtracted first:
 *
 *   e = Exp(x - ReduceMax(x, a)) or Exp(x);   e / ReduceSum(e, a)         -> Softmax(x; axis a)
 *   y = x - ReduceMax(x, a);                  y - Log(ReduceSum(Exp(y), a)) -> LogSoftmax(x; axis a)
 *
 * (the reductions keep their dims). Rules by target op (Div, Mul, Add, Sub); the axes input of the
 * reductions (opset 13 for ReduceSum, 18 for the others) counts as well as the attribute.
 */
import type { Node } from '../ir/graph.js'
import { intsOf, normAxis, broadcastTo } from '../ir/ops/util.js'
import { rewrite, type RewriteContext, type Rule } from '../ir/rewrite.js'
import { tensor, type Tensor } from '../ir/tensor.js'
import { producerOf, scalarOf } from './match.js'
import type { Pass } from './pass.js'

/** The axes a reduction (ReduceMean by default) reduces, normalized and sorted, when it keeps its dims. */
function meanAxes(cx: RewriteContext, n: Node | undefined, op = 'ReduceMean'): number[] | undefined {
  if (!n || n.op !== op) return undefined
  const a = n.attrs as { axes?: number[]; keepdims: boolean }
  if (!a.keepdims) return undefined
  const rank = cx.producer(n.inputs[0])?.type.shape.length
  if (rank === undefined) return undefined
  let raw = a.axes
  if (n.inputs[1]) {
    const c = cx.constant(n.inputs[1])
    if (!c) return undefined
    raw = intsOf(c, 'axes')
  }
  if (!raw || raw.length === 0) raw = Array.from({ length: rank }, (_, i) => i)
  return [...new Set(raw.map((v) => normAxis(v, rank)))].sort((p, q) => p - q)
}

/** The first axis when `axes` are the trailing axes axis..rank-1, else undefined. */
function trailing(axes: number[], rank: number): number | undefined {
  return axes.length > 0 && axes.every((v, i) => v === rank - axes.length + i) ? axes[0] : undefined
}

/** d^2 as Pow(d, 2) or d * d: returns d. */
function squareOf(cx: RewriteContext, name: string): string | undefined {
  const p = cx.producer(name)
  if (p?.op === 'Pow' && scalarOf(cx, p.inputs[1]) === 2) return p.inputs[0]
  if (p?.op === 'Mul' && p.inputs[0] === p.inputs[1]) return p.inputs[0]
  return undefined
}

const spelled: Rule = {
  name: 'layernorm',
  on: ['Div'],
  apply: (n, cx) => {
    const [d, s] = n.inputs
    const sub = producerOf(cx, d, 'Sub')
    const sqrt = producerOf(cx, s, 'Sqrt')
    const add = sqrt && producerOf(cx, sqrt.inputs[0], 'Add')
    if (!sub || !add) return undefined
    const x = sub.inputs[0]
    const mean = cx.producer(sub.inputs[1])
    const axes = meanAxes(cx, mean)
    if (!axes || mean!.inputs[0] !== x) return undefined
    const rank = n.type.shape.length
    const axis = trailing(axes, rank)
    if (axis === undefined) return undefined
    for (const i of [0, 1]) {
      const eps = scalarOf(cx, add.inputs[1 - i])
      const v = cx.producer(add.inputs[i])
      const vAxes = meanAxes(cx, v)
      if (eps === undefined || !(eps >= 0) || !vAxes || vAxes.join() !== axes.join() || squareOf(cx, v!.inputs[0]) !== d) continue
      const inner = n.type.shape.slice(axis)
      const ones = cx.addConstant(tensor(n.type.dtype, inner, new Float64Array(inner.reduce((p, q) => p * q, 1)).fill(1)), `${n.name}_scale`)
      return { op: 'LayerNormalization', inputs: [x, ones], attrs: { axis, epsilon: eps } }
    }
    return undefined
  },
}

/** A constant that broadcasts to the output and varies only along the normalized axes, as a tensor of their shape. */
function alongNormalized(c: Tensor | undefined, out: readonly number[], axis: number): Tensor | undefined {
  if (!c || c.shape.length > out.length) return undefined
  const lead = out.length - c.shape.length
  for (let i = 0; i < c.shape.length; i++) if (c.shape[i] !== 1 && (i + lead < axis || c.shape[i] !== out[i + lead])) return undefined
  const inner = out.slice(axis)
  const cut = c.shape.slice(Math.max(0, axis - lead))
  try {
    return broadcastTo({ ...c, shape: cut }, inner)
  } catch {
    return undefined
  }
}

function foldAffine(mul: boolean): Rule {
  return {
    name: mul ? 'layernorm-scale' : 'layernorm-shift',
    on: [mul ? 'Mul' : 'Add'],
    apply: (n, cx) => {
      for (const i of [0, 1]) {
        const ln = producerOf(cx, n.inputs[i], 'LayerNormalization')
        if (!ln || cx.uses(n.inputs[i]) !== 1 || (ln.attrs as { output?: number }).output) continue
        const axis = (ln.attrs as { axis: number }).axis
        const c = alongNormalized(cx.constant(n.inputs[1 - i]), n.type.shape, normAxis(axis, n.type.shape.length))
        const s = cx.constant(ln.inputs[1])
        const b = ln.inputs[2] ? cx.constant(ln.inputs[2]) : undefined
        if (!c || !s || (ln.inputs[2] && !b)) continue
        const inner = c.shape
        const sc = broadcastTo(s, inner).data
        const bc = b ? broadcastTo(b, inner).data : new Float64Array(sc.length)
        const scale = mul ? sc.map((v, k) => v * c.data[k]) : sc
        const bias = mul ? bc.map((v, k) => v * c.data[k]) : bc.map((v, k) => v + c.data[k])
        const sName = cx.addConstant(tensor(n.type.dtype, inner, scale), `${n.name}_scale`)
        const bName = cx.addConstant(tensor(n.type.dtype, inner, bias), `${n.name}_bias`)
        return { op: 'LayerNormalization', inputs: [ln.inputs[0], sName, bName], attrs: ln.attrs }
      }
      return undefined
    },
  }
}

/** x - ReduceMax(x, a) (keepdims): x and the one axis a. */
function minusMax(cx: RewriteContext, name: string): { x: string; axis: number } | undefined {
  const sub = producerOf(cx, name, 'Sub')
  const max = sub && cx.producer(sub.inputs[1])
  const axes = meanAxes(cx, max, 'ReduceMax')
  return sub && axes?.length === 1 && max!.inputs[0] === sub.inputs[0] ? { x: sub.inputs[0], axis: axes[0] } : undefined
}

const softmax: Rule = {
  name: 'softmax',
  on: ['Div'],
  apply: (n, cx) => {
    const [e, s] = n.inputs
    const exp = producerOf(cx, e, 'Exp')
    const sum = cx.producer(s)
    const axes = meanAxes(cx, sum, 'ReduceSum')
    if (!exp || axes?.length !== 1 || sum!.inputs[0] !== e) return undefined
    const shifted = minusMax(cx, exp.inputs[0])
    if (shifted && shifted.axis !== axes[0]) return undefined
    return { op: 'Softmax', inputs: [shifted?.x ?? exp.inputs[0]], attrs: { axis: axes[0], legacy: false } }
  },
}

const logSoftmax: Rule = {
  name: 'log-softmax',
  on: ['Sub'],
  apply: (n, cx) => {
    const [y, l] = n.inputs
    const shifted = minusMax(cx, y)
    const log = producerOf(cx, l, 'Log')
    const sum = log && cx.producer(log.inputs[0])
    const axes = meanAxes(cx, sum, 'ReduceSum')
    const exp = sum && producerOf(cx, sum.inputs[0], 'Exp')
    if (!shifted || !exp || exp.inputs[0] !== y || axes?.length !== 1 || axes[0] !== shifted.axis) return undefined
    return { op: 'LogSoftmax', inputs: [shifted.x], attrs: { axis: shifted.axis, legacy: false } }
  },
}

export const recognizeNormalizations: Pass = {
  name: 'recognize-normalizations',
  doc: 'Recognize LayerNorm (ReduceMean, Sub, Pow, Add, Sqrt, Div; constant scales and shifts after it folded in), Softmax and LogSoftmax spelled out in primitive ops as one op each.',
  run: (g) => rewrite(g, [spelled, foldAffine(true), foldAffine(false), softmax, logSoftmax]),
}
