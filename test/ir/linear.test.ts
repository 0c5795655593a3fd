/**
 * Linear operators from declared forms: every affine value of the fixtures, composed from the ops'
 * declarations and applied to the values of its sources, equals the interpreter's value of it (the
 * oracle); folding scales changes nothing; the transpose is the adjoint; and a hand-built graph
 * exercises each layout and affine op (Transpose, Pad, Slice, Concat, Gather, Expand, ReduceMean,
 * MatMul, Sub, Div, Neg, AveragePool with and without count_include_pad).
 */
import { describe, expect, it } from 'vitest'
import { GraphBuilder, instantiate } from '../../ir/builder.js'
import type { Graph } from '../../ir/graph.js'
import { interpret } from '../../ir/interpret.js'
import {
  affineMacs, applyAffine, primMacs, applyAffineT, applyChain, denseOfChain, LinearAnalysis, LinearError, simplifyChain, sourceAffine, weightedPrims, type Affine,
} from '../../ir/linear.js'
import { sizeOf, tensor, type Tensor } from '../../ir/tensor.js'
import { common } from '../../passes/pipelines.js'
import { MODELS } from '../helpers.js'
import { apply, constant, fixture, onnxNode, random, testX } from '../passes/util.js'

/** Sources: the input and every secret value that is not layout or affine; everything else in normal form. */
function analysis(g: Graph): { an: LinearAnalysis; ids: Map<string, number>; affineNodes: string[] } {
  const ids = new Map<string, number>()
  const probe = new LinearAnalysis(g, () => undefined)
  const isSource = (name: string) => {
    const n = probe.nodes.get(name)!
    if (n.op === 'Input') return true
    const f = probe.form(n).form
    return f !== 'affine' && f !== 'layout'
  }
  const an = new LinearAnalysis(g, (n) => {
    if (!isSource(n.name)) return undefined
    if (!ids.has(n.name)) ids.set(n.name, ids.size)
    return sourceAffine(ids.get(n.name)!, n.type.shape)
  })
  const affineNodes = g.nodes.filter((n) => an.secret.has(n.name) && !isSource(n.name)).map((n) => n.name)
  return { an, ids, affineNodes }
}

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0
  let den = 1e-12
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]))
    den = Math.max(den, Math.abs(b[i]))
  }
  return num / den
}

/** Check every affine value's normal form (raw and simplified) against the interpreter. */
function checkGraph(g0: Graph, x: Tensor): number {
  const g = instantiate(g0, Object.fromEntries(Object.keys(g0.symbols).map((k) => [k, 1])))
  const env = interpret(g, [x], { keepAll: true })
  const { an, ids, affineNodes } = analysis(g)
  let checked = 0
  for (const name of affineNodes) {
    const a = an.affine(name)
    const byId = new Map([...ids].map(([src, id]) => [id, env.get(src)!.data]))
    const want = env.get(name)!.data
    expect(relErr(applyAffine(a, (id) => byId.get(id)!), want), name).toBeLessThan(1e-9)
    const simple: Affine = { ...a, terms: a.terms.map((t) => ({ ...t, prims: simplifyChain(t.prims) })) }
    expect(relErr(applyAffine(simple, (id) => byId.get(id)!), want), `${name} simplified`).toBeLessThan(1e-9)
    checked++
  }
  return checked
}

describe('linear operators from declared forms', () => {
  it.each(MODELS)('%s: every affine value equals the interpreter, before and after the exact passes', (name) => {
    const x = testX(1)
    const g = fixture(name)
    expect(checkGraph(g, x)).toBeGreaterThan(0)
    checkGraph(apply(g, ...common), x)
  })

  it('resnet8 after the exact passes: one weighted stage per term once scales are folded', () => {
    const g = apply(fixture('resnet8'), ...common)
    const gi = instantiate(g, { N: 1 })
    const { an, affineNodes } = analysis(gi)
    const last = affineNodes[affineNodes.length - 1]
    const a = an.affine(last)
    for (const t of a.terms) expect(weightedPrims(simplifyChain(t.prims)).length).toBeLessThanOrEqual(1)
    expect(affineMacs(a)).toBeGreaterThan(0)
  })

  it('counts a convolution\'s multiply-adds as output elements times C/group times kh kw', () => {
    // closed forms: 2 images, 8 output channels of 6x6 from 4 input channels, 3x3 taps; then 2 groups
    const geom = { c: 4, h: 8, w: 8, m: 8, oh: 6, ow: 6, kh: 3, kw: 3, strides: [1, 1] as [number, number], pads: [0, 0, 0, 0] as [number, number, number, number], dilations: [1, 1] as [number, number], group: 1 }
    const conv = (group: number) => ({ kind: 'conv' as const, in: [2, 4, 8, 8], out: [2, 8, 6, 6], geom: { ...geom, group }, weight: new Float64Array((8 * 4 * 9) / group) })
    expect(primMacs(conv(1))).toBe(2 * 8 * 6 * 6 * 4 * 9)
    expect(primMacs(conv(2))).toBe(2 * 8 * 6 * 6 * 2 * 9)
  })

  it('the transpose is the adjoint: <A x, y> = <x, A^T y> on every affine value of resnet8', () => {
    const g = instantiate(apply(fixture('resnet8'), ...common), { N: 1 })
    const { an, affineNodes } = analysis(g)
    for (const name of affineNodes) {
      const a = an.affine(name)
      const sizes = new Map<number, number>()
      for (const t of a.terms) sizes.set(t.source, sizeOf(t.prims.length ? t.prims[0].in : a.shape))
      const xs = new Map([...sizes].map(([id, n], k) => [id, random([n], 7 + k).data]))
      const y = random([sizeOf(a.shape)], 99).data
      const ax = applyAffine({ ...a, bias: new Float64Array(a.bias.length) }, (id) => xs.get(id)!)
      const aty = applyAffineT(a, y, (id) => sizes.get(id)!)
      let lhs = 0
      ax.forEach((v, i) => (lhs += v * y[i]))
      let rhs = 0
      for (const [id, v] of aty) v.forEach((u, i) => (rhs += u * xs.get(id)![i]))
      expect(Math.abs(lhs - rhs) / Math.max(1, Math.abs(lhs)), name).toBeLessThan(1e-9)
    }
  })

  it('layout and affine ops of a hand-built graph match the interpreter; a dense composition equals its chain', () => {
    const b = new GraphBuilder('layout', 17, { N: 1 })
    b.input('x', 'float32', [1, 3, 6, 6])
    const t = onnxNode(b, 'Transpose', ['x'], 't', { perm: [0, 2, 3, 1] })
    const p = onnxNode(b, 'Pad', [t, constant(b, 'pads', [8], tensor('int64', [8], [0, 1, 0, 0, 0, 1, 0, 0])), constant(b, 'pv', [], tensor('float32', [], [0.5]))], 'p')
    const s = onnxNode(b, 'Slice', [p, constant(b, 'st', [1], tensor('int64', [1], [1])), constant(b, 'en', [1], tensor('int64', [1], [7])), constant(b, 'ax', [1], tensor('int64', [1], [1]))], 's')
    const back = onnxNode(b, 'Transpose', [s], 'back', { perm: [0, 3, 1, 2] })
    const avg = onnxNode(b, 'AveragePool', [back], 'avg', { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [2, 2] })
    const avg2 = onnxNode(b, 'AveragePool', [back], 'avg2', { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [2, 2], count_include_pad: 1 })
    const cat = onnxNode(b, 'Concat', [avg, avg2, constant(b, 'k', [1, 1, 3, 3], random([1, 1, 3, 3], 3))], 'cat', { axis: 1 })
    const g1 = onnxNode(b, 'Gather', [cat, constant(b, 'gi', [4], tensor('int64', [4], [6, 0, 2, 3]))], 'g', { axis: 1 })
    const e = onnxNode(b, 'Expand', [onnxNode(b, 'ReduceMean', [g1], 'rm', { axes: [1], keepdims: 1 }), constant(b, 'es', [4], tensor('int64', [4], [1, 4, 3, 3]))], 'e')
    const d = onnxNode(b, 'Div', [onnxNode(b, 'Sub', [g1, e], 'sub'), constant(b, 'dv', [1, 4, 1, 1], random([1, 4, 1, 1], 4, 1, 2))], 'div')
    const n = onnxNode(b, 'Neg', [d], 'neg')
    const f = onnxNode(b, 'Flatten', [n], 'flat', { axis: 1 })
    const mm = onnxNode(b, 'MatMul', [f, constant(b, 'w', [36, 5], random([36, 5], 5))], 'mm')
    const sq = onnxNode(b, 'Mul', [mm, mm], 'sq')
    const out = onnxNode(b, 'Add', [sq, mm], 'out')
    const g = b.build([out])
    const x = random([1, 3, 6, 6], 11)
    expect(checkGraph(g, x)).toBe(16)
    const { an } = analysis(g)
    const a = an.affine('mm')
    expect(a.terms).toHaveLength(4) // two pooling branches, each through Sub's two paths
    for (const t of a.terms) {
      const dense = denseOfChain(t.prims)
      const v = random([108], 12).data
      expect(relErr(applyChain([dense], v, 1), applyChain(t.prims, v, 1))).toBeLessThan(1e-12)
    }
  })

  it('a constant times a secret (MatMul, Gemm with transposes and alpha) is affine in the secret', () => {
    const b = new GraphBuilder('left', 17, { N: 1 })
    b.input('x', 'float32', [4, 3])
    const m = onnxNode(b, 'MatMul', [constant(b, 'a', [5, 4], random([5, 4], 21)), 'x'], 'm')
    const g1 = onnxNode(b, 'Gemm', [constant(b, 'at', [5, 3], random([5, 3], 22)), m], 'g1', { transA: 1, alpha: 0.5 })
    const g2 = onnxNode(b, 'Gemm', [constant(b, 'c', [2, 3], random([2, 3], 24)), g1], 'g2', { transB: 1 })
    const g = b.build([g2])
    expect(checkGraph(g, random([4, 3], 23))).toBe(3)
  })

  it('a shape read from a secret value is public (Reshape to Shape(x) gathered)', () => {
    const b = new GraphBuilder('shape', 13, { N: 1 })
    b.input('x', 'float32', ['N', 2, 3])
    const sh = onnxNode(b, 'Shape', ['x'], 'sh')
    const n0 = onnxNode(b, 'Gather', [sh, constant(b, 'i0', [1], tensor('int64', [1], [0]))], 'n0', { axis: 0 })
    const tgt = onnxNode(b, 'Concat', [n0, constant(b, 'm1', [1], tensor('int64', [1], [-1]))], 'tgt', { axis: 0 })
    const r = onnxNode(b, 'Reshape', ['x', tgt], 'r')
    const y = onnxNode(b, 'Mul', [r, constant(b, 'k', [1], [3])], 'y')
    const g = b.build([y])
    expect(checkGraph(g, random([1, 2, 3], 31))).toBeGreaterThan(0)
  })

  it('names the node that is not linear', () => {
    const b = new GraphBuilder('nl', 17, { N: 1 })
    b.input('x', 'float32', [1, 4])
    const r = onnxNode(b, 'Relu', ['x'], 'r')
    const y = onnxNode(b, 'Add', [r, 'x'], 'y')
    const g = b.build([y])
    const an = new LinearAnalysis(g, (n) => (n.op === 'Input' ? sourceAffine(0, n.type.shape) : undefined))
    expect(() => an.affine('y')).toThrow(LinearError)
    expect(() => an.affine('y')).toThrow("node 'r' (Relu): not a linear function of the values before it (compare)")
  })
})
