/**
 * Output privacy on the server, applied to every output ciphertext before it leaves (issue 12,
 * item 2). Three steps, all fresh per query, none needing a secret key:
 *
 * 1. Slot mask: every non-output slot gets a fresh value drawn uniformly from [-A, A] (added as a
 *    plaintext), which replaces the weight-dependent partial sums the final rotate-and-sum leaves
 *    there. A is the largest amplitude the level's modulus leaves room for: the mask's coefficients
 *    (standard deviation A * scale / sqrt(3N) = q / 64) stay below q / 8 at 8 standard deviations, so the
 *    output slots decode as before. (A 0/1 multiplicative mask would zero those slots exactly but
 *    costs a level, and every plan ends at level 0: one more level moves cnn_square and aespa_cnn
 *    from N = 8192 to N = 16384.)
 * 2. Flooding: a fresh Gaussian of standard deviation `floodSlotStd` in every slot (output slots
 *    included), added as a plaintext, drowning the evaluation error that depends on the weights.
 * 3. Re-randomization: a fresh public-key encryption of zero is added, so the ciphertext's second
 *    polynomial (otherwise a linear function of the client's own input ciphertexts and the weights)
 *    is uniformly random under RLWE.
 *
 * The bounds these give are stated (and measured) in backends/ckks/README.md.
 */
import { randomBytes } from 'node:crypto'
import { encodeAt, type Ct, type Encoder, type Evaluator } from './evaluate.js'
import type { SealContext, SEALLibrary } from './seal.js'

export interface OutputPrivacy {
  /** 'uniform': fresh uniform values in every non-output slot (default); 'none': the broken variant, for tests. */
  mask: 'uniform' | 'none'
  /** Standard deviation of the Gaussian flooding per slot (0: none). Default 2^-10. */
  floodSlotStd: number
  /** Add a fresh encryption of zero (default true). */
  rerandomize: boolean
}

export const DEFAULT_PRIVACY: OutputPrivacy = { mask: 'uniform', floodSlotStd: 2 ** -10, rerandomize: true }

/** Uniform doubles in [0, 1) from the operating system's CSPRNG (53 bits each). */
export function uniform(n: number): Float64Array {
  const b = randomBytes(8 * n)
  const out = new Float64Array(n)
  for (let i = 0; i < n; i++) {
    const hi = b.readUInt32LE(8 * i) >>> 5
    const lo = b.readUInt32LE(8 * i + 4) >>> 6
    out[i] = (hi * 67108864 + lo) / 9007199254740992
  }
  return out
}

/** Standard normal samples (Box-Muller on CSPRNG uniforms). */
export function gaussian(n: number): Float64Array {
  const u = uniform(2 * n)
  const out = new Float64Array(n)
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(1 - u[2 * i])) * Math.cos(2 * Math.PI * u[2 * i + 1])
  return out
}

/** The mask amplitude A at a level (see the header): q / (64 scale) * sqrt(3 N). */
export function maskAmplitude(params: { logN: number; primes: number[] }, level: number, logScale: number): number {
  const qBits = params.primes.slice(0, level + 1).reduce((a, b) => a + b, 0)
  return 2 ** (qBits - logScale - 6) * Math.sqrt(3 * 2 ** params.logN)
}

export interface PrivacyEnv {
  seal: SEALLibrary
  sc: SealContext
  encoder: Encoder
  ev: Evaluator
  /** A public-key encryptor (the client's public key), for re-randomization. */
  encryptor?: ReturnType<SEALLibrary['Encryptor']>
  params: { logN: number; primes: number[]; slots: number }
}

/** The output ciphertext `ct` (at `level`) masked, flooded and re-randomized; `ct` is consumed. */
export function protectOutput(env: PrivacyEnv, ct: Ct, outputSlots: Int32Array, level: number, privacy: OutputPrivacy = DEFAULT_PRIVACY): Ct {
  const S = env.params.slots
  const v = new Float64Array(S)
  if (privacy.mask === 'uniform') {
    const A = maskAmplitude(env.params, level, Math.log2(ct.scale))
    const u = uniform(S)
    for (let s = 0; s < S; s++) v[s] = (2 * u[s] - 1) * A
    for (const s of outputSlots) v[s] = 0
  }
  if (privacy.floodSlotStd > 0) {
    const g = gaussian(S)
    for (let s = 0; s < S; s++) v[s] += privacy.floodSlotStd * g[s]
  }
  let out = ct
  if (privacy.mask !== 'none' || privacy.floodSlotStd > 0) {
    const pt = encodeAt(env.sc, env.encoder, env.ev, v, ct.scale, level)
    out = env.ev.addPlain(ct, pt)!
    pt.delete()
    ct.delete()
  }
  if (privacy.rerandomize) {
    if (!env.encryptor) throw new Error('re-randomizing an output needs the client\'s public key')
    const z = env.encryptor.encryptZero()!
    const zl = env.ev.cipherModSwitchTo(z, env.sc.parmsIds[level])!
    z.delete()
    zl.setScale(out.scale)
    const r = env.ev.add(out, zl)!
    zl.delete()
    out.delete()
    out = r
  }
  return out
}
