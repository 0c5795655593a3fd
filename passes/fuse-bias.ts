/**
 * fuse-bias: Add (or Sub) of a constant bias after a Conv, Gemm or MatMul that nothing else reads is
 * folded into that op: the Conv bias (per output channel), Gemm's C with beta 1, and a 2-D MatMul
 * becomes a Gemm. Kervolution's Conv -> Add(c) thereby becomes one Conv with bias c.
 */
import type { Node } from '../ir/graph.js'
import { rewrite, type Replacement, type RewriteContext, type Rule } from '../ir/rewrite.js'
import { sameShape, tensor, type Tensor } from '../ir/tensor.js'
import { broadcastShapes, broadcastTo } from '../ir/ops/util.js'
import { channelValues } from './match.js'
import type { Pass } from './pass.js'

function intoConv(p: Node, c: Tensor, cx: RewriteContext): Replacement | undefined {
  const vals = channelValues(c, p.type)
  const b = p.inputs[2] ? cx.constant(p.inputs[2]) : undefined
  if (!vals || (p.inputs[2] && !b)) return undefined
  const M = p.type.shape[1]
  const bias = tensor(p.type.dtype, [M], Array.from({ length: M }, (_, m) => (b ? b.data[m] : 0) + vals[vals.length === 1 ? 0 : m]))
  return { op: 'Conv', inputs: [p.inputs[0], p.inputs[1], cx.addConstant(bias, `${p.name}_bias`)], attrs: p.attrs }
}

function intoGemm(p: Node, c: Tensor, cx: RewriteContext): Replacement | undefined {
  const at = p.op === 'Gemm' ? (p.attrs as { beta: number }) : { alpha: 1, beta: 1, transA: false, transB: false }
  if (p.op === 'MatMul' && p.inputs.some((i) => cx.producer(i)!.type.shape.length !== 2)) return undefined
  const old = p.inputs[2] ? cx.constant(p.inputs[2]) : undefined
  if (p.inputs[2] && !old) return undefined
  let bias = c
  if (old) {
    const shape = broadcastShapes([old.shape, c.shape])
    const [o, n] = [broadcastTo(old, shape), broadcastTo(c, shape)]
    bias = tensor(c.dtype, shape, o.data.map((v, i) => at.beta * v + n.data[i]))
  }
  return { op: 'Gemm', inputs: [p.inputs[0], p.inputs[1], cx.addConstant(bias, `${p.name}_bias`)], attrs: { ...at, beta: 1 } }
}

const fuseRule: Rule = {
  name: 'bias',
  on: ['Add', 'Sub'],
  apply: (n, cx) => {
    const order = n.op === 'Add' ? [0, 1] : [0]
    for (const i of order) {
      const p = cx.producer(n.inputs[i])!
      const c = cx.constant(n.inputs[1 - i])
      if (!c || cx.uses(p.name) !== 1 || !sameShape(p.type.shape, n.type.shape) || c.dtype !== p.type.dtype) continue
      const bias = n.op === 'Sub' ? tensor(c.dtype, c.shape, c.data.map((v) => -v)) : c
      if (p.op === 'Conv') return intoConv(p, bias, cx)
      if (p.op === 'Gemm' || p.op === 'MatMul') return intoGemm(p, bias, cx)
    }
    return undefined
  },
}

export const fuseBias: Pass = {
  name: 'fuse-bias',
  doc: 'Fold a constant Add/Sub after Conv, Gemm or MatMul into its bias (2-D MatMul + Add becomes Gemm).',
  run: (g) => rewrite(g, [fuseRule]),
}
