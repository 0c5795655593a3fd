/**
 * The CKKS service's bytes and latency (`pic serve --plan` + `pic query`, both in this process, over
 * loopback): per model, the key upload once per session as sent (seeded, zstd) against the plain
 * serialization of the same keys (measured in this run: `--key-sizes`), the bytes per image up and
 * down against the ciphertexts' raw size (2 N (level + 1) 8 bytes each, as `pic run` counts them), and the
 * service's latency per image against `pic run`'s one-process evaluation of the same plan and images.
 * Outputs are checked against the float64 interpreter of the compiled model (top-1, max logit error).
 * The link is TLS 1.3 with the server's certificate pinned, as `pic query --server-fingerprint` does;
 * plans with refreshes mask them with bounds measured on the fixture's calibration images, as
 * `pic compile --calib` does (backends/ckks/refresh.ts).
 *
 * Run: npx vite-node bench/ckks-service.ts [--images N] [--models a,b] [--json]
 *   models: cnn_square, aespa_cnn, cryptonets28 (digits28), pkn (fmnist32, client-aided refreshes)
 * One core does everything (client and server alternate on the same thread): the latency column is an
 * upper bound for two machines, and it is only comparable with pic run's when the machine is otherwise idle.
 */
import { readFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { compileCkks, runPlan } from '../backends/ckks/index.js'
import { calibrateRefreshBounds } from '../backends/ckks/refresh.js'
import { queryCkks, startCkksServer } from '../backends/ckks/service.js'
import { parseNpy } from '../compiler/npy.js'
import { importModel } from '../compiler/onnx-import.js'
import { interpret } from '../ir/interpret.js'
import { maxAbsDiff, type Tensor } from '../ir/tensor.js'
import { top1Agreement } from '../passes/ola.js'
import { passContext, runPipeline } from '../passes/pass.js'
import { PIPELINES } from '../passes/pipelines.js'

const FIX = join(import.meta.dirname, '..', 'test', 'fixtures')
const argv = process.argv.slice(2)
const opt = (name: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined)
const nImages = Number(opt('--images') ?? 3)
const asJson = argv.includes('--json')

const CASES: Record<string, { dir: string; file: string }> = {
  cnn_square: { dir: 'digits', file: 'cnn_square' },
  aespa_cnn: { dir: 'digits', file: 'aespa_cnn' },
  cryptonets28: { dir: 'digits28', file: 'cryptonets28' },
  pkn: { dir: 'fmnist32', file: 'pkn' },
}
const models = (opt('--models') ?? Object.keys(CASES).join(',')).split(',')

function images(dir: string, n: number, file = 'test_x.npy'): Tensor {
  const x = parseNpy(readFileSync(join(FIX, dir, file)))
  const per = x.data.length / x.shape[0]
  return { dtype: x.dtype, shape: [n, ...x.shape.slice(1)], data: x.data.slice(0, n * per) }
}

const KB = (b: number) => +(b / 1024).toFixed(1)
const MB = (b: number) => +(b / 2 ** 20).toFixed(1)

async function main(): Promise<void> {
  const rows: Record<string, unknown>[] = []
  for (const name of models) {
    const c = CASES[name]
    if (!c) throw new Error(`unknown model ${name} (one of ${Object.keys(CASES).join(', ')})`)
    const t0 = performance.now()
    const g = runPipeline(importModel(readFileSync(join(FIX, c.dir, `${c.file}.onnx`)), { file: c.file }), PIPELINES.ckks({}), passContext({}, {}))
    const plan = compileCkks(g, { model: name })
    if (plan.refreshMask) calibrateRefreshBounds(plan, images(c.dir, 8, 'calib_x.npy'))
    const compileMs = performance.now() - t0
    const x = images(c.dir, nImages)
    const ref = interpret(g, [x]).get(g.outputs[0])!
    const server = await startCkksServer(plan, { port: 0 })
    let q
    try {
      q = await queryCkks(server.clientPart, x, {
        connect: `127.0.0.1:${server.port}`, compareSerialization: true, timeoutMs: 600_000, serverTrust: { fingerprint: server.fingerprint },
      })
    } finally {
      await server.close()
    }
    const { output, report } = q
    const local = await runPlan(plan, x, { refresh: 'client' })
    const k = report.bytes.keys
    const plainKeys = k.unseeded!.total
    const plainUp = local.ciphertextBytes.upload / x.shape[0]
    const plainDown = local.ciphertextBytes.download / x.shape[0]
    rows.push({
      model: name,
      logN: plan.params.logN,
      galoisKeys: plan.keys.rotations.length,
      refreshes: plan.stats.bootstraps,
      compileS: +(compileMs / 1000).toFixed(1),
      keysMB: MB(k.total),
      plainKeysMB: MB(plainKeys),
      keysRatio: +(k.total / plainKeys).toFixed(3),
      upKB: KB(report.bytes.perImage.up),
      downKB: KB(report.bytes.perImage.down),
      plainUpKB: KB(plainUp),
      plainDownKB: KB(plainDown),
      upRatio: +(report.bytes.perImage.up / plainUp).toFixed(2),
      serviceMsPerImage: Math.round(report.latencyMs.perImage),
      runMsPerImage: Math.round(local.perImageEvaluateMs),
      latencyRatio: +(report.latencyMs.perImage / local.perImageEvaluateMs).toFixed(2),
      keygenMs: Math.round(report.latencyMs.keygen),
      top1: `${Math.round(top1Agreement(ref, output) * x.shape[0])}/${x.shape[0]}`,
      maxAbsError: +maxAbsDiff(ref, output).toExponential(2),
      load1: +loadavg()[0].toFixed(2),
    })
    if (!asJson) console.error(`done ${name}`)
  }
  if (asJson) {
    process.stdout.write(JSON.stringify({ images: nImages, rows }, null, 1) + '\n')
    return
  }
  console.log(`CKKS service over loopback (TLS 1.3, pinned certificate; refreshes masked with calibrated bounds), ${nImages} image(s) per model; plain keys = the same keys serialized without seeds or compression (this run); plain up/down = raw ciphertexts, 2 N (level+1) 8 B each`)
  const cols = ['model', 'logN', 'galoisKeys', 'refreshes', 'keysMB', 'plainKeysMB', 'keysRatio', 'upKB', 'plainUpKB', 'upRatio', 'downKB', 'plainDownKB', 'serviceMsPerImage', 'runMsPerImage', 'latencyRatio', 'top1', 'maxAbsError', 'load1']
  console.log('| ' + cols.join(' | ') + ' |')
  console.log('|' + cols.map(() => '---').join('|') + '|')
  for (const r of rows) console.log('| ' + cols.map((col) => String(r[col])).join(' | ') + ' |')
}

await main()
