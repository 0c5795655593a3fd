/**
 * CKKS benchmark: per fixture model, the plan's parameters and keys, predicted against measured
 * evaluation latency per image, precision against the plaintext interpreter, and the cryptonets28
 * per-image latency. Run: npx vite-node bench/ckks.ts [--images N] [--json] [--wait-idle]. The
 * measured figures are only comparable with the table when the machine is otherwise idle (load1 column).
 */
import { readFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { compileCkks, runPlan, type CkksPlan } from '../backends/ckks/index.js'
import { parseNpy } from '../compiler/npy.js'
import { importModel } from '../compiler/onnx-import.js'
import { interpret } from '../ir/interpret.js'
import { maxAbsDiff, type Tensor } from '../ir/tensor.js'
import { top1Agreement } from '../passes/ola.js'
import { passContext, runPipeline } from '../passes/pass.js'
import { PIPELINES } from '../passes/pipelines.js'

const FIX = join(import.meta.dirname, '..', 'test', 'fixtures')
const argv = process.argv.slice(2)
const nImages = Number(argv[argv.indexOf('--images') + 1] || 0) || 5
const asJson = argv.includes('--json')
const waitIdle = argv.includes('--wait-idle')

/** With --wait-idle, wait (at most 5 minutes) until the 1-minute load average is below 1, so timings are not other jobs'. */
async function settle(): Promise<void> {
  const t0 = Date.now()
  while (waitIdle && loadavg()[0] >= 1 && Date.now() - t0 < 300_000) await new Promise((r) => setTimeout(r, 5000))
}

const CASES: { name: string; dir: string; approx?: string }[] = [
  { name: 'cnn_square', dir: 'digits' },
  { name: 'aespa_cnn', dir: 'digits' },
  { name: 'pkn_cnn', dir: 'digits' },
  { name: 'cryptonets28', dir: 'digits28' },
  { name: 'mlp_relu', dir: 'digits', approx: 'hermite:2' },
  { name: 'senet_partial_relu', dir: 'digits', approx: 'hermite:2' },
  { name: 'cnn_gelu', dir: 'digits', approx: 'hermite:2' },
]

function load(dir: string, file: string): Tensor {
  return parseNpy(readFileSync(join(FIX, dir, file)))
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

async function main(): Promise<void> {
  const rows: Record<string, unknown>[] = []
  for (const c of CASES) {
    const opts: Record<string, unknown> = c.approx ? { approx: c.approx } : {}
    const calib = c.approx ? load(c.dir, 'calib_x.npy') : undefined
    const passes = PIPELINES.ckks(opts)
    let plan: CkksPlan
    let g
    const t0 = performance.now()
    try {
      g = runPipeline(importModel(readFileSync(join(FIX, c.dir, `${c.name}.onnx`)), { file: c.name }), passes, passContext(opts, { calib }))
      plan = compileCkks(g, { model: c.name })
    } catch (e) {
      rows.push({ model: c.name, error: (e as Error).message })
      continue
    }
    const compileMs = performance.now() - t0
    const x = load(c.dir, 'test_x.npy')
    const per = x.data.length / x.shape[0]
    const n = Math.min(nImages + 1, x.shape[0])
    const imgs: Tensor = { dtype: x.dtype, shape: [n, ...x.shape.slice(1)], data: x.data.slice(0, n * per) }
    await settle()
    const load1 = loadavg()[0]
    const res = await runPlan(plan, imgs, { refresh: 'client' })
    const ref = interpret(g, [imgs]).get(g.outputs[0])!
    const err = maxAbsDiff(ref, res.outputs[0])
    const agree = Math.round(top1Agreement(ref, res.outputs[0]) * n)
    const measured = res.evaluateMsByImage.slice(1)
    const predicted = plan.stats.estimatedTotalMs
    rows.push({
      model: c.name + (c.approx ? ` (--approx ${c.approx})` : ''),
      logN: plan.params.logN,
      primes: plan.params.primes.join(','),
      logScale: plan.params.logScale,
      bits: `${plan.params.totalBits}/${plan.params.maxBits}`,
      depth: plan.stats.depth,
      ciphertextsIn: plan.stats.ciphertexts,
      rotationKeys: plan.keys.rotations.length,
      keyMiB: +(plan.stats.keyBytes.total / 2 ** 20).toFixed(1),
      memoryGrowthMiB: +(res.memoryGrowthBytes / 2 ** 20).toFixed(1),
      compileMs: Math.round(compileMs),
      keygenMs: Math.round(res.latencyMs.keygen),
      encryptMsPerImage: +(res.latencyMs.encrypt / n).toFixed(1),
      predictedMs: +predicted.toFixed(1),
      measuredMedianMs: +median(measured).toFixed(1),
      measuredMinMs: +Math.min(...measured).toFixed(1),
      ratio: +(median(measured) / predicted).toFixed(2),
      maxAbsError: +err.toExponential(2),
      precisionBits: +(-Math.log2(err)).toFixed(1),
      top1Agree: `${agree}/${n}`,
      bootstraps: plan.stats.bootstraps,
      load1: +load1.toFixed(2),
    })
    if (!asJson) console.error(`done ${c.name}`)
  }
  if (asJson) {
    process.stdout.write(JSON.stringify({ images: nImages, rows }, null, 1) + '\n')
    return
  }
  const cols = ['model', 'logN', 'primes', 'bits', 'depth', 'rotationKeys', 'keyMiB', 'memoryGrowthMiB', 'predictedMs', 'measuredMedianMs', 'ratio', 'maxAbsError', 'precisionBits', 'top1Agree', 'load1']
  console.log(`CKKS, ${nImages} timed images per model after one warm-up (evaluation ms per image)`)
  console.log(cols.join(' | '))
  for (const r of rows) console.log(r.error ? `${r.model} | error: ${r.error}` : cols.map((c) => String(r[c])).join(' | '))
  const cn = rows.find((r) => r.model === 'cryptonets28')
  if (cn) console.log(`cryptonets28: ${cn.measuredMedianMs} ms per image evaluation (median), ${cn.encryptMsPerImage} ms encryption, keygen ${cn.keygenMs} ms`)
}

await main()
