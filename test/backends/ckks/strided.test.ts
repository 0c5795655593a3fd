/**
 * Tensors over several ciphertexts and strided maps computed gapped, then compacted. A hand-built
 * network at N = 8192 (4096 slots) whose activations take two ciphertexts, with a stride-2
 * convolution and a strided 1x1 shortcut (multiplexed: several channels a block), is lowered and checked against the float64 interpreter:
 * noiselessly (to 1e-9) and encrypted with node-seal. The compaction network moves every element
 * to the position a closed form gives, and refuses displacements that would collide.
 */
import { describe, expect, it } from 'vitest'
import { compileCkks, interaction, runPlan, simulatePlan } from '../../../backends/ckks/index.js'
import { compactionPlan, type TransformPlan } from '../../../backends/ckks/layout.js'
import { lowerGraph } from '../../../backends/ckks/lower.js'
import { GraphBuilder } from '../../../ir/builder.js'
import type { Graph } from '../../../ir/graph.js'
import { interpret } from '../../../ir/interpret.js'
import { argmax } from '../../../passes/ola.js'
import { constant, onnxNode, random } from '../../passes/util.js'
import { maxAbsDiff } from './helpers.js'

/** x [1,4,32,32] -> conv 4->8 (8192 values: two ciphertexts) -> square -> conv 8->16 stride 2 + 1x1 stride-2 shortcut -> square -> dense 10. */
function stridedNet(): Graph {
  const b = new GraphBuilder('strided', 13, { N: 1 })
  b.input('x', 'float32', ['N', 4, 32, 32])
  const c1 = onnxNode(b, 'Conv', ['x', constant(b, 'w1', [8, 4, 3, 3], random([8, 4, 3, 3], 1, -0.3, 0.3)), constant(b, 'b1', [8], random([8], 2, -0.1, 0.1))], 'c1', { pads: [1, 1, 1, 1] })
  const s1 = onnxNode(b, 'Mul', [c1, c1], 's1')
  const c2 = onnxNode(b, 'Conv', [s1, constant(b, 'w2', [16, 8, 3, 3], random([16, 8, 3, 3], 3, -0.2, 0.2)), constant(b, 'b2', [16], random([16], 4, -0.1, 0.1))], 'c2', { pads: [1, 1, 1, 1], strides: [2, 2] })
  const sc = onnxNode(b, 'Conv', [s1, constant(b, 'w3', [16, 8, 1, 1], random([16, 8, 1, 1], 5, -0.3, 0.3))], 'sc', { strides: [2, 2] })
  const add = onnxNode(b, 'Add', [c2, sc], 'add')
  const s2 = onnxNode(b, 'Mul', [add, add], 's2')
  const f = onnxNode(b, 'Flatten', [s2], 'flat', { axis: 1 })
  const out = onnxNode(b, 'Gemm', [f, constant(b, 'w4', [4096, 10], random([4096, 10], 6, -0.02, 0.02)), constant(b, 'b4', [10], random([10], 7))], 'out')
  return b.build([out])
}

/** Apply a compaction level to a slot vector: out[s] = sum_k diag_k[s] x[s + k]. */
function applyLevel(level: TransformPlan, x: Float64Array, S: number): Float64Array {
  const out = new Float64Array(S)
  for (const d of level.diagonals) for (let i = 0; i < d.slots.length; i++) out[d.slots[i]] += d.values[i] * x[(d.slots[i] + d.k) % S]
  return out
}

describe('ckks: tensors over several ciphertexts, strided maps', () => {
  const g = stridedNet()
  const x = random([2, 4, 32, 32], 9, 0, 1)
  const ref = interpret(g, [x]).get(g.outputs[0])!
  const plan = compileCkks(g, { logN: 13, model: 'strided' })

  it('lowers activations over two ciphertexts and the strided convolutions gapped, then compacted, equal to the interpreter', () => {
    const notes = plan.stats.notes.join('\n')
    expect(notes).toMatch(/-> 8192 values in 2 ciphertexts/)
    // the stride-2 convolution and the shortcut read the same ciphertexts (one term): 16 channels of 8x8 in 32x32 blocks,
    // 4 blocks a ciphertext, 4 channels a block at the 2x2 sub-positions (one ciphertext instead of four), one compaction per sub-position
    expect(notes).toMatch(/s2: transform of 1 term\(s\) -> 4096 values, layout gapped: \d+ diagonals/)
    expect(notes).toMatch(/s2: strided map computed gapped, then compacted: 4 group\(s\)/)
    const scale = Math.max(1, ...Array.from(ref.data, Math.abs))
    expect(maxAbsDiff(simulatePlan(plan, x)[0].data, ref.data) / scale).toBeLessThan(1e-9)
  })

  it('--refresh none keeps the plan leveled: strided maps as one transform each, no refreshes, or a refusal', () => {
    const leveled = compileCkks(g, { leveledOnly: true })
    expect(leveled.stats.bootstraps).toBe(0)
    expect(interaction(leveled)).toMatch(/^none: leveled/)
    expect(leveled.stats.notes.join('\n')).not.toMatch(/gapped/)
    expect(maxAbsDiff(simulatePlan(leveled, x)[0].data, ref.data) / Math.max(1, ...Array.from(ref.data, Math.abs))).toBeLessThan(1e-9)
    expect(interaction(plan)).toMatch(/^\d+ client-aided refresh\(es\) per image/)
    expect(() => compileCkks(g, { logN: 13, security: 256, leveledOnly: true })).toThrow(/fits no leveled CKKS parameter set at 256-bit security .* compile with --refresh client/)
  })

  it('runs encrypted with node-seal: logits within 1% of the largest, top-1 equal', async () => {
    // the strided maps under test, not the refresh mask (its precision cost: test/backends/ckks/refresh.test.ts)
    const res = await runPlan(plan, x, { refresh: 'client', refreshMask: 'off' })
    const scale = Math.max(1, ...Array.from(ref.data, Math.abs))
    expect(maxAbsDiff(res.outputs[0].data, ref.data)).toBeLessThanOrEqual(0.01 * scale)
    expect(argmax(res.outputs[0])).toEqual(argmax(ref))
  }, 120_000)

  it('a compaction network moves every element where it belongs, and refuses positions that would meet', () => {
    const S = 4096
    // every other element of two ciphertexts (gapped by 3), packed in order into one
    const n = 2000
    const from = Int32Array.from({ length: n }, (_, i) => (i < 1000 ? 0 : S) + 3 * (i % 1000) + 7)
    const to = Int32Array.from({ length: n }, (_, i) => i + 50)
    const net = compactionPlan(from, to, S)!
    expect(net.groups).toHaveLength(2)
    const x = new Float64Array(2 * S)
    for (let i = 0; i < n; i++) x[from[i]] = i + 1
    const got = new Float64Array(S)
    for (const grp of net.groups) {
      let v: Float64Array = x.slice(grp.source * S, grp.source * S + S)
      for (const level of grp.levels) v = applyLevel(level, v, S)
      for (let s = 0; s < S; s++) got[s] += v[s]
    }
    const want = new Float64Array(S)
    for (let i = 0; i < n; i++) want[to[i]] = i + 1
    expect(Array.from(got)).toEqual(Array.from(want))
    // a short reversal takes one level (the moves are the displacements themselves); a long one is not
    // order-keeping, and at every digit width two elements meet on the way
    const rev = compactionPlan(Int32Array.from([0, 1, 2, 3]), Int32Array.from([3, 2, 1, 0]), S)!
    expect(rev.groups[0].levels).toHaveLength(1)
    expect(compactionPlan(Int32Array.from({ length: S }, (_, i) => i), Int32Array.from({ length: S }, (_, i) => S - 1 - i), S)).toBeUndefined()
  })

  it('refreshes a value that several consumers need past the budget once (a residual fork)', () => {
    // x -> conv -> square (2 levels: the chain's budget) -> forks into a square and a 1x1 conv, which both need a level
    const b = new GraphBuilder('fork', 13, { N: 1 })
    b.input('x', 'float32', ['N', 2, 8, 8])
    const c = onnxNode(b, 'Conv', ['x', constant(b, 'w', [2, 2, 3, 3], random([2, 2, 3, 3], 11, -0.3, 0.3))], 'c', { pads: [1, 1, 1, 1] })
    const a = onnxNode(b, 'Mul', [c, c], 'a')
    const sq = onnxNode(b, 'Mul', [a, a], 'sq')
    const p = onnxNode(b, 'Conv', [a, constant(b, 'w2', [2, 2, 1, 1], random([2, 2, 1, 1], 12, -0.5, 0.5))], 'p')
    const g2 = b.build([onnxNode(b, 'Add', [sq, p], 'out')])
    const lv = lowerGraph(g2, { slots: 4096, maxInputCts: 1, budget: 2 })
    const refreshes = lv.instrs.filter((i) => i.op === 'refresh')
    // the fork's value is one ciphertext: one refresh serves both branches (two before refreshes were shared)
    expect(refreshes).toHaveLength(1)
    expect(lv.refreshes).toBe(1)
    // after it, both branches read the fresh copy (the square's transform, and the 1x1 convolution fused into the output's): nothing later reads the value refreshed
    const at = lv.instrs.indexOf(refreshes[0])
    const readers = lv.instrs.slice(at + 1).filter((i) => i.args.includes(refreshes[0].args[0]))
    expect(readers).toHaveLength(0)
    expect(new Set(lv.instrs.filter((i) => i.args.includes(refreshes[0].dst)).map((i) => i.node))).toEqual(new Set(['sq', 'out']))
  })
})
