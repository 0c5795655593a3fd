/** Parameters: SEAL's prime choice reproduced, security bounds as SEAL applies them, choices within them. */
import { describe, expect, it } from 'vitest'
import { checkSecure, chooseParams, MAX_LOGQ, maxLogQ, sealPrimes, totalBits } from '../../../backends/ckks/params.js'
import { loadSeal, makeContext } from '../../../backends/ckks/seal.js'

describe('ckks params', () => {
  it('computes the primes SEAL picks', async () => {
    const seal = await loadSeal()
    for (const [logN, bits] of [
      [13, [38, 28, 28, 28, 28, 28, 40]],
      [14, [50, 35, 35, 60]],
    ] as [number, number[]][]) {
      const sc = makeContext(seal, { logN, primes: bits, logScale: bits[1], security: 128 })
      expect(sc.primes.map(String)).toEqual(sealPrimes(logN, bits).slice(0, bits.length - 1).map(String))
      sc.context.delete()
    }
  })

  it('uses the security bounds SEAL applies', async () => {
    const seal = await loadSeal()
    const levels = { 128: seal.SecurityLevel.tc128, 192: seal.SecurityLevel.tc192, 256: seal.SecurityLevel.tc256 }
    for (const sec of [128, 192, 256] as const)
      for (const n of [1024, 2048, 4096, 8192, 16384, 32768]) expect(MAX_LOGQ[sec][n]).toBe(seal.CoeffModulus.MaxBitCount(n, levels[sec]))
    expect([maxLogQ(13, 128), maxLogQ(14, 128), maxLogQ(15, 128)]).toEqual([218, 438, 881])
  })

  it('never chooses an insecure set', () => {
    for (const security of [128, 192, 256] as const)
      for (let depth = 1; depth <= 30; depth++) {
        const p = chooseParams({ depth, security })
        if (!p) continue
        expect(totalBits(p)).toBeLessThanOrEqual(maxLogQ(p.logN, security))
        expect(p.primes.length).toBe(depth + 2)
      }
    expect(() => checkSecure({ logN: 13, primes: [60, 40, 40, 40, 60], logScale: 40, security: 128 })).toThrow(/insecure CKKS parameters: log2 Q = 240 bits exceeds 218/)
  })

  it('prefers the smallest ring and the largest scale', () => {
    const p = chooseParams({ depth: 5, security: 128 })!
    expect(p.logN).toBe(13)
    expect(p.logScale).toBe(28)
    expect(p.primes).toEqual([38, 28, 28, 28, 28, 28, 40])
    expect(chooseParams({ depth: 5, security: 256 })!.logN).toBe(14)
    expect(chooseParams({ depth: 40, security: 128 })).toBeUndefined()
  })
})
