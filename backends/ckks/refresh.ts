/**
 * Masked client-aided refresh in the coefficient domain, exact (issue 12, item 3). The server holds
 * the plan's weights; the client holds the secret key and refreshes a ciphertext at level l (scale
 * Delta_in) into a fresh one at level f (scale Delta_out). A ciphertext decrypts to an integer
 * polynomial p (N coefficients, centered mod Q_l = q_0 ... q_l), p = Delta_in * (values) + noise
 * through the inverse canonical embedding. With r = Delta_out / Delta_in:
 *
 *   open  (server): ct' = ct + M + Enc_pk(0)    M_i uniform on the integers of [-A_c, A_c]
 *   lift  (client): v = Dec(ct') = p + M (exactly, as integers), fresh = Enc_sk(round(Re(v) r))
 *   close (server): fresh - round(Re(M) r)      (at level f, scale Delta_out)
 *
 * Re is the real-part projection, exact on coefficients: Re(v)_0 = v_0, Re(v)_k = (v_k - v_(N-k)) / 2
 * (conjugating every slot is X -> X^-1), so the refreshed value carries the real parts only, as the
 * float64 decode/encode of before did. The result encrypts Re(p) r + delta, |delta_i| <= 1: exact up
 * to 1 / Delta_out per coefficient; no float64 FFT anywhere, masked or not (`--refresh-mask off` is
 * the same lift with M = 0). Doubles are exact rationals (mantissa 2^exp), so round(x r) is computed
 * in BigInt, rounding half up.
 *
 * Bound. Let B bound every slot (value plus evaluation noise, complex modulus) and B_c = ceil(Delta B).
 * The N evaluations of p at the primitive 2N-th roots are the slots times Delta and their
 * conjugates, and that map is sqrt(N) times a unitary (Parseval), so ||p||_2 <= Delta B <= B_c, hence
 * |p_i| <= B_c and ||p - p'||_1 <= sqrt(N) ||p - p'||_2 <= 2 sqrt(N) B_c. The N mask coefficients are
 * independent, so for any two activations the client's views p + M and p' + M are within
 * statistical distance sum_i |p_i - p'_i| / (2 A_c + 1) < sqrt(N) B_c / A_c = 2^-sigma with
 * A_c = 2^sigma ceil(sqrt N) B_c (`maskFactor`; sigma = REFRESH_SIGMA = 40 per refresh, A_c / B_c =
 * 2^46.5 at N = 8192), and R 2^-40 over an inference of R refreshes. (The per-coefficient union
 * bound |p_i| <= B_c alone needs A_c / B_c = 2^40 N: 6.5 more bits of modulus at N = 8192.) The
 * mask hides the whole polynomial: real and imaginary parts of every slot, evaluation noise
 * included (no separate flooding). M is drawn by rejection sampling on node:crypto randomBytes
 * (exactly uniform). Enc_pk(0) (fresh, mod-switched to level l) re-randomizes ct', whose second
 * polynomial would otherwise be a function of the client's inputs and the weights.
 *
 * Modulus: the client decrypts p + M, so A_c + B_c must stay below Q_l / 2: `refreshModulusHolds`
 * checks 2 (A_c + 2 B_c) < Q_l exactly (values up to 2B still do not wrap); the compiler sizes the
 * reserve with `refreshBitsNeeded` = sigma + log2(ceil sqrt N) + log2(Delta) + log2(B) + 2 bits,
 * reserving R levels below every refresh and raising q0 (compile.ts, `refreshReserve`).
 *
 * NTT without writing one: SEAL keeps plaintexts and ciphertexts in NTT form. A polynomial goes
 * through SEAL's own `cipherTransformToNtt` / `cipherTransformFromNtt` as c0 of a ciphertext edited
 * from the uncompressed serialization of a real one at the level (is_ntt_form flag and data); its c1
 * is the all-ones polynomial, not 0, since SEAL refuses to produce a transparent ciphertext (c1 = 0).
 * The layouts are checked against the bytes (`ctLayout`, `ptLayout`): an unexpected one is an
 * internal error, not a wrong refresh.
 */
import { randomBytes } from 'node:crypto'
import { PicError } from '../../ir/errors.js'
import { encodeAt, type Ct, type Pt } from './evaluate.js'
import type { CkksPlan, Instr } from './plan.js'
import { batchOf, simulateWithSlots } from './simulate.js'
import type { Tensor } from '../../ir/tensor.js'
import type { PrivacyEnv } from './privacy.js'
import type { SealContext } from './seal.js'

/** Statistical security parameter of a masked refresh: distance at most 2^-sigma over a whole refresh. */
export const REFRESH_SIGMA = 40
/**
 * Bound B on |x| (value plus evaluation noise) at a refresh when nothing better is known: what a
 * plan without the reserve already assumed, since its refreshes decrypt at level 0 with q0 = the
 * scale times 2^10 (the default headroom), so |x| < 2^9 or the refresh wraps. Calibration data
 * (`calibrateRefreshBounds`, `pic compile --calib`) gives each refresh a tighter B_k.
 */
export const DEFAULT_REFRESH_BOUND = 512
/**
 * The largest q0 the reserve raises to before it takes one more level instead: key switching's
 * noise from the q0 digit is about 2^(q0 - special prime) times the rest, so q0 stays 10 bits below
 * a 60-bit special prime (at N = 8192, 192-bit, the reserve takes two levels anyway: 36,26,26 below
 * every refresh, special prime 38; measured in backends/ckks/README.md).
 */
export const REFRESH_Q0_MAX = 50

/** What a plan compiled for masked refreshes records (`plan.refreshMask`). */
export interface RefreshMask {
  /** Where the mask lives: the integer coefficients of the plaintext (plans of before masked slots and are refused). */
  domain: 'coefficient'
  /** Security parameter per refresh: statistical distance at most 2^-sigma over one refresh. */
  sigma: number
  /** log2(A_c / B_c) = sigma + log2(ceil sqrt N): the mask's amplitude over the coefficient bound. */
  maskLog2: number
  /** log2 of the statistical distance bound over one refresh (-sigma) and over one inference (its refreshes times 2^-sigma). */
  distancePerRefreshLog2: number
  distancePerInferenceLog2?: number
  /** B: the bound on |x| at every refresh the modulus reserve is sized for. */
  bound: number
  /** Levels reserved below every refresh: the client decrypts at level `level`. */
  level: number
  /** Bits q_0..q_level must hold (refreshBitsNeeded). */
  bits: number
  /**
   * Per refresh (instruction order), a bound B_k <= bound measured on calibration data
   * (`calibrateRefreshBounds`): the mask at refresh k is A_c = maskFactor ceil(Delta B_k).
   */
  bounds?: number[]
  /** How `bounds` were measured. */
  calibration?: { images: number; margin: number }
}

/** A_c / B_c = 2^sigma ceil(sqrt N), an integer. */
export function maskFactor(logN: number, sigma: number): bigint {
  const N = 2n ** BigInt(logN)
  let s = BigInt(Math.floor(Math.sqrt(2 ** logN)))
  while (s * s > N) s--
  while (s * s < N) s++
  return s << BigInt(sigma)
}

/** log2(maskFactor), to 2 decimals (what the plan records). */
export function maskLog2(logN: number, sigma: number): number {
  return Math.round((sigma + Math.log2(Number(maskFactor(logN, 0)))) * 100) / 100
}

/** Bits the modulus at the client's decryption must have: log2(maskFactor) + log2(Delta) + log2(B) + 2. */
export function refreshBitsNeeded(logN: number, logScale: number, sigma: number, bound: number): number {
  return sigma + Math.log2(Number(maskFactor(logN, 0))) + logScale + Math.log2(bound) + 2
}

/** B_c = ceil(Delta B) (one more: the double product may round down). */
export function coeffBound(scale: number, bound: number): bigint {
  return BigInt(Math.ceil(scale * bound)) + 1n
}

/** Whether Q (the modulus the client decrypts under) holds p + M without wrapping: 2 (A_c + 2 B_c) < Q. */
export function refreshModulusHolds(Q: bigint, scale: number, logN: number, sigma: number, bound: number): boolean {
  const Bc = coeffBound(scale, bound)
  return 2n * (maskFactor(logN, sigma) * Bc + 2n * Bc) < Q
}

/** The modulus q_0 ... q_level as a BigInt. */
export function modulusAt(primes: readonly (bigint | string)[], level: number): bigint {
  return primes.slice(0, level + 1).reduce<bigint>((a, q) => a * BigInt(q), 1n)
}

/**
 * The reserve for masked refreshes on a chain at scale 2^logScale: the fewest levels R below each
 * refresh, and the q0 (at least `q0`, at most REFRESH_Q0_MAX bits) such that q0 + R logScale >= the bits needed.
 */
export function refreshReserve(logN: number, logScale: number, q0: number, sigma = REFRESH_SIGMA, bound = DEFAULT_REFRESH_BOUND): { levels: number; q0: number; spec: RefreshMask } {
  const bits = refreshBitsNeeded(logN, logScale, sigma, bound)
  const top = Math.max(q0, REFRESH_Q0_MAX)
  const levels = Math.max(0, Math.ceil((bits - top) / logScale))
  const q0b = Math.min(top, Math.max(q0, Math.ceil(bits - levels * logScale)))
  return { levels, q0: q0b, spec: { domain: 'coefficient', sigma, maskLog2: maskLog2(logN, sigma), distancePerRefreshLog2: -sigma, bound, level: levels, bits: Math.round(bits * 100) / 100 } }
}

/** The spec with its per-inference distance: `refreshes` refreshes per inference, each within 2^-sigma. */
export function withInferenceDistance(spec: RefreshMask, refreshes: number): RefreshMask {
  return { ...spec, distancePerInferenceLog2: Math.round((Math.log2(Math.max(1, refreshes)) - spec.sigma) * 100) / 100 }
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

/** The old behaviour (`--refresh-mask off`): the client sees the intermediate values it refreshes (still lifted exactly). */
export const NO_REFRESH_GUARD: RefreshGuard = { masked: false, open: (ct) => ({ sent: ct, close: (fresh) => fresh }) }

export class RefreshMaskError extends PicError {}

/**
 * The masked refresh for a plan's `refreshMask` (its per-refresh bounds when calibrated). `drawMask`
 * draws the N mask coefficients on [-A, A]; tests pass a broken one (too small a mask) to show the
 * view check fails.
 */
export function maskedRefreshGuard(plan: Pick<CkksPlan, 'instructions'> & { refreshMask?: RefreshMask }, drawMask: (n: number, A: bigint) => bigint[] = uniformIntegers): RefreshGuard {
  const spec = plan.refreshMask
  if (!spec) throw new RefreshMaskError('the plan has no refresh reserve for masking its refreshes')
  if (spec.domain !== 'coefficient') throw new RefreshMaskError('the plan was compiled for the slot-domain refresh masks of before: recompile it')
  const boundOf = new Map<Instr, number>()
  if (spec.bounds) plan.instructions.filter((i) => i.op === 'refresh').forEach((i, k) => boundOf.set(i, Math.min(spec.bound, spec.bounds![k] ?? spec.bound)))
  return {
    masked: true,
    open(ct, instr, env) {
      const N = 2 ** env.params.logN
      const level = ct.coeffModulusSize - 1
      const Q = modulusAt(env.sc.primes, level)
      if (!refreshModulusHolds(Q, ct.scale, env.params.logN, spec.sigma, spec.bound))
        throw new RefreshMaskError(`a masked refresh at level ${level} needs ${refreshBitsNeeded(env.params.logN, Math.log2(ct.scale), spec.sigma, spec.bound).toFixed(1)} bits of modulus, the level has ${bitLength(Q)}: recompile the plan (it has no refresh reserve) or run with --refresh-mask off`)
      if (!env.encryptor) throw new RefreshMaskError("a masked refresh needs the client's public key")
      const A = maskFactor(env.params.logN, spec.sigma) * coeffBound(ct.scale, boundOf.get(instr) ?? spec.bound)
      const M = drawMask(N, A)
      const scaleIn = ct.scale
      const mask = plaintextOf(env, level, M, scaleIn)
      const withMask = env.ev.addPlain(ct, mask)!
      mask.delete()
      const z = env.encryptor.encryptZero()!
      const zl = env.ev.cipherModSwitchTo(z, env.sc.parmsIds[level])!
      z.delete()
      zl.setScale(scaleIn)
      const sent = env.ev.add(withMask, zl)!
      withMask.delete()
      zl.delete()
      return {
        sent,
        close(fresh) {
          const p = plaintextOf(env, instr.level, liftCoefficients(M, scaleIn, instr.scale), instr.scale)
          const r = env.ev.subPlain(fresh, p)!
          p.delete()
          fresh.delete()
          return r
        },
      }
    },
  }
}

/** `n` integers uniform on [-A, A] (rejection sampling on node:crypto randomBytes: exactly uniform). */
export function uniformIntegers(n: number, A: bigint): bigint[] {
  const W = 2n * A + 1n
  const bits = bitLength(W)
  const words = Math.ceil(bits / 32)
  const top = bits - 32 * (words - 1)
  const topMask = 2 ** top - 1
  const out: bigint[] = new Array(n)
  let buf = randomBytes(4 * words * n * 2)
  let off = 0
  for (let i = 0; i < n; ) {
    if (off + 4 * words > buf.length) {
      buf = randomBytes(4 * words * Math.max(64, n - i) * 2)
      off = 0
    }
    let v = BigInt((buf.readUInt32LE(off) & topMask) >>> 0)
    for (let w = 1; w < words; w++) v = (v << 32n) | BigInt(buf.readUInt32LE(off + 4 * w))
    off += 4 * words
    if (v < W) out[i++] = v - A
  }
  return out
}

export function bitLength(x: bigint): number {
  return x <= 0n ? 0 : x.toString(2).length
}

// ---- exact coefficient-domain arithmetic -------------------------------------------------------

/** A double as mantissa * 2^exp, exactly. */
function exactDouble(d: number): { m: bigint; e: number } {
  if (!(d > 0) || !Number.isFinite(d)) throw new RefreshMaskError(`internal: scale ${d} is not a positive finite double`)
  const dv = new DataView(new ArrayBuffer(8))
  dv.setFloat64(0, d)
  const hi = dv.getUint32(0)
  const lo = dv.getUint32(4)
  const ex = (hi >>> 20) & 0x7ff
  let m = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo)
  let e: number
  if (ex === 0) e = -1074
  else {
    m |= 1n << 52n
    e = ex - 1075
  }
  while (m > 0n && (m & 1n) === 0n) {
    m >>= 1n
    e++
  }
  return { m, e }
}

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b
  return a % b < 0n ? q - 1n : q
}

/**
 * The client's lift (and the server's for the mask): round(Re(v) * scaleOut / scaleIn) per
 * coefficient, exactly, v centered integers; Re(v)_0 = v_0, Re(v)_k = (v_k - v_(N-k)) / 2.
 */
export function liftCoefficients(v: readonly bigint[], scaleIn: number, scaleOut: number): bigint[] {
  const N = v.length
  const a = exactDouble(scaleOut)
  const b = exactDouble(scaleIn)
  // Re(v)_k r = (2 Re(v)_k) a.m 2^a.e / (2 b.m 2^b.e)
  let num = a.m
  let den = 2n * b.m
  if (a.e >= b.e) num <<= BigInt(a.e - b.e)
  else den <<= BigInt(b.e - a.e)
  const twoDen = 2n * den
  const out: bigint[] = new Array(N)
  for (let k = 0; k < N; k++) {
    const twice = k === 0 ? 2n * v[0] : v[k] - v[N - k]
    out[k] = floorDiv(2n * twice * num + den, twoDen)
  }
  return out
}

/** The RNS data of one level: primes, CRT constants, and verified serialization templates. */
export interface RnsLevel {
  N: number
  primes: bigint[]
  Q: bigint
  /** Q / q_j and (Q / q_j)^-1 mod q_j. */
  crt: { Qj: bigint; inv: bigint }[]
  ct: Uint8Array
  pt: Uint8Array
  /** N (l + 1) words of 1, as bytes. */
  ones: Uint8Array
}

/** What the exact lift needs: the context, an evaluator (NTT), an encoder and an encryptor (serialization templates). */
export type RnsEnv = Pick<PrivacyEnv, 'seal' | 'sc' | 'ev' | 'encoder' | 'encryptor'> & { params: { logN: number } }

const RNS = new WeakMap<SealContext, Map<number, RnsLevel>>()

// uncompressed layouts: SEAL's 16-byte header, then the members, the data array with its own header and size
const CT_NTT = 16 + 32
const CT_DATA = CT_NTT + 1 + 8 * 5 + 16 + 8
const PT_SCALE = 16 + 32 + 8
export const PT_DATA = PT_SCALE + 8 + 16 + 8

function u64(b: Uint8Array, off: number): bigint {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(off, true)
}

/** Checks a ciphertext serialization is laid out as CT_* say (size 2, N, l + 1 primes, the data array last). */
function ctLayout(b: Uint8Array, N: number, k: number): void {
  const ok = b.length === CT_DATA + 16 * N * k && u64(b, 8) === BigInt(b.length) && (b[CT_NTT] === 0 || b[CT_NTT] === 1) && u64(b, CT_NTT + 1) === 2n && u64(b, CT_NTT + 9) === BigInt(N) && u64(b, CT_NTT + 17) === BigInt(k) && u64(b, CT_DATA - 8) === BigInt(2 * N * k)
  if (!ok) throw new RefreshMaskError(`internal: unexpected SEAL ciphertext serialization (${b.length} bytes for 2 x ${N} x ${k} words)`)
}

export function ptLayout(b: Uint8Array, N: number, k: number): void {
  const ok = b.length === PT_DATA + 8 * N * k && u64(b, 8) === BigInt(b.length) && u64(b, 48) === BigInt(N * k) && u64(b, PT_DATA - 8) === BigInt(N * k)
  if (!ok) throw new RefreshMaskError(`internal: unexpected SEAL plaintext serialization (${b.length} bytes for ${N} x ${k} words)`)
}

function modInverse(a: bigint, m: bigint): bigint {
  let [r0, r1, s0, s1] = [a % m, m, 1n, 0n]
  while (r1 !== 0n) {
    const q = r0 / r1
    ;[r0, r1] = [r1, r0 - q * r1]
    ;[s0, s1] = [s1, s0 - q * s1]
  }
  return ((s0 % m) + m) % m
}

export function rnsAt(env: RnsEnv, level: number): RnsLevel {
  let byLevel = RNS.get(env.sc)
  if (!byLevel) RNS.set(env.sc, (byLevel = new Map()))
  let r = byLevel.get(level)
  if (r) return r
  if (!env.encryptor) throw new RefreshMaskError('internal: an exact refresh needs an encryptor for its templates')
  const N = 2 ** env.params.logN
  const k = level + 1
  const primes = env.sc.primes.slice(0, k)
  const Q = modulusAt(primes, level)
  const z = env.encryptor.encryptZero()!
  const zl = level < env.sc.parmsIds.length - 1 ? env.ev.cipherModSwitchTo(z, env.sc.parmsIds[level])! : z
  const ct = zl.saveArray(env.seal.ComprModeType.none)
  if (zl !== z) zl.delete()
  z.delete()
  ctLayout(ct, N, k)
  const zero = encodeAt(env.sc, env.encoder, env.ev, new Float64Array(N / 2), 1, level)
  const pt = zero.saveArray(env.seal.ComprModeType.none)
  zero.delete()
  ptLayout(pt, N, k)
  r = { N, primes, Q, crt: primes.map((q) => ({ Qj: Q / q, inv: modInverse((Q / q) % q, q) })), ct, pt, ones: new Uint8Array(new BigUint64Array(N * k).fill(1n).buffer) }
  byLevel.set(level, r)
  return r
}

/** A polynomial's residues (prime-major, N words per prime) through SEAL's NTT (toNtt) or its inverse. */
export function transform(env: RnsEnv, lv: RnsLevel, words: BigUint64Array, toNtt: boolean): BigUint64Array {
  const b = Uint8Array.from(lv.ct)
  b[CT_NTT] = toNtt ? 0 : 1
  const n = words.length
  b.set(new Uint8Array(words.buffer, words.byteOffset, 8 * n), CT_DATA)
  // c1: the constant 1 in NTT form, all ones either way as a nonzero polynomial (SEAL refuses transparent results)
  b.set(lv.ones, CT_DATA + 8 * n)
  const ct = env.seal.CipherText()
  try {
    ct.loadArray(env.sc.context, b)
    if (toNtt) env.ev.cipherTransformToNtt(ct, ct)
    else env.ev.cipherTransformFromNtt(ct, ct)
    const out = ct.saveArray(env.seal.ComprModeType.none)
    ctLayout(out, lv.N, lv.primes.length)
    return new BigUint64Array(out.buffer.slice(out.byteOffset + CT_DATA, out.byteOffset + CT_DATA + 8 * n))
  } finally {
    ct.delete()
  }
}

/** An NTT-form plaintext at `level`, scale `scale`, of the integer polynomial `c` (centered coefficients). */
export function plaintextOf(env: RnsEnv, level: number, c: readonly bigint[], scale: number): Pt {
  const lv = rnsAt(env, level)
  const { N, primes } = lv
  const res = new BigUint64Array(N * primes.length)
  primes.forEach((q, j) => {
    for (let i = 0; i < N; i++) {
      const m = c[i] % q
      res[j * N + i] = m < 0n ? m + q : m
    }
  })
  const ntt = transform(env, lv, res, true)
  const b = Uint8Array.from(lv.pt)
  new DataView(b.buffer).setFloat64(PT_SCALE, scale, true)
  b.set(new Uint8Array(ntt.buffer, ntt.byteOffset, 8 * ntt.length), PT_DATA)
  const pt = env.seal.PlainText()
  pt.loadArray(env.sc.context, b)
  return pt
}

/** The centered integer coefficients of an NTT-form plaintext at `level` (inverse NTT, CRT). */
export function coefficientsOf(env: RnsEnv, level: number, pt: Pt): bigint[] {
  const lv = rnsAt(env, level)
  const { N, primes, Q, crt } = lv
  const b = pt.saveArray(env.seal.ComprModeType.none)
  ptLayout(b, N, primes.length)
  const words = transform(env, lv, new BigUint64Array(b.buffer.slice(b.byteOffset + PT_DATA, b.byteOffset + b.length)), false)
  const half = Q / 2n
  const out: bigint[] = new Array(N)
  for (let i = 0; i < N; i++) {
    let x = 0n
    for (let j = 0; j < primes.length; j++) x += ((words[j * N + i] * crt[j].inv) % primes[j]) * crt[j].Qj
    x %= Q
    out[i] = x > half ? x - Q : x
  }
  return out
}

/**
 * Per-refresh bounds from calibration data: the plan run noiselessly (as simulate.ts runs it) on
 * up to `maxImages` inferences (the float64 run of a whole plan: about 19 s per image for
 * fmnist32/pkn at N = 32768 on this machine), B_k = the largest |x| refresh k reads times `margin`;
 * refused above the reserve's bound (the modulus would not hold value + mask). A sample, not a
 * proof: a value above B_k at run time is still masked, with a statistical distance of about
 * 2^-sigma max|x| / B_k instead of 2^-sigma. Returns the measured maxima.
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

/** The plan run noiselessly on `images` (simulate.ts): `visit(k, inference, slots)` at every refresh k of every inference. */
export function simulateRefreshes(plan: CkksPlan, images: Tensor, visit: (k: number, inference: number, slots: Float64Array) => void, maxImages = Infinity): void {
  const R = plan.instructions.filter((i) => i.op === 'refresh').length
  if (R === 0) return
  const n = Math.min(images.shape[0], maxImages * batchOf(plan))
  const per = images.data.length / images.shape[0]
  const x: Tensor = n === images.shape[0] ? images : { ...images, shape: [n, ...images.shape.slice(1)], data: images.data.slice(0, n * per) }
  let seen = 0
  simulateWithSlots(plan, x, (i, slots) => {
    if (i.op !== 'refresh') return
    visit(seen % R, Math.floor(seen / R), slots)
    seen++
  })
}
