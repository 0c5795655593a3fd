/**
 * Real node-seal runs: key generation, encryption, evaluation and decryption of every fixture's plan
 * on a few images, compared with the float64 interpreter on the compiled graph (top-1 agreement and
 * logit error at most 0.05); bootstrapped plans are refused, or run with client-aided refreshes.
 */
import { describe, expect, it } from 'vitest'
import { compileCkks, runPlan } from '../../../backends/ckks/index.js'
import { argmax } from '../../../passes/ola.js'
import { compiledGraph, maxAbsDiff, MODELS, reference, testImages } from './helpers.js'

const IMAGES: Record<string, number> = { cnn_square: 3, aespa_cnn: 2, pkn_cnn: 2, cryptonets28: 2 }

describe('ckks encrypted runs', () => {
  for (const name of Object.keys(MODELS)) {
    it(`${name}: encrypted logits match the interpreter`, async () => {
      const g = compiledGraph(name)
      const plan = compileCkks(g, { model: name })
      const x = testImages(MODELS[name], IMAGES[name])
      const res = await runPlan(plan, x)
      const ref = reference(g, x)
      expect(res.images).toBe(IMAGES[name])
      expect(res.outputs[0].shape).toEqual(ref.shape)
      expect(maxAbsDiff(res.outputs[0].data, ref.data)).toBeLessThanOrEqual(0.05)
      expect(argmax(res.outputs[0])).toEqual(argmax(ref))
      for (const [op, n] of Object.entries(plan.stats.counts)) expect(res.counts[op]).toBe(n * IMAGES[name])
      expect(res.latencyMs.evaluate).toBeGreaterThan(0)
    }, 120_000)
  }

  for (const [name, approx] of [
    ['mlp_relu', 'hermite:2'],
    ['senet_partial_relu', 'hermite:2'],
    ['mlp_relu', 'chebyshev:6'],
    ['mlp_relu', 'chebyshev:31'],
  ]) {
    it(`${name} with --approx ${approx}: encrypted logits match the interpreter`, async () => {
      const g = compiledGraph(name, { approx }, 'digits')
      const plan = compileCkks(g)
      const x = testImages('digits', 2)
      const res = await runPlan(plan, x)
      const ref = reference(g, x)
      expect(maxAbsDiff(res.outputs[0].data, ref.data)).toBeLessThanOrEqual(0.05)
      expect(argmax(res.outputs[0])).toEqual(argmax(ref))
    }, 120_000)
  }

  it('refuses a plan with bootstraps unless refreshes are client-aided', async () => {
    const g = compiledGraph('cnn_square')
    const plan = compileCkks(g, { security: 192, logN: 13 })
    const x = testImages('digits', 1)
    await expect(runPlan(plan, x)).rejects.toThrow(/plan needs \d+ bootstrap\(s\) .* node-seal cannot bootstrap; run with --refresh client/)
    // unmasked: the mask's precision cost is measured in refresh.test.ts
    const res = await runPlan(plan, x, { refresh: 'client', refreshMask: 'off' })
    expect(res.refresh.count).toBe(plan.stats.bootstraps)
    expect(res.refresh.bytes).toBeGreaterThan(0)
    expect(maxAbsDiff(res.outputs[0].data, reference(g, x).data)).toBeLessThanOrEqual(0.05)
  }, 120_000)

  it('rejects inputs of the wrong shape', async () => {
    const plan = compileCkks(compiledGraph('pkn_cnn'))
    await expect(runPlan(plan, testImages('digits28', 1))).rejects.toThrow('input has shape [1,1,28,28], the plan expects [N,1,8,8]')
  })
})
