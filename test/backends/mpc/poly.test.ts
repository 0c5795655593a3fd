/**
 * Polynomial steps and secret products on a graph built by hand: Chebyshev and Hermite polynomials
 * of several degrees with per-channel normalization, a partial ReLU whose ones use a polynomial, a
 * partial ReLU in garbled circuits, and a product of two secret values, run by both parties over TCP
 * and compared with the float64 interpreter; costs match the model. LeakyRelu and PRelu run as a
 * garbled ReLU plus a linear term: (1 - a) relu(x) + a x.
 */
import { describe, expect, it } from 'vitest'
import { GraphBuilder } from '../../../ir/builder.js'
import { run1 } from '../../../ir/interpret.js'
import { tensor } from '../../../ir/tensor.js'
import { lowerMpc, runQuery } from '../../../backends/mpc/index.js'
import { parties } from './helpers.js'

function rng(seed: number) {
  return () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1
}

function handGraph() {
  const r = rng(7)
  const b = new GraphBuilder('hand', 13)
  const gemm = { alpha: 1, beta: 1, transA: 0, transB: 1 }
  const weight = (name: string, o: number, i: number) => b.constant(name, tensor('float32', [o, i], Array.from({ length: o * i }, () => r() / Math.sqrt(i))))
  b.input('x', 'float32', ['N', 12])
  weight('w1', 16, 12)
  b.add('Gemm', ['x', 'w1'], gemm, { name: 'h1' })
  const cheb = Array.from({ length: 16 }, () => Array.from({ length: 8 }, (_, k) => r() / (k + 1)))
  b.add('Poly', ['h1'], { basis: 'chebyshev', axis: 1, coeffs: cheb, shift: cheb.map((_, c) => 0.05 * c), scale: cheb.map((_, c) => 1.5 + 0.1 * c) }, { name: 'p1' })
  weight('w2', 16, 16)
  b.add('Gemm', ['p1', 'w2'], gemm, { name: 'h2' })
  const mask = tensor('float32', [1, 16], Array.from({ length: 16 }, (_, i) => (i % 3 === 0 ? 0 : 1)))
  b.add('PartialRelu', ['h2'], { mask, poly: { basis: 'hermite', axis: 1, coeffs: [[0.4, 0.5, 0.28, 0.05]], shift: [0.1], scale: [0.9] } }, { name: 'p2' })
  weight('w3', 8, 16)
  weight('w4', 8, 16)
  b.add('Gemm', ['p2', 'w3'], gemm, { name: 'y1' })
  b.add('Gemm', ['p2', 'w4'], gemm, { name: 'y2' })
  b.add('Mul', ['y1', 'y2'], {}, { name: 'z' })
  b.add('PartialRelu', ['y1'], { mask: tensor('float32', [1, 8], [1, 0, 1, 1, 0, 0, 1, 0]) }, { name: 'g' })
  b.add('Add', ['z', 'g'], {}, { name: 'zg' })
  weight('w5', 5, 8)
  b.add('Gemm', ['zg', 'w5'], gemm, { name: 'out' })
  return b.build(['out'])
}

describe('polynomials and products', () => {
  it('agree with the interpreter and the cost model', async () => {
    const g = handGraph()
    const s = lowerMpc(g)
    expect(s.steps.map((st) => `${st.kind}:${st.op}`)).toEqual(['poly:Poly', 'poly:PartialRelu', 'mul:Mul', 'gc:PartialRelu'])
    expect(s.reluCount).toBe(4)
    expect(s.triples).toBe(16 * 6 + 10 * 2 + 8)
    expect(s.layers.map((l) => l.triples ?? 0).filter((t) => t > 0)).toEqual([16 * 6, 10 * 2, 8])
    const p = await parties(g, s)
    try {
      const r = rng(99)
      const n = 3
      const x = tensor('float32', [n, 12], Array.from({ length: n * 12 }, () => r()))
      const { output, report } = await runQuery(s, x, { connect: `127.0.0.1:${p.server.port}`, dealer: `127.0.0.1:${p.dealer.port}` })
      const ref = run1(g, x)
      for (let i = 0; i < ref.data.length; i++) expect(Math.abs(output.data[i] - ref.data[i])).toBeLessThan(0.01 * (1 + Math.abs(ref.data[i])))
      expect(report.perImage.bytes.online).toBe(s.bytes.online)
      expect(report.perImage.bytes.offline).toBe(s.bytes.offline)
      expect(report.perImage.rounds).toBe(s.rounds)
    } finally {
      await p.close()
    }
  })

  it('runs LeakyRelu and PRelu as garbled ReLUs plus a linear term', async () => {
    const r = rng(3)
    const b = new GraphBuilder('leaky', 13)
    const gemm = { alpha: 1, beta: 1, transA: 0, transB: 1 }
    const weight = (name: string, o: number, i: number) => b.constant(name, tensor('float32', [o, i], Array.from({ length: o * i }, () => r() / Math.sqrt(i))))
    b.input('x', 'float32', ['N', 12])
    weight('w1', 8, 12)
    b.add('Gemm', ['x', 'w1'], gemm, { name: 'h1' })
    b.add('LeakyRelu', ['h1'], { alpha: 0.1 }, { name: 'a1' })
    weight('w2', 8, 8)
    b.add('Gemm', ['a1', 'w2'], gemm, { name: 'h2' })
    b.constant('slope', tensor('float32', [8], [0.25, -0.5, 0, 0.1, 0.3, 0.2, 0.05, 1.5]))
    b.add('PRelu', ['h2', 'slope'], {}, { name: 'a2' })
    weight('w3', 4, 8)
    b.add('Gemm', ['a2', 'w3'], gemm, { name: 'out' })
    const g = b.build(['out'])
    const s = lowerMpc(g)
    expect(s.reluCount).toBe(16)
    const p = await parties(g, s)
    try {
      const x = tensor('float32', [4, 12], Array.from({ length: 48 }, () => 2 * r()))
      const { output } = await runQuery(s, x, { connect: `127.0.0.1:${p.server.port}`, dealer: `127.0.0.1:${p.dealer.port}` })
      const ref = run1(g, x)
      for (let i = 0; i < ref.data.length; i++) expect(Math.abs(output.data[i] - ref.data[i])).toBeLessThan(0.005)
    } finally {
      await p.close()
    }
  })

  it('garbles max pooling with padded windows of several sizes and a ReLU fused into a global max pool', async () => {
    const r = rng(5)
    const b = new GraphBuilder('pools', 13)
    b.input('x', 'float32', ['N', 2, 5, 5])
    b.add('Relu', ['x'], {}, { name: 'rx' })
    b.add('GlobalMaxPool', ['rx'], {}, { name: 'gm' })
    b.add('Flatten', ['gm'], { axis: 1 }, { name: 'f1' })
    const win = { kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], dilations: [1, 1], autoPad: 'NOTSET', ceil: false, countIncludePad: false }
    b.add('MaxPool', ['x'], win, { name: 'mp' })
    b.add('Flatten', ['mp'], { axis: 1 }, { name: 'f2' })
    b.add('Concat', ['f1', 'f2'], { axis: 1 }, { name: 'cat' })
    b.constant('w', tensor('float32', [3, 20], Array.from({ length: 60 }, () => r())))
    b.add('Gemm', ['cat', 'w'], { alpha: 1, beta: 1, transA: 0, transB: 1 }, { name: 'out' })
    const g = b.build(['out'])
    const s = lowerMpc(g)
    expect(s.steps.map((st) => st.op)).toEqual(['Relu+GlobalMaxPool', 'MaxPool'])
    const pool = s.steps[1]
    expect(pool.kind === 'gc' && pool.groups).toEqual([{ k: 4, count: 8 }, { k: 6, count: 8 }, { k: 9, count: 2 }])
    expect(s.reluCount).toBe(50)
    expect(s.comparisons).toBe(2 * 24 + 8 * 3 + 8 * 5 + 2 * 8)
    const p = await parties(g, s)
    try {
      const x = tensor('float32', [3, 2, 5, 5], Array.from({ length: 150 }, () => 3 * r()))
      const { output, report } = await runQuery(s, x, { connect: `127.0.0.1:${p.server.port}`, dealer: `127.0.0.1:${p.dealer.port}` })
      const ref = run1(g, x)
      for (let i = 0; i < ref.data.length; i++) expect(Math.abs(output.data[i] - ref.data[i])).toBeLessThan(0.005)
      expect(report.perImage.bytes.online).toBe(s.bytes.online)
    } finally {
      await p.close()
    }
  })
})
