/**
 * Masked client-aided refresh (issue 12, item 3). The server holds the plan's weights; the client
 * holds the secret key and refreshes a ciphertext by decrypting it and encrypting its values again
 * at the top of the chain. Unmasked, the client sees the intermediate activations (functions of the
 * weights). Masked, around each refresh:
 *
 *   open:  ct' = ct + encode(m_re) + X^(N/2) * Enc_pk(encode(m_im))
 *   close: fresh - encode(m_re)      (at the fresh level and scale)
 *
 * with m_re, m_im fresh per refresh, uniform in [-A, A] in every slot (CSPRNG), A = 2^sigma * B.
 * Multiplying a plaintext or ciphertext by the monomial X^(N/2) multiplies every slot by i (the
 * slots are evaluations at zeta^(5^j), 5^j = 1 mod 4), so m_im masks the imaginary parts, which
 * otherwise carry the server's evaluation noise and x-dependent cross terms; node-seal's encoder
 * takes real vectors only, so the monomial is built here as a plaintext in NTT form (values +-i_j,
 * a square root of -1 mod each prime q_j: psi_j^(N/2) for SEAL's minimal primitive 2N-th root
 * psi_j, +i_j on the first N/2 NTT points, -i_j on the others, SEAL's bit-reversed order). The
 * public-key encryption of m_im is fresh, so it also re-randomizes ct' (its second polynomial is
 * uniform under RLWE, not a function of the client's inputs and the weights).
 *
 * What the client then sees in slot s is (x_s + e_s + m_re,s) + i (e'_s + m_im,s): for any two
 * activations with |x + e| <= B and imaginary noise |e'| <= B, the statistical distance between
 * the two views is at most 2 B / (2 A) = 2^-sigma per part of a slot, so at most 2^(1 - sigma)
 * per slot and S 2^(1 - sigma) over all S slots (union bound over independent slots: 2^-25 at
 * sigma = 40 and S = 16384). The evaluation noise is inside the mask: no separate flooding.
 * The client re-encrypts the real parts it decoded; the server removes m_re at the fresh scale.
 *
 * Modulus room: the client decrypts at the level where the refresh reads, so the plaintext's
 * coefficients (standard deviation Delta A sqrt(2 / (3N)) for the two masks) must stay inside
 * q_0..q_R / 2: `refreshBitsNeeded` asks for 10 standard deviations and 2 more bits. With sigma = 40
 * that is more than a 60-bit q0 holds, so compile.ts reserves R levels below every refresh (and a
 * larger q0): `refreshReserve`.
 * Precision: SEAL decodes and encodes through a float64 FFT, so values of magnitude A lose about
 * A 2^-53 per slot (measured in backends/ckks/README.md, "Refresh privacy").
 */
import { PicError } from '../../ir/errors.js'
import { encodeAt, type Ct, type Pt } from './evaluate.js'
import { constDense, type CkksPlan, type Instr } from './plan.js'
import { groupInput, packInput, batchOf } from './simulate.js'
import type { Tensor } from '../../ir/tensor.js'
import { uniform, type PrivacyEnv } from './privacy.js'
import type { SealContext } from './seal.js'

/** Statistical security parameter of a masked refresh (per real part of a slot). */
export const REFRESH_SIGMA = 40
/**
 * Bound B on |x| (value plus evaluation noise) at a refresh when nothing better is known: what a
 * plan without the reserve already assumed, since its refreshes decrypt at level 0 with q0 = the
 * scale times 2^10 (the default headroom), so |x| < 2^9 or the refresh wraps. Calibration data
 * (`calibrateRefreshBounds`, `pic compile --calib`) gives each refresh a tighter B_k.
 */
export const DEFAULT_REFRESH_BOUND = 512

/** What a plan compiled for masked refreshes records (`plan.refreshMask`). */
export interface RefreshMask {
  sigma: number
  /** B: the bound on |x| at every refresh the mask is sized for. */
  bound: number
  /** Levels reserved below every refresh: the client decrypts at level `level`. */
  level: number
  /** Bits q_0..q_level must hold (refreshBitsNeeded). */
  bits: number
  /**
   * Per refresh (instruction order), a bound B_k <= bound measured on calibration data
   * (`calibrateRefreshBounds`): the mask at refresh k is 2^sigma B_k, finer for small values.
   */
  bounds?: number[]
  /** How `bounds` were measured. */
  calibration?: { images: number; margin: number }
}

/** Bits the modulus at the client's decryption must have: log2(Delta A) + log2(10 sqrt(2 / 3N)) + 2. */
export function refreshBitsNeeded(logN: number, logScale: number, sigma: number, bound: number): number {
  return logScale + sigma + Math.log2(bound) + Math.log2(10 * Math.sqrt(2 / (3 * 2 ** logN))) + 2
}

/**
 * The reserve for masked refreshes on a chain at scale 2^logScale: the fewest levels R below each
 * refresh, and the q0 (at least `q0`, at most 60 bits) such that q0 + R logScale >= the bits needed.
 */
export function refreshReserve(logN: number, logScale: number, q0: number, sigma = REFRESH_SIGMA, bound = DEFAULT_REFRESH_BOUND): { levels: number; q0: number; spec: RefreshMask } {
  const bits = refreshBitsNeeded(logN, logScale, sigma, bound)
  const levels = Math.max(0, Math.ceil((bits - 60) / logScale))
  const q0b = Math.min(60, Math.max(q0, Math.ceil(bits - levels * logScale)))
  return { levels, q0: q0b, spec: { sigma, bound, level: levels, bits: Math.round(bits * 100) / 100 } }
}

/** One refresh as the server runs it: `sent` goes to the client; `close` turns the fresh answer into the refreshed value. */
export interface RefreshRound {
  sent: Ct
  close(fresh: Ct): Ct
}

/**
 * What the server does around a refresh. `open` may consume nothing: `ct` stays the caller's; a
 * `sent` other than `ct` is deleted by the caller once serialized.
 */
export interface RefreshGuard {
  readonly masked: boolean
  open(ct: Ct, instr: Instr, env: PrivacyEnv): RefreshRound
}

/** The old behaviour (`--refresh-mask off`): the client sees the intermediate values it refreshes. */
export const NO_REFRESH_GUARD: RefreshGuard = { masked: false, open: (ct) => ({ sent: ct, close: (fresh) => fresh }) }

export class RefreshMaskError extends PicError {}

/** The masked refresh for a plan's `refreshMask` (its per-refresh bounds when calibrated). */
export function maskedRefreshGuard(plan: Pick<CkksPlan, 'instructions'> & { refreshMask?: RefreshMask }): RefreshGuard {
  const spec = plan.refreshMask
  if (!spec) throw new RefreshMaskError('the plan has no refresh reserve for masking its refreshes')
  const boundOf = new Map<Instr, number>()
  if (spec.bounds) plan.instructions.filter((i) => i.op === 'refresh').forEach((i, k) => boundOf.set(i, Math.min(spec.bound, spec.bounds![k] ?? spec.bound)))
  return {
    masked: true,
    open(ct, instr, env) {
      const A = 2 ** spec.sigma * (boundOf.get(instr) ?? spec.bound)
      const S = env.params.slots
      const level = ct.coeffModulusSize - 1
      const bits = env.params.primes.slice(0, level + 1).reduce((a, b) => a + b, 0)
      const need = refreshBitsNeeded(env.params.logN, Math.log2(ct.scale), spec.sigma, spec.bound)
      if (bits < need) throw new RefreshMaskError(`a masked refresh at level ${level} needs ${need.toFixed(1)} bits of modulus, the level has ${bits}: recompile the plan (it has no refresh reserve) or run with --refresh-mask off`)
      if (!env.encryptor) throw new RefreshMaskError("a masked refresh needs the client's public key")
      const draw = () => {
        const u = uniform(S)
        for (let s = 0; s < S; s++) u[s] = (2 * u[s] - 1) * A
        return u
      }
      const mRe = draw()
      const mIm = draw()
      const pre = encodeAt(env.sc, env.encoder, env.ev, mRe, ct.scale, level)
      const withRe = env.ev.addPlain(ct, pre)!
      pre.delete()
      const pim = encodeAt(env.sc, env.encoder, env.ev, mIm, ct.scale, env.sc.parmsIds.length - 1)
      const z = env.encryptor.encrypt(pim)!
      pim.delete()
      const zl = env.ev.cipherModSwitchTo(z, env.sc.parmsIds[level])!
      z.delete()
      const zi = env.ev.multiplyPlain(zl, imaginaryUnit(env, level))!
      zl.delete()
      zi.setScale(withRe.scale)
      const sent = env.ev.add(withRe, zi)!
      withRe.delete()
      zi.delete()
      return {
        sent,
        close(fresh) {
          const p = encodeAt(env.sc, env.encoder, env.ev, mRe, instr.scale, instr.level)
          const r = env.ev.subPlain(fresh, p)!
          p.delete()
          fresh.delete()
          return r
        },
      }
    },
  }
}

const UNITS = new WeakMap<SealContext, Map<number, Pt>>()

/**
 * The plaintext X^(N/2) at `level` in NTT form, scale 1 (multiplying by it multiplies every slot by
 * +i or, for every slot at once, -i: either masks the imaginary parts). Built once per context and level.
 */
export function imaginaryUnit(env: Pick<PrivacyEnv, 'seal' | 'sc' | 'encoder' | 'ev' | 'params'>, level: number): Pt {
  let byLevel = UNITS.get(env.sc)
  if (!byLevel) UNITS.set(env.sc, (byLevel = new Map()))
  let pt = byLevel.get(level)
  if (pt) return pt
  const N = 2 ** env.params.logN
  const zero = encodeAt(env.sc, env.encoder, env.ev, new Float64Array(N / 2), 1, level)
  const bytes = zero.saveArray(env.seal.ComprModeType.none)
  zero.delete()
  const off = dataOffset(bytes, N * (level + 1))
  const words = new BigUint64Array(N * (level + 1))
  for (let j = 0; j <= level; j++) {
    const q = env.sc.primes[j]
    const iota = sqrtMinusOne(q, N)
    for (let r = 0; r < N; r++) words[j * N + r] = r < N / 2 ? iota : q - iota
  }
  const out = Uint8Array.from(bytes)
  out.set(new Uint8Array(words.buffer), off)
  pt = env.seal.PlainText()
  pt.loadArray(env.sc.context, out)
  byLevel.set(level, pt)
  return pt
}

/** Where a plaintext's coefficients start in its uncompressed serialization (SEAL header, parms id, counts, the array's own header). */
function dataOffset(bytes: Uint8Array, words: number): number {
  const off = bytes.length - 8 * words
  // 16-byte header, 32-byte parms id, coeff count, scale, the array's 16-byte header and size
  if (off !== 16 + 32 + 8 + 8 + 16 + 8) throw new RefreshMaskError(`unexpected plaintext serialization (${bytes.length} bytes for ${words} words)`)
  return off
}

function powmod(a: bigint, e: bigint, m: bigint): bigint {
  let r = 1n
  a %= m
  while (e > 0n) {
    if (e & 1n) r = (r * a) % m
    a = (a * a) % m
    e >>= 1n
  }
  return r
}

/** psi^(N/2) mod q for SEAL's root psi: the smallest primitive 2N-th root of unity mod q. */
export function sqrtMinusOne(q: bigint, N: number): bigint {
  const twoN = BigInt(2 * N)
  let g = 0n
  for (let a = 2n; ; a++) {
    g = powmod(a, (q - 1n) / twoN, q)
    if (powmod(g, BigInt(N), q) === q - 1n) break
  }
  // the primitive 2N-th roots are g^k for odd k
  const g2 = (g * g) % q
  let best = g
  let cur = g
  for (let k = 1; k < N; k++) {
    cur = (cur * g2) % q
    if (cur < best) best = cur
  }
  return powmod(best, BigInt(N / 2), q)
}

/**
 * Per-refresh bounds from calibration data: the plan run noiselessly (as simulate.ts runs it) on
 * up to `maxImages` inferences (the float64 run of a whole plan: about 19 s per image for
 * fmnist32/pkn at N = 32768 on this machine), B_k = the largest |x| refresh k reads times `margin`; refused
 * above the reserve's bound (the modulus would not hold value + mask). A sample, not a proof: a value above B_k at run time
 * is still masked, with a statistical distance of |x| / (2^sigma B_k) per slot instead of 2^-sigma.
 * Returns the measured maxima.
 */
export function calibrateRefreshBounds(plan: CkksPlan, images: Tensor, margin = 1.25, maxImages = 8): number[] {
  const spec = plan.refreshMask
  if (!spec) return []
  const refreshes = plan.instructions.filter((i) => i.op === 'refresh')
  const maxima = refreshValueMaxima(plan, images, maxImages)
  maxima.forEach((m, k) => {
    if (m * margin > spec.bound) throw new RefreshMaskError(`refresh ${k + 1} of ${maxima.length} reads |x| up to ${m.toPrecision(3)} on the calibration data, more than the ${spec.bound} the plan's refresh reserve holds`)
  })
  spec.bounds = maxima.map((m) => Math.max(m * margin, 2 ** -8))
  spec.calibration = { images: Math.min(images.shape[0], maxImages * batchOf(plan)), margin }
  if (refreshes.length !== maxima.length) throw new Error('internal: refresh count')
  return maxima
}

/** The largest |x| each refresh reads (instruction order) over the plan's noiseless run on `images`. */
export function refreshValueMaxima(plan: CkksPlan, images: Tensor, maxImages = Infinity): number[] {
  const maxima: number[] = []
  simulateRefreshes(plan, images, (k, _b, a) => {
    let m = 0
    for (const v of a) m = Math.max(m, Math.abs(v))
    maxima[k] = Math.max(maxima[k] ?? 0, m)
  }, maxImages)
  return maxima
}

/** The plan run noiselessly on `images` (as simulate.ts runs it): `visit(k, inference, slots)` at every refresh k. */
export function simulateRefreshes(plan: CkksPlan, images: Tensor, visit: (k: number, inference: number, slots: Float64Array) => void, maxImages = Infinity): void {
  const S = plan.params.slots
  const K = batchOf(plan)
  const dense = new Map<string, Float64Array>()
  const pt = (id: string) => {
    let v = dense.get(id)
    if (!v) dense.set(id, (v = constDense(plan.constants[id], S)))
    return v
  }
  const groups = Math.min(maxImages, Math.ceil(images.shape[0] / K))
  for (let b = 0; b < groups; b++) {
    const regs = new Map<number, Float64Array>()
    packInput(plan, 0, groupInput(images, b, K)).forEach((v, j) => regs.set(plan.inputs[0].regs[j], v))
    let k = 0
    for (const i of plan.instructions) {
      const a = regs.get(i.args[0])!
      let r = a
      const c = i.args.length > 1 ? regs.get(i.args[1])! : a
      switch (i.op) {
        case 'rotate':
          r = new Float64Array(S)
          for (let s = 0; s < S; s++) r[s] = a[(s + i.step!) % S]
          break
        case 'mulPlain': {
          const p = pt(i.pt!)
          r = a.map((v, s) => v * p[s])
          break
        }
        case 'addPlain': {
          const p = pt(i.pt!)
          r = a.map((v, s) => v + p[s])
          break
        }
        case 'add':
          r = a.map((v, s) => v + c[s])
          break
        case 'mul':
          r = a.map((v, s) => v * c[s])
          break
        case 'square':
          r = a.map((v) => v * v)
          break
        case 'negate':
          r = a.map((v) => -v)
          break
        case 'refresh':
          visit(k++, b, a)
          break
      }
      regs.set(i.dst, r)
    }
  }
}
