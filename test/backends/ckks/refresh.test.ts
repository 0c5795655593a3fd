/**
 * Masked client-aided refreshes in the coefficient domain (backends/ckks/refresh.ts, issue 12 item
 * 3), with node-seal. Oracles: SEAL's own encoder and encryption (the conjugation and the fresh
 * encryption noise), exact rational arithmetic in float64 on small integers (the lift's rounding),
 * the closed form of a discrete uniform distribution (the client's view), the compiled model's
 * float64 interpreter (end to end). The lift is exact: a refreshed ciphertext decrypts to the lifted
 * coefficients up to the fresh encryption noise, masked or not. The client's view is fresh per
 * refresh and uniform on [-A_c, A_c]; the broken variants (no mask: the server's NO_REFRESH_GUARD,
 * or a mask of A_c = B_c) fail the same check.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { compileCkks, runPlan, validatePlan, type CkksPlan } from '../../../backends/ckks/index.js'
import { KeyHolder } from '../../../backends/ckks/client.js'
import { encodeAt, type Ct } from '../../../backends/ckks/evaluate.js'
import type { Instr } from '../../../backends/ckks/plan.js'
import type { PrivacyEnv } from '../../../backends/ckks/privacy.js'
import {
  calibrateRefreshBounds,
  coeffBound,
  coefficientsOf,
  liftCoefficients,
  maskedRefreshGuard,
  maskFactor,
  modulusAt,
  NO_REFRESH_GUARD,
  plaintextOf,
  refreshBitsNeeded,
  simulateRefreshes,
  uniformIntegers,
  type RefreshGuard,
} from '../../../backends/ckks/refresh.js'
import { loadSeal } from '../../../backends/ckks/seal.js'
import { parseNpy } from '../../../compiler/npy.js'
import { argmax } from '../../../passes/ola.js'
import { xorshift32 } from '../../helpers.js'
import { compiledGraph, FIXTURES, maxAbsDiff, reference, testImages } from './helpers.js'

const calib = parseNpy(readFileSync(join(FIXTURES, 'digits', 'calib_x.npy')))

function plan(name: string, mask = true): CkksPlan {
  const p = compileCkks(compiledGraph(name), { security: 192, logN: 13, refreshMask: mask })
  if (mask) calibrateRefreshBounds(p, calib)
  return p
}

/**
 * The view check a masked refresh must pass: the client's N decrypted coefficients (centered) have
 * the mean and variance of the discrete uniform on [-A, A] (0 and A (A + 1) / 3), each within 5
 * standard errors (sample mean: sqrt(A^2 / 3N); sample variance of a uniform: sqrt(4 A^4 / 45N)),
 * and none is outside [-A - B_c, A + B_c]. Returns the first violation, or undefined.
 */
function viewViolation(v: readonly bigint[], A: bigint, Bc: bigint): string | undefined {
  const N = v.length
  const a = Number(A)
  let m = 0
  let s2 = 0
  for (const x of v) {
    if (x > A + Bc || x < -A - Bc) return `coefficient ${x} outside [-A - B_c, A + B_c]`
    const u = Number(x) / a
    m += u / N
    s2 += (u * u) / N
  }
  if (!(Math.abs(m) < 5 * Math.sqrt(1 / (3 * N)))) return `mean ${m.toExponential(2)} A, not 0 within 5 standard errors`
  if (!(Math.abs(s2 - 1 / 3) < 5 * Math.sqrt(4 / (45 * N)))) return `variance ${s2.toExponential(3)} A^2, not 1/3 within 5 standard errors`
  return undefined
}

/** How many coefficients two views share (a fresh mask leaves none: each is equal with probability 1 / (2A + 1)). */
function shared(a: readonly bigint[], b: readonly bigint[]): number {
  let n = 0
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) n++
  return n
}

/** The level and scale each refresh reads (instruction order). */
function readsOf(p: CkksPlan): { level: number; scale: number }[] {
  const at = new Map<number, { level: number; scale: number }>()
  p.inputs[0].regs.forEach((r, j) => at.set(r, { level: p.inputs[0].levels[j], scale: p.inputs[0].scale }))
  const out: { level: number; scale: number }[] = []
  for (const i of p.instructions) {
    if (i.op === 'refresh') out.push(at.get(i.args[0])!)
    at.set(i.dst, { level: i.level, scale: i.scale })
  }
  return out
}

/** A key holder (no evaluation keys), the server's environment with its public key, and a ciphertext maker. */
async function setup(p: CkksPlan) {
  const seal = await loadSeal()
  const holder = new KeyHolder(seal, { ...p, keys: { rotations: [], relin: false } })
  const { pk } = holder.evaluationKeys()
  const encryptor = seal.Encryptor(holder.sc.context, pk)
  const env: PrivacyEnv = { seal, sc: holder.sc, encoder: holder.encoder, ev: holder.ev, encryptor, params: p.params }
  const encrypt = (w: Float64Array, scale: number, level: number): Ct => {
    const pt = encodeAt(holder.sc, holder.encoder, holder.ev, w, scale, level)
    const ct = encryptor.encrypt(pt)!
    pt.delete()
    return ct
  }
  const refreshes = p.instructions.filter((i) => i.op === 'refresh')
  const reads = readsOf(p)
  const dispose = () => {
    encryptor.delete()
    pk.delete()
    holder.dispose()
  }
  return { seal, holder, env, encrypt, refreshes, reads, dispose }
}

/** One refresh through a guard: what the client decrypts, and the refreshed ciphertext. */
function refreshThrough(guard: RefreshGuard, s: Awaited<ReturnType<typeof setup>>, ct: Ct, instr: Instr) {
  const round = guard.open(ct, instr, s.env)
  const view = s.holder.decryptCoefficients(round.sent)
  const fresh = round.close(s.holder.refresh(round.sent, instr.level, instr.scale))
  if (round.sent !== ct) round.sent.delete()
  return { view, fresh }
}

describe('ckks exact coefficient-domain refresh', () => {
  it('the lift: SEAL round trip of coefficients, the real-part projection, and exact rational rounding', async () => {
    const p = plan('cnn_square', false)
    const s = await setup(p)
    const N = 2 ** p.params.logN
    const rnd = xorshift32(7)
    const small = () => BigInt(Math.floor((rnd() / 2 ** 32 - 0.5) * 2 ** 21))
    const level = p.params.primes.length - 2
    // coefficients -> SEAL's NTT plaintext -> coefficients, exactly, at the top (near Q / 2 too)
    const Q = modulusAt(p.params.primeValues, level)
    const v = Array.from({ length: N }, (_, i) => (i < 4 ? [Q / 2n, -(Q / 2n) + 1n, 0n, -1n][i] : small() << 40n))
    const pt = plaintextOf(s.env, level, v, 2 ** 26)
    expect(coefficientsOf(s.env, level, pt)).toEqual(v)
    pt.delete()
    // conjugation is X -> X^-1: v_0 = 0, v_k = v_(N-k) has purely imaginary slots, so SEAL decodes real parts 0
    const sym = Array.from({ length: N }, () => 0n)
    for (let k = 1; k <= N / 2; k++) sym[k] = sym[N - k] = small() << 10n
    const decode = (c: bigint[]) => {
      const q = plaintextOf(s.env, level, c, 2 ** 26)
      const d = Float64Array.from(s.holder.encoder.decode(q) as Float64Array)
      q.delete()
      return d
    }
    expect(Math.max(...Array.from(decode(sym), Math.abs))).toBeLessThan(1e-9)
    // and the projection keeps the real parts: decode(Re v) = decode(v) (v has complex slots)
    const w = Array.from({ length: N }, () => small() << 10n)
    expect(maxAbsDiff(decode(liftCoefficients(w, 2 ** 26, 2 ** 26)), decode(w))).toBeLessThan(1e-6)
    expect(Math.max(...Array.from(decode(liftCoefficients(sym, 2 ** 26, 2 ** 26)), Math.abs))).toBeLessThan(1e-9)
    // rounding: round(Re(v)_k r) for non-dyadic scales, against float64 on small integers (|x| < 2^21, far from ties)
    const si = 67108864 * (1 - 2 ** -20) + 0.375
    const so = 67100000.3
    const u = Array.from({ length: N }, small)
    const lifted = liftCoefficients(u, si, so)
    let worst = 0
    for (let k = 0; k < N; k++) {
      const x = ((k === 0 ? 2 * Number(u[0]) : Number(u[k]) - Number(u[N - k])) / 2) * (so / si)
      worst = Math.max(worst, Math.abs(Number(lifted[k]) - x))
    }
    expect(worst).toBeLessThanOrEqual(0.5 + 1e-6)
    // the mask sampler: each of the 5 values of [-2, 2] a fifth of the time (within 5 standard errors), none outside
    const n = 50_000
    const counts = new Map<bigint, number>()
    for (const m of uniformIntegers(n, 2n)) counts.set(m, (counts.get(m) ?? 0) + 1)
    expect([...counts.keys()].sort((a, b) => Number(a - b))).toEqual([-2n, -1n, 0n, 1n, 2n])
    for (const c of counts.values()) expect(Math.abs(c - n / 5)).toBeLessThan(5 * Math.sqrt(n * 0.2 * 0.8))
    s.dispose()
  }, 60_000)

  it('a refresh is exact, masked or not: only fresh encryption and re-randomization noise', async () => {
    const p = plan('cnn_square')
    const s = await setup(p)
    const S = p.params.slots
    const instr = s.refreshes[3]
    const { level, scale } = s.reads[3]
    expect(level).toBe(p.refreshMask!.level)
    // values as large as the refresh's calibrated bound
    const B = p.refreshMask!.bounds![3]
    const w = Float64Array.from({ length: S }, (_, i) => B * Math.sin(0.37 * i))
    const ct = s.encrypt(w, scale, level)
    const before = s.holder.decryptSlots(ct)
    const expected = liftCoefficients(s.holder.decryptCoefficients(ct), scale, instr.scale)
    // the oracle of the noise: one public-key encryption of w at the fresh level, decrypted by SEAL
    const direct = s.encrypt(w, instr.scale, instr.level)
    const freshErr = maxAbsDiff(s.holder.decryptSlots(direct), w)
    direct.delete()
    for (const guard of [NO_REFRESH_GUARD, maskedRefreshGuard(p)]) {
      const { fresh } = refreshThrough(guard, s, ct, instr)
      const got = s.holder.decryptCoefficients(fresh)
      let coeffs = 0
      for (let i = 0; i < got.length; i++) coeffs = Math.max(coeffs, Math.abs(Number(got[i] - expected[i])))
      // the refreshed coefficients are the exact lift of the input's up to SEAL's fresh symmetric noise (clipped at 6 sigma = 19)
      // and, masked, the re-randomization's mod-switched noise: measured 14 unmasked, 60 to 63 masked, where the slot-domain mask
      // of before lost about Delta A 2^-53 = 2^20 per coefficient at this bound
      expect(coeffs).toBeLessThanOrEqual(guard.masked ? 256 : 19)
      // in the slots, what the refresh adds (measured, 3 runs): unmasked 1.0e-5 to 1.2e-5 (the fresh symmetric encryption),
      // masked 1.1e-4 to 1.3e-4 (the re-randomization, one public-key encryption of zero: one at the fresh level errs by
      // 1.2e-4 to 1.5e-4), where the slot-domain mask of before added about B 2^-13 = 1.5e-2
      expect(maxAbsDiff(s.holder.decryptSlots(fresh), before)).toBeLessThan(guard.masked ? 2 * freshErr : freshErr / 4)
      fresh.delete()
    }
    ct.delete()
    s.dispose()
  }, 60_000)

  it("the client's view: fresh per refresh, uniform on [-A_c, A_c]; no mask or A_c = B_c fails", async () => {
    const p = plan('aespa_cnn')
    const s = await setup(p)
    const N = 2 ** p.params.logN
    // the closed form of the mask: 2^40 ceil(sqrt 8192) = 91 2^40 times B_c = ceil(Delta B_k)
    expect(maskFactor(13, 40)).toBe(91n << 40n)
    // a real activation: refresh 2 of the first test image, from the plan's noiseless run
    const x = testImages('digits', 1)
    let act = new Float64Array(0)
    simulateRefreshes(p, x, (k, _b, slots) => k === 2 && (act = Float64Array.from(slots)))
    const instr = s.refreshes[2]
    const { level, scale } = s.reads[2]
    const Bc = coeffBound(scale, p.refreshMask!.bounds![2])
    const A = maskFactor(13, 40) * Bc
    const ct = s.encrypt(act, scale, level)
    const views = (guard: RefreshGuard) => {
      const a = refreshThrough(guard, s, ct, instr)
      const b = refreshThrough(guard, s, ct, instr)
      a.fresh.delete()
      b.fresh.delete()
      return [a.view, b.view]
    }
    const [m1, m2] = views(maskedRefreshGuard(p))
    expect(shared(m1, m2)).toBe(0)
    expect(viewViolation(m1, A, Bc)).toBeUndefined()
    expect(viewViolation(m2, A, Bc)).toBeUndefined()
    // broken: no mask. The client sees the same coefficients twice, and they are far from uniform on [-A, A]
    const [o1, o2] = views(NO_REFRESH_GUARD)
    expect(shared(o1, o2)).toBe(N)
    expect(viewViolation(o1, A, Bc)).toMatch(/variance/)
    // broken: a mask of B_c, too small. Fresh each time, but not uniform on [-A_c, A_c]
    const [t1, t2] = views(maskedRefreshGuard(p, (n, a) => uniformIntegers(n, a / maskFactor(13, 40))))
    expect(shared(t1, t2)).toBeLessThan(N / 10)
    expect(viewViolation(t1, A, Bc)).toMatch(/variance/)
    ct.delete()
    s.dispose()
  }, 60_000)

  for (const name of ['cnn_square', 'aespa_cnn']) {
    it(`${name} masked end to end: top-1 equal to the compiled model, logit error within 0.05, every view uniform`, async () => {
      const g = compiledGraph(name)
      const p = plan(name)
      const x = testImages('digits', 4)
      const ref = reference(g, x)
      const views: { instr: Instr; v: bigint[] }[] = []
      const res = await runPlan(p, x, { refresh: 'client', onRefreshView: (instr, v) => views.push({ instr, v }) })
      expect(res.refresh.count).toBe(4 * p.stats.bootstraps)
      // measured on 4 images, 4 runs each: cnn_square 2.0e-3 to 1.0e-2, aespa_cnn 5.2e-3 to 1.1e-2, as unmasked on the same chain
      // (4.4e-3, 7.6e-3): the refreshes are exact; what is left is mostly key switching on this chain (36,26,26,26,38: q0 near the special prime)
      expect(maxAbsDiff(res.outputs[0].data, ref.data)).toBeLessThanOrEqual(0.05)
      expect(Array.from(argmax(res.outputs[0]))).toEqual(Array.from(argmax(ref)))
      const refreshes = p.instructions.filter((i) => i.op === 'refresh')
      const reads = readsOf(p)
      expect(views.length).toBe(res.refresh.count)
      for (const { instr, v } of views) {
        const k = refreshes.indexOf(instr)
        const Bc = coeffBound(reads[k].scale, p.refreshMask!.bounds![k])
        expect(viewViolation(v, maskFactor(13, 40) * Bc, Bc)).toBeUndefined()
      }
    }, 120_000)
  }

  it('the plan reserves the modulus: refreshes read level 2, q0..q2 hold the mask; a plan without the reserve is refused unless unmasked', async () => {
    const p = plan('cnn_square')
    const old = plan('cnn_square', false)
    expect(old.refreshMask).toBeUndefined()
    expect(p.refreshMask).toMatchObject({ domain: 'coefficient', sigma: 40, maskLog2: 46.51, distancePerRefreshLog2: -40, distancePerInferenceLog2: -38, bound: 512, level: 2 })
    expect(p.params.primes).toEqual([36, 26, 26, 26, 38])
    const level = new Map<number, number>()
    for (const i of p.instructions) {
      if (i.op === 'refresh') expect(level.get(i.args[0])).toBe(2)
      level.set(i.dst, i.level)
    }
    // 40 + log2 91 + 26 + 9 + 2 = 83.51 bits (closed form) within the 88 of q0 q1 q2
    expect(refreshBitsNeeded(13, 26, 40, 512)).toBeCloseTo(40 + Math.log2(91) + 26 + 9 + 2, 9)
    expect(p.refreshMask!.bits).toBeCloseTo(83.51, 2)
    expect(modulusAt(p.params.primeValues, 2) > 2n ** 83n).toBe(true)
    expect(p.stats.notes.join('\n')).toMatch(/refreshes masked in the coefficient domain \(statistical distance 2\^-40 per refresh, 2\^-38 per inference.*the client decrypts at level 2/)
    // the validator holds a plan to its reserve, and refuses the slot-domain masks of before
    expect(() => validatePlan({ ...old, refreshMask: p.refreshMask })).toThrow(/a masked refresh reads level 0 \(\d+ bits of modulus\), the mask .* needs 83\.5/)
    const before = { sigma: 40, bound: 512, level: 1, bits: 73.5 } as unknown as NonNullable<CkksPlan['refreshMask']>
    expect(() => validatePlan({ ...p, refreshMask: before })).toThrow(/slot-domain refresh masks of before.*recompile it/)
    const x = testImages('digits', 1)
    await expect(runPlan(old, x, { refresh: 'client' })).rejects.toThrow(/no refresh reserve for masking them .* --refresh-mask off/)
    const warned: string[] = []
    const res = await runPlan(old, x, { refresh: 'client', refreshMask: 'off', warn: (m) => warned.push(m) })
    expect(warned).toEqual([expect.stringMatching(/refreshes unmasked .* sees the intermediate activations/)])
    // measured: 1.3e-3 (the chain 36,26,26,60 of no reserve; the exact lift at level 0)
    expect(maxAbsDiff(res.outputs[0].data, reference(compiledGraph('cnn_square'), x).data)).toBeLessThanOrEqual(0.05)
  }, 120_000)
})
