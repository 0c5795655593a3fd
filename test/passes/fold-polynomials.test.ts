/**
 * fold-polynomials: AESPA, kervolution and square activations fold into one Poly each; the fixture
 * targets (agreement 1.0 with the original, max abs error <= 1e-6, no BatchNormalization or Pow
 * left) are checked against the interpreter on the original model and PyTorch's logits.
 */
import { describe, expect, it } from 'vitest'
import { GraphBuilder } from '../../ir/builder.js'
import type { PolyAttrs } from '../../ir/ops/pi.js'
import { polyDegree } from '../../ir/ops/pi.js'
import { foldBatchnorm } from '../../passes/fold-batchnorm.js'
import { foldPolynomials } from '../../passes/fold-polynomials.js'
import { common } from '../../passes/pipelines.js'
import { maxAbsDiff } from '../helpers.js'
import { apply, constant, expectKeepsFixture, expectSame, fixture, onnxNode, ops, random, run, skeleton, testX } from './util.js'

describe('fold-polynomials on the digits fixtures', () => {
  const x = testX()
  it.each(['aespa_cnn', 'pkn_cnn', 'cnn_square'])('%s: one degree-2 Poly per activation, same logits', (name) => {
    const g = fixture(name)
    const h = apply(g, ...common)
    const c = ops(h)
    expect(c.BatchNormalization).toBeUndefined()
    expect(c.Pow).toBeUndefined()
    expect(c.Mul).toBeUndefined()
    expect(c.Poly).toBe(2)
    for (const n of h.nodes.filter((n) => n.op === 'Poly')) expect(polyDegree(n.attrs as unknown as PolyAttrs)).toBe(2)
    expectKeepsFixture(name, g, h, 1e-9)
    expect(maxAbsDiff(run(g, [x])[0].data, run(h, [x])[0].data)).toBeLessThanOrEqual(1e-6)
  })

  it('kervolution becomes Conv (with cp in its bias) then x^2', () => {
    const h = apply(fixture('pkn_cnn'), ...common)
    const polys = h.nodes.filter((n) => n.op === 'Poly').map((n) => n.attrs as unknown as PolyAttrs)
    expect(polys.map((p) => [p.coeffs, p.of])).toEqual([[[[0, 0, 1]], 'Pow'], [[[0, 0, 1]], 'Pow']])
    for (const n of h.nodes.filter((n) => n.op === 'Poly')) expect(h.nodes.find((m) => m.name === n.inputs[0])!.op).toBe('Conv')
  })
})

describe('fold-polynomials on small graphs', () => {
  const x = [random([2, 3, 2, 2], 5)]

  /** AESPA's activation with shuffled operand orders and per-channel constants. */
  function aespa(shape = [2, 3, 2, 2]) {
    const b = new GraphBuilder('g', 13)
    b.input('x', 'float32', shape)
    const bn = (inp: string, name: string, seed: number) => {
      const p = (k: string, s: number, lo: number, hi: number) => constant(b, `${name}.${k}`, [3], random([3], seed + s, lo, hi))
      return onnxNode(b, 'BatchNormalization', [inp, p('s', 1, 0.5, 2), p('b', 2, -1, 1), p('m', 3, -1, 1), p('v', 4, 0.1, 2)], name)
    }
    constant(b, 'one', [], [1])
    constant(b, 'sqrt2', [], [Math.SQRT2])
    constant(b, 'half', shape.map(() => 1), [0.5])
    constant(b, 'c0', [], [0.398942])
    constant(b, 'c2', shape.length === 4 ? [1, 3, 1, 1] : [3], [0.28, 0.3, 0.25])
    onnxNode(b, 'Mul', ['x', 'x'], 'sq')
    onnxNode(b, 'Sub', ['sq', 'one'], 'h2')
    onnxNode(b, 'Div', ['h2', 'sqrt2'], 'h2n')
    bn('x', 'bn1', 10)
    onnxNode(b, 'Mul', ['half', 'bn1'], 't1')
    onnxNode(b, 'Add', ['c0', 't1'], 't2')
    bn('h2n', 'bn2', 20)
    onnxNode(b, 'Mul', ['bn2', 'c2'], 't3')
    onnxNode(b, 'Add', ['t3', 't2'], 'y')
    onnxNode(b, 'Relu', ['y'], 'out')
    return b.build(['out'])
  }

  it('folds AESPA in any operand order into one per-channel degree-2 Poly, on NCHW and on [N, F] (BatchNorm1d)', () => {
    const g = aespa()
    const h = apply(g, foldBatchnorm, foldPolynomials)
    expect(skeleton(h)).toEqual(['y = Poly(x)', 'out = Relu(y)'])
    const a = h.nodes.find((n) => n.op === 'Poly')!.attrs as unknown as PolyAttrs
    expect(a.coeffs.length).toBe(3)
    expect(polyDegree(a)).toBe(2)
    expect(a.coeffs.every((r) => r.length === 3)).toBe(true)
    expect(a.of).toBe('AESPA')
    expectSame(g, h, x)
    const flat = aespa([5, 3])
    const hf = apply(flat, foldBatchnorm, foldPolynomials)
    expect(skeleton(hf)).toEqual(['y = Poly(x)', 'out = Relu(y)'])
    expectSame(flat, hf, [random([5, 3], 6)])
  })

  it('folds Pow(Add(x, c), 3) and keeps a shared intermediate', () => {
    const b = new GraphBuilder('g', 13)
    b.input('x', 'float32', [2, 3, 2, 2])
    constant(b, 'c', [], [0.5])
    constant(b, 'three', [], [3])
    onnxNode(b, 'Add', ['x', 'c'], 't')
    onnxNode(b, 'Pow', ['t', 'three'], 'p')
    onnxNode(b, 'Mul', ['x', 'x'], 'sq')
    onnxNode(b, 'Neg', ['sq'], 'nsq')
    onnxNode(b, 'Sigmoid', ['sq'], 'sig')
    onnxNode(b, 'Add', ['p', 'nsq'], 'y')
    onnxNode(b, 'Mul', ['y', 'sig'], 'z')
    const g = b.build(['z'])
    const h = apply(g, foldPolynomials)
    expect(skeleton(h)).toEqual(['sq = Poly(x)', 'sig = Sigmoid(sq)', 'y = Poly(x)', 'z = Mul(y, sig)'])
    const y = h.nodes.find((n) => n.name === 'y')!.attrs as unknown as PolyAttrs
    expect(y.coeffs).toEqual([[0.125, 0.75, 0.5, 1]])
    expect(y.of).toBe('Pow')
    expectSame(g, h, x)
  })

  it('changes nothing for affine maps, products of two values and pixel-varying constants', () => {
    const b = new GraphBuilder('g', 13)
    b.input('x', 'float32', [2, 3, 2, 2])
    b.input('u', 'float32', [2, 3, 2, 2])
    constant(b, 'k', [1, 3, 1, 1], [1, 2, 3])
    constant(b, 'px', [1, 1, 2, 2], [1, 2, 3, 4])
    onnxNode(b, 'Mul', ['x', 'k'], 'a')
    onnxNode(b, 'Add', ['a', 'k'], 'aff')
    onnxNode(b, 'Mul', ['aff', 'u'], 'prod')
    onnxNode(b, 'Mul', ['prod', 'px'], 'pm')
    onnxNode(b, 'Mul', ['pm', 'prod'], 'y')
    const g = b.build(['y'])
    expect(apply(g, foldPolynomials)).toEqual(g)
  })
})
