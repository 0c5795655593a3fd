/**
 * lower-for-export: PIC-only ops become standard ONNX ops with the same values, and the lowered graph
 * survives the ONNX writer and importer (float32 initializers, so to float32 precision).
 */
import { describe, expect, it } from 'vitest'
import { writeModel } from '../../compiler/onnx-export.js'
import { importModel } from '../../compiler/onnx-import.js'
import { GraphBuilder } from '../../ir/builder.js'
import type { Graph } from '../../ir/graph.js'
import { PIC_ONLY_OPS } from '../../ir/ops/index.js'
import type { PolyAttrs } from '../../ir/ops/pi.js'
import { tensor } from '../../ir/tensor.js'
import { lowerForExport } from '../../passes/lower-for-export.js'
import { common } from '../../passes/pipelines.js'
import { apply, expectSame, fixture, ops, random, skeleton, testX } from './util.js'

const SHAPE = [2, 3, 2, 2]
const x = [random(SHAPE, 3, -3, 3)]

function single(op: string, attrs: Record<string, unknown>, opset = 13): Graph {
  const b = new GraphBuilder('g', opset)
  b.input('x', 'float32', SHAPE)
  b.add(op, ['x'], attrs, { name: 'y' })
  return b.build(['y'])
}

const cheb: PolyAttrs = { basis: 'chebyshev', axis: 1, coeffs: [[0.1, 0.5, 0.3, -0.2], [0, 1, 0, 0.1], [0.2, 0, 1, 0]], shift: [0, 0.5, -1], scale: [3, 2, 4] }

describe('lower-for-export', () => {
  it('writes x^2 as one Mul and a per-channel Chebyshev cubic as Mul/Add with [1, C, 1, 1] coefficients', () => {
    const sq = single('Poly', { basis: 'power', axis: 1, coeffs: [[0, 0, 1]], shift: [0], scale: [1] })
    expect(skeleton(apply(sq, lowerForExport))).toEqual(['y = Mul(x, x)'])
    const g = single('Poly', { ...cheb })
    const h = apply(g, lowerForExport)
    expect(ops(h).Poly).toBeUndefined()
    const shapes = h.nodes.filter((n) => n.op === 'Constant').map((n) => n.type.shape)
    expect(shapes).toContainEqual([1, 3, 1, 1])
    expectSame(g, h, x)
  })

  it('keeps a degree-27 Chebyshev fit in its basis, so float32 ONNX reproduces it', () => {
    const row = (r: number) => Array.from({ length: 28 }, (_, k) => r ** k / (k + 1))
    const g = single('Poly', { basis: 'chebyshev', axis: 1, coeffs: [row(0.9), row(-0.8), row(0.95)], shift: [0, 0.5, -0.5], scale: [3, 3.5, 3.5] })
    const h = apply(g, lowerForExport)
    expectSame(g, h, x, 1e-12)
    expectSame(g, importModel(writeModel(h)), x, 1e-5)
  })

  it('puts per-channel coefficients on the Poly axis (axis -1 of a [N, F] tensor)', () => {
    const b = new GraphBuilder('g', 13)
    b.input('x', 'float32', [4, 3])
    b.add('Poly', ['x'], { ...cheb, axis: -1 }, { name: 'y' })
    const g = b.build(['y'])
    const h = apply(g, lowerForExport)
    expect(h.nodes.filter((n) => n.op === 'Constant').map((n) => n.type.shape)).toContainEqual([1, 3])
    expectSame(g, h, [random([4, 3], 8, -3, 3)])
  })

  it('writes PartialRelu as Relu/Mul/Sub/Mul/Add, and with a polynomial as x + m * (p(x) - x)', () => {
    const mask = tensor('float32', [1, 3, 1, 1], [1, 0, 1])
    for (const poly of [undefined, { ...cheb }]) {
      const g = single('PartialRelu', { mask, poly })
      const h = apply(g, lowerForExport)
      expect(Object.keys(ops(h)).filter((o) => PIC_ONLY_OPS.has(o) && o !== 'Input')).toEqual([])
      expectSame(g, h, x)
    }
    expect(skeleton(apply(single('PartialRelu', { mask }), lowerForExport))).toEqual([
      'y_relu = Relu(x)',
      'y_on = Mul(#y_mask, y_relu)',
      'y_keep = Sub(#y_one, #y_mask)',
      'y_off = Mul(y_keep, x)',
      'y = Add(y_on, y_off)',
    ])
  })

  it('writes Silu as x * Sigmoid(x), Gelu and HardSwish in opset-13 spellings, and keeps them at opset 20', () => {
    expect(skeleton(apply(single('Silu', {}), lowerForExport))).toEqual(['y_sigmoid = Sigmoid(x)', 'y = Mul(x, y_sigmoid)'])
    for (const [op, attrs] of [['Silu', {}], ['Gelu', { approximate: 'none' }], ['Gelu', { approximate: 'tanh' }], ['HardSwish', {}]] as const) {
      const g = single(op, attrs)
      const h = apply(g, lowerForExport)
      expect(ops(h)[op]).toBeUndefined()
      expectSame(g, h, x, 1e-12)
    }
    for (const op of ['Gelu', 'HardSwish']) {
      const g = single(op, op === 'Gelu' ? { approximate: 'none' } : {}, 20)
      expect(apply(g, lowerForExport)).toEqual(g)
    }
  })

  it.each(['aespa_cnn', 'pkn_cnn', 'cnn_square', 'cnn_gelu', 'senet_partial_relu'])('%s: compiled, lowered, written and re-imported gives the same logits', (name) => {
    const compiled = apply(fixture(name), ...common)
    const lowered = apply(compiled, lowerForExport)
    const back = importModel(writeModel(lowered), { file: `${name}.onnx` })
    expect(back.opset).toBe(13)
    expectSame(compiled, lowered, [testX(64)], 1e-9)
    expectSame(compiled, back, [testX(64)], 1e-5)
    expect(ops(apply(back, ...common))).toEqual(ops(compiled))
  })
})
