/**
 * Upper bounds on the bytes of SEAL objects on the wire, from the parameters alone, so that every
 * receive of the CKKS service states how much it accepts before reading a payload (backends/mpc/net.ts
 * Channel). A serialized object holds `polys` polynomials of N 64-bit coefficients per prime, a SEAL
 * header and its parameters; zstd may expand incompressible data by less than 1/128, and a seeded
 * serialization is smaller. Ciphertexts at level l have l + 1 primes; keys are over all K primes
 * (the special one included): a public key is 2 polynomials, relinearization keys and each Galois
 * key K - 1 public keys.
 */
import type { CkksParams } from './params.js'

/** Slack for SEAL's headers and parameters per serialized object. */
const HEADER_SLACK = 4096

function bound(n: number, primes: number, polys: number): number {
  const raw = 8 * polys * n * primes
  return raw + Math.ceil(raw / 128) + HEADER_SLACK
}

export interface WireSizes {
  /** A ciphertext of size 2 at `level`. */
  ciphertext(level: number): number
  publicKey: number
  relinKeys: number
  /** Galois keys for `count` Galois elements. */
  galoisKeys(count: number): number
}

export function wireSizes(p: Pick<CkksParams, 'logN' | 'primes'>): WireSizes {
  const n = 2 ** p.logN
  const k = p.primes.length
  const kswitch = (k - 1) * bound(n, k, 2) + HEADER_SLACK
  return {
    ciphertext: (level) => bound(n, level + 1, 2),
    publicKey: bound(n, k, 2),
    relinKeys: kswitch,
    galoisKeys: (count) => count * kswitch + HEADER_SLACK,
  }
}
