/**
 * The CKKS lowering reads what the ops declare (`OpDef.secret`) and builds its sparse maps from the
 * primitives' structure: every digits fixture still lowers to a plan whose noiseless run equals the
 * interpreter; each primitive times a sparse map equals the primitive applied to every column
 * (`applyPrim`, the oracle); and lowering evaluates no op more than once per node (no probing).
 */
import { describe, expect, it } from 'vitest'
import { compileCkks, simulatePlan, type CkksPlan } from '../../../backends/ckks/index.js'
import { colsFromDense, denseCol, type SparseCols } from '../../../backends/ckks/layout.js'
import { lowerGraph } from '../../../backends/ckks/lower.js'
import { addSparse, chainTimesCols, primTimesCols } from '../../../backends/ckks/sparse.js'
import type { Graph } from '../../../ir/graph.js'
import { applyPrim, type ConvGeom, type Prim } from '../../../ir/linear.js'
import { OPS } from '../../../ir/ops/index.js'
import { sizeOf } from '../../../ir/tensor.js'
import { MODELS, xorshift32 } from '../../helpers.js'
import { compiledGraph, maxAbsDiff, reference, testImages } from './helpers.js'

/** Fixtures whose activations are not polynomials are compiled with --approx hermite:2. */
const EXACT = new Set(['cnn_square', 'aespa_cnn', 'pkn_cnn'])
/**
 * Let the worker's event loop run between long synchronous steps (resnet8 takes tens of seconds on a
 * loaded machine; vitest's worker RPC times out after 60 s without a turn of the loop).
 */
const breathe = () => new Promise<void>((resolve) => setImmediate(resolve))

const graphs = new Map<string, Graph>()
const plans = new Map<string, CkksPlan>()
function graphOf(name: string): Graph {
  let g = graphs.get(name)
  if (!g) graphs.set(name, (g = compiledGraph(name, EXACT.has(name) ? {} : { approx: 'hermite:2' }, 'digits')))
  return g
}
function planOf(name: string): CkksPlan {
  let p = plans.get(name)
  if (!p) plans.set(name, (p = compileCkks(graphOf(name), { model: name })))
  return p
}

describe('ckks lowering from declared forms', () => {
  for (const name of MODELS) {
    it(`${name}${EXACT.has(name) ? '' : ' --approx hermite:2'}: noiseless plan equals the interpreter`, async () => {
      await breathe()
      const g = graphOf(name)
      await breathe()
      const p = planOf(name)
      await breathe()
      const x = testImages('digits', 3)
      const ref = reference(g, x)
      const scale = Math.max(1, ...Array.from(ref.data, Math.abs))
      expect(maxAbsDiff(simulatePlan(p, x)[0].data, ref.data)).toBeLessThan(1e-9 * scale)
    })
  }
})

// ---------------------------------------------------------------------------------------------
// primitives times sparse maps against applyPrim per column

function randomCols(rows: number, cols: number, density: number, seed: number): SparseCols {
  const r = xorshift32(seed)
  const u = () => r() / 2 ** 32
  return colsFromDense(rows, cols, () => Float64Array.from({ length: rows }, () => (u() < density ? u() * 4 - 2 : 0)))
}

/** Column j of P M by the oracle: the primitive applied to the dense column. */
function oracle(prims: readonly Prim[], m: SparseCols): SparseCols {
  const rows = sizeOf(prims[prims.length - 1].out)
  return colsFromDense(rows, m.cols, (j) => prims.reduce((v, p) => applyPrim(p, v, 1), denseCol(m, j)))
}

function expectSameCols(a: SparseCols, b: SparseCols): void {
  expect([a.rows, a.cols]).toEqual([b.rows, b.cols])
  let diff = 0
  for (let j = 0; j < a.cols; j++) {
    diff = Math.max(diff, maxAbsDiff(denseCol(a, j), denseCol(b, j)))
    for (let q = a.start[j] + 1; q < a.start[j + 1]; q++) expect(a.idx[q]).toBeGreaterThan(a.idx[q - 1]) // rows sorted, no repeats
  }
  expect(diff).toBeLessThan(1e-12)
}

function geom(g: Partial<ConvGeom> & Pick<ConvGeom, 'c' | 'h' | 'w' | 'm' | 'kh' | 'kw'>): ConvGeom {
  const strides = g.strides ?? [1, 1]
  const pads = g.pads ?? [0, 0, 0, 0]
  const dilations = g.dilations ?? [1, 1]
  const oh = Math.floor((g.h + pads[0] + pads[2] - dilations[0] * (g.kh - 1) - 1) / strides[0]) + 1
  const ow = Math.floor((g.w + pads[1] + pads[3] - dilations[1] * (g.kw - 1) - 1) / strides[1]) + 1
  return { strides, pads, dilations, group: 1, oh, ow, ...g }
}

function values(n: number, seed: number, zeros = 0): Float64Array {
  const r = xorshift32(seed)
  return Float64Array.from({ length: n }, () => (r() / 2 ** 32 < zeros ? 0 : r() / 2 ** 31 - 1))
}

function convPrim(images: number, g: ConvGeom, seed: number): Prim {
  return {
    kind: 'conv', in: [images, g.c, g.h, g.w], out: [images, g.m, g.oh, g.ow], geom: g, weight: values(g.m * (g.c / g.group) * g.kh * g.kw, seed, 0.2),
  }
}

function sumpoolPrim(images: number, g: ConvGeom): Prim {
  return { kind: 'sumpool', in: [images, g.c, g.h, g.w], out: [images, g.c, g.oh, g.ow], geom: g }
}

const PRIMS: [string, Prim[]][] = [
  ['reshape', [{ kind: 'reshape', in: [1, 2, 3, 4], out: [1, 24] }]],
  ['index (gather, repeats, -1 drops)', [{ kind: 'index', in: [20], out: [30], map: Int32Array.from({ length: 30 }, (_, i) => (i % 7 === 3 ? -1 : (i * 13) % 20)) }]],
  ['scale (zeros and NaN: don\'t care)', [{ kind: 'scale', in: [24], out: [24], f: Float64Array.from({ length: 24 }, (_, i) => (i % 5 === 0 ? NaN : i % 7 === 0 ? 0 : i / 3 - 2)) }]],
  ['segsum', [{ kind: 'segsum', in: [2, 3, 4], out: [2, 3, 1], map: Int32Array.from({ length: 24 }, (_, i) => (i === 5 ? -1 : Math.floor(i / 4))) }]],
  ['dense', [{ kind: 'dense', in: [3, 5], out: [3, 4], k: 5, n: 4, weight: values(20, 7, 0.25) }]],
  ['sumpool 3x3 stride 2 pads 1,0,1,1', [sumpoolPrim(2, geom({ c: 3, h: 7, w: 6, m: 3, kh: 3, kw: 3, strides: [2, 2], pads: [1, 0, 1, 1], group: 3 }))]],
  ['sumpool 2x2 dilation 2', [sumpoolPrim(1, geom({ c: 2, h: 6, w: 6, m: 2, kh: 2, kw: 2, dilations: [2, 2], group: 2 }))]],
  ['conv 3x3 pad 1', [convPrim(1, geom({ c: 3, h: 6, w: 5, m: 4, kh: 3, kw: 3, pads: [1, 1, 1, 1] }), 11)]],
  ['conv 3x2 stride 2x1 asymmetric pads, 2 images', [convPrim(2, geom({ c: 2, h: 7, w: 6, m: 3, kh: 3, kw: 2, strides: [2, 1], pads: [0, 1, 2, 0] }), 12)]],
  ['conv dilated, grouped', [convPrim(1, geom({ c: 4, h: 8, w: 7, m: 6, kh: 3, kw: 3, dilations: [2, 1], pads: [2, 1, 1, 1], group: 2 }), 13)]],
  ['conv 1x1 stride 2 (projection shortcut)', [convPrim(1, geom({ c: 3, h: 6, w: 6, m: 5, kh: 1, kw: 1, strides: [2, 2] }), 14)]],
]

describe('primitive x sparse map by structure', () => {
  for (const [what, prims] of PRIMS)
    it(`${what}: equals the primitive applied to each column`, () => {
      const m = randomCols(sizeOf(prims[0].in), 17, 0.3, what.length)
      expectSameCols(chainTimesCols(prims, m), oracle(prims, m))
    })

  it('a chain (conv, scale, sumpool, reshape, dense) composes in order', () => {
    const g = geom({ c: 2, h: 6, w: 6, m: 3, kh: 3, kw: 3, pads: [1, 1, 1, 1] })
    const conv = convPrim(1, g, 21)
    const scale: Prim = { kind: 'scale', in: conv.out, out: conv.out, f: values(sizeOf(conv.out), 22) }
    const pg = geom({ c: 3, h: 6, w: 6, m: 3, kh: 2, kw: 2, strides: [2, 2], group: 3 })
    const pool = sumpoolPrim(1, pg)
    const flat: Prim = { kind: 'reshape', in: pool.out, out: [1, 27] }
    const dense: Prim = { kind: 'dense', in: [1, 27], out: [1, 4], k: 27, n: 4, weight: values(108, 23) }
    const chain = [conv, scale, pool, flat, dense]
    const m = randomCols(sizeOf(conv.in), 9, 0.2, 5)
    expectSameCols(chainTimesCols(chain, m), oracle(chain, m))
    expectSameCols(primTimesCols(scale, primTimesCols(conv, m)), oracle([conv, scale], m))
  })

  it('adds maps column by column, dropping what cancels', () => {
    const a = randomCols(12, 8, 0.4, 3)
    const b = randomCols(12, 8, 0.4, 4)
    const neg = { ...a, val: a.val.map((v) => -v) }
    expectSameCols(addSparse(a, b), colsFromDense(12, 8, (j) => denseCol(a, j).map((v, i) => v + denseCol(b, j)[i])))
    expect(addSparse(a, neg).idx.length).toBe(0)
  })
})

// ---------------------------------------------------------------------------------------------
// no probing: each op is evaluated at most once per node while lowering

/** Calls of each op's eval during fn, split into those made by the op's own `secret` declaration and the rest. */
function countEvals(fn: () => void): { lowering: Map<string, number>; declaring: Map<string, number> } {
  const lowering = new Map<string, number>()
  const declaring = new Map<string, number>()
  let inDeclaration = 0
  const saved = Object.entries(OPS).map(([name, def]) => ({ name, def, evaluate: def.eval, secret: def.secret }))
  for (const { name, def, evaluate, secret } of saved) {
    def.eval = (...args) => {
      const m = inDeclaration > 0 ? declaring : lowering
      m.set(name, (m.get(name) ?? 0) + 1)
      return evaluate.apply(def, args)
    }
    if (secret)
      def.secret = (...args) => {
        inDeclaration++
        try {
          return secret.apply(def, args)
        } finally {
          inDeclaration--
        }
      }
  }
  try {
    fn()
  } finally {
    for (const { def, evaluate, secret } of saved) {
      def.eval = evaluate
      if (secret) def.secret = secret
    }
  }
  return { lowering, declaring }
}

function opCounts(g: Graph): Map<string, number> {
  const c = new Map<string, number>()
  for (const n of g.nodes) c.set(n.op, (c.get(n.op) ?? 0) + 1)
  return c
}

describe('lowering evaluates each op at most once per node', () => {
  for (const name of ['resnet8', 'cnn_bn_relu_maxpool']) {
    it(`${name} --approx hermite:2`, async () => {
      await breathe()
      const g = graphOf(name)
      await breathe()
      const slots = 2 ** (planOf(name).params.logN - 1)
      await breathe()
      const { lowering, declaring } = countEvals(() => lowerGraph(g, { slots, maxInputCts: 8, budget: Infinity }))
      const nodes = opCounts(g)
      expect(lowering.size).toBeGreaterThan(0) // the wrapper sees the lowering's bias evaluations
      for (const [op, k] of lowering) expect([op, k]).toEqual([op, Math.min(k, nodes.get(op) ?? 0)])
      // declarations read a layout op's index map from one evaluation per secret input (here: one each)
      for (const [op, k] of declaring) expect([op, k]).toEqual([op, Math.min(k, nodes.get(op) ?? 0)])
      if (name === 'resnet8') expect(declaring.size).toBe(0)
    })
  }
})
