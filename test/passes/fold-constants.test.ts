/** fold-constants: constant subgraphs become Constants with the values a closed form gives; a node that cannot be evaluated is named. */
import { describe, expect, it } from 'vitest'
import { GraphBuilder } from '../../ir/builder.js'
import { tensor } from '../../ir/tensor.js'
import { foldConstants } from '../../passes/fold-constants.js'
import { PassError } from '../../passes/pass.js'
import { apply, onnxNode, skeleton } from './util.js'

describe('fold-constants', () => {
  it('folds arithmetic on constants and Shape of a static input, and leaves the rest', () => {
    const b = new GraphBuilder('g', 13)
    b.input('x', 'float32', [2, 3])
    b.constant('a', tensor('float32', [3], [1, 2, 3]))
    b.constant('c', tensor('float32', [3], [10, 20, 30]))
    onnxNode(b, 'Mul', ['a', 'c'], 'ac')
    onnxNode(b, 'Shape', ['x'], 'shape')
    onnxNode(b, 'Add', ['x', 'ac'], 'y')
    const h = apply(b.build(['y', 'shape']), foldConstants)
    expect(skeleton(h)).toEqual(['y = Add(x, #ac)'])
    const value = (name: string) => Array.from((h.nodes.find((n) => n.name === name)!.attrs as { value: { data: Float64Array } }).value.data)
    expect(value('ac')).toEqual([10, 40, 90])
    expect(value('shape')).toEqual([2, 3])
  })

  it('names the node whose constant inputs it cannot evaluate', () => {
    const b = new GraphBuilder('g', 13)
    b.input('x', 'float32', [2])
    b.constant('data', tensor('float32', [3], [1, 2, 3]))
    b.constant('idx', tensor('int64', [1], [7]))
    onnxNode(b, 'Gather', ['data', 'idx'], 'picked')
    onnxNode(b, 'Add', ['x', 'picked'], 'y')
    const g = b.build(['y'])
    expect(() => foldConstants.run(g, { options: {}, log: () => {}, report: {} })).toThrow(PassError)
    expect(() => foldConstants.run(g, { options: {}, log: () => {}, report: {} })).toThrow(/^node 'picked' \(Gather\): /)
  })
})
