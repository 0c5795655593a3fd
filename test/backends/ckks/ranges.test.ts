/**
 * CKKS value ranges against the modulus (backends/ckks/ranges.ts): the output bound is 2x the float64
 * interpreter's max |logit| on the calibration set and its headroom is log2(q0 / 2) - log2(bound *
 * scale) from the plan's own primes; cnn_square with its last layer scaled by 2^12 gets a larger q0,
 * and without the check its encrypted run (node-seal) decrypts garbage (the wrap is real); scaled by
 * 2^30 it is refused in one line naming the layer.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseNpy } from '../../../compiler/npy.js'
import { checkPlanRanges, compileCkks, runPlan } from '../../../backends/ckks/index.js'
import { printPlan } from '../../../backends/ckks/print.js'
import type { CkksRangeReport } from '../../../backends/ckks/plan.js'
import type { Tensor } from '../../../ir/tensor.js'
import { compiledGraph, FIXTURES, reference, testImages } from './helpers.js'
import { scaled } from '../../helpers.js'

const calib = parseNpy(readFileSync(join(FIXTURES, 'digits', 'calib_x.npy')))
/** The first 60 calibration images: enough for the scaled models, a fifth of the simulation time. */
const few: Tensor = { ...calib, shape: [60, ...calib.shape.slice(1)], data: calib.data.slice(0, 60 * 64) }
const maxAbs = (t: Tensor) => t.data.reduce((m, v) => Math.max(m, Math.abs(v)), 0)

const report = (r: unknown) => {
  if (!r || r === 'unchecked') throw new Error('unchecked')
  return r as CkksRangeReport
}

describe('ckks value ranges', () => {
  it('bounds the outputs by 2x the interpreter\'s max on the calibration set, headroom from the primes (cnn_square)', () => {
    const g = compiledGraph('cnn_square')
    const plan = checkPlanRanges(g, compileCkks(g), {}, calib)
    const r = report(plan.stats.ranges)
    const want = 2 * maxAbs(reference(g, calib))
    expect(r.samples).toBe(300)
    expect(Math.abs(r.output.bound! - want) / want).toBeLessThan(1e-5)
    const q0 = Number(plan.params.primeValues[0])
    const outScale = plan.instructions.find((i) => i.dst === plan.outputs[0].reg)!.scale
    expect(r.output.headroomBits!).toBeCloseTo(Math.log2(q0 / 2) - Math.log2(want * outScale), 4)
    // every slot of every register counts: the tightest point is no looser than the outputs
    expect(r.tightest.headroomBits!).toBeLessThanOrEqual(r.output.headroomBits!)
    expect(r.tightest.headroomBits!).toBeGreaterThan(r.noiseMarginBits)
    expect(printPlan(plan)).toMatch(/\nranges: checked on 300 calibration samples, margin 2x: tightest \S+ at level \d+, .* bits below Q\/2 \(1 needed for noise\)/)
    const notes: string[] = []
    const unchecked = checkPlanRanges(g, compileCkks(g), {}, undefined, 2, (m) => notes.push(m))
    expect(unchecked.stats.ranges).toBe('unchecked')
    expect(notes).toEqual(['warning: no calibration data (--calib C.npy): value ranges are not checked against the CKKS modulus (ranges: unchecked)'])
  })

  it('widens q0 for cnn_square with its last layer scaled by 2^12; unchecked, the encrypted run decrypts garbage', async () => {
    const g = scaled(compiledGraph('cnn_square'), ['fc.weight', 'fc.bias'], 2 ** 12)
    const plain = compileCkks(g)
    const logs: string[] = []
    const wide = checkPlanRanges(g, compileCkks(g), {}, few, 2, (m) => logs.push(m))
    const r = report(wide.stats.ranges)
    // the bits the oracle says q0 must hold: log2(2 max |logit| * scale) + 1 (half the modulus) + 1 (noise)
    const outScale = plain.instructions.find((i) => i.dst === plain.outputs[0].reg)!.scale
    const need = Math.log2(2 * maxAbs(reference(g, few)) * outScale) + 2
    expect(Math.log2(Number(plain.params.primeValues[0]))).toBeLessThan(need)
    expect(r.widened!.q0Bits.from).toBe(plain.params.primes[0])
    expect(wide.params.primes[0]).toBe(r.widened!.q0Bits.to)
    expect(r.tightest.headroomBits!).toBeGreaterThanOrEqual(1)
    expect(logs.some((l) => /needs \d+ more bit\(s\) of modulus: q0 widened from \d+ to \d+ bits/.test(l))).toBe(true)
    const x = testImages('digits', 2)
    const want = reference(g, x)
    const scale = maxAbs(want)
    const err = (t: Tensor) => t.data.reduce((m, v, i) => Math.max(m, Math.abs(v - want.data[i])), 0) / scale
    expect(err((await runPlan(wide, x)).outputs[0])).toBeLessThan(1e-3)
    expect(err((await runPlan(plain, x)).outputs[0])).toBeGreaterThan(0.5)
  }, 120_000)

  it('refuses what no q0 holds, naming the layer: cnn_square\'s last layer scaled by 2^30', () => {
    const g = scaled(compiledGraph('cnn_square'), ['fc.weight', 'fc.bias'], 2 ** 30)
    expect(() => checkPlanRanges(g, compileCkks(g), {}, few)).toThrow(
      /^node '\S+' \(\S+\): \|y\| <= \S+ \(calibrated max \S+ times the margin 2\) at level 0, scale 2\^\d+\.\d, leaves -\d+\.\d bits below Q_0 \/ 2, 1 needed for noise: the values would wrap \(q0 would need \d+ bits, SEAL's primes have at most 60\)$/,
    )
    // a headroom fixed by the caller is not widened
    const g12 = scaled(compiledGraph('cnn_square'), ['fc.weight', 'fc.bias'], 2 ** 12)
    expect(() => checkPlanRanges(g12, compileCkks(g12, { headroom: 10 }), { headroom: 10 }, few)).toThrow(/the values would wrap \(q0 headroom 10 bits fixed by the caller\)$/)
  })
})
