/**
 * Linear-layer correlations by homomorphic encryption (issue 14, item 2), replacing the dealer's
 * W u - s for one linear primitive W (a quantized conv or dense layer, integer weights) and the
 * client's mask u in Z_2^64, as Delphi does: the client encrypts u, the server computes an encryption
 * of W u - s (s its own uniform mask) and returns it, the client decrypts its share W u - s mod 2^64.
 * Sans-IO: the caller moves the Buffers over its channel.
 *
 * Scheme: exact arithmetic mod 2^64 on an RLWE engine. SEAL's BFV takes plaintext moduli of at most
 * 60 bits and the MPC ring is Z_2^64, so node-seal's CKKS context serves as a polynomial engine only
 * (NTT-form ciphertexts, scale 1.0, plaintexts built from integer coefficients as refresh.ts builds
 * them) with a BFV-style encoding for plaintext modulus 2^64. Parameters: N = 8192, coefficient
 * moduli of [60, 60, 60, 38] bits (218 bits, SEAL's 128-bit bound for N = 8192; the 38-bit prime is
 * SEAL's special prime), so ciphertexts live at the data level Q = q0 q1 q2 (180 bits). With
 * Delta = Q / 2^64 (not an integer):
 *
 *   client   m_b = round(Delta u_b) per coefficient (exact BigInt), ct_b = Enc_sk(m_b): symmetric,
 *            seeded (the upload is c0 and a seed: about half a ciphertext)
 *   server   per output ciphertext: acc = Enc_pk(0) + sum_b ct_b * K_b + (-round(Delta s) + f)
 *            K_b: the integer kernel polynomial (NTT-form plaintext; multiplyPlain), s_i uniform in
 *            Z_2^64 for EVERY one of the N coefficients (the caller's mask where an output sits, fresh
 *            elsewhere: the unused coefficients of a product hold weight-dependent partial sums), f_i
 *            uniform on the integers of [-A, A] (flooding), Enc_pk(0) a fresh encryption of zero under
 *            the client's public key (without it the output's c1 = sum c1_b K_b reveals K)
 *   client   phase = Dec(acc) (SEAL's decryptor, NTT form; inverse NTT and CRT as refresh.ts, for the
 *            coefficients it needs only), v_i = round(2^64 phase_i / Q) mod 2^64
 *
 * Why it is exact. Delta z mod Q depends on z mod 2^64 only (Delta 2^64 = Q), so over the reals mod Q
 * m_b K_b = Delta (u_b K_b) + r_b K_b == Delta ((u_b K_b) mod 2^64) + eps_b, |r_b| <= 1/2, |eps_b| <=
 * ||K_b||_1 / 2, where u_b K_b is the negacyclic product over Z. Summing, with Z = sum_b u_b K_b and
 * round(Delta s) = Delta s + r', the phase is Delta v + eta (mod Q), v = (Z - s) mod 2^64, and
 *   eta = sum_b (eps_b + e_b K_b) - r' + f + e_pk,
 * e_b the client's encryption noise, e_pk the noise of Enc_pk(0). round(2^64 phase / Q) = v + 2^64
 * eta / Q (+ a multiple of 2^64 for the representative of the phase), so v_i is exact while |eta_i| <
 * Q / 2^65; we keep |eta| < Q / 2^66. At an output coefficient Z_i is the layer's (W u)_i exactly (the
 * packing below), so the client gets W u - s.
 *
 * Noise bounds (SEAL 4.1 as node-seal 6.0 builds it: without SEAL_USE_GAUSSIAN_NOISE, errors are the
 * centered binomial of util/rlwe.cpp sample_poly_cbd, 21 bits minus 21 bits, |e| <= 21 = B_e; the
 * clipped Gaussian's 19.2 is smaller, so 21 covers both builds; secrets and u are ternary):
 *   weight-dependent   B = (B_e + 1/2) L + 1/2,  L = the largest sum of ||K_b||_1 over the products
 *                      summed into one output ciphertext of the term: |eps + e K - r'| <= B
 *   public key         B_pk = B_e (2N + 1) + (N + 1) / 2: e u + e_1 + e_2 s at the key level, then
 *                      SEAL divides by the special prime (rounding: at most (1 + ||s||_1) / 2)
 *   flooding           f uniform on [-A, A]. The flood drowns the weight-dependent terms and the
 *                      re-randomizer's noise (which depends on its secret u'): each of the N
 *                      coefficients is within statistical distance (B + B_pk) / (2A + 1) of f alone,
 *                      so the phase is within N (B + B_pk) / A = 2^-sigma per ciphertext of Delta v + f.
 * A is public: the largest amplitude the decoding margin leaves, A = floor(Q / 2^66) - floor(Q /
 * 2^106) - 1, the same for every term (an A that grew with B, 2^sigma N B, would show the client a
 * function of ||W||_1 in the flood's spread). sigma = the largest integer with 2^sigma N (B + B_pk)
 * <= A is computed per term (`heFlooding`) and must be at least 40 + log2(output ciphertexts of the
 * term); a term whose B does not leave that much is refused (HeError naming it), and 2^66 (A + B +
 * B_pk) < Q is checked exactly.
 *
 * What is claimed: semi-honest security only. The client's input is hidden by RLWE at 128 bits
 * (SEAL's table for N = 8192, 218 bits of modulus; ternary secret). The server's weights (circuit
 * privacy) are hidden from the client by flooding and re-randomization: by the flood the phase is
 * statistically (2^-sigma per output ciphertext; a session's distances add up) Delta v + f,
 * independent of the weights and of the re-randomizer's u', e2; then c1 = sum_b c1_b K_b + (p1 u' +
 * e2), the last an RLWE sample in the secret u' (pseudorandom even to the holder of s: one sample,
 * computational under RLWE), is uniform whatever the weights. Not claimed: anything against a
 * malicious party (a client sending ill-formed ciphertexts learns more than its share; a server can
 * compute anything linear), and the timing of the server's work (it skips products whose kernels are
 * all zero, which SEAL refuses to multiply: a transparent result).
 *
 * Packing: Cheetah's coefficient encoding (Huang et al., USENIX Security 2022); no rotations, no
 * Galois keys.
 *
 * conv. The client pads the input itself (zero padding is public) and crops what no output reads:
 * the packed image is H x W with H = (oh - 1) s + (kh - 1) dh + 1 (an axis with a 1-tap kernel is
 * subsampled by its stride instead: H = oh, packed row y = padded row y s, stride 1), W likewise. An
 * input block holds C channels at coefficient c H W + y W + x; the kernel polynomial of output channel
 * g of an output ciphertext holds K[o, c, i, j] at O + g D - (c H W + i dh W + j dw), with
 * O = (C - 1) H W + (kh - 1) dh W + (kw - 1) dw and D = C H W; the stride-1 output (y, x) of channel g
 * is coefficient O + g D + y W + x, and stride s takes every s-th. The conditions: G C H W <= N.
 *   Exactness at an output (g, y, x), y <= H - 1 - (kh - 1) dh, x <= W - 1 - (kw - 1) dw. An input
 *   coefficient a = c H W + y' W + x' and a kernel coefficient b of channel g meet there iff
 *   (c - c') H W + (y' - i dh - y) W + (x' - j dw - x) = 0; |x' - j dw - x| <= W - 1 forces it to 0,
 *   then |y' - i dh - y| <= H - 1 forces c = c' and y' = y + i dh: exactly the convolution's terms.
 *   Other channels: the products of channel g span [g D, g D + O + C H W - 1]; channel g + 1's outputs
 *   start at O + (g + 1) D > g D + O + C H W - 1, and channel g - 1's end before O + (g - 1) D + U, U =
 *   H W - (kh - 1) dh W - (kw - 1) dw, with O + U = D: below g D. Wrap-around: the largest product
 *   index is (G - 1) D + O + C H W - 1 < N + O when G C H W <= N, so the negacyclic wrap lands
 *   (negated) below O, where no output sits. In particular a single output channel (G = 1) may use
 *   C H W <= N: the wrapped partial sums fill coefficients below O only. The kernel fits: O + (G - 1) D
 *   <= G C H W - 1 since (kh - 1) dh W + (kw - 1) dw <= H W - 1.
 *   Groups: a kernel is zero outside its group; an output ciphertext multiplies only the input blocks
 *   holding channels of its outputs' groups (a contiguous span). Batched inputs loop over images.
 *   (C, G) per layer: a search over C minimizing bytes up + bytes down + PRODUCT_WEIGHT_BYTES per
 *   product (G as large as fits, then balanced); refused when one packed channel exceeds N.
 * dense (Cheetah's HomFC): input chunk u_0..u_{k'-1} at coefficients 0..k'-1; the kernel holds W[i, j]
 * at jj k' + k' - 1 - i for the jj-th output j of its ciphertext, so output j is coefficient
 * jj k' + k' - 1 (a + b = jj k' + k' - 1 with |a - i| <= k' - 1 forces the intended pairs). With
 * n' k' <= N every kernel index is below N and the wrap lands below k' - 1. k is split into chunks of
 * at most N / 2 whose products are summed; (k', n') by the same search over n'; batched rows loop.
 */
import { randomBytes } from 'node:crypto'
import { PicError } from '../../ir/errors.js'
import { describePrim, type ConvGeom, type Prim } from '../../ir/linear.js'
import { sizeOf } from '../../ir/tensor.js'
import type { Ct, Pt } from '../ckks/evaluate.js'
import { bitLength, modulusAt, plaintextOf, PT_DATA, ptLayout, rnsAt, transform, uniformIntegers, type RnsEnv, type RnsLevel } from '../ckks/refresh.js'
import { loadSeal, makeContext, type SealContext, type SEALLibrary } from '../ckks/seal.js'
import { ProtocolError } from './net.js'

export class HeError extends PicError {}

/** The ring degree and the coefficient moduli's bit sizes (the last: SEAL's special prime). */
export const HE_LOG_N = 13
export const HE_N = 2 ** HE_LOG_N
export const HE_PRIME_BITS: readonly number[] = [60, 60, 60, 38]
/** The data level ciphertexts live at: q0 q1 q2. */
const LEVEL = 2
/** SEAL's bound on one error coefficient (centered binomial, 21 - 21 bits; see the header). */
export const NOISE_BOUND = 21
/** Least flooding security per term: 40 + log2(its output ciphertexts). */
export const FLOOD_SIGMA_MIN = 40

/**
 * Serialized sizes (uncompressed: zstd and zlib gain under 1% on residues of 60-bit primes, and a
 * compressed peer buffer could inflate without bound), measured with node-seal 6.0.3 and checked by
 * `create`: a seeded input ciphertext (c0 and the seed), an output ciphertext, the seeded public key.
 */
export const HE_INPUT_CT_BYTES = 196802
export const HE_OUTPUT_CT_BYTES = 393329
export const HE_PUBLIC_KEY_BYTES = 262338
/**
 * The time term of the packing search, in bytes: one product (multiplyPlain and add, 0.45 ms
 * measured at N = 8192 with 3 primes on this machine) weighs what a 1 Gbit/s link moves meanwhile.
 */
export const PRODUCT_WEIGHT_BYTES = 56_000

const N = HE_N
const NB = BigInt(N)

// ---------------------------------------------------------------------------------------------
// plans: public geometry only, computed identically by both parties

interface PlanCommon {
  /** Independent units (images of a conv, rows of a dense), each with its own ciphertexts. */
  units: number
  inSize: number
  outSize: number
  /** Input ciphertexts (blocks or chunks) and output ciphertexts per unit. */
  blocks: number
  groups: number
  /** Per output ciphertext t of a unit, the input blocks it sums: [first, last] at 2t, 2t + 1. */
  spans: number[]
}

export interface HeConvPlan extends PlanCommon {
  kind: 'conv'
  geom: ConvGeom
  /** The packed image: H x W, packed (y, x) = padded (y rowStep, x colStep). */
  H: number
  W: number
  rowStep: number
  colStep: number
  /** On the packed grid: output (y, x) is the stride-1 output (y strideH, x strideW); taps dh, dw apart. */
  strideH: number
  strideW: number
  dh: number
  dw: number
  /** Channels per input block (C), output channels per output ciphertext (G), O and D of the header. */
  cSub: number
  perCt: number
  offset: number
  spacing: number
}

export interface HeDensePlan extends PlanCommon {
  kind: 'dense'
  k: number
  n: number
  /** k': inputs per chunk; n': outputs per output ciphertext. */
  chunk: number
  perCt: number
}

export type HeTermPlan = HeConvPlan | HeDensePlan

export interface HeTermCost {
  /** Input and output ciphertexts, products (structural: the server may skip all-zero kernels). */
  inCts: number
  outCts: number
  products: number
  /** Bytes of one input (seeded) and one output ciphertext, and in all, up and down. */
  inCtBytes: number
  outCtBytes: number
  bytesUp: number
  bytesDown: number
}

const productsPerUnit = (spans: readonly number[]) => {
  let p = 0
  for (let t = 0; t < spans.length; t += 2) p += spans[t + 1] - spans[t] + 1
  return p
}

/** Ciphertexts, products and bytes of one term (the public key, HE_PUBLIC_KEY_BYTES, goes up once per session). */
export function termCost(plan: HeTermPlan): HeTermCost {
  const inCts = plan.units * plan.blocks
  const outCts = plan.units * plan.groups
  return {
    inCts, outCts, products: plan.units * productsPerUnit(plan.spans),
    inCtBytes: HE_INPUT_CT_BYTES, outCtBytes: HE_OUTPUT_CT_BYTES, bytesUp: inCts * HE_INPUT_CT_BYTES, bytesDown: outCts * HE_OUTPUT_CT_BYTES,
  }
}

const searchCost = (blocks: number, groups: number, products: number) => blocks * HE_INPUT_CT_BYTES + groups * HE_OUTPUT_CT_BYTES + products * PRODUCT_WEIGHT_BYTES

const posInt = (v: unknown, max = 1 << 26) => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= max

/** The spans of a conv's output ciphertexts: the blocks holding channels of the groups their outputs belong to. */
function convSpans(g: ConvGeom, C: number, G: number): number[] {
  const cg = g.c / g.group
  const mg = g.m / g.group
  const spans: number[] = []
  for (let o0 = 0; o0 < g.m; o0 += G) {
    const lo = Math.floor(o0 / mg)
    const hi = Math.floor((Math.min(g.m, o0 + G) - 1) / mg)
    spans.push(Math.floor((lo * cg) / C), Math.floor(((hi + 1) * cg - 1) / C))
  }
  return spans
}

/** The packed extent of one axis: [extent, client step, stride on the packed grid, tap distance]. */
function axis(out: number, k: number, s: number, d: number): [number, number, number, number] {
  if (k === 1) return [out, s, 1, 1]
  return [(out - 1) * s + (k - 1) * d + 1, 1, s, d]
}

/** The packing of a conv over `images` images (geometry only). Refused when one packed channel exceeds N. */
export function planConv(geom: ConvGeom, images: number): HeConvPlan {
  const g = geom
  const ints = [g.c, g.h, g.w, g.m, g.oh, g.ow, g.kh, g.kw, g.group, ...g.strides, ...g.dilations]
  if (!ints.every((v) => posInt(v, 1 << 16)) || !g.pads.every((v) => Number.isInteger(v) && v >= 0 && v <= 1 << 16) || g.c % g.group || g.m % g.group || !posInt(images))
    throw new HeError(`conv geometry ${JSON.stringify(g)} over ${images} images is not a convolution`)
  const dim = (x: number, k: number, s: number, d: number, p: number) => Math.floor((x + p - (k - 1) * d - 1) / s) + 1
  if (dim(g.h, g.kh, g.strides[0], g.dilations[0], g.pads[0] + g.pads[2]) !== g.oh || dim(g.w, g.kw, g.strides[1], g.dilations[1], g.pads[1] + g.pads[3]) !== g.ow)
    throw new HeError(`conv geometry ${JSON.stringify(g)}: the output size does not follow from the input, kernel, strides and pads`)
  const [H, rowStep, strideH, dh] = axis(g.oh, g.kh, g.strides[0], g.dilations[0])
  const [W, colStep, strideW, dw] = axis(g.ow, g.kw, g.strides[1], g.dilations[1])
  const HW = H * W
  if (HW > N) throw new HeError(`conv ${g.c}->${g.m} ${g.kh}x${g.kw} at ${g.h}x${g.w}: one padded channel (${H}x${W} = ${HW} coefficients) does not fit a ciphertext of ${N}`)
  let best: { cost: number; products: number; C: number; G: number; spans: number[] } | undefined
  for (let C = 1; C <= Math.min(g.c, Math.floor(N / HW)); C++) {
    const Gmax = Math.min(g.m, Math.floor(N / (C * HW)))
    const groups = Math.ceil(g.m / Gmax)
    const G = Math.ceil(g.m / groups)
    const spans = convSpans(g, C, G)
    const products = productsPerUnit(spans)
    const cost = searchCost(Math.ceil(g.c / C), groups, products)
    if (!best || cost < best.cost || (cost === best.cost && products < best.products)) best = { cost, products, C, G, spans }
  }
  const { C, G, spans } = best!
  return {
    kind: 'conv', geom: { ...g, strides: [...g.strides], pads: [...g.pads], dilations: [...g.dilations] }, units: images,
    inSize: images * g.c * g.h * g.w, outSize: images * g.m * g.oh * g.ow, blocks: Math.ceil(g.c / C), groups: spans.length / 2, spans,
    H, W, rowStep, colStep, strideH, strideW, dh, dw, cSub: C, perCt: G, offset: (C - 1) * HW + (g.kh - 1) * dh * W + (g.kw - 1) * dw, spacing: C * HW,
  }
}

/** The packing of a dense layer y[r, j] = sum_i x[r, i] W[i n + j] over `rows` rows (geometry only). */
export function planDense(k: number, n: number, rows: number): HeDensePlan {
  if (!posInt(k) || !posInt(n) || !posInt(rows)) throw new HeError(`dense ${k}x${n} over ${rows} rows is not a dense layer`)
  let best: { cost: number; products: number; chunk: number; chunks: number; perCt: number; groups: number } | undefined
  for (let np = 1; np <= Math.min(n, N); np++) {
    const kMax = Math.min(N / 2, Math.floor(N / np), k)
    const chunks = Math.ceil(k / kMax)
    const chunk = Math.ceil(k / chunks)
    const groups = Math.ceil(n / np)
    const perCt = Math.ceil(n / groups)
    const products = chunks * groups
    const cost = searchCost(chunks, groups, products)
    if (!best || cost < best.cost || (cost === best.cost && products < best.products)) best = { cost, products, chunk, chunks, perCt, groups }
  }
  const { chunk, chunks, perCt, groups } = best!
  const spans: number[] = []
  for (let t = 0; t < groups; t++) spans.push(0, chunks - 1)
  return { kind: 'dense', k, n, units: rows, inSize: rows * k, outSize: rows * n, blocks: chunks, groups, spans, chunk, perCt }
}

/** The plan of a conv or dense primitive (its geometry only: the weights are not read). */
export function planPrim(prim: Prim): HeTermPlan {
  if (prim.kind === 'conv') {
    const g = prim.geom
    const images = sizeOf(prim.in) / (g.c * g.h * g.w)
    if (!Number.isInteger(images) || sizeOf(prim.out) !== images * g.m * g.oh * g.ow) throw new HeError(`${describePrim(prim)}: the shapes do not fit the geometry`)
    return planConv(g, images)
  }
  if (prim.kind === 'dense') {
    const rows = sizeOf(prim.in) / prim.k
    if (!Number.isInteger(rows) || sizeOf(prim.out) !== rows * prim.n) throw new HeError(`${describePrim(prim)}: the shapes do not fit k and n`)
    return planDense(prim.k, prim.n, rows)
  }
  throw new HeError(`${describePrim(prim)}: only conv and dense layers have a homomorphic correlation`)
}

// ---------------------------------------------------------------------------------------------
// the layouts: which coefficient holds which element (both parties), which weight (the server)

/** Coefficient and unit-relative index of every input element of block b (padding and crop: absent). */
function inputPositions(plan: HeTermPlan, b: number): { coef: Int32Array; idx: Int32Array } {
  const coef: number[] = []
  const idx: number[] = []
  if (plan.kind === 'dense') {
    const len = Math.min(plan.chunk, plan.k - b * plan.chunk)
    for (let i = 0; i < len; i++) coef.push(i), idx.push(b * plan.chunk + i)
  } else {
    const g = plan.geom
    const HW = plan.H * plan.W
    for (let cc = 0; cc < plan.cSub && b * plan.cSub + cc < g.c; cc++) {
      const ch = b * plan.cSub + cc
      for (let y = 0; y < plan.H; y++) {
        const r = y * plan.rowStep - g.pads[0]
        if (r < 0 || r >= g.h) continue
        for (let x = 0; x < plan.W; x++) {
          const col = x * plan.colStep - g.pads[1]
          if (col >= 0 && col < g.w) coef.push(cc * HW + y * plan.W + x), idx.push((ch * g.h + r) * g.w + col)
        }
      }
    }
  }
  return { coef: Int32Array.from(coef), idx: Int32Array.from(idx) }
}

/** Coefficient and unit-relative index of every output element of output ciphertext t. */
function outputPositions(plan: HeTermPlan, t: number): { coef: Int32Array; idx: Int32Array } {
  const coef: number[] = []
  const idx: number[] = []
  if (plan.kind === 'dense') {
    for (let jj = 0; jj < plan.perCt && t * plan.perCt + jj < plan.n; jj++) coef.push(jj * plan.chunk + plan.chunk - 1), idx.push(t * plan.perCt + jj)
  } else {
    const g = plan.geom
    for (let gg = 0; gg < plan.perCt && t * plan.perCt + gg < g.m; gg++) {
      const o = t * plan.perCt + gg
      for (let y = 0; y < g.oh; y++)
        for (let x = 0; x < g.ow; x++) coef.push(plan.offset + gg * plan.spacing + y * plan.strideH * plan.W + x * plan.strideW), idx.push((o * g.oh + y) * g.ow + x)
    }
  }
  return { coef: Int32Array.from(coef), idx: Int32Array.from(idx) }
}

/** The kernel polynomial of (block b, output ciphertext t) as integers, and its l1 norm. */
function kernelOf(plan: HeTermPlan, prim: Prim & { kind: 'conv' | 'dense' }, b: number, t: number): { c: bigint[]; l1: bigint } {
  const c: bigint[] = new Array(N).fill(0n)
  let l1 = 0n
  const put = (pos: number, w: number) => {
    if (w === 0) return
    const v = BigInt(w)
    c[pos] = v
    l1 += v < 0n ? -v : v
  }
  if (plan.kind === 'dense') {
    const len = Math.min(plan.chunk, plan.k - b * plan.chunk)
    for (let jj = 0; jj < plan.perCt && t * plan.perCt + jj < plan.n; jj++) {
      const j = t * plan.perCt + jj
      for (let i = 0; i < len; i++) put(jj * plan.chunk + plan.chunk - 1 - i, prim.weight[(b * plan.chunk + i) * plan.n + j])
    }
  } else {
    const g = plan.geom
    const cg = g.c / g.group
    const mg = g.m / g.group
    const HW = plan.H * plan.W
    for (let gg = 0; gg < plan.perCt && t * plan.perCt + gg < g.m; gg++) {
      const o = t * plan.perCt + gg
      const grp = Math.floor(o / mg)
      for (let cc = 0; cc < plan.cSub && b * plan.cSub + cc < g.c; cc++) {
        const ch = b * plan.cSub + cc
        if (Math.floor(ch / cg) !== grp) continue
        const ci = ch - grp * cg
        for (let i = 0; i < g.kh; i++)
          for (let j = 0; j < g.kw; j++)
            put(plan.offset + gg * plan.spacing - (cc * HW + i * plan.dh * plan.W + j * plan.dw), prim.weight[((o * cg + ci) * g.kh + i) * g.kw + j])
      }
    }
  }
  return { c, l1 }
}

/** The primitive the plan was made for (same kind and geometry), with integer weights below 2^52. */
function checkPrim(plan: HeTermPlan, prim: Prim, where: string): asserts prim is Prim & { kind: 'conv' | 'dense' } {
  const p = planPrim(prim)
  if (JSON.stringify(p) !== JSON.stringify(plan)) throw new HeError(`${where}: the primitive does not have the plan's geometry`)
  const w = (prim as { weight: Float64Array }).weight
  for (const v of w) if (!Number.isInteger(v) || Math.abs(v) > 2 ** 52) throw new HeError(`${where}: weight ${v} is not an integer below 2^52`)
}

// ---------------------------------------------------------------------------------------------
// flooding

export interface HeFlood {
  /** The flooding amplitude (public: the same for every term). */
  A: bigint
  /** The weight-dependent noise bound per coefficient, B = (B_e + 1/2) L + 1/2 rounded up, and L. */
  B: bigint
  l1: bigint
  /** The public-key encryption's noise bound. */
  Bpk: bigint
  /** 2^sigma N (B + B_pk) <= A: statistical distance at most 2^-sigma per output ciphertext; log2 of the term's total. */
  sigma: number
  distanceLog2: number
}

/** Q = q0 q1 q2 of the primes SEAL picks (both parties). */
function modulusQ(sc: SealContext): bigint {
  return modulusAt(sc.primes, LEVEL)
}

/** The public flooding amplitude for Q: floor(Q / 2^66) - floor(Q / 2^106) - 1. */
export function floodAmplitude(Q: bigint): bigint {
  return (Q >> 66n) - (Q >> 106n) - 1n
}

/** The public-key noise bound B_pk = B_e (2N + 1) + (N + 1) / 2, rounded up. */
export function publicKeyNoise(): bigint {
  return BigInt(NOISE_BOUND) * (2n * NB + 1n) + (NB + 2n) / 2n
}

/**
 * The flooding of a term whose output ciphertexts sum kernels of l1 norm at most `l1` (largest over
 * them): refused (HeError naming `where`) when sigma falls below 40 + log2(outputCts) or the
 * decoding margin 2^66 (A + B + B_pk) < Q fails.
 */
export function floodFor(Q: bigint, l1: bigint, outputCts: number, where: string): HeFlood {
  const A = floodAmplitude(Q)
  const B = ((2n * BigInt(NOISE_BOUND) + 1n) * l1 + 2n) / 2n
  const Bpk = publicKeyNoise()
  const NBq = NB * (B + Bpk)
  let sigma = bitLength(A) - bitLength(NBq)
  if (sigma >= 0 && NBq << BigInt(sigma) > A) sigma--
  const need = FLOOD_SIGMA_MIN + Math.ceil(Math.log2(outputCts))
  if (sigma < need || (A + B + Bpk) << 66n >= Q)
    throw new HeError(`${where}: its weights are too large for a flooded homomorphic correlation (noise bound B = 2^${Math.log2(Number(B)).toFixed(1)} leaves sigma = ${sigma} bits of flooding, at least ${need} needed for ${outputCts} output ciphertexts)`)
  return { A, B, l1, Bpk, sigma, distanceLog2: Math.log2(outputCts) - sigma }
}

/** The flooding a term's weights get (no SEAL needed: Q follows from the primes SEAL picks, passed in). */
export function heFlooding(Q: bigint, plan: HeTermPlan, prim: Prim, where = describePrim(prim)): HeFlood {
  checkPrim(plan, prim, where)
  let l1 = 0n
  for (let t = 0; t < plan.groups; t++) {
    let sum = 0n
    for (let b = plan.spans[2 * t]; b <= plan.spans[2 * t + 1]; b++) sum += kernelOf(plan, prim, b, t).l1
    if (sum > l1) l1 = sum
  }
  return floodFor(Q, l1, plan.units * plan.groups, where)
}

// ---------------------------------------------------------------------------------------------
// the engine both parties share

const ONE63 = 1n << 63n

/** round(Q x / 2^64) for x in [0, 2^64). */
const lift = (Q: bigint, x: bigint) => (Q * x + ONE63) >> 64n

interface Engine {
  seal: SEALLibrary
  sc: SealContext
  env: RnsEnv & { encryptor: NonNullable<RnsEnv['encryptor']> }
  lv: RnsLevel
  Q: bigint
  parms: string
}

let shared: Promise<{ seal: SEALLibrary; sc: SealContext }> | undefined

/** node-seal and the one context of these parameters (immutable, so shared by every party in the process). */
function context(): Promise<{ seal: SEALLibrary; sc: SealContext }> {
  shared ??= loadSeal().then((seal) => ({ seal, sc: makeContext(seal, { logN: HE_LOG_N, primes: [...HE_PRIME_BITS], logScale: 0, security: 128 }) }))
  return shared
}

function engineOf(seal: SEALLibrary, sc: SealContext, encryptor: NonNullable<RnsEnv['encryptor']>): Engine {
  const env = { seal, sc, ev: seal.Evaluator(sc.context), encoder: seal.CKKSEncoder(sc.context), encryptor, params: { logN: HE_LOG_N } }
  return { seal, sc, env, lv: rnsAt(env, LEVEL), Q: modulusQ(sc), parms: parmsKey(sc.parmsIds[LEVEL]) }
}

function parmsKey(p: { values: BigUint64Array }): string {
  return Array.from(p.values).join(',')
}

function freeEngine(e: Engine): void {
  e.env.ev.delete()
  e.env.encoder.delete()
  e.env.encryptor.delete()
}

/**
 * A ciphertext from the peer, checked before and after SEAL reads it: exactly `bytes` long,
 * uncompressed, two polynomials at the data level of this context, NTT form, scale 1.
 */
function loadCiphertext(e: Engine, b: Buffer, bytes: number, what: string): Ct {
  if (b.length !== bytes) throw new ProtocolError(`malformed ${what}: ${b.length} bytes, expected ${bytes}`)
  if (b[0] !== 0x5e || b[1] !== 0xa1 || b[5] !== 0 || b.readBigUInt64LE(8) !== BigInt(bytes)) throw new ProtocolError(`malformed ${what}: not an uncompressed SEAL serialization of its size`)
  const ct = e.seal.CipherText()
  try {
    ct.loadArray(e.sc.context, b)
  } catch {
    ct.delete()
    throw new ProtocolError(`malformed ${what}: SEAL refused it (other parameters, or invalid data)`)
  }
  const p = ct.parmsId
  const ok = ct.size === 2 && ct.polyModulusDegree === N && ct.coeffModulusSize === LEVEL + 1 && ct.isNttForm && ct.scale === 1 && parmsKey(p) === e.parms
  p.delete()
  if (!ok) {
    ct.delete()
    throw new ProtocolError(`malformed ${what}: not two NTT-form polynomials at scale 1 at this session's data level`)
  }
  return ct
}

function checkSize(got: number, want: number, what: string): void {
  if (got !== want) throw new Error(`internal: a ${what} serializes to ${got} bytes, not the ${want} backends/mpc/he.ts assumes (another node-seal?)`)
}

// ---------------------------------------------------------------------------------------------
// the client

/** What the client sees of one output ciphertext: every coefficient's decoded value and its noise eta. */
export interface HeView {
  v: BigUint64Array
  noise: Float64Array
}

export class HeClient {
  private readonly decryptor: ReturnType<SEALLibrary['Decryptor']>
  private readonly pkBytes: Buffer

  private constructor(
    private readonly e: Engine,
    private readonly keys: { kg: ReturnType<SEALLibrary['KeyGenerator']>; sk: ReturnType<ReturnType<SEALLibrary['KeyGenerator']>['secretKey']>; pk: ReturnType<ReturnType<SEALLibrary['KeyGenerator']>['createPublicKey']> },
  ) {
    this.decryptor = e.seal.Decryptor(e.sc.context, keys.sk)
    const s = keys.kg.createPublicKeySerializable()
    this.pkBytes = Buffer.from(s.saveArray(e.seal.ComprModeType.none))
    s.delete()
    checkSize(this.pkBytes.length, HE_PUBLIC_KEY_BYTES, 'seeded public key')
  }

  /** Fresh keys (secret key, public key) for a session. */
  static async create(): Promise<HeClient> {
    const { seal, sc } = await context()
    const kg = seal.KeyGenerator(sc.context)
    const sk = kg.secretKey()
    const pk = kg.createPublicKey()
    return new HeClient(engineOf(seal, sc, seal.Encryptor(sc.context, pk, sk)), { kg, sk, pk })
  }

  /** The seeded public key, sent to the server once per session (it re-randomizes the outputs with it). */
  publicKey(): Buffer {
    return this.pkBytes
  }

  /** The input ciphertexts of u (sizeOf(prim.in) elements, the primitive's input layout): units x blocks, unit-major. */
  encrypt(plan: HeTermPlan, u: BigUint64Array): Buffer[] {
    if (u.length !== plan.inSize) throw new Error(`HeClient.encrypt: ${u.length} elements for a term of ${plan.inSize}`)
    const { e } = this
    const perUnit = plan.inSize / plan.units
    const pos = Array.from({ length: plan.blocks }, (_, b) => inputPositions(plan, b))
    const out: Buffer[] = []
    for (let unit = 0; unit < plan.units; unit++)
      for (const { coef, idx } of pos) {
        const c: bigint[] = new Array(N).fill(0n)
        for (let i = 0; i < coef.length; i++) c[coef[i]] = lift(e.Q, u[unit * perUnit + idx[i]])
        const pt = plaintextOf(e.env, LEVEL, c, 1)
        const s = e.env.encryptor.encryptSymmetricSerializable(pt)
        pt.delete()
        const bytes = s.saveArray(e.seal.ComprModeType.none)
        s.delete()
        checkSize(bytes.length, HE_INPUT_CT_BYTES, 'seeded input ciphertext')
        out.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length))
      }
    return out
  }

  /** W u - s mod 2^64 in the primitive's output layout (sizeOf(prim.out) elements), from the server's output ciphertexts. */
  decrypt(plan: HeTermPlan, cts: Buffer[]): BigUint64Array {
    this.checkCount(plan, cts)
    const out = new BigUint64Array(plan.outSize)
    const perUnit = plan.outSize / plan.units
    const pos = Array.from({ length: plan.groups }, (_, t) => outputPositions(plan, t))
    const { Q, lv } = this.e
    for (let k = 0; k < cts.length; k++) {
      const unit = Math.floor(k / plan.groups)
      const { coef, idx } = pos[k % plan.groups]
      const words = this.residues(cts[k])
      for (let i = 0; i < coef.length; i++) out[unit * perUnit + idx[i]] = decodeAt(lv, Q, words, coef[i]).v
    }
    return out
  }

  /** Every coefficient of each output ciphertext as the client sees it: v_i and eta_i = phase_i - Q v_i / 2^64 (tests, audits). */
  inspect(cts: Buffer[]): HeView[] {
    const { Q, lv } = this.e
    return cts.map((b) => {
      const words = this.residues(b)
      const v = new BigUint64Array(N)
      const noise = new Float64Array(N)
      for (let i = 0; i < N; i++) {
        const d = decodeAt(lv, Q, words, i)
        v[i] = d.v
        noise[i] = d.noise
      }
      return { v, noise }
    })
  }

  delete(): void {
    this.decryptor.delete()
    this.keys.pk.delete()
    this.keys.sk.delete()
    this.keys.kg.delete()
    freeEngine(this.e)
  }

  private checkCount(plan: HeTermPlan, cts: Buffer[]): void {
    if (cts.length !== plan.units * plan.groups) throw new ProtocolError(`the server sent ${cts.length} output ciphertexts for a term of ${plan.units * plan.groups}`)
  }

  /** The phase's residues in coefficient form (prime-major). */
  private residues(b: Buffer): BigUint64Array {
    const { e } = this
    const ct = loadCiphertext(e, b, HE_OUTPUT_CT_BYTES, 'output ciphertext')
    let pt: Pt | undefined
    try {
      pt = this.decryptor.decrypt(ct)!
      const bytes = pt.saveArray(e.seal.ComprModeType.none)
      ptLayout(bytes, N, LEVEL + 1)
      return transform(e.env, e.lv, new BigUint64Array(bytes.buffer.slice(bytes.byteOffset + PT_DATA, bytes.byteOffset + bytes.length)), false)
    } finally {
      pt?.delete()
      ct.delete()
    }
  }
}

/** Coefficient i of a phase (residues, prime-major) by CRT: v = round(2^64 x / Q) mod 2^64 and eta = x - Q v / 2^64 (centered). */
function decodeAt(lv: RnsLevel, Q: bigint, words: BigUint64Array, i: number): { v: bigint; noise: number } {
  let x = 0n
  for (let j = 0; j < lv.primes.length; j++) x += ((words[j * N + i] * lv.crt[j].inv) % lv.primes[j]) * lv.crt[j].Qj
  x %= Q
  const v = ((x << 65n) + Q) / (2n * Q)
  return { v: BigInt.asUintN(64, v), noise: Number((x << 64n) - Q * v) / 2 ** 64 }
}

// ---------------------------------------------------------------------------------------------
// the server

/**
 * TEST ONLY: broken variants of the server's output (never set by the CLI). `noFlood`: f = 0;
 * `noRerandomize`: no Enc_pk(0); `maskUsedOnly`: s = 0 on the coefficients where no output sits.
 */
export interface HeLeak {
  noFlood?: boolean
  noRerandomize?: boolean
  maskUsedOnly?: boolean
}

/** A term's kernel plaintexts (one per product of a unit; undefined where the kernel is all zero) and its flooding. */
export interface Prepared {
  readonly plan: HeTermPlan
  readonly flood: HeFlood
  readonly kernels: (Pt | undefined)[]
  delete(): void
}

export class HeServer {
  private constructor(
    private readonly e: Engine,
    private readonly pk: ReturnType<SEALLibrary['PublicKey']>,
    private readonly leak: HeLeak,
  ) {}

  /** The server's side of a session under the client's public key (checked: a ProtocolError when malformed). */
  static async create(publicKey: Buffer, leak: HeLeak = {}): Promise<HeServer> {
    const { seal, sc } = await context()
    if (publicKey.length !== HE_PUBLIC_KEY_BYTES || publicKey[5] !== 0) throw new ProtocolError(`malformed public key: ${publicKey.length} bytes, expected an uncompressed ${HE_PUBLIC_KEY_BYTES}`)
    const pk = seal.PublicKey()
    try {
      pk.loadArray(sc.context, publicKey)
    } catch {
      pk.delete()
      throw new ProtocolError('malformed public key: SEAL refused it (other parameters, or invalid data)')
    }
    return new HeServer(engineOf(seal, sc, seal.Encryptor(sc.context, pk)), pk, leak)
  }

  /** Q = q0 q1 q2 (for heFlooding). */
  get modulus(): bigint {
    return this.e.Q
  }

  /** The kernel plaintexts of `prim` for `plan` (once per session) and its flooding; refused (HeError naming `where`) when the weights are too large. */
  prepare(plan: HeTermPlan, prim: Prim, where = describePrim(prim)): Prepared {
    checkPrim(plan, prim, where)
    const kernels: (Pt | undefined)[] = []
    let l1 = 0n
    try {
      for (let t = 0; t < plan.groups; t++) {
        let sum = 0n
        for (let b = plan.spans[2 * t]; b <= plan.spans[2 * t + 1]; b++) {
          const k = kernelOf(plan, prim, b, t)
          sum += k.l1
          kernels.push(k.l1 === 0n ? undefined : plaintextOf(this.e.env, LEVEL, k.c, 1))
        }
        if (sum > l1) l1 = sum
      }
      const flood = floodFor(this.e.Q, l1, plan.units * plan.groups, where)
      return { plan, flood, kernels, delete: () => kernels.forEach((k) => k?.delete()) }
    } catch (err) {
      kernels.forEach((k) => k?.delete())
      throw err
    }
  }

  /**
   * The output ciphertexts (units x groups, unit-major) of W u - s for the client's input
   * ciphertexts; `s`: the server's mask in the primitive's output layout (sizeOf(prim.out)).
   */
  evaluate(prep: Prepared, cts: Buffer[], s: BigUint64Array): Buffer[] {
    const { plan } = prep
    if (s.length !== plan.outSize) throw new Error(`HeServer.evaluate: a mask of ${s.length} elements for a term of ${plan.outSize}`)
    if (cts.length !== plan.units * plan.blocks) throw new ProtocolError(`the client sent ${cts.length} input ciphertexts for a term of ${plan.units * plan.blocks}`)
    for (const b of cts) if (b.length !== HE_INPUT_CT_BYTES) throw new ProtocolError(`malformed input ciphertext: ${b.length} bytes, expected ${HE_INPUT_CT_BYTES}`)
    const pos = Array.from({ length: plan.groups }, (_, t) => outputPositions(plan, t))
    const perUnit = plan.outSize / plan.units
    const out: Buffer[] = []
    for (let unit = 0; unit < plan.units; unit++) {
      const loaded: Ct[] = []
      try {
        for (let b = 0; b < plan.blocks; b++) loaded.push(loadCiphertext(this.e, cts[unit * plan.blocks + b], HE_INPUT_CT_BYTES, 'input ciphertext'))
        let p = 0
        for (let t = 0; t < plan.groups; t++) {
          const kernels = prep.kernels.slice(p, (p += plan.spans[2 * t + 1] - plan.spans[2 * t] + 1))
          const mask = s.subarray(unit * perUnit, (unit + 1) * perUnit)
          out.push(this.combine(prep.flood, loaded.slice(plan.spans[2 * t], plan.spans[2 * t + 1] + 1), kernels, pos[t], mask))
        }
      } finally {
        loaded.forEach((c) => c.delete())
      }
    }
    return out
  }

  delete(): void {
    this.pk.delete()
    freeEngine(this.e)
  }

  /** Enc_pk(0) + sum ct_b K_b + (-round(Delta s) + f) for one output ciphertext, serialized. */
  private combine(flood: HeFlood, cts: Ct[], kernels: (Pt | undefined)[], pos: { coef: Int32Array; idx: Int32Array }, s: BigUint64Array): Buffer {
    const { ev, encryptor } = this.e.env
    let acc: Ct | undefined = this.leak.noRerandomize ? undefined : encryptor.encryptZero()!
    try {
      cts.forEach((ct, i) => {
        const K = kernels[i]
        if (!K) return
        const prod = ev.multiplyPlain(ct, K)!
        if (!acc) acc = prod
        else {
          ev.add(acc, prod, acc)
          prod.delete()
        }
      })
      if (!acc) throw new Error('internal: an output ciphertext without re-randomization and without products')
      const mask = plaintextOf(this.e.env, LEVEL, this.maskCoefficients(flood, pos, s), 1)
      ev.addPlain(acc, mask, acc)
      mask.delete()
      const bytes = acc.saveArray(this.e.seal.ComprModeType.none)
      checkSize(bytes.length, HE_OUTPUT_CT_BYTES, 'output ciphertext')
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length)
    } finally {
      acc?.delete()
    }
  }

  /** f_i - round(Delta s_i) for all N coefficients: the caller's s where an output sits, fresh uniform s_i elsewhere. */
  private maskCoefficients(flood: HeFlood, pos: { coef: Int32Array; idx: Int32Array }, s: BigUint64Array): bigint[] {
    const { Q } = this.e
    const full = this.leak.maskUsedOnly ? new BigUint64Array(N) : new BigUint64Array(randomBytes(8 * N).buffer)
    for (let i = 0; i < pos.coef.length; i++) full[pos.coef[i]] = s[pos.idx[i]]
    const c = this.leak.noFlood ? new Array<bigint>(N).fill(0n) : uniformIntegers(N, flood.A)
    for (let i = 0; i < N; i++) c[i] -= lift(Q, full[i])
    return c
  }
}
