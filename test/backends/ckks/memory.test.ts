/**
 * Memory as a compile-time fact: the plan's figures (keys by the 16 N k (k - 1) rule, ciphertexts from
 * register liveness in SEAL's pool, plaintexts resident or on demand), the validator's refusal in one
 * line naming the layer, and plaintexts on demand when resident ones would not fit.
 */
import { describe, expect, it } from 'vitest'
import { compileCkks } from '../../../backends/ckks/compile.js'
import { gib, keySwitchBytes, parseBytes, planMemory } from '../../../backends/ckks/memory.js'
import { printPlan } from '../../../backends/ckks/print.js'
import { simulatePlan } from '../../../backends/ckks/simulate.js'
import { recomputeMemory, validatePlan } from '../../../backends/ckks/validate.js'
import { compiledGraph, maxAbsDiff, reference, testImages } from './helpers.js'

describe('CKKS plan memory', () => {
  const g = compiledGraph('cnn_square')
  const plan = compileCkks(g)

  it('states keys, ciphertexts and plaintexts at the peak for a plan that fits', () => {
    const m = plan.stats.memory
    const k = plan.params.primes.length
    expect(m.fits).toBe(true)
    expect(m.heapBytes).toBe(4 * 2 ** 30)
    expect(m.keyBytes).toBe((plan.keys.rotations.length + 1) * keySwitchBytes(plan.params.logN, k))
    expect(m.keyBytes).toBe(plan.stats.keyBytes.total)
    expect(m.peakBytes).toBe(m.contextBytes + m.keyBytes + m.ciphertextBytes + m.plaintextBytes)
    // at least the most live ciphertexts at once, each 2 N (l + 1) words at its level
    expect(m.ciphertextBytes).toBeGreaterThanOrEqual(m.peakLiveCiphertexts * 2 * 2 ** plan.params.logN * 8)
    expect(plan.plaintexts).toBe('resident')
    expect(m.peakLayer).toMatch(/^node '.*' \(\w+\)$/)
    expect(printPlan(plan)).toMatch(/\nmemory: peak 0\.19 GiB of node-seal's 4 GiB heap at node '[^']+' \(\w+\): keys 0\.12 GiB, ciphertexts [0-9.]+ GiB \(at most \d+ live\), plaintexts [0-9.]+ GiB \(resident\), context and working memory [0-9.]+ GiB\n/)
    const { peakLayer: _l, ...bare } = m
    expect(recomputeMemory(plan)).toEqual(bare)
    expect(validatePlan(plan).peakBytes).toBe(m.peakBytes)
  })

  it('a plan fits only within 95% of the heap (the model runs up to 4.7% under the measured high-water mark)', () => {
    const at = (heapBytes: number) => planMemory({ logN: plan.params.logN, primeCount: plan.params.primes.length, rotationKeys: plan.keys.rotations.length, relin: true, instructions: plan.instructions, inputs: plan.inputs, outputs: plan.outputs, plaintexts: 'resident', heapBytes })
    const peak = at(2 ** 40).peakBytes
    expect(at(Math.ceil(peak / 0.94)).fits).toBe(true)
    // within the heap but inside the headroom: refused (a plan like this died in a bad_alloc)
    expect(at(Math.ceil(peak / 0.97)).fits).toBe(false)
    expect(() => validatePlan(plan, g, Math.ceil(peak / 0.97))).toThrow(/a plan may use of node-seal's/)
  })

  it('the validator refuses a plan over a tiny heap in one line naming the layer at the peak', () => {
    const heap = 64 * 2 ** 20
    // all of the plan's keys, plaintexts on demand: the validator alone
    const m = planMemory({ logN: plan.params.logN, primeCount: plan.params.primes.length, rotationKeys: plan.keys.rotations.length, relin: true, instructions: plan.instructions, inputs: plan.inputs, outputs: plan.outputs, plaintexts: 'on demand', heapBytes: heap })
    expect(m.fits).toBe(false)
    const line = `node '/fc/Gemm' (Gemm): the CKKS plan needs ${gib(m.peakBytes)} GiB at this layer, more than the 0.059 GiB a plan may use of node-seal's 0.063 GiB heap (keys ${gib(m.keyBytes)} GiB, ciphertexts ${gib(m.ciphertextBytes)} GiB, plaintexts ${gib(m.plaintextBytes)} GiB, context and working memory ${gib(m.contextBytes)} GiB)`
    expect(() => validatePlan({ ...plan, plaintexts: 'on demand' }, g, heap)).toThrow(line)
    // compiling for that heap: on demand and power-of-two keys only, still too much; the refusal states the least the plan needs
    let msg = ''
    try {
      compileCkks(g, { heapBytes: heap })
    } catch (e) {
      msg = (e as Error).message
    }
    const r = /^node '\/fc\/Gemm' \(Gemm\): the CKKS plan needs ([0-9.]+) GiB at this layer, more than the 0\.059 GiB a plan may use of node-seal's 0\.063 GiB heap \(keys ([0-9.]+) GiB, ciphertexts ([0-9.]+) GiB, plaintexts ([0-9.]+) GiB, context and working memory ([0-9.]+) GiB\)$/.exec(msg)
    expect(r).not.toBeNull()
    const [x, ...parts] = r!.slice(1).map(Number)
    expect(Math.abs(x - parts.reduce((a, b) => a + b, 0))).toBeLessThan(0.01)
    expect(parts[0]).toBeLessThan(m.keyBytes / 2 ** 30)
  })

  it('encodes plaintexts on demand when resident ones would not fit, with the same results', () => {
    const resident = plan.stats.memory
    const p = compileCkks(g, { heapBytes: resident.peakBytes - 1 })
    expect(p.plaintexts).toBe('on demand')
    expect(p.stats.memory.fits).toBe(true)
    expect(p.stats.memory.plaintextBytes).toBeLessThan(resident.plaintextBytes)
    expect(p.instructions).toEqual(plan.instructions)
    expect(p.stats.estimatedMs.encode).toBeGreaterThan(0)
    expect(p.stats.notes.join('\n')).toMatch(/plaintexts encoded on demand/)
    const x = testImages('digits', 2)
    expect(maxAbsDiff(simulatePlan(p, x)[0].data, reference(g, x).data)).toBeLessThan(1e-9)
  })

  it('prices every chain length between refreshes and keeps the cheapest plan that fits the heap', () => {
    // refreshes at the latest point, where the cheapest chain is not the one with the smallest peak
    // without the masked refreshes' reserve, which leaves one chain length at N = 8192 (refresh.ts)
    const opts = { security: 192 as const, logN: 13, plaintexts: 'on demand' as const, keyBudgetBytes: Infinity, refreshPlacement: 'latest' as const, refreshMask: false }
    const p = compileCkks(g, opts)
    expect(p.stats.bootstraps).toBeGreaterThan(0)
    const choices = p.stats.choices!
    expect(choices.length).toBeGreaterThan(1)
    const fitting = choices.filter((c) => c.fits)
    const chosen = choices.find((c) => c.levels === p.params.primes.length - 2)!
    expect(chosen.estimatedMs).toBe(Math.min(...fitting.map((c) => c.estimatedMs)))
    expect(Math.round(p.stats.estimatedTotalMs)).toBe(chosen.estimatedMs)
    expect(p.stats.notes.join('\n')).toMatch(/parameters by estimated latency \(\d+ ring and chain pairs priced\): N = 8192 with \d+ levels: [\d.]+ s, \d+ refreshes, .*\[chosen\]/)
    // a heap just below the chosen plan's peak: another chain length, still the cheapest that fits
    const q = compileCkks(g, { ...opts, heapBytes: p.stats.memory.peakBytes - 1 })
    expect(q.stats.memory.fits).toBe(true)
    expect(q.params.primes).not.toEqual(p.params.primes)
    const qc = q.stats.choices!
    expect(Math.round(q.stats.estimatedTotalMs)).toBe(Math.min(...qc.filter((c) => c.fits).map((c) => c.estimatedMs)))
    const x = testImages('digits', 2)
    for (const plan of [p, q]) expect(maxAbsDiff(simulatePlan(plan, x)[0].data, reference(g, x).data)).toBeLessThan(1e-9)
  })

  it('parses heap sizes', () => {
    expect(parseBytes('64MiB')).toBe(64 * 2 ** 20)
    expect(parseBytes('1.5 GiB')).toBe(1.5 * 2 ** 30)
    expect(parseBytes('4096')).toBe(4096)
    expect(() => parseBytes('lots')).toThrow(/not a size/)
  })
})
