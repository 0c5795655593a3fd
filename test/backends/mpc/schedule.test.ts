/** The mpc schedule and cost model: exact ReLU counts, costs per step, errors for unsupported ops. */
import { describe, expect, it } from 'vitest'
import { GraphBuilder } from '../../../ir/builder.js'
import { tensor } from '../../../ir/tensor.js'
import { lowerMpc, mpcBackend, printSchedule } from '../../../backends/mpc/index.js'
import { passContext } from '../../../passes/pass.js'
import { compiled, loadModel } from './helpers.js'

describe('mpc schedule', () => {
  it('counts 768 garbled ReLUs and 384 comparisons for cnn_bn_relu_maxpool, ReLU fused into the max pool', () => {
    const s = lowerMpc(compiled('cnn_bn_relu_maxpool'))
    expect(s.reluCount).toBe(768)
    expect(s.comparisons).toBe(128 * 3)
    expect(s.triples).toBe(0)
    expect(s.steps.map((st) => st.op)).toEqual(['Relu+MaxPool', 'Relu'])
    expect(s.rounds).toBe(6)
  })

  it('counts only the mask ones of partial ReLUs: 333 for senet_partial_relu (256 channel, 77 pixel)', () => {
    const s = lowerMpc(compiled('senet_partial_relu'))
    expect(s.reluCount).toBe(333)
    const gc = s.steps.filter((st) => st.kind === 'gc')
    expect(gc.map((st) => st.kind === 'gc' && st.positions?.length)).toEqual([256, 77])
    expect(gc.map((st) => st.kind === 'gc' && st.identity)).toEqual([256, 179])
  })

  it('uses Beaver squares for cnn_square and no garbled circuits', () => {
    const s = lowerMpc(compiled('cnn_square'))
    expect(s.reluCount).toBe(0)
    expect(s.triples).toBe(768)
    expect(s.steps.every((st) => st.kind === 'poly')).toBe(true)
  })

  it('stays below Delphi\'s 1,184 online bytes per garbled ReLU', () => {
    const s = lowerMpc(compiled('cnn_bn_relu_maxpool'))
    const relu = s.layers.find((l) => l.op === 'Relu')!
    expect(relu.bytes.online / relu.reluCount).toBeLessThan(1184)
    expect(relu.andGates / relu.reluCount).toBe(133)
  })

  it('counts a partial ReLU on a model built by hand (per-pixel mask broadcast over channels)', () => {
    const b = new GraphBuilder('hand', 13)
    b.input('x', 'float32', [1, 3, 4, 4])
    const mask = tensor('float32', [1, 1, 4, 4], Array.from({ length: 16 }, (_, i) => (i % 3 === 0 ? 1 : 0)))
    b.add('PartialRelu', ['x'], { mask }, { name: 'p' })
    b.constant('w', tensor('float32', [5, 48], new Float64Array(240).fill(0.01)))
    b.add('Flatten', ['p'], { axis: 1 }, { name: 'f' })
    b.add('Gemm', ['f', 'w'], { alpha: 1, beta: 1, transA: 0, transB: 1 }, { name: 'y' })
    const s = lowerMpc(b.build(['y']))
    expect(s.reluCount).toBe(3 * 6)
    expect(s.bytes.online).toBeGreaterThan(0)
  })

  it('refuses ops it cannot run, naming the node', () => {
    expect(() => lowerMpc(loadModel('mlp_sigmoid_tanh'))).toThrow(/op Sigmoid is not supported by the mpc backend/)
  })

  it('implements the Backend interface: JSON plan, printout, summary', () => {
    const g = compiled('mlp_relu')
    const { plan } = mpcBackend.lower(g, passContext({}))
    const again = JSON.parse(JSON.stringify(plan))
    expect(again.reluCount).toBe(32)
    expect(mpcBackend.summary(plan, g)).toMatchObject({ reluCount: 32, triples: 0, rounds: 4 })
    expect(Object.keys(plan.latencyMs)).toEqual(['LAN', 'WAN'])
    expect(printSchedule(plan)).toMatch(/32 garbled ReLUs/)
  })
})
