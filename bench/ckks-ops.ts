/**
 * Measures node-seal per-op CKKS latency on this machine by ring degree and prime count and writes
 * the table the cost model reads (backends/ckks/op-costs.json). Run: npx vite-node bench/ckks-ops.ts
 * [--quick]. Prints a table to stdout.
 */
import { writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { costTablePath, type CostOp, type CostTable } from '../backends/ckks/cost.js'
import { loadSeal, makeContext } from '../backends/ckks/seal.js'
import { timeIt } from './timing.js'

const quick = process.argv.includes('--quick')

const CHAINS: { logN: number; primes: number[]; at: number[] }[] = [
  { logN: 13, primes: [38, 28, 28, 28, 28, 28, 40], at: [1, 2, 3, 4, 5, 6] },
  { logN: 14, primes: [50, 35, 35, 35, 35, 35, 35, 35, 35, 35, 60], at: [1, 2, 4, 7, 10] },
  { logN: 15, primes: [50, 35, 35, 35, 35, 35, 35, 35, 35, 35, 35, 35, 60], at: [1, 4, 8, 12] },
]


async function main(): Promise<void> {
  const seal = await loadSeal()
  const table: CostTable = { machine: `${cpus()[0]?.model ?? 'cpu'} x${cpus().length}, node ${process.version}, node-seal 6.0.3`, measured: new Date().toISOString(), ops: {} }
  const minMs = quick ? 50 : 250
  for (const ch of CHAINS) {
    const sc = makeContext(seal, { logN: ch.logN, primes: ch.primes, logScale: ch.primes[1], security: 128 })
    const kg = seal.KeyGenerator(sc.context)
    const pk = kg.createPublicKey()
    const rk = kg.createRelinKeys()
    const gk = kg.createGaloisKeys(Int32Array.from([1]))
    const enc = seal.CKKSEncoder(sc.context)
    const encr = seal.Encryptor(sc.context, pk)
    const dec = seal.Decryptor(sc.context, kg.secretKey())
    const ev = seal.Evaluator(sc.context)
    const S = enc.slotCount
    const v = Float64Array.from({ length: S }, (_, i) => Math.sin(i) * 0.5)
    const rows: Partial<Record<CostOp, { primes: number[]; ms: number[] }>> = {}
    const put = (op: CostOp, k: number, ms: number) => {
      const e = (rows[op] ??= { primes: [], ms: [] })
      e.primes.push(k)
      e.ms.push(Math.round(ms * 1000) / 1000)
    }
    for (const k of ch.at) {
      const pid = sc.parmsIds[k - 1]
      const bits = ch.primes.slice(0, k).reduce((a, b) => a + b, 0)
      const scale = 2 ** Math.min(ch.primes[1], Math.floor((bits - 4) / 2))
      const pt = enc.encode(v, scale)!
      ev.plainModSwitchTo(pt, pid, pt)
      const ct = encr.encrypt(pt)!
      const ct2 = encr.encrypt(pt)!
      // the runtime encodes at the top of the plan's own chain (k data primes), so encode is timed
      // in a context whose chain has k data primes and the special prime
      const kc = makeContext(seal, { logN: ch.logN, primes: [...ch.primes.slice(0, k), ch.primes[ch.primes.length - 1]], logScale: ch.primes[1], security: 128 })
      const kenc = seal.CKKSEncoder(kc.context)
      put('encode', k, timeIt(() => kenc.encode(v, scale)!.delete(), minMs))
      kenc.delete()
      put('encrypt', k, timeIt(() => encr.encrypt(pt)!.delete(), minMs))
      put('decrypt', k, timeIt(() => dec.decrypt(ct)!.delete(), minMs))
      const dpt = dec.decrypt(ct)!
      put('decode', k, timeIt(() => void enc.decode(dpt), minMs))
      put('rotate', k, timeIt(() => ev.rotateVector(ct, 1, gk)!.delete(), minMs))
      put('mulPlain', k, timeIt(() => ev.multiplyPlain(ct, pt)!.delete(), minMs))
      put('addPlain', k, timeIt(() => ev.addPlain(ct, pt)!.delete(), minMs))
      put('add', k, timeIt(() => ev.add(ct, ct2)!.delete(), minMs))
      put('negate', k, timeIt(() => ev.negate(ct)!.delete(), minMs))
      put('mul', k, timeIt(() => ev.multiply(ct, ct2)!.delete(), minMs))
      put('square', k, timeIt(() => ev.square(ct)!.delete(), minMs))
      const sq = ev.square(ct)!
      put('relin', k, timeIt(() => ev.relinearize(sq, rk)!.delete(), minMs))
      if (k > 1) {
        const m = ev.multiplyPlain(ct, pt)!
        put('rescale', k, timeIt(() => ev.rescaleToNext(m)!.delete(), minMs))
        put('modswitch', k, timeIt(() => ev.cipherModSwitchToNext(ct)!.delete(), minMs))
        m.delete()
      }
      for (const x of [pt, ct, ct2, dpt, sq]) x.delete()
      const line = (Object.keys(rows) as CostOp[]).map((op) => `${op} ${rows[op]!.ms[rows[op]!.ms.length - 1] ?? '-'}`).join('  ')
      console.log(`logN ${ch.logN} primes ${k}: ${line}`)
    }
    table.ops[String(ch.logN)] = rows
    for (const x of [kg, pk, rk, gk, enc, encr, dec, ev]) x.delete()
  }
  writeFileSync(costTablePath(), JSON.stringify(table, null, 1) + '\n')
  console.log(`wrote ${costTablePath()}`)
}

await main()
