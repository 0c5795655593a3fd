/**
 * Depth costs no stack: a 10,000-node chain is written, imported, verified, printed, serialized,
 * run through the ir pipeline and interpreted at two batch sizes, and a 10,000-deep constant chain that decides a
 * Reshape's shape is folded by the builder, the importer and fold-constants.
 */
import { describe, expect, it } from 'vitest'
import { writeModel } from '../../compiler/onnx-export.js'
import { importModel } from '../../compiler/onnx-import.js'
import { GraphBuilder } from '../../ir/builder.js'
import { interpret } from '../../ir/interpret.js'
import { tensor } from '../../ir/tensor.js'
import { printGraph } from '../../ir/print.js'
import { graphFromJSON, graphToJSON } from '../../ir/serialize.js'
import { verify } from '../../ir/verify.js'
import { passContext, runPipeline } from '../../passes/pass.js'
import { PIPELINES } from '../../passes/pipelines.js'

const DEPTH = 10_000

describe('a 10,000-node chain', () => {
  it('imports, verifies, compiles and runs: y = max(x + 0.5, 0) + 0.5 * 4999', () => {
    const b = new GraphBuilder('chain', 13)
    b.input('x', 'float32', ['N', 4])
    b.constant('half', tensor('float32', [], [0.5]))
    let v = 'x'
    for (let i = 0; i < DEPTH / 2; i++) {
      v = b.add('Add', [v, 'half'], {}, { name: `add${i}` }).name
      v = b.add('Relu', [v], {}, { name: `relu${i}` }).name
    }
    const g = importModel(writeModel(b.build([v])), { file: 'chain.onnx' })
    expect(g.nodes.length).toBe(DEPTH + 2)
    verify(g)
    expect(printGraph(g).split('\n').length).toBeGreaterThan(DEPTH)
    expect(graphFromJSON(graphToJSON(g).json, graphToJSON(g).sidecar).nodes.length).toBe(g.nodes.length)
    const compiled = runPipeline(g, PIPELINES.ir({}), passContext())
    const xs = [-3, -0.25, 0, 1.5, 2, -1]
    for (const n of [1, 6]) {
      const x = tensor('float32', [n, 4], Array.from({ length: 4 * n }, (_, i) => xs[i % xs.length]))
      const want = Array.from(x.data, (t) => Math.max(t + 0.5, 0) + 0.5 * (DEPTH / 2 - 1))
      for (const h of [g, compiled]) expect(Array.from(interpret(h, [x]).get(v)!.data)).toEqual(want)
    }
  })
})

describe('a 10,000-deep constant chain', () => {
  it('decides a Reshape shape in the builder, the importer and fold-constants', () => {
    const b = new GraphBuilder('shapes', 13)
    b.input('x', 'float32', [2, 6])
    b.constant('s0', tensor('int64', [2], [3, 4]))
    b.constant('zero', tensor('int64', [2], [0, 0]))
    let s = 's0'
    for (let i = 1; i <= DEPTH; i++) s = b.add(i % 2 ? 'Identity' : 'Add', i % 2 ? [s] : [s, 'zero'], {}, { name: `s${i}` }).name
    b.add('Reshape', ['x', s], { allowzero: false }, { name: 'y' })
    const g0 = b.build(['y'])
    expect(g0.nodes.at(-1)!.type.shape).toEqual([3, 4])
    const g = importModel(writeModel(g0), { file: 'shapes.onnx' })
    const folded = runPipeline(g, PIPELINES.ir({}), passContext())
    expect(folded.nodes.length).toBeLessThan(5)
    const x = tensor('float32', [2, 6], Array.from({ length: 12 }, (_, i) => i))
    expect(interpret(folded, [x]).get('y')!.shape).toEqual([3, 4])
    expect(Array.from(interpret(g, [x]).get('y')!.data)).toEqual(Array.from(x.data))
  })
})
