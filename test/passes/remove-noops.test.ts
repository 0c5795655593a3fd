/** remove-noops: Identity, Dropout and all-zero Pad go; real Pads and output-named no-ops stay. */
import { describe, expect, it } from 'vitest'
import { GraphBuilder } from '../../ir/builder.js'
import { tensor } from '../../ir/tensor.js'
import { removeNoops } from '../../passes/remove-noops.js'
import { apply, constant, expectSame, fixture, onnxNode, ops, random, skeleton, testX } from './util.js'

function chain(pads: number[], outputIdentity: boolean) {
  const b = new GraphBuilder('g', 13)
  b.input('x', 'float32', [1, 2, 3, 3])
  onnxNode(b, 'Identity', ['x'], 'id')
  onnxNode(b, 'Dropout', ['id'], 'drop')
  b.constant('pads', tensor('int64', [8], pads))
  onnxNode(b, 'Pad', ['drop', 'pads'], 'pad')
  onnxNode(b, 'Relu', ['pad'], 'relu')
  if (outputIdentity) onnxNode(b, 'Identity', ['relu'], 'out')
  return b.build([outputIdentity ? 'out' : 'relu'])
}

describe('remove-noops', () => {
  it('forwards Identity, Dropout and a zero Pad', () => {
    const g = chain([0, 0, 0, 0, 0, 0, 0, 0], false)
    const h = apply(g, removeNoops)
    expect(skeleton(h)).toEqual(['relu = Relu(x)'])
    expectSame(g, h, [random([1, 2, 3, 3])])
  })

  it('keeps a Pad that pads and an Identity that is a graph output', () => {
    const g = chain([0, 0, 1, 1, 0, 0, 1, 1], true)
    const h = apply(g, removeNoops)
    expect(skeleton(h)).toEqual(['pad = Pad(x, #pads)', 'relu = Relu(pad)', 'out = Identity(relu)'])
    expectSame(g, h, [random([1, 2, 3, 3])])
  })

  it('removes the Identity nodes of resnet8 and the no-op Pads of cnn_bn_relu_maxpool', () => {
    for (const [name, op] of [['resnet8', 'Identity'], ['cnn_bn_relu_maxpool', 'Pad']]) {
      const g = fixture(name)
      const h = apply(g, removeNoops)
      expect(ops(g)[op]).toBeGreaterThan(0)
      expect(ops(h)[op]).toBeUndefined()
      expectSame(g, h, [testX(64)])
    }
  })

  it('changes nothing when there is nothing to remove', () => {
    const b = new GraphBuilder('g', 13)
    b.input('x', 'float32', [2, 2])
    constant(b, 'one', [], [1])
    onnxNode(b, 'Add', ['x', 'one'], 'y')
    const g = b.build(['y'])
    expect(apply(g, removeNoops)).toEqual(g)
  })
})
