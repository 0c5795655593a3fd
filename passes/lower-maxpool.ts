/**
 * lower-maxpool: make MaxPool computable with additions and multiplications. By default (exact)
 * each window becomes strided Slices reduced pairwise by max(a, b) = (a + b + |a - b|) / 2; the
 * `approximate` pass then turns |d| into d * p(d) with p a polynomial sign. Border pads repeat the
 * edge (the window always holds the repeated value, so the max is unchanged). With
 * `maxpool: 'avg'` MaxPool becomes AveragePool instead, which changes the model's semantics (logged).
 * Runs only when an approximation is requested and ReLU is not kept (MPC evaluates max exactly).
 */
import type { Node } from '../ir/graph.js'
import { outputIndex } from '../ir/op.js'
import { resolveWindow, type Window } from '../ir/ops/nn.js'
import { rewrite, type Replacement, type RewriteContext, type Rule } from '../ir/rewrite.js'
import { tensor } from '../ir/tensor.js'
import { approxSpec } from './approximate.js'
import { PassError, type Pass } from './pass.js'

/** Per spatial axis: kernel, stride, dilation, top/left pad, the padding the last window needs past the input, and the output size. */
function geometry(a: Window, inShape: readonly number[], outShape: readonly number[]) {
  const w = resolveWindow(a, inShape[2], inShape[3])
  return [0, 1].map((i) => {
    const extent = (outShape[2 + i] - 1) * w.s[i] + (w.k[i] - 1) * w.d[i] + 1
    const before = w.pads[i]
    return { k: w.k[i], s: w.s[i], d: w.d[i], before, after: Math.max(0, extent - inShape[2 + i] - before), out: outShape[2 + i] }
  })
}

function int64(cx: RewriteContext, v: number[], base: string): string {
  return cx.addConstant(tensor('int64', [v.length], v), base)
}

function lower(n: Node, cx: RewriteContext): Replacement | undefined {
  const a = n.attrs as unknown as Window
  const x = cx.producer(n.inputs[0])!
  if (x.type.shape.length !== 4 || a.kernel.length !== 2) throw new PassError(`MaxPool '${n.origin?.name || n.name}': only 2-D pooling can be lowered`)
  const [gh, gw] = geometry(a, x.type.shape, n.type.shape)
  const padded = gh.before + gh.after + gw.before + gw.after > 0
  if (padded && (gh.d > 1 || gw.d > 1)) throw new PassError(`MaxPool '${n.origin?.name || n.name}': padded dilated pooling cannot be lowered`)
  let src = n.inputs[0]
  if (padded) src = cx.add('Pad', [src, int64(cx, [0, 0, gh.before, gw.before, 0, 0, gh.after, gw.after], `${n.name}_pads`)], { mode: 'edge', value: 0 }, `${n.name}_pad`, n.origin)
  const axes = int64(cx, [2, 3], `${n.name}_axes`)
  const steps = int64(cx, [gh.s, gw.s], `${n.name}_steps`)
  let vals: string[] = []
  for (let i = 0; i < gh.k; i++)
    for (let j = 0; j < gw.k; j++) {
      const starts = [i * gh.d, j * gw.d]
      const ends = [starts[0] + (gh.out - 1) * gh.s + 1, starts[1] + (gw.out - 1) * gw.s + 1]
      vals.push(cx.add('Slice', [src, int64(cx, starts, `${n.name}_starts`), int64(cx, ends, `${n.name}_ends`), axes, steps], {}, `${n.name}_win`, n.origin))
    }
  if (vals.length === 1) return { op: 'Identity', inputs: [vals[0]], attrs: {} }
  const half = cx.addConstant(tensor(n.type.dtype, [], [0.5]), `${n.name}_half`)
  for (;;) {
    const next: string[] = []
    for (let i = 0; i + 1 < vals.length; i += 2) {
      const [p, q] = [vals[i], vals[i + 1]]
      const sum = cx.add('Add', [p, q], {}, `${n.name}_sum`, n.origin)
      const abs = cx.add('Abs', [cx.add('Sub', [p, q], {}, `${n.name}_diff`, n.origin)], {}, `${n.name}_abs`, n.origin)
      const both = cx.add('Add', [sum, abs], {}, `${n.name}_add`, n.origin)
      if (vals.length === 2) return { op: 'Mul', inputs: [both, half], attrs: {} }
      next.push(cx.add('Mul', [both, half], {}, `${n.name}_max`, n.origin))
    }
    if (vals.length % 2) next.push(vals[vals.length - 1])
    vals = next
  }
}

export const lowerMaxpool: Pass = {
  name: 'lower-maxpool',
  doc: 'MaxPool as pairwise max(a, b) = (a + b + |a - b|) / 2 over strided slices, or AveragePool with --maxpool avg (changes semantics).',
  run(g, cx) {
    if (approxSpec(cx.options).method === 'none' || cx.options.keepRelu === true) return g
    const mode = cx.options.maxpool ?? 'poly'
    if (mode !== 'poly' && mode !== 'avg') throw new PassError(`--maxpool '${String(mode)}': expected poly or avg`)
    const avg = mode === 'avg'
    const rule: Rule = {
      name: 'lower-maxpool',
      on: ['MaxPool'],
      apply: (n, rcx) => {
        if (outputIndex(n.attrs) !== 0) throw new PassError(`MaxPool '${n.origin?.name || n.name}': its indices output cannot be computed with additions and multiplications`)
        if (!avg) return lower(n, rcx)
        cx.log(`lower-maxpool: MaxPool '${n.origin?.name || n.name}' replaced by AveragePool: the model's semantics changed`)
        const { output: _o, outputs: _os, ...window } = n.attrs as { output?: number; outputs?: number }
        return { op: 'AveragePool', inputs: n.inputs, attrs: { ...window, countIncludePad: false } }
      },
    }
    return rewrite(g, [rule])
  },
}
