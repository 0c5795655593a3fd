/**
 * fold-batchnorm: inference-mode BatchNormalization y = k x + o per channel (k = scale / sqrt(var +
 * eps), o = bias - k mean) folded into the Conv, Gemm or MatMul that produces x when nothing else
 * reads that product and its weights are constants; any other BatchNormalization becomes the affine
 * map Mul(x, k) then Add(., o) with [1, C, 1, ...] constants.
 */
import type { Node } from '../ir/graph.js'
import { rewrite, type Replacement, type RewriteContext, type Rule } from '../ir/rewrite.js'
import { tensor, withValues, type Tensor } from '../ir/tensor.js'
import { broadcastShapes, broadcastTo } from '../ir/ops/util.js'
import { channelTensor } from './match.js'
import type { Pass } from './pass.js'

interface Affine {
  k: number[]
  o: number[]
}

function affineOf(n: Node, cx: RewriteContext): Affine | undefined {
  const [s, b, m, v] = n.inputs.slice(1).map((i) => cx.constant(i))
  if (!s || !b || !m || !v) return undefined
  const eps = (n.attrs as { epsilon: number }).epsilon
  const k = Array.from(s.data, (sc, c) => sc / Math.sqrt(v.data[c] + eps))
  return { k, o: k.map((kc, c) => b.data[c] - kc * m.data[c]) }
}

function intoConv(p: Node, a: Affine, cx: RewriteContext): Replacement | undefined {
  const w = cx.constant(p.inputs[1])
  const b = p.inputs[2] ? cx.constant(p.inputs[2]) : undefined
  if (!w || (p.inputs[2] && !b)) return undefined
  const scaled = withValues(w, (wd) => {
    const per = wd.length / w.shape[0]
    const out = new Float64Array(wd.length)
    for (let c = 0; c < w.shape[0]; c++) {
      const kc = a.k[c]
      const end = (c + 1) * per
      for (let i = c * per; i < end; i++) out[i] = wd[i] * kc
    }
    return out
  })
  const w2 = tensor(w.dtype, w.shape, scaled)
  const b2 = tensor(w.dtype, [w.shape[0]], a.o.map((o, c) => (b ? b.data[c] : 0) * a.k[c] + o))
  return { op: 'Conv', inputs: [p.inputs[0], cx.addConstant(w2, `${p.inputs[1]}_bn`), cx.addConstant(b2, `${p.name}_bias_bn`)], attrs: p.attrs }
}

/** Scale the columns of op(B) by k; returns the new B. */
function scaleColumns(bm: Tensor, k: number[], transB: boolean): Tensor {
  const [r, c] = bm.shape
  const out = withValues(bm, (b) => {
    const o = new Float64Array(b.length)
    for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) o[i * c + j] = b[i * c + j] * k[transB ? i : j]
    return o
  })
  return tensor(bm.dtype, bm.shape, out)
}

function intoGemm(p: Node, a: Affine, cx: RewriteContext): Replacement | undefined {
  const at = p.attrs as { alpha: number; beta: number; transA: boolean; transB: boolean }
  const bm = cx.constant(p.inputs[1])
  const cm = p.inputs[2] ? cx.constant(p.inputs[2]) : undefined
  if (!bm || (p.inputs[2] && !cm)) return undefined
  const N = a.k.length
  const shape = cm ? broadcastShapes([cm.shape, [N]]) : [N]
  const cb = cm ? broadcastTo(cm, shape) : undefined
  const c2 = tensor(bm.dtype, shape, Array.from({ length: shape.reduce((x, y) => x * y, 1) }, (_, i) => (cb ? at.beta * cb.data[i] : 0) * a.k[i % N] + a.o[i % N]))
  const inputs = [p.inputs[0], cx.addConstant(scaleColumns(bm, a.k, at.transB), `${p.inputs[1]}_bn`), cx.addConstant(c2, `${p.name}_bias_bn`)]
  return { op: 'Gemm', inputs, attrs: { ...at, beta: 1 } }
}

function intoMatMul(p: Node, a: Affine, cx: RewriteContext): Replacement | undefined {
  const bm = cx.constant(p.inputs[1])
  const A = cx.producer(p.inputs[0])
  if (!bm || !A || bm.shape.length !== 2 || A.type.shape.length !== 2) return undefined
  const c = tensor(bm.dtype, [a.k.length], a.o)
  const inputs = [p.inputs[0], cx.addConstant(scaleColumns(bm, a.k, false), `${p.inputs[1]}_bn`), cx.addConstant(c, `${p.name}_bias_bn`)]
  return { op: 'Gemm', inputs, attrs: { alpha: 1, beta: 1, transA: false, transB: false } }
}

const INTO: Partial<Record<string, (p: Node, a: Affine, cx: RewriteContext) => Replacement | undefined>> = { Conv: intoConv, Gemm: intoGemm, MatMul: intoMatMul }

const foldRule: Rule = {
  name: 'batchnorm',
  on: ['BatchNormalization'],
  apply: (n, cx) => {
    // training mode normalizes by the batch's own statistics: not an affine map of x
    if ((n.attrs as { training?: boolean }).training) return undefined
    const a = affineOf(n, cx)
    if (!a) return undefined
    const p = cx.producer(n.inputs[0])!
    const into = INTO[p.op]
    const folded = into && cx.uses(p.name) === 1 && p.type.shape.length >= 2 && p.type.shape[1] === a.k.length ? into(p, a, cx) : undefined
    if (folded) return folded
    const rank = n.type.shape.length
    const scaled = cx.add('Mul', [n.inputs[0], cx.addConstant(channelTensor(a.k, rank, n.type.dtype), `${n.name}_scale`)], {}, `${n.name}_mul`, n.origin ?? { name: n.name, op: n.op })
    return { op: 'Add', inputs: [scaled, cx.addConstant(channelTensor(a.o, rank, n.type.dtype), `${n.name}_shift`)], attrs: {} }
  },
}

export const foldBatchnorm: Pass = {
  name: 'fold-batchnorm',
  doc: 'Fold BatchNormalization into the preceding Conv/Gemm/MatMul when it is its only use; otherwise make it a per-channel Mul and Add.',
  run: (g) => rewrite(g, [foldRule]),
}
