/** fuse-bias: constant Add/Sub after Conv, Gemm and MatMul goes into the bias; other Adds stay. */
import { describe, expect, it } from 'vitest'
import { GraphBuilder } from '../../ir/builder.js'
import { fuseBias } from '../../passes/fuse-bias.js'
import { apply, constant, expectSame, onnxNode, random, skeleton } from './util.js'

function conv(bias: { shape: number[]; first?: boolean; op?: string }, withBias = false, extraUse = false) {
  const b = new GraphBuilder('g', 13)
  b.input('x', 'float32', [2, 2, 4, 4])
  constant(b, 'w', [3, 2, 3, 3], random([3, 2, 3, 3], 1))
  if (withBias) constant(b, 'b0', [3], random([3], 2))
  onnxNode(b, 'Conv', withBias ? ['x', 'w', 'b0'] : ['x', 'w'], 'conv', { pads: [1, 1, 1, 1] })
  constant(b, 'c', bias.shape, random(bias.shape, 3))
  onnxNode(b, bias.op ?? 'Add', bias.first ? ['c', 'conv'] : ['conv', 'c'], 'y')
  if (extraUse) onnxNode(b, 'Mul', ['y', 'conv'], 'z')
  return b.build([extraUse ? 'z' : 'y'])
}

describe('fuse-bias', () => {
  const x = [random([2, 2, 4, 4], 9)]

  it('moves a per-channel or scalar constant into the Conv bias, in either operand order, for Add and Sub', () => {
    for (const spec of [{ shape: [1, 3, 1, 1] }, { shape: [3, 1, 1], first: true }, { shape: [] }, { shape: [1, 3, 1, 1], op: 'Sub' }]) {
      for (const withBias of [false, true]) {
        const g = conv(spec, withBias)
        const h = apply(g, fuseBias)
        expect(skeleton(h)).toEqual(['y = Conv(x, #w, #conv_bias)'])
        expectSame(g, h, x)
      }
    }
  })

  it('leaves a bias that varies over pixels, Sub(c, conv) and a Conv with another use', () => {
    for (const g of [conv({ shape: [1, 3, 4, 4] }), conv({ shape: [1, 3, 1, 1], first: true, op: 'Sub' }), conv({ shape: [1, 3, 1, 1] }, false, true)]) {
      expect(apply(g, fuseBias)).toEqual(g)
    }
  })

  it('makes MatMul + Add a Gemm and adds into Gemm C with its beta', () => {
    for (const op of ['MatMul', 'Gemm']) {
      const b = new GraphBuilder('g', 13)
      b.input('x', 'float32', [3, 4])
      constant(b, 'w', [4, 5], random([4, 5], 4))
      constant(b, 'c0', [5], random([5], 5))
      onnxNode(b, op, op === 'Gemm' ? ['x', 'w', 'c0'] : ['x', 'w'], 'mm', op === 'Gemm' ? { beta: 0.25, alpha: 2 } : {})
      constant(b, 'c', [1, 5], random([1, 5], 6))
      onnxNode(b, 'Add', ['c', 'mm'], 'y')
      const g = b.build(['y'])
      const h = apply(g, fuseBias)
      expect(skeleton(h)).toEqual(['y = Gemm(x, #w, #mm_bias)'])
      expectSame(g, h, [random([3, 4], 7)])
    }
  })

  it('leaves a batched MatMul and an Add of two computed values', () => {
    const b = new GraphBuilder('g', 13)
    b.input('x', 'float32', [2, 3, 4])
    constant(b, 'w', [4, 5], random([4, 5], 4))
    onnxNode(b, 'MatMul', ['x', 'w'], 'mm')
    constant(b, 'c', [5], random([5], 6))
    onnxNode(b, 'Add', ['mm', 'c'], 'y')
    onnxNode(b, 'Add', ['y', 'y'], 'z')
    const g = b.build(['z'])
    expect(apply(g, fuseBias)).toEqual(g)
  })
})
