/**
 * Masked client-aided refreshes (backends/ckks/refresh.ts, issue 12 item 3), with node-seal. What
 * the key holder decrypts at every refresh (real and imaginary parts of every slot) is checked
 * against the plan's noiseless float64 run (the oracle of the refreshed values): masked, it is
 * uncorrelated with the activations, spread uniformly over [-A, A] and distributed alike for two
 * different images; the broken variant (`refreshMask: 'off'`, the server's NO_REFRESH_GUARD) fails
 * the same check, since it decrypts the activations themselves (to 1e-2: 1.3e-3 to 2.9e-3 measured). End to end the masked plan
 * keeps top-1 and the logit tolerance of the other encrypted tests. The monomial X^(N/2) the
 * imaginary mask rides on is checked in closed form (i times a real vector).
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { compileCkks, runPlan, validatePlan, type CkksPlan } from '../../../backends/ckks/index.js'
import { encodeAt } from '../../../backends/ckks/evaluate.js'
import type { Instr } from '../../../backends/ckks/plan.js'
import { calibrateRefreshBounds, imaginaryUnit, simulateRefreshes } from '../../../backends/ckks/refresh.js'
import { loadSeal, makeContext } from '../../../backends/ckks/seal.js'
import { parseNpy } from '../../../compiler/npy.js'
import { argmax } from '../../../passes/ola.js'
import { compiledGraph, FIXTURES, maxAbsDiff, reference, testImages } from './helpers.js'

const calib = parseNpy(readFileSync(join(FIXTURES, 'digits', 'calib_x.npy')))

function plan(name: string, mask = true): CkksPlan {
  const p = compileCkks(compiledGraph(name), { security: 192, logN: 13, refreshMask: mask })
  if (mask) calibrateRefreshBounds(p, calib)
  return p
}

interface Seen {
  instr: Instr
  re: Float64Array
  im: Float64Array
}

/** Run one image per inference, keeping what the key holder decrypts at every refresh. */
async function run(p: CkksPlan, x: ReturnType<typeof testImages>, refreshMask: 'on' | 'off') {
  const seen: Seen[] = []
  const res = await runPlan(p, x, { refresh: 'client', refreshMask, onRefreshSlots: (instr, re, im) => seen.push({ instr, re, im }) })
  return { res, seen }
}

function corr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length
  let ma = 0
  let mb = 0
  for (let i = 0; i < n; i++) {
    ma += a[i] / n
    mb += b[i] / n
  }
  let sab = 0
  let saa = 0
  let sbb = 0
  for (let i = 0; i < n; i++) {
    sab += (a[i] - ma) * (b[i] - mb)
    saa += (a[i] - ma) ** 2
    sbb += (b[i] - mb) ** 2
  }
  return saa > 0 && sbb > 0 ? sab / Math.sqrt(saa * sbb) : 1
}

/** Kolmogorov-Smirnov statistic of `v` against the uniform distribution on [-A, A]. */
function ksUniform(v: ArrayLike<number>, A: number): number {
  const s = Float64Array.from(v).sort()
  let d = 0
  for (let i = 0; i < s.length; i++) {
    const f = Math.min(1, Math.max(0, (s[i] + A) / (2 * A)))
    d = Math.max(d, Math.abs(f - i / s.length), Math.abs(f - (i + 1) / s.length))
  }
  return d
}

/** Two-sample Kolmogorov-Smirnov statistic. */
function ks2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const x = Float64Array.from(a).sort()
  const y = Float64Array.from(b).sort()
  let i = 0
  let j = 0
  let d = 0
  while (i < x.length && j < y.length) {
    if (x[i] <= y[j]) i++
    else j++
    d = Math.max(d, Math.abs(i / x.length - j / y.length))
  }
  return d
}

/**
 * The check a masked refresh must pass, per refresh k and image: the decrypted real parts have
 * correlation below 0.05 with the activation (4096 slots: 3 standard errors of a zero correlation
 * is 0.047), the real and imaginary parts are uniform on [-A_k, A_k] (KS below 1.95 / sqrt(S), the
 * 0.1% critical value), and the two images' real parts are alike (two-sample KS below 1.95 sqrt(2 / S)).
 * Returns the first violation, or undefined.
 */
function independenceViolation(p: CkksPlan, seen: Seen[][], truth: Float64Array[][]): string | undefined {
  const S = p.params.slots
  const refreshes = p.instructions.filter((i) => i.op === 'refresh')
  const A = refreshes.map((_, k) => 2 ** p.refreshMask!.sigma * p.refreshMask!.bounds![k])
  const crit = 1.95 / Math.sqrt(S)
  for (let k = 0; k < refreshes.length; k++) {
    for (let b = 0; b < seen.length; b++) {
      const { re, im } = seen[b][k]
      const c = corr(re, truth[b][k])
      if (!(Math.abs(c) < 0.05)) return `refresh ${k}, image ${b}: correlation ${c.toFixed(3)} with the activation`
      const dr = ksUniform(re, A[k])
      if (!(dr < crit)) return `refresh ${k}, image ${b}: real parts not uniform on [-A, A] (KS ${dr.toFixed(3)})`
      const di = ksUniform(im, A[k])
      if (!(di < crit)) return `refresh ${k}, image ${b}: imaginary parts not uniform on [-A, A] (KS ${di.toFixed(3)})`
    }
    const d2 = ks2(seen[0][k].re, seen[1][k].re)
    if (!(d2 < crit * Math.SQRT2)) return `refresh ${k}: the two images' decrypted values differ in distribution (KS ${d2.toFixed(3)})`
  }
  return undefined
}

describe('ckks masked refreshes', () => {
  it('the key holder decrypts values independent of the activations; unmasked it decrypts the activations', async () => {
    const p = plan('aespa_cnn')
    expect(p.stats.bootstraps).toBeGreaterThan(0)
    expect(p.refreshMask).toMatchObject({ sigma: 40, level: 1 })
    const x = testImages('digits', 2)
    // the oracle: every refreshed value of the plan's noiseless run, per image
    const truth: Float64Array[][] = [[], []]
    simulateRefreshes(p, x, (k, b, slots) => (truth[b][k] = Float64Array.from(slots)))
    // the bounds hold on these images (calibrated on others)
    p.refreshMask!.bounds!.forEach((B, k) => truth.forEach((t) => expect(Math.max(...Array.from(t[k], Math.abs))).toBeLessThanOrEqual(B)))
    const perImage = (seen: Seen[]) => [seen.slice(0, p.stats.bootstraps), seen.slice(p.stats.bootstraps)]

    const masked = await run(p, x, 'on')
    const ms = perImage(masked.seen)
    expect(independenceViolation(p, ms, truth)).toBeUndefined()

    const open = await run(p, x, 'off')
    const os = perImage(open.seen)
    // the broken variant reveals the activations: they decrypt to the oracle's values within 1e-2
    // (measured 1.3e-3 to 2.9e-3: the plan's own evaluation error at scale 2^26, so not 1e-3)
    for (let b = 0; b < 2; b++) for (let k = 0; k < p.stats.bootstraps; k++) expect(maxAbsDiff(os[b][k].re, truth[b][k])).toBeLessThan(1e-2)
    expect(independenceViolation(p, os, truth)).toMatch(/correlation 1\.000 with the activation/)
    // and its imaginary parts are the evaluation noise alone: small, not uniform on [-A, A]
    for (const s of os.flat()) expect(Math.max(...Array.from(s.im, Math.abs))).toBeLessThan(1e-2)
  }, 120_000)

  it('masked end to end: top-1 equal to the compiled model, logit error within 0.05', async () => {
    const g = compiledGraph('aespa_cnn')
    const p = plan('aespa_cnn')
    const x = testImages('digits', 3)
    const ref = reference(g, x)
    const { res } = await run(p, x, 'on')
    expect(res.refresh.count).toBe(3 * p.stats.bootstraps)
    // measured: 2.0e-2 on 4 images (aespa_cnn; unmasked 1.9e-3): the float64 FFT of values near 2^40 B
    expect(maxAbsDiff(res.outputs[0].data, ref.data)).toBeLessThanOrEqual(0.05)
    expect(Array.from(argmax(res.outputs[0]))).toEqual(Array.from(argmax(ref)))
  }, 120_000)

  it('the plan reserves the modulus: refreshes read one level up, q0 raised; a plan without the reserve is refused unless unmasked', async () => {
    const p = plan('cnn_square')
    const old = plan('cnn_square', false)
    expect(old.refreshMask).toBeUndefined()
    const level = new Map<number, number>()
    for (const i of p.instructions) {
      if (i.op === 'refresh') expect(level.get(i.args[0])).toBeGreaterThanOrEqual(1)
      level.set(i.dst, i.level)
    }
    // 40 + log2(512) bits above the scale, less the coefficients' spread, in q0 + q1
    expect(p.params.primes[0] + p.params.primes[1]).toBeGreaterThanOrEqual(p.refreshMask!.bits)
    expect(p.stats.notes.join('\n')).toMatch(/refreshes masked \(sigma = 40, \|x\| <= 512 at every refresh\): the client decrypts at level 1/)
    // the validator holds a plan to its reserve
    expect(() => validatePlan({ ...old, refreshMask: p.refreshMask })).toThrow(/a masked refresh reads level 0 \(\d+ bits of modulus\), the mask .* needs/)
    const x = testImages('digits', 1)
    await expect(runPlan(old, x, { refresh: 'client' })).rejects.toThrow(/no refresh reserve for masking them .* --refresh-mask off/)
    const warned: string[] = []
    const res = await runPlan(old, x, { refresh: 'client', refreshMask: 'off', warn: (m) => warned.push(m) })
    expect(warned).toEqual([expect.stringMatching(/refreshes unmasked .* sees the intermediate activations/)])
    expect(maxAbsDiff(res.outputs[0].data, reference(compiledGraph('cnn_square'), x).data)).toBeLessThanOrEqual(0.05)
  }, 120_000)

  it('X^(N/2) multiplies every slot by i: real parts vanish, twice gives -1 (closed form)', async () => {
    const p = plan('aespa_cnn', false)
    const seal = await loadSeal()
    const sc = makeContext(seal, p.params)
    const encoder = seal.CKKSEncoder(sc.context)
    const ev = seal.Evaluator(sc.context)
    const kg = seal.KeyGenerator(sc.context)
    const pk = kg.createPublicKey()
    const enc = seal.Encryptor(sc.context, pk)
    const dec = seal.Decryptor(sc.context, kg.secretKey())
    const env = { seal, sc, encoder, ev, params: p.params }
    const S = p.params.slots
    const w = Float64Array.from({ length: S }, (_, s) => Math.sin(s) * 3)
    const decode = (ct: ReturnType<typeof enc.encrypt>) => Float64Array.from(encoder.decode(dec.decrypt(ct!)!) as Float64Array)
    for (const level of [0, 1, p.params.primes.length - 2]) {
      const pt = encodeAt(sc, encoder, ev, w, 2 ** p.params.logScale, level)
      const ct = enc.encrypt(pt)!
      expect(maxAbsDiff(decode(ct), w)).toBeLessThan(1e-3)
      const once = ev.multiplyPlain(ct, imaginaryUnit(env, level))!
      // Re(i w) = 0 in every slot (a wrong root on one prime would scatter the slots instead)
      expect(maxAbsDiff(decode(once), new Float64Array(S))).toBeLessThan(1e-3)
      const twice = ev.multiplyPlain(once, imaginaryUnit(env, level))!
      expect(maxAbsDiff(decode(twice), w.map((v) => -v))).toBeLessThan(1e-3)
      for (const o of [pt, ct, once, twice]) o.delete()
    }
    for (const o of [enc, dec, pk, kg, ev, encoder]) o.delete()
  }, 60_000)
})
