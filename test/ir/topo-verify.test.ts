/** Cycle detection on long cycles, and the verifier catching a stored type its op cannot infer. */
import { describe, expect, it } from 'vitest'
import { GraphBuilder } from '../../ir/builder.js'
import type { Graph } from '../../ir/graph.js'
import { tensor } from '../../ir/tensor.js'
import { CycleError, topoOrder } from '../../ir/topo.js'
import { verify, VerifyError } from '../../ir/verify.js'

describe('topoOrder', () => {
  it('names a 20,000-node cycle without recursion', () => {
    const n = 20000
    const ids = Array.from({ length: n }, (_, i) => `v${i}`)
    const edges = ids.map((id, i) => [id, ids[(i + 1) % n]] as const)
    let err: unknown
    try {
      topoOrder(ids, edges)
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(CycleError)
    expect((err as CycleError).cycle).toEqual(ids)
  })

  it('names only the cycle, not the chain that leads into it or hangs off it', () => {
    const ids = ['a', 'b', 'c', 'd', 'e', 'f']
    const edges = [['a', 'b'], ['b', 'c'], ['c', 'd'], ['d', 'b'], ['d', 'e'], ['e', 'f']] as const
    expect(() => topoOrder(ids, edges)).toThrow("cycle through 'b' -> 'c' -> 'd'")
  })
})

describe('verify', () => {
  const graph = (): Graph => {
    const b = new GraphBuilder('g', 13)
    b.input('x', 'float32', [1, 4])
    b.constant('c', tensor('float32', [4], [1, 2, 3, 4]))
    b.add('Add', ['x', 'c'], {}, { name: 'y' })
    return b.build(['y'])
  }

  it('accepts a graph the builder made', () => {
    expect(() => verify(graph())).not.toThrow()
  })

  it('refuses an op whose inputs no longer fit, though they are not all constants', () => {
    const g = graph()
    const bad: Graph = {
      ...g,
      nodes: g.nodes.map((n) => (n.name === 'c' ? { ...n, type: { dtype: 'float32', shape: [3] }, attrs: { value: tensor('float32', [3], [1, 2, 3]) } } : n)),
    }
    expect(() => verify(bad)).toThrow(VerifyError)
    expect(() => verify(bad)).toThrow(/^node 'y' \(Add\): /)
  })
})
