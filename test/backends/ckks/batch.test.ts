/**
 * Several images per inference (`pic compile --batch K`): the graph bound to K images, its
 * tensors interleaved in the slots (element i of image b at i K + b), checked against the float64
 * interpreter noiselessly and encrypted, with a last inference padded with zero images.
 */
import { describe, expect, it } from 'vitest'
import { compileAutoBatch, compileCkks, runPlan, simulatePlan } from '../../../backends/ckks/index.js'
import { GraphBuilder, instantiate } from '../../../ir/builder.js'
import { tensor } from '../../../ir/tensor.js'
import { passContext, runPipeline } from '../../../passes/pass.js'
import { PIPELINES } from '../../../passes/pipelines.js'
import { argmax } from '../../../passes/ola.js'
import { constant, onnxNode } from '../../passes/util.js'
import { compiledGraph, maxAbsDiff, rawGraph, reference, testImages } from './helpers.js'

describe('ckks: several images per inference', () => {
  const K = 4
  const g = runPipeline(instantiate(rawGraph('cnn_square'), { N: K }), PIPELINES.ckks({}), passContext({}, {}))
  const plan = compileCkks(g, { model: 'cnn_square' })
  const x = testImages('digits', 6)
  const ref = reference(compiledGraph('cnn_square'), x)

  it('interleaves K images and equals the interpreter image by image, the last inference padded', () => {
    expect(plan.inputs[0].shape[0]).toBe(K)
    expect(plan.batching).toMatch(/^4 images per inference, interleaved in the slots/)
    expect(plan.stats.notes.join('\n')).toMatch(/4 images interleaved/)
    const y = simulatePlan(plan, x)[0]
    expect(y.shape).toEqual([6, 10])
    expect(maxAbsDiff(y.data, ref.data)).toBeLessThan(1e-9)
  })

  it('runs encrypted: two inferences for six images, logits within 0.05, top-1 equal', async () => {
    const res = await runPlan(plan, x)
    expect(res.imagesPerInference).toBe(K)
    expect(res.inferences).toBe(2)
    for (const [op, n] of Object.entries(plan.stats.counts)) expect(res.counts[op]).toBe(2 * n)
    expect(maxAbsDiff(res.outputs[0].data, ref.data)).toBeLessThanOrEqual(0.05)
    expect(argmax(res.outputs[0])).toEqual(argmax(ref))
  }, 120_000)

  it('--batch auto keeps the batch with the lowest estimated time per image, and one image where batching does not pay', () => {
    const auto = compileAutoBatch(compiledGraph('cnn_square'), {})
    const K2 = auto.plan.inputs[0].shape[0]
    expect(K2).toBeGreaterThan(1)
    const note = auto.plan.stats.notes.find((n) => n.startsWith('--batch auto: '))!
    const tried = [...note.matchAll(/(\d+): ([\d.]+) ms/g)].map((m) => ({ K: Number(m[1]), ms: Number(m[2]) }))
    expect(tried[0].K).toBe(1)
    expect(tried.find((t) => t.K === K2)!.ms).toBe(Math.min(...tried.map((t) => t.ms)))
    const y = simulatePlan(auto.plan, x)[0]
    expect(maxAbsDiff(y.data, ref.data)).toBeLessThan(1e-9)
    const c28 = compileAutoBatch(compiledGraph('cryptonets28'), {})
    expect(c28.plan.inputs[0].shape[0]).toBe(1)
    expect(c28.plan.stats.notes.join('\n')).toMatch(/--batch auto: no batch is cheaper per image; estimated ms per image by images per inference: 1: [\d.]+ ms, 2: /)
  })

  it('refuses a batched graph whose encrypted values do not keep the batch as their first axis', () => {
    const b = new GraphBuilder('flat', 13, { N: 2 })
    b.input('x', 'float32', ['N', 8])
    const r = onnxNode(b, 'Reshape', ['x', constant(b, 'shape', [1], tensor('int64', [1], [16]))], 'r')
    const sq = onnxNode(b, 'Mul', [r, r], 'sq')
    expect(() => compileCkks(b.build([sq]))).toThrow("value 'sq' of shape [16] does not keep the batch of 2 images as its first axis, so the images cannot be interleaved; compile with --batch 1")
  })
})
