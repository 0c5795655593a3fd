/**
 * Garbled-circuit throughput. For the circuits the MPC backend garbles (the ReLU with the backend's
 * parameters: k = 1, 44 input bits, shift 16, ReLU, 64-bit output; and the fused ReLU + 2x2 max-pool
 * window, k = 4) and n instances garbled at once: AND gates, garble and evaluate AND/s, memory, and
 * ratios to reference points (4.8 M AND/s per core natively, 3.3 M AND/s in WebAssembly (mpz), the
 * node:crypto AES-128-ECB floor measured in the same run: the TCCR hash pi(pi(x) ^ i) ^ pi(x) takes two
 * AES calls, so 8 blocks per AND to garble, 4 to evaluate),
 * the bandwidth needed to ship the tables (32 B per AND) at the garbling rate, and the time for a
 * ResNet-20 at 32x32 (about 25 M AND gates per image).
 *
 * Each (circuit, n) case runs in a fresh child process so that its peak RSS is its own. Every case
 * checks its outputs against a BigInt plaintext computation.
 *
 *   npx vite-node bench/gc.ts                      (n = 4096, 16384, 65536)
 *   npx vite-node bench/gc.ts -- --n 16384,65536
 *   npx vite-node bench/gc.ts -- --reps 1 --k 1
 *   npx vite-node bench/gc.ts -- --impl /path/to/gc.ts   (another implementation of the same API)
 */
import { spawnSync } from 'node:child_process'
import { createCipheriv, randomBytes } from 'node:crypto'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type * as GcModule from '../backends/mpc/gc.js'
import { Prg } from '../backends/mpc/ring.js'

const args = process.argv.slice(2)
const opt = (name: string): string | undefined => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : undefined
}
const impl = opt('--impl')
const NATIVE = 4.8e6
const WASM = 3.3e6
const RESNET20_ANDS = 25e6
const PARAMS = { inBits: 44, shift: 16, relu: true, outBits: 64 }
/** AES blocks per AND gate (half-gates, TCCR hash with two AES calls per hash). */
const GARBLE_AES = 8
const EVAL_AES = 4

async function load(): Promise<typeof GcModule> {
  return (impl ? await import(resolve(impl)) : await import('../backends/mpc/gc.js')) as typeof GcModule
}

interface CaseResult {
  k: number
  n: number
  ands: number
  /** Best wall-clock and CPU (user + system, all threads) seconds over the repetitions. */
  garbleS: number
  garbleCpuS: number
  evalS: number
  evalCpuS: number
  rss0: number
  peakGarble: number
  peakTotal: number
  heapDelta: number
  /** ArrayBuffer bytes the Garbled result keeps (tables, decoding bits, labels if any). */
  retained: number
  tables: number
  /** gcBytes(circ, n), when the implementation has it. */
  estimate?: number
  chunk?: number
  ok: boolean
}

/** Plaintext oracle, independent of the circuit: max over relu(signed(a + b mod 2^inBits) >> shift), plus u. */
function reference(k: number, sa: BigUint64Array, sb: BigUint64Array, u: BigUint64Array, i: number): bigint {
  let best: bigint | undefined
  for (let j = 0; j < k; j++) {
    let y = BigInt.asIntN(PARAMS.inBits, sa[i * k + j] + sb[i * k + j]) >> BigInt(PARAMS.shift)
    if (PARAMS.relu && y < 0n) y = 0n
    if (best === undefined || y > best) best = y
  }
  return BigInt.asUintN(64, best! + u[i])
}

async function runCase(k: number, n: number, reps: number): Promise<CaseResult> {
  const gc = await load()
  const circ = gc.getWindowCircuit({ k, ...PARAMS })
  const inputs = (m: number) => {
    const prg = new Prg(randomBytes(16), 'bench')
    const sa = prg.ring(m * k)
    const sb = prg.ring(m * k)
    const u = prg.ring(m)
    return { sa, sb, u, bitsA: gc.toBits(sa, PARAMS.inBits), bitsB: gc.toBits(sb, PARAMS.inBits), bitsU: gc.toBits(u, 64) }
  }
  const once = (m: number, x: ReturnType<typeof inputs>, tweak: number) => {
    let t = performance.now()
    let c = process.cpuUsage()
    const gb = gc.garble(circ, m, randomBytes(16), tweak)
    const garbleS = (performance.now() - t) / 1000
    let cu = process.cpuUsage(c)
    const garbleCpuS = (cu.user + cu.system) / 1e6
    const peakGarble = process.resourceUsage().maxRSS * 1024
    const m1 = process.memoryUsage()
    const la = gc.encodeLabels(gb, m, circ.inputsA, x.bitsA)
    const lb = gc.encodeLabels(gb, m, circ.inputsB, x.bitsB)
    const lu = gc.encodeLabels(gb, m, circ.inputsU, x.bitsU)
    t = performance.now()
    c = process.cpuUsage()
    const bits = gc.evaluate(circ, m, la, lb, lu, gb.tables, gb.decode, tweak, gb.hashKey)
    const evalS = (performance.now() - t) / 1000
    cu = process.cpuUsage(c)
    return { gb, bits, garbleS, garbleCpuS, evalS, evalCpuS: (cu.user + cu.system) / 1e6, peakGarble, peakTotal: process.resourceUsage().maxRSS * 1024, m1 }
  }
  // warm up the JIT on small batches
  for (let r = 0; r < 3; r++) once(512, inputs(512), 100 + r)
  const x = inputs(n)
  const collect = (globalThis as { gc?: () => void }).gc
  collect?.()
  const m0 = process.memoryUsage()
  const first = once(n, x, 1)
  const out = gc.fromBits(first.bits, 64)
  let ok = true
  for (let i = 0; i < n; i += Math.max(1, Math.floor(n / 4096))) if (out[i] !== reference(k, x.sa, x.sb, x.u, i)) ok = false
  const res: CaseResult = {
    k, n, ands: circ.ands, garbleS: first.garbleS, garbleCpuS: first.garbleCpuS, evalS: first.evalS, evalCpuS: first.evalCpuS, rss0: m0.rss,
    peakGarble: first.peakGarble - m0.rss, peakTotal: first.peakTotal - m0.rss, heapDelta: first.m1.heapUsed - m0.heapUsed,
    retained: first.m1.arrayBuffers - m0.arrayBuffers, tables: first.gb.tables.length, ok,
  }
  const ext = gc as { instancesPerChunk?: (c: GcModule.Circuit, b: number) => number; gcBytes?: (c: GcModule.Circuit, n: number) => number }
  res.chunk = ext.instancesPerChunk?.(circ, 256 << 20)
  res.estimate = ext.gcBytes?.(circ, n)
  for (let r = 1; r < reps; r++) {
    collect?.()
    const again = once(n, x, 1 + r)
    res.garbleS = Math.min(res.garbleS, again.garbleS)
    res.garbleCpuS = Math.min(res.garbleCpuS, again.garbleCpuS)
    res.evalS = Math.min(res.evalS, again.evalS)
    res.evalCpuS = Math.min(res.evalCpuS, again.evalCpuS)
  }
  return res
}

function aesThroughput(): { bytes: number; blocksPerS: number }[] {
  const key = randomBytes(16)
  const res: { bytes: number; blocksPerS: number }[] = []
  for (const bytes of [4 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20]) {
    const c = createCipheriv('aes-128-ecb', key, null)
    c.setAutoPadding(false)
    const buf = randomBytes(bytes)
    const total = 128 << 20
    let best = 0
    for (let r = 0; r < 3; r++) {
      const t = performance.now()
      for (let done = 0; done < total; done += bytes) c.update(buf)
      const s = (performance.now() - t) / 1000
      best = Math.max(best, total / 16 / s)
    }
    res.push({ bytes, blocksPerS: best })
  }
  return res
}

const M = (x: number) => (x / 1e6).toFixed(2)
const MB = (x: number) => (x / 2 ** 20).toFixed(0)

async function main() {
  const caseArg = opt('--case')
  if (caseArg) {
    const [k, n, reps] = caseArg.split(',').map(Number)
    process.stdout.write('RESULT ' + JSON.stringify(await runCase(k, n, reps)) + '\n')
    return
  }
  const ns = (opt('--n') ?? '4096,16384,65536').split(',').map(Number)
  const ks = (opt('--k') ?? '1,4').split(',').map(Number)
  const reps = Number(opt('--reps') ?? 3)
  console.log(`implementation: ${impl ?? 'backends/mpc/gc.ts'}`)
  const aes = aesThroughput()
  const floor = Math.max(...aes.map((a) => a.blocksPerS))
  console.log('node:crypto AES-128-ECB, one update call per batch (blocks/s):')
  for (const a of aes) console.log(`  batch ${(a.bytes / 1024).toString().padStart(5)} KiB: ${M(a.blocksPerS)} M blocks/s (${((a.blocksPerS * 16) / 2 ** 30).toFixed(2)} GiB/s)`)
  console.log(`  floor: garble <= ${M(floor / GARBLE_AES)} M AND/s (${GARBLE_AES} blocks), evaluate <= ${M(floor / EVAL_AES)} M AND/s (${EVAL_AES} blocks)\n`)
  const rows: CaseResult[] = []
  for (const k of ks)
    for (const n of ns) {
      const r = spawnSync(process.execPath, ['--expose-gc', ...process.execArgv, process.argv[1]!, fileURLToPath(import.meta.url), '--', '--case', `${k},${n},${reps}`, ...(impl ? ['--impl', impl] : [])], {
        encoding: 'utf8',
        maxBuffer: 1 << 24,
      })
      const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '))
      if (!line) {
        console.log(`k=${k} n=${n}: failed (${r.status ?? r.signal}) ${r.stderr.slice(-2000)}`)
        continue
      }
      rows.push(JSON.parse(line.slice(7)) as CaseResult)
    }
  const head = ['circuit', 'n', 'ANDs/inst', 'ANDs', 'garble s', 'garble M AND/s', 'eval s', 'eval M AND/s', 'cpu g/e M AND/s', 'x native g/e', 'x wasm g/e',
    'AES floor g/e', 'tables Gb/s', 'tables MiB', 'kept MiB', 'heap d MiB', 'peak dRSS g MiB', 'peak dRSS g+e MiB', 'gcBytes MiB', 'ResNet-20 g+e s', 'chunk@256MiB', 'ok']
  const table = rows.map((r) => {
    const tot = r.ands * r.n
    const g = tot / r.garbleS
    const e = tot / r.evalS
    return [r.k === 1 ? 'ReLU k=1' : `max k=${r.k}`, String(r.n), String(r.ands), M(tot) + 'M', r.garbleS.toFixed(3), M(g), r.evalS.toFixed(3), M(e),
      `${M(tot / r.garbleCpuS)}/${M(tot / r.evalCpuS)}`, `${(g / NATIVE).toFixed(2)}/${(e / NATIVE).toFixed(2)}`, `${(g / WASM).toFixed(2)}/${(e / WASM).toFixed(2)}`,
      `${((g * GARBLE_AES) / floor).toFixed(2)}/${((e * EVAL_AES) / floor).toFixed(2)}`, ((g * 32 * 8) / 1e9).toFixed(2), MB(r.tables), MB(r.retained), MB(r.heapDelta), MB(r.peakGarble), MB(r.peakTotal),
      r.estimate === undefined ? '-' : MB(r.estimate), (RESNET20_ANDS / g + RESNET20_ANDS / e).toFixed(2), r.chunk === undefined ? '-' : String(r.chunk), r.ok ? 'yes' : 'NO']
  })
  const w = head.map((h, i) => Math.max(h.length, ...table.map((t) => t[i].length)))
  console.log(head.map((h, i) => h.padStart(w[i])).join(' | '))
  console.log(w.map((x) => '-'.repeat(x)).join('-|-'))
  for (const t of table) console.log(t.map((c, i) => c.padStart(w[i])).join(' | '))
  console.log(`
Rates: best of ${reps} runs, wall clock (cpu: user + system time of all threads). x native / x wasm: over ${M(NATIVE)} M and ${M(WASM)} M AND/s per core.
AES floor: fraction of the node:crypto AES-only bound above (${GARBLE_AES} blocks per AND to garble, ${EVAL_AES} to evaluate). tables Gb/s: link bandwidth
needed to ship 32 B per AND gate at the garbling rate. kept: ArrayBuffer memory the garbling result holds (tables, decoding bits,
labels); heap d: JS heap growth over the garbling. peak dRSS: peak RSS over the process before garbling (the evaluation also holds the tables and the 16-byte input labels).
gcBytes: the implementation's own estimate for one call (tables + input labels + bits + fixed working set). ResNet-20: ~25 M AND
gates per image garbled and evaluated at these rates. chunk: instancesPerChunk(circuit, 256 MiB).`)
  if (rows.some((r) => !r.ok)) process.exitCode = 1
}

await main()
