/** fold-batchnorm: BN into Conv/Gemm/MatMul, lone BN as Mul + Add, and the cases it must leave alone. */
import { describe, expect, it } from 'vitest'
import { GraphBuilder } from '../../ir/builder.js'
import type { Graph } from '../../ir/graph.js'
import { foldBatchnorm } from '../../passes/fold-batchnorm.js'
import { apply, constant, expectSame, fixture, onnxNode, ops, random, skeleton, testX } from './util.js'

function bn(b: GraphBuilder, x: string, c: number, name: string, seed: number): string {
  const p = (k: string, s: number, lo: number, hi: number) => constant(b, `${name}.${k}`, [c], random([c], seed + s, lo, hi))
  return onnxNode(b, 'BatchNormalization', [x, p('scale', 1, 0.5, 2), p('bias', 2, -1, 1), p('mean', 3, -1, 1), p('var', 4, 0.1, 3)], name, { epsilon: 1e-5 })
}

function convBn(extraUse: boolean): Graph {
  const b = new GraphBuilder('g', 13, { N: 2 })
  b.input('x', 'float32', ['N', 3, 5, 5])
  constant(b, 'w', [4, 3, 3, 3], random([4, 3, 3, 3], 7))
  constant(b, 'b', [4], random([4], 8))
  onnxNode(b, 'Conv', ['x', 'w', 'b'], 'conv', { pads: [1, 1, 1, 1] })
  const y = bn(b, 'conv', 4, 'bn', 10)
  if (!extraUse) return b.build([y])
  onnxNode(b, 'Add', [y, 'conv'], 'sum')
  return b.build(['sum'])
}

describe('fold-batchnorm', () => {
  const x = [random([2, 3, 5, 5], 3)]

  it('folds BN into the Conv that feeds only it', () => {
    const g = convBn(false)
    const h = apply(g, foldBatchnorm)
    expect(skeleton(g)).toEqual(['conv = Conv(x, #w, #b)', 'bn = BatchNormalization(conv, #bn.scale, #bn.bias, #bn.mean, #bn.var)'])
    expect(skeleton(h)).toEqual(['bn = Conv(x, #w_bn, #conv_bias_bn)'])
    expectSame(g, h, x)
  })

  it('makes BN a per-channel Mul and Add when the Conv has another use', () => {
    const g = convBn(true)
    const h = apply(g, foldBatchnorm)
    expect(skeleton(h)).toEqual(['conv = Conv(x, #w, #b)', 'bn_mul = Mul(conv, #bn_scale)', 'bn = Add(bn_mul, #bn_shift)', 'sum = Add(bn, conv)'])
    expect(h.nodes.find((n) => n.name === 'bn_scale')!.type.shape).toEqual([1, 4, 1, 1])
    expectSame(g, h, x)
  })

  it('folds BN into Gemm (transB, C, beta) and into a 2-D MatMul', () => {
    for (const op of ['Gemm', 'GemmNoC', 'MatMul']) {
      const b = new GraphBuilder('g', 13)
      b.input('x', 'float32', [3, 6])
      if (op === 'MatMul') {
        constant(b, 'w', [6, 5], random([6, 5], 5))
        onnxNode(b, 'MatMul', ['x', 'w'], 'mm')
      } else {
        constant(b, 'w', [5, 6], random([5, 6], 5))
        constant(b, 'c', [1, 5], random([1, 5], 6))
        onnxNode(b, 'Gemm', op === 'Gemm' ? ['x', 'w', 'c'] : ['x', 'w'], 'mm', { transB: 1, beta: 0.5, alpha: 1.5 })
      }
      const g = b.build([bn(b, 'mm', 5, 'bn', 20)])
      const h = apply(g, foldBatchnorm)
      expect(ops(h)).toEqual({ Input: 1, Constant: 2, Gemm: 1 })
      expectSame(g, h, [random([3, 6], 9)])
    }
  })

  it('turns a lone BatchNormalization into Mul and Add', () => {
    const b = new GraphBuilder('g', 13)
    b.input('x', 'float32', [2, 3, 4])
    const g = b.build([bn(b, 'x', 3, 'bn', 30)])
    const h = apply(g, foldBatchnorm)
    expect(skeleton(h)).toEqual(['bn_mul = Mul(x, #bn_scale)', 'bn = Add(bn_mul, #bn_shift)'])
    expectSame(g, h, [random([2, 3, 4], 4)])
  })

  it('changes nothing on training-mode BatchNormalization (batch statistics: not affine in x), even with constant statistics', () => {
    const b = new GraphBuilder('g', 15)
    b.input('x', 'float32', [2, 3, 4])
    const p = (k: string, s: number, lo: number, hi: number) => constant(b, `bn.${k}`, [3], random([3], s, lo, hi))
    const y = onnxNode(b, 'BatchNormalization', ['x', p('scale', 1, 0.5, 2), p('bias', 2, -1, 1), p('mean', 3, -1, 1), p('var', 4, 0.1, 3)], 'bn', { epsilon: 1e-5, training_mode: 1 })
    const g = b.build([y])
    expect(apply(g, foldBatchnorm)).toEqual(g)
  })

  it('changes nothing without BatchNormalization', () => {
    const g = fixture('mlp_relu')
    expect(apply(g, foldBatchnorm)).toEqual(g)
  })

  it('leaves no BatchNormalization in resnet8 and keeps its outputs', () => {
    const g = fixture('resnet8')
    const h = apply(g, foldBatchnorm)
    expect(ops(g).BatchNormalization).toBe(9)
    expect(ops(h).BatchNormalization).toBeUndefined()
    expect(ops(h).Conv).toBe(9)
    expectSame(g, h, [testX(64)])
  })
})
