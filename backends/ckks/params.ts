/**
 * CKKS parameters: the HomomorphicEncryption.org security bounds as Microsoft SEAL applies them, the
 * prime chain SEAL's CoeffModulus.Create picks for a list of bit sizes (reproduced here so the compiler
 * can track exact scales without loading SEAL), and the choice of ring degree, chain and scale for a
 * given multiplicative depth.
 */

export type SecurityLevel = 128 | 192 | 256

/** Largest total log2 Q (special prime included) per ring degree, per security level (SEAL's hestdparms). */
export const MAX_LOGQ: Readonly<Record<SecurityLevel, Readonly<Record<number, number>>>> = {
  128: { 1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881 },
  192: { 1024: 19, 2048: 37, 4096: 75, 8192: 152, 16384: 305, 32768: 611 },
  256: { 1024: 14, 2048: 29, 4096: 58, 8192: 118, 16384: 237, 32768: 476 },
}

export interface CkksParams {
  logN: number
  /** Bit sizes of the primes: q0, q1..qL (data), then the special prime last. */
  primes: number[]
  /** Scale 2^logScale of fresh and normalized ciphertexts. */
  logScale: number
  security: SecurityLevel
}

export function maxLogQ(logN: number, security: SecurityLevel): number {
  const v = MAX_LOGQ[security][2 ** logN]
  if (v === undefined) throw new Error(`ring degree 2^${logN} has no ${security}-bit security bound`)
  return v
}

export function totalBits(p: CkksParams): number {
  return p.primes.reduce((a, b) => a + b, 0)
}

/** Throws unless the parameter set is within the security bound. */
export function checkSecure(p: CkksParams): void {
  const tot = totalBits(p)
  const max = maxLogQ(p.logN, p.security)
  if (tot > max)
    throw new Error(`insecure CKKS parameters: log2 Q = ${tot} bits exceeds ${max} for N = ${2 ** p.logN} at ${p.security}-bit security`)
  for (const b of p.primes) if (b < 20 || b > 60) throw new Error(`prime of ${b} bits outside SEAL's 20..60`)
}

function mulmod(a: bigint, b: bigint, m: bigint): bigint {
  return (a * b) % m
}

function powmod(a: bigint, e: bigint, m: bigint): bigint {
  let r = 1n
  a %= m
  while (e > 0n) {
    if (e & 1n) r = mulmod(r, a, m)
    a = mulmod(a, a, m)
    e >>= 1n
  }
  return r
}

/** Deterministic Miller-Rabin for n < 2^64. */
export function isPrime(n: bigint): boolean {
  if (n < 2n) return false
  for (const p of [2n, 3n, 5n, 7n, 11n, 13n, 17n, 19n, 23n, 29n, 31n, 37n]) {
    if (n === p) return true
    if (n % p === 0n) return false
  }
  let d = n - 1n
  let s = 0
  while ((d & 1n) === 0n) {
    d >>= 1n
    s++
  }
  outer: for (const a of [2n, 3n, 5n, 7n, 11n, 13n, 17n, 19n, 23n, 29n, 31n, 37n]) {
    let x = powmod(a, d, n)
    if (x === 1n || x === n - 1n) continue
    for (let r = 1; r < s; r++) {
      x = mulmod(x, x, n)
      if (x === n - 1n) continue outer
    }
    return false
  }
  return true
}

/**
 * The primes SEAL's CoeffModulus.Create(N, bitSizes) returns: for each bit size, the largest primes
 * below 2^bits congruent to 1 mod 2N, handed out smallest first in the order the sizes occur.
 */
export function sealPrimes(logN: number, bitSizes: readonly number[]): bigint[] {
  const factor = 2n ** BigInt(logN + 1)
  const table = new Map<number, bigint[]>()
  for (const b of new Set(bitSizes)) {
    const count = bitSizes.filter((x) => x === b).length
    const found: bigint[] = []
    let v = ((1n << BigInt(b)) - 1n) / factor * factor + 1n
    const lower = 1n << BigInt(b - 1)
    while (found.length < count) {
      if (v <= lower) throw new Error(`not enough ${b}-bit primes for N = 2^${logN}`)
      if (isPrime(v)) found.push(v)
      v -= factor
    }
    table.set(b, found)
  }
  return bitSizes.map((b) => table.get(b)!.pop()!)
}

export interface ParamChoice extends CkksParams {
  /** Data levels available (number of data primes - 1). */
  levels: number
}

export interface ParamRequest {
  depth: number
  security: SecurityLevel
  /** Smallest acceptable logScale (precision target). */
  minLogScale?: number
  /** Largest logScale worth using. */
  maxLogScale?: number
  /** Bits above the scale kept in q0 for the output's magnitude. */
  headroom?: number
  /** Only consider ring degrees 2^logN with logN in this list. */
  logNs?: number[]
}

/** Chain [q0, scale primes..., special] for a depth and scale; special prime as large as the bound allows (at most 60 bits). */
export function chainFor(depth: number, logScale: number, headroom: number, room: number): number[] | undefined {
  const q0 = Math.min(60, logScale + headroom)
  const base = q0 + depth * logScale
  const special = Math.min(60, room - base)
  if (special < Math.max(q0, logScale)) return undefined
  return [q0, ...new Array<number>(depth).fill(logScale), special]
}

/**
 * Smallest ring degree whose security bound admits the depth at a scale of at least minLogScale;
 * within it the largest scale up to maxLogScale. Undefined when no leveled set exists.
 */
export function chooseParams(req: ParamRequest): ParamChoice | undefined {
  const minS = req.minLogScale ?? 26
  const maxS = req.maxLogScale ?? 40
  const headroom = req.headroom ?? 10
  for (const logN of req.logNs ?? [13, 14, 15]) {
    const room = maxLogQ(logN, req.security)
    for (let s = maxS; s >= minS; s--) {
      const primes = chainFor(req.depth, s, headroom, room)
      if (!primes) continue
      const p: ParamChoice = { logN, primes, logScale: s, security: req.security, levels: req.depth }
      checkSecure(p)
      return p
    }
  }
  return undefined
}

/** Approximate bytes of one key-switching key (rotation or relinearization): 16 N k (k - 1), k primes. */
export function keySwitchKeyBytes(logN: number, primeCount: number): number {
  return 16 * 2 ** logN * primeCount * (primeCount - 1)
}
